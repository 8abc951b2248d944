"""`python -m minicaffe.test`: score a trained net, like `caffe test`.

    python -m minicaffe.test --model M --weights W [--iterations 50] [--gpu N]

Runs the TEST phase net `iterations` times and prints each output per batch and averaged
(`Loss:` for the weighted sum of loss outputs). Exit status 1 on an error.
"""
import argparse
import logging
import sys

import numpy as np

from minicaffe.train import gpu_id, select_device, setup_logging

log = logging.getLogger("minicaffe")


def _parser():
    ap = argparse.ArgumentParser(prog="python -m minicaffe.test", description=__doc__.split("\n")[0])
    ap.add_argument("--model", "-model", required=True, help="net .prototxt")
    ap.add_argument("--weights", "-weights", required=True, help=".caffemodel or .npz")
    ap.add_argument("--iterations", "-iterations", type=int, default=50)
    ap.add_argument("--gpu", "-gpu", type=gpu_id, help="CUDA device id")
    return ap


def score(net, iterations):
    """Mean of every output blob over `iterations` forward passes, and the weighted loss.

    Returns (OrderedDict name -> float or list, loss)."""
    from minicaffe import backend
    from minicaffe.solver.base import _loss_weights

    sums, loss = {}, 0.0
    weights = _loss_weights(net)
    for i in range(iterations):
        outs = net.forward()
        for name in net.outputs:
            v = backend.asnumpy(outs[name]).astype(np.float64).ravel()
            sums[name] = sums[name] + v if name in sums else v
            loss += weights.get(name, 0.0) * float(v.sum())
            log.info("Batch %d, %s = %s", i, name, " ".join(f"{x:.6g}" for x in v))
    n = max(iterations, 1)
    means = {k: float(v[0]) / n if v.size == 1 else (v / n).tolist() for k, v in sums.items()}
    return means, loss / max(iterations, 1)


def main(argv=None):
    args = _parser().parse_args(argv)
    setup_logging()
    from minicaffe.errors import MinicaffeError
    from minicaffe.net import Net

    try:
        select_device(args.gpu)
        net = Net(args.model, "TEST", weights=args.weights)
        log.info("Running for %d iterations.", args.iterations)
        means, loss = score(net, args.iterations)
    except (MinicaffeError, OSError, RuntimeError) as exc:  # RuntimeError: no GPU, as train
        log.error("%s", exc)
        return 1
    log.info("Loss: %g", loss)
    for name, value in means.items():
        log.info("%s = %s", name, value if not isinstance(value, float) else f"{value:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
