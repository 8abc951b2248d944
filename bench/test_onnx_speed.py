"""minicaffe's TEST forward against ONNX Runtime on the exported model (issue 19), one run.

Nets (deploy prototxt, Input layers, no data files):
  cifar10_quick       prototxt/cifar10/cifar10_quick_deploy.prototxt, random weights
  lenet_ssl_compact   the compacted SSL LeNet: LeNet with the SSL structure planted as in
                      bench/test_compact_speed.py (docs/SSL.md: conv1 7/20 filters, conv2 8/50
                      filters reading 6 channels through 84 shape fibres, ...) through
                      `minicaffe.compact` -> a smaller dense net whose conv2 keeps conv_mode
                      LOWERED_CCNMM for its zero fibres; ONNX Runtime gets its export (dense
                      weights, the zero fibres included)
  lenet_ssl_dense     the same weights in the full LeNet (LOWERED_GEMM): the dense reference
at batch 1 and 64, with 1 and 2 threads (minicaffe.set_num_threads and ORT's
intra_op_num_threads alike; one inter-op thread, sequential execution, ORT's default graph
optimisations). Both engines get the same input array per call: `net.forward(data=x)` and
`session.run(None, {"data": x})`. Outputs are compared (1e-4) before timing.

Ours is timed with pytest-benchmark; the ratios come from blocks of calls of each engine
interleaved round by round (`interleaved`, medians of the rounds) in the same process.
Recorded in benchmark.extra_info (not asserted): ratio = ours / ORT (target <= 1.2), and for
the compaction test each engine's dense -> compacted speedup with the FLOP ratio beside them.

    benchjob python -m pytest bench/test_onnx_speed.py --benchmark-min-rounds=5
    benchjob python bench/test_onnx_speed.py --threads 1 2         # the Markdown tables
    benchjob python bench/test_onnx_speed.py --profile --nets cifar10_quick --batches 64
                       # where the time goes: minicaffe per layer beside ORT's profile per node
"""
import argparse
import importlib.util
import json
import os
import tempfile
import statistics
import time

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe import ops
from minicaffe.net import Net

ops.build_info()       # minicaffe's kernels (and their libgomp) load first (docs/KERNELS.md)

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed "
                          "(pip install 'minicaffe[onnx]')")

from minicaffe.export.onnx_export import convert  # noqa: E402
from minicaffe.export.verify import session  # noqa: E402
from minicaffe.testing.weights import randomize_weights  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = os.path.join(ROOT, "prototxt", "cifar10", "cifar10_quick_deploy.prototxt")
LENET = os.path.join(ROOT, "prototxt", "lenet", "lenet_deploy.prototxt")
NETS = ["cifar10_quick", "lenet_ssl_compact", "lenet_ssl_dense"]
BATCHES = [1, 64]
TARGET = 1.2


def _planted():
    """[(name, type, [arrays])]: the SSL LeNet weights of bench/test_compact_speed.py."""
    path = os.path.join(ROOT, "bench", "test_compact_speed.py")
    spec = importlib.util.spec_from_file_location("_compact_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.planted_ssl_lenet()


def _with_batch(net, batch):
    name = net.inputs[0]
    net.blobs[name].reshape((batch,) + tuple(net.blobs[name].shape[1:]))
    net.reshape()
    return net


def build(key, batch):
    """The minicaffe TEST net `key` at `batch`, weights loaded."""
    if key == "cifar10_quick":
        return _with_batch(randomize_weights(Net(CIFAR, caffe.TEST), seed=19), batch)
    dense = Net(LENET, caffe.TEST)
    for name, _, arrays in _planted():
        for blob, a in zip(dense.params[name], arrays):
            blob.data[...] = a.reshape(blob.shape)
    for layer in dense.layers:
        if hasattr(layer, "refresh_weights"):
            layer.refresh_weights()
    if key == "lenet_ssl_dense":
        return _with_batch(dense, batch)
    from minicaffe.compact import build_net, compact_net    # issue 14

    param, weights = compact_net(dense)
    return _with_batch(build_net(param, weights), batch)


def engines(key, batch, threads):
    """(net, {engine: forward callable}, export report) with the outputs cross-checked."""
    ops.set_num_threads(threads)
    net = build(key, batch)
    x = np.random.default_rng(batch).random(net.blobs["data"].shape, dtype=np.float32)
    model, report = convert(net)
    sess = session(model, threads)
    want = np.array(net.forward(data=x)["prob"])
    got = sess.run(["prob"], {"data": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    feed = {"data": x}
    fns = {"ours": lambda: net.forward(data=x), "ort": lambda: sess.run(None, feed)}
    return net, fns, report


def interleaved(fns, rounds=21, block_s=0.02, gap_s=0.1):
    """{name: median seconds per call}: every round runs a block of calls of each engine in
    turn (rotating who goes first), each block about block_s long, after a pause of gap_s.

    The pause matters with threads: ONNX Runtime's pool (and OpenMP's) spins after a run to
    catch the next one quickly; a block started right after another engine's shares the
    cores with those spinning threads (measured: minicaffe's 2-thread CIFAR-10 forward 3x
    slower right after ORT's block). ORT's worker stays busy about 40 ms after its last run
    (thread CPU time sampled every 20 ms on the 2-core machine; libgomp's under 20 ms), so
    the pause is 100 ms: a 30 ms pause left ORT's spinning thread in the first part of every
    block that followed ORT's. After the pause each engine runs as if alone. Each block
    starts with a quarter block of untimed calls: after the pause the first few ms of calls
    ran slower for either engine (minicaffe's 2-thread CIFAR-10 batch-1 forward: 0.14-0.22
    ms over its first 30 calls, 0.13 after), and the table is about steady running."""
    per_block = {}
    for name, fn in fns.items():
        fn()
        t = time.perf_counter()
        fn()
        per_block[name] = max(1, int(block_s / max(time.perf_counter() - t, 1e-7)))
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, k = fns[name], per_block[name]
            time.sleep(gap_s)
            for _ in range(max(1, k // 4)):            # wake this engine's threads, warm up
                fn()
            t = time.perf_counter()
            for _ in range(k):
                fn()
            times[name].append((time.perf_counter() - t) / k)
    return {name: statistics.median(v) for name, v in times.items()}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("key", NETS)
def test_forward_vs_onnxruntime(benchmark, key, batch, threads):
    net, fns, report = engines(key, batch, threads)          # outputs checked
    if benchmark.disabled:
        benchmark(fns["ours"])
        return
    m = interleaved(fns)
    benchmark(fns["ours"])
    benchmark.extra_info.update({
        "net": key, "batch": batch, "threads": threads, "build": ops.build_info(),
        "onnxruntime": ort.__version__, "median_ms": {k: 1e3 * v for k, v in m.items()},
        "ratio": m["ours"] / m["ort"], "target_ratio": TARGET,
        "target_met": m["ours"] / m["ort"] <= TARGET,
        "onnx_mflop": report.dense_flops / 1e6, "minicaffe_mflop": report.minicaffe_flops / 1e6})


def speedups(batch, threads, rounds=21):
    """Dense -> compacted SSL LeNet for both engines: (medians, FLOP ratio)."""
    _, dense, rd = engines("lenet_ssl_dense", batch, threads)
    _, small, rc = engines("lenet_ssl_compact", batch, threads)
    fns = {"ours_dense": dense["ours"], "ours_compact": small["ours"],
           "ort_dense": dense["ort"], "ort_compact": small["ort"]}
    return interleaved(fns, rounds), rd.dense_flops / rc.minicaffe_flops, \
        rd.dense_flops / rc.dense_flops


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", BATCHES)
def test_compaction_speedup_vs_onnxruntime(benchmark, batch, threads):
    if benchmark.disabled:
        engines("lenet_ssl_compact", batch, threads)
        benchmark(lambda: None)
        return
    m, ideal_ours, ideal_ort = speedups(batch, threads)
    benchmark(lambda: None)
    benchmark.extra_info.update({
        "batch": batch, "threads": threads, "median_ms": {k: 1e3 * v for k, v in m.items()},
        "ours_speedup": m["ours_dense"] / m["ours_compact"],
        "ort_speedup": m["ort_dense"] / m["ort_compact"],
        "flop_ratio_ours": ideal_ours, "flop_ratio_ort": ideal_ort})


def profile(key, batch, threads, rounds=30):
    """Where each engine's forward time goes: (minicaffe {"forward_ms", "layers": {layer:
    median ms}}, ORT {"run_ms", "nodes": [(node, op type, median ms)]}). minicaffe's layers are
    timed one by one (minicaffe.timing.compare_nets); ORT's nodes come from its own profiler
    (kernel time per node, after its graph optimisations: fused and NCHWc-reordered nodes)."""
    from minicaffe.timing import compare_nets    # noqa: PLC0415

    net, fns, _ = engines(key, batch, threads)
    x = np.random.default_rng(batch).random(net.blobs["data"].shape, dtype=np.float32)
    net.blobs["data"].data[...] = x
    ours = compare_nets({key: net}, rounds=rounds, gemm=False)[key]
    model, _ = convert(net)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])
        runs = []
        for i in range(rounds + 5):
            t = time.perf_counter()
            sess.run(None, {"data": x})
            if i >= 5:
                runs.append(time.perf_counter() - t)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    per = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per.setdefault((e["name"][:-len("_kernel_time")], e["args"].get("op_name", "?")),
                           []).append(e["dur"] / 1e3)
    nodes = [(n, op, statistics.median(d)) for (n, op), d in per.items()]
    return ({"forward_ms": ours["forward_ms"],
             "layers": {k: v["forward_ms"] for k, v in ours["layers"].items()}},
            {"run_ms": 1e3 * statistics.median(runs), "nodes": nodes})


def _print_profile(key, batch, threads, rounds):
    ours, theirs = profile(key, batch, threads, rounds)
    print(f"\n{key}, batch {batch}, {threads} thread(s): minicaffe forward "
          f"{ours['forward_ms']:.3f} ms (layer by layer); ONNX Runtime run "
          f"{theirs['run_ms']:.3f} ms (profiling on)\n")
    print("| minicaffe layer | ms | | ORT node | op | ms |")
    print("|---|---:|---|---|---|---:|")
    left = list(ours["layers"].items())
    right = theirs["nodes"]
    for i in range(max(len(left), len(right))):
        a = f"{left[i][0]} | {left[i][1]:.3f}" if i < len(left) else " | "
        b = f"{right[i][0]} | {right[i][1]} | {right[i][2]:.3f}" if i < len(right) else " | | "
        print(f"| {a} | | {b} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches", type=int, nargs="+", default=BATCHES)
    ap.add_argument("--nets", nargs="+", default=NETS, choices=NETS)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--profile", action="store_true",
                    help="per-layer / per-node times of both engines instead of the tables")
    args = ap.parse_args(argv)
    print(f"build: {ops.build_info()}; onnxruntime {ort.__version__}")
    if args.profile:
        for key in args.nets:
            for batch in args.batches:
                for threads in args.threads:
                    _print_profile(key, batch, threads, args.rounds)
        return
    print("\n| net | batch | threads | minicaffe ms | ONNX Runtime ms | minicaffe / ORT |")
    print("|---|---|---|---|---|---|")
    for key in args.nets:
        for batch in args.batches:
            for threads in args.threads:
                _, fns, _ = engines(key, batch, threads)
                m = interleaved(fns, args.rounds)
                print(f"| {key} | {batch} | {threads} | {1e3 * m['ours']:.4f} | "
                      f"{1e3 * m['ort']:.4f} | {m['ours'] / m['ort']:.2f} |", flush=True)
    if "lenet_ssl_compact" in args.nets:
        print("\n| batch | threads | minicaffe dense / compacted ms | speedup | ORT dense / "
              "compacted ms | speedup | FLOP ratio (minicaffe / ORT) |")
        print("|---|---|---|---|---|---|---|")
        for batch in args.batches:
            for threads in args.threads:
                m, fr_ours, fr_ort = speedups(batch, threads, args.rounds)
                print(f"| {batch} | {threads} | {1e3 * m['ours_dense']:.4f} / "
                      f"{1e3 * m['ours_compact']:.4f} | "
                      f"{m['ours_dense'] / m['ours_compact']:.2f} | "
                      f"{1e3 * m['ort_dense']:.4f} / {1e3 * m['ort_compact']:.4f} | "
                      f"{m['ort_dense'] / m['ort_compact']:.2f} | {fr_ours:.2f} / {fr_ort:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
