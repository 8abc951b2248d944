"""`python -m minicaffe.time`: per-layer forward/backward timings, like `caffe time`.

    python -m minicaffe.time --model M [--iterations 50] [--phase TRAIN] [--gpu N]
    python -m minicaffe.time --model M --weights W --modes dense,ccnmm,csr,compact[,auto]

Input blobs hold zeros (their values do not change the work done). Prints the average forward
and backward time of every layer, then of whole passes, in milliseconds.

With --modes the net runs at TEST once per execution mode (every convolution LOWERED_GEMM,
LOWERED_CCNMM or LOWERED_CSRMM, `auto` = the fastest per layer, `compact` = the compacted net
of minicaffe.compact), all timed interleaved for --iterations rounds, and two Markdown tables go
to stdout: per-layer and end-to-end forward times of each mode side by side, GEMM only and
with lowering, with each mode's speedup over dense beside the ideal (FLOP-ratio) one.
"""
import argparse
import logging
import sys
import time as _time

from minicaffe.train import gpu_id, select_device, setup_logging

log = logging.getLogger("minicaffe")


def _parser():
    ap = argparse.ArgumentParser(prog="python -m minicaffe.time", description=__doc__.split("\n")[0])
    ap.add_argument("--model", "-model", required=True, help="net .prototxt")
    ap.add_argument("--weights", "-weights", help="optional weights (sparse weights change the "
                    "time of compacted layers)")
    ap.add_argument("--iterations", "-iterations", type=int, default=50)
    ap.add_argument("--phase", "-phase", default="TRAIN", choices=["TRAIN", "TEST"])
    ap.add_argument("--gpu", "-gpu", type=gpu_id, help="CUDA device id")
    ap.add_argument("--modes", help="compare execution modes at TEST: a comma-separated list of "
                    "dense, ccnmm, csr, auto, compact")
    ap.add_argument("--threads", type=int, help="compute threads (default: the library's)")
    ap.add_argument("--json", help="with --modes: also write the timings as JSON here")
    return ap


def run_modes(args):
    """The --modes comparison (see the module docstring); returns the exit status."""
    import json

    from minicaffe import ops
    from minicaffe.compact.modes import build_mode_nets, compare_modes, format_modes, parse_modes

    modes = parse_modes(args.modes)
    if args.threads:
        ops.set_num_threads(args.threads)
    nets = build_mode_nets(args.model, args.weights, modes)
    data = compare_modes(nets, rounds=max(1, args.iterations))
    sys.stdout.write(format_modes(data))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
    return 0


def time_layers(net, iterations, backward=True):
    """{layer name: (forward ms, backward ms)} averaged over `iterations`, plus totals.

    Returns (per_layer dict, forward total ms, backward total ms)."""
    from minicaffe import backend

    names = list(net._layer_names)
    fwd = dict.fromkeys(names, 0.0)
    bwd = dict.fromkeys(names, 0.0)
    net.forward()                               # warm-up: buffers, compacted weights
    if backward:
        net.backward()
    for _ in range(iterations):
        for name in names:
            t = _time.perf_counter()
            net.forward(start=name, end=name)
            backend.synchronize()
            fwd[name] += _time.perf_counter() - t
        if backward:
            for name in reversed(names):
                t = _time.perf_counter()
                net.backward(start=name, end=name)
                backend.synchronize()
                bwd[name] += _time.perf_counter() - t
    n = max(iterations, 1)
    per = {k: (1e3 * fwd[k] / n, 1e3 * bwd[k] / n) for k in names}
    return per, sum(v[0] for v in per.values()), sum(v[1] for v in per.values())


def main(argv=None):
    args = _parser().parse_args(argv)
    setup_logging()
    from minicaffe.errors import MinicaffeError
    from minicaffe.net import Net

    try:
        select_device(args.gpu)
        if args.modes:
            return run_modes(args)
        if args.threads:
            from minicaffe import ops

            ops.set_num_threads(args.threads)
        net = Net(args.model, args.phase, weights=args.weights)
        log.info("Performing Forward%s", "" if args.phase == "TEST" else " and Backward")
        per, f, b = time_layers(net, args.iterations, backward=args.phase == "TRAIN")
    except (MinicaffeError, OSError, RuntimeError, ValueError) as exc:  # RuntimeError: no GPU
        log.error("%s", exc)
        return 1
    log.info("Average time per layer:")
    width = max(len(k) for k in per) if per else 1
    for name, (lf, lb) in per.items():
        log.info("%*s\tforward: %.4f ms.", width, name, lf)
        if args.phase == "TRAIN":
            log.info("%*s\tbackward: %.4f ms.", width, name, lb)
    log.info("Average Forward pass: %.4f ms.", f)
    if args.phase == "TRAIN":
        log.info("Average Backward pass: %.4f ms.", b)
        log.info("Average Forward-Backward: %.4f ms.", f + b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
