"""The expected weak scaling of every shipped net on a cluster (docs/SCALING.md): gradient bytes
allreduced per iteration, the compute time of one iteration measured here, and the ring
allreduce model on 10 Gb/s and 100 Gb/s networks.

    python bench/scaling_model.py [--threads 1] [--iterations 3] [--json out.json]

Per net (its deploy prototxt with force_backward, reshaped to the training batch per rank;
Input blobs hold zeros, which do not change the work): forward + backward time of one iteration on this machine at
`--threads` threads (`python -m minicaffe.time`'s per-layer loop), the bytes of the learnable
blobs that get a gradient (what minicaffe.parallel's GradientReducer allreduces), and for P
ranks (one per node) on a network of bandwidth BW and per-message latency a:

    ring allreduce   t_comm(P) = 2 (P-1)/P * bytes / BW + 2 (P-1) * a
    no overlap       t_iter = t_fwd + t_bwd + t_comm
    full overlap     t_iter = t_fwd + max(t_bwd, t_comm)    (buckets hide behind backward)
    weak scaling     speedup(P) = P * (t_fwd + t_bwd) / t_iter,  efficiency = speedup / P

AlexNet at batch 256 takes minutes per iteration on one thread here: it is timed at batch
`--alexnet-batch` (default 32) and scaled linearly to 256 (its layers' work is linear in the
batch), which the table says.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, deploy prototxt, training batch per rank: the shipped train_test's TRAIN batch_size)
NETS = (
    ("LeNet", "lenet/lenet_deploy.prototxt", 64),
    ("MLP", "mlp/mlp_deploy.prototxt", 64),
    ("CIFAR-10 quick", "cifar10/cifar10_quick_deploy.prototxt", 100),
    ("CIFAR-10 full", "cifar10/cifar10_full_deploy.prototxt", 100),
    ("ResNet-20", "resnet20/resnet20_deploy.prototxt", 128),
    ("AlexNet", "alexnet/alexnet_deploy.prototxt", 256),
)

NETWORKS = (("10 Gb/s", 10e9 / 8, 50e-6), ("100 Gb/s", 100e9 / 8, 5e-6))
RANKS = (2, 8, 32, 128)


def ring_seconds(nbytes, ranks, bandwidth, latency):
    """Ring allreduce of `nbytes` over `ranks`: reduce-scatter + allgather, 2(P-1) steps of
    nbytes/P each."""
    if ranks < 2:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * latency


def expected(t_fwd, t_bwd, nbytes, ranks, bandwidth, latency):
    """(speedup without overlap, speedup with full overlap) of `ranks` ranks over one."""
    comm = ring_seconds(nbytes, ranks, bandwidth, latency)
    compute = t_fwd + t_bwd
    return ranks * compute / (compute + comm), ranks * compute / (t_fwd + max(t_bwd, comm))


def measure(name, path, batch, iterations, alexnet_batch):
    """{name, batch, timed_batch, fwd_s, bwd_s, bytes, blobs} of one net."""
    from minicaffe.net import Net
    from minicaffe.parallel.reducer import _gradient_blobs
    from minicaffe.time import time_layers

    from minicaffe.prototxt import read_net

    # A deploy net has no loss, so nothing would need a backward pass: force it, as training
    # runs it (every layer's parameter and input gradients).
    param = read_net(str(ROOT / "prototxt" / path))
    param.force_backward = True
    net = Net(param, "TRAIN")
    timed = alexnet_batch if name == "AlexNet" else batch
    for blob_name in net.inputs:
        blob = net.blobs[blob_name]
        blob.reshape((timed,) + tuple(blob.shape[1:]))
    net.reshape()
    _, f, b = time_layers(net, iterations)
    scale = batch / timed
    blobs = _gradient_blobs(net)
    return {"net": name, "batch": batch, "timed_batch": timed, "fwd_s": f * scale / 1e3,
            "bwd_s": b * scale / 1e3, "bytes": sum(blob.diff.nbytes for blob, _ in blobs),
            "blobs": len(blobs)}


def markdown(rows, threads):
    out = [f"Compute: forward + backward of one iteration at the batch per rank, {threads} "
           "thread(s), measured on this machine; communication: the ring model.", "",
           "| net | batch / rank | gradient MB / iteration | compute s / iteration | "
           + " | ".join(f"{n}, P={p}" for n, _, _ in NETWORKS for p in RANKS) + " |",
           "|---|---:|---:|---:|" + "---:|" * (len(NETWORKS) * len(RANKS))]
    for r in rows:
        cells = []
        for _, bw, lat in NETWORKS:
            for p in RANKS:
                lo, hi = expected(r["fwd_s"], r["bwd_s"], r["bytes"], p, bw, lat)
                cells.append(f"{lo:.1f}-{hi:.1f}x" if hi - lo >= 0.05 else f"{lo:.1f}x")
        note = "" if r["timed_batch"] == r["batch"] else f" (timed at {r['timed_batch']})"
        out.append(f"| {r['net']} | {r['batch']}{note} | {r['bytes'] / 1e6:.3f} | "
                   f"{r['fwd_s'] + r['bwd_s']:.3f} | " + " | ".join(cells) + " |")
    out += ["", "Each cell: the expected speedup of P ranks over one (ideal P), without overlap "
            "- with backward fully overlapping the allreduce; a single figure where the two "
            "agree."]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python bench/scaling_model.py",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--alexnet-batch", type=int, default=32)
    ap.add_argument("--nets", help="comma-separated subset of the names above")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    from minicaffe import ops

    ops.set_num_threads(a.threads)
    wanted = None if not a.nets else {n.strip() for n in a.nets.split(",")}
    rows = []
    for name, path, batch in NETS:
        if wanted is None or name in wanted:
            rows.append(measure(name, path, batch, a.iterations, a.alexnet_batch))
            print(f"{name}: {rows[-1]}", file=sys.stderr)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    print(markdown(rows, a.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
