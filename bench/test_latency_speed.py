"""Batch-1 latency: minicaffe's TEST forward vs BVLC Caffe's C++ forward and PyTorch, one run.

Nets, batch 1, from prototxt/lenet/lenet_deploy.prototxt:
  lenet       conv1 20 / conv2 50 filters (Caffe's LeNet)
  lenet_6_6   conv1 6 / conv2 6 filters: the compacted SSL LeNet, as `minicaffe.compact`
              writes it (a smaller dense net); Caffe and PyTorch run the same smaller net
  lenet_ccnmm the full LeNet with conv_mode LOWERED_CCNMM and weights zero outside 6/6 filters
              (and the conv2 columns of the removed conv1 channels): the compacted GEMM without
              surgery; ip1 keeps its 800 inputs. Ours only (Caffe has no conv_mode).
Every engine gets the same weights, and the outputs are compared before timing.

Ours is timed with pytest-benchmark (the planned forward, `net.forward()`); the ratios come
from blocks of calls of every engine interleaved round by round (`interleaved`), medians of
the rounds, in the same process. The issue's targets (recorded, not asserted): lenet within
1.3x of Caffe, lenet_6_6 no slower than Caffe (ratio <= 1.0).

Caffe: set MINICAFFE_BENCH_CAFFE to the `python/` directory of a BVLC Caffe build
(docs/BENCHMARKS.md: how to build one here). Only its compiled module `_caffe` is loaded (no
scikit-image needed); `net._forward(0, n-1)` is Net::ForwardFromTo behind one boost.python call.
Without the variable Caffe's columns are left out (recorded as None).

    MINICAFFE_BENCH_CAFFE=$HOME/caffe/python pytest bench/test_latency_speed.py
    MINICAFFE_BENCH_CAFFE=... python bench/test_latency_speed.py --threads 1 2 --layers --profile
"""
import argparse
import os
import re
import statistics
import sys
import time

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe import ops
from minicaffe.net import Net
from minicaffe.prototxt import parse_net

# minicaffe's kernels (and their libgomp) load before PyTorch's (docs/KERNELS.md, "Threads").
ops.build_info()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "prototxt", "lenet", "lenet_deploy.prototxt")
NETS = {"lenet": (20, 50, None), "lenet_6_6": (6, 6, None), "lenet_ccnmm": (20, 50, (6, 6))}
TARGETS = {"lenet": 1.3, "lenet_6_6": 1.0}


def deploy_text(conv1, conv2, batch=1, conv_mode=None):
    """LeNet's deploy prototxt at `batch` with conv1/conv2 filters; BVLC Caffe reads it too
    (no conv_mode line unless one is asked for)."""
    with open(DEPLOY) as f:
        text = f.read()
    text = re.sub(r"\n\s*conv_mode:[^\n]*", "", text)
    text = re.sub(r"dim: 64(\s*# batch)", rf"dim: {batch}\1", text)
    text = text.replace("num_output: 20", f"num_output: {conv1}", 1)
    text = text.replace("num_output: 50", f"num_output: {conv2}", 1)
    if conv_mode:
        text = text.replace("kernel_size: 5\n", f"kernel_size: 5\n    conv_mode: {conv_mode}\n")
    return text


def seeded_weights(net, keep=None, seed=0):
    """Gaussian weights (std 0.1) in every layer; with keep=(k1, k2), conv1 filters >= k1,
    conv2 filters >= k2 and conv2's columns of the removed conv1 channels are zero."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for blob in layer.blobs:
            blob.data[...] = rng.standard_normal(blob.shape) * 0.1
    if keep:
        params = net.params
        params["conv1"][0].data[keep[0]:] = 0
        params["conv1"][1].data[keep[0]:] = 0
        params["conv2"][0].data[keep[1]:] = 0
        params["conv2"][0].data[:, keep[0]:] = 0
        params["conv2"][1].data[keep[1]:] = 0
        for layer in net.layers:
            if layer.type == "Convolution":
                layer.refresh_weights()


def ours(key, batch=1):
    conv1, conv2, keep = NETS[key]
    mode = "LOWERED_CCNMM" if keep else None
    net = Net(parse_net(deploy_text(conv1, conv2, batch, mode)), caffe.TEST)
    seeded_weights(net, keep)
    net.blobs["data"].data[...] = np.random.default_rng(1).random(net.blobs["data"].shape)
    return net


def caffe_module():
    """BVLC Caffe's compiled `_caffe` from MINICAFFE_BENCH_CAFFE (its python/ directory), or
    None when the variable is unset."""
    path = os.environ.get("MINICAFFE_BENCH_CAFFE")
    if not path:
        return None
    os.environ.setdefault("GLOG_minloglevel", "2")          # no net dump on every Net()
    sys.path.insert(0, os.path.join(path, "caffe"))
    try:
        import _caffe  # noqa: PLC0415  (BVLC Caffe's boost.python module)
    finally:
        sys.path.pop(0)
    _caffe.set_mode_cpu()
    return _caffe


class CaffeNet:
    """A BVLC Caffe net with our net's weights and input; `forward()` runs all its layers."""

    def __init__(self, module, text, net, tmpdir):
        path = os.path.join(tmpdir, "caffe_deploy.prototxt")
        with open(path, "w") as f:
            f.write(text)
        self.net = module.Net(path, 1)                           # 1: caffe.TEST
        names = list(self.net._layer_names)
        for layer in net.layers:
            if layer.blobs:
                theirs = self.net.layers[names.index(layer.name)].blobs
                for mine, blob in zip(layer.blobs, theirs):
                    blob.data[...] = mine.data.reshape(blob.data.shape)
        blobs = dict(zip(self.net._blob_names, self.net._blobs))
        blobs["data"].data[...] = net.blobs["data"].data
        self.prob = blobs["prob"]
        self.last = len(names) - 1
        self.names = names

    def forward(self):
        self.net._forward(0, self.last)

    def layer(self, i):
        self.net._forward(i, i)


def torch_twin(torch, net):
    """The same LeNet in PyTorch (ceil-mode max pooling as Caffe), with our weights."""
    nn = torch.nn
    mods = []
    for layer in net.layers:
        if layer.type == "Convolution":
            w, b = (np.array(x.data) for x in layer.blobs)
            m = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2])
            m.weight.data, m.bias.data = torch.from_numpy(w), torch.from_numpy(b)
        elif layer.type == "Pooling":
            m = nn.MaxPool2d(layer.kh, layer.sh, ceil_mode=True)
        elif layer.type == "InnerProduct":
            w, b = (np.array(x.data) for x in layer.blobs)
            m = nn.Sequential(nn.Flatten(), nn.Linear(w.shape[1], w.shape[0]))
            m[1].weight.data, m[1].bias.data = torch.from_numpy(w), torch.from_numpy(b)
        elif layer.type == "ReLU":
            m = nn.ReLU()
        elif layer.type == "Softmax":
            m = nn.Softmax(dim=1)
        else:
            continue
        mods.append(m)
    model = nn.Sequential(*mods).eval()
    x = torch.from_numpy(np.array(net.blobs["data"].data))

    def forward():
        with torch.no_grad():
            return model(x)
    return forward


def interleaved(fns, rounds=21, block_s=0.01):
    """{name: median seconds per call}: every round runs a block of calls of each engine in
    turn (rotating who goes first), each block about block_s long."""
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
            t = time.perf_counter()
            for _ in range(k):
                fn()
            times[name].append((time.perf_counter() - t) / k)
    return {name: statistics.median(v) for name, v in times.items()}


def engines(key, threads, tmpdir, torch=None, caffe_mod=None):
    """{engine: forward callable} for one net, outputs cross-checked first."""
    ops.set_num_threads(threads)
    net = ours(key)
    plain = ours(key)
    plain.use_plan = False
    want = np.array(plain.forward()["prob"])
    np.testing.assert_allclose(net.forward()["prob"], want, rtol=1e-5, atol=1e-6)
    fns = {"ours": net.forward, "ours_plain": plain.forward}
    if torch is not None:
        torch.set_num_threads(threads)
        fns["torch"] = torch_twin(torch, plain)
        np.testing.assert_allclose(fns["torch"]().numpy(), want, rtol=1e-4, atol=1e-5)
    if caffe_mod is not None and NETS[key][2] is None:
        cnet = CaffeNet(caffe_mod, deploy_text(*NETS[key][:2]), plain, tmpdir)
        cnet.forward()
        np.testing.assert_allclose(cnet.prob.data, want, rtol=1e-4, atol=1e-5)
        fns["caffe"] = cnet.forward
    return net, fns


@pytest.fixture(scope="module")
def caffe_mod():
    return caffe_module()


@pytest.fixture(scope="module")
def torch_mod():
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    return torch


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("key", list(NETS))
def test_latency(benchmark, tmp_path, caffe_mod, torch_mod, key, threads):
    net, fns = engines(key, threads, str(tmp_path), torch_mod, caffe_mod)   # outputs checked
    if benchmark.disabled:                 # --benchmark-disable: run once, time nothing
        benchmark(net.forward)
        return
    medians = interleaved(fns)
    benchmark(net.forward)
    info = {"net": key, "batch": 1, "threads": threads, "build": ops.build_info(),
            "median_ms": {k: 1e3 * v for k, v in medians.items()},
            "plan_speedup": medians["ours_plain"] / medians["ours"]}
    for peer in ("caffe", "torch"):
        info[f"ratio_{peer}"] = medians["ours"] / medians[peer] if peer in medians else None
    if key in TARGETS:
        info["target_ratio_caffe"] = TARGETS[key]
        if info["ratio_caffe"] is not None:
            info["target_met"] = info["ratio_caffe"] <= TARGETS[key]
    benchmark.extra_info.update(info)


def layer_table(key, threads, tmpdir, caffe_mod=None, calls=3000):
    """[(layer, plain us, planned us, caffe us)]: minimum over single calls of each layer's
    work: the plain forward's reshape + forward, the plan's bound steps, Caffe's Forward."""
    ops.set_num_threads(threads)
    net = ours(key)
    net.forward()
    plan = net._planner.current()
    cnet = None
    if caffe_mod is not None and NETS[key][2] is None:
        cnet = CaffeNet(caffe_mod, deploy_text(*NETS[key][:2]), net, tmpdir)

    def best(fn):
        fn()
        out = float("inf")
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - t)
        return 1e6 * out
    floor = best(lambda: None)
    rows = []
    for i, layer in enumerate(net.layers):
        b, t = net._bottom_vecs[i], net._top_vecs[i]

        def plain(layer=layer, b=b, t=t):
            layer.reshape(b, t)
            layer.forward(b, t)
        first, last = plan.steps_of(i)
        planned = 0.0
        if first <= last:
            planned = best(lambda a=first, b=last: plan.program.run(a, b)) - floor
        theirs = None
        if cnet is not None:
            j = cnet.names.index(layer.name)
            theirs = best(lambda j=j: cnet.layer(j)) - floor
        rows.append((layer.name, best(plain) - floor, planned, theirs))
    return rows


def profile_plain(key, forwards=3000, top=12):
    """Lines of a table: cProfile of `forwards` plain (unplanned) forwards of `key` at batch 1,
    the functions with the most own time per forward (the profiler inflates Python calls)."""
    import cProfile  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    net = ours(key)
    net.use_plan = False
    for _ in range(100):
        net.forward()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(forwards):
        net.forward()
    prof.disable()
    stats = pstats.Stats(prof)
    rows = sorted(((tt, nc, f[f.find("minicaffe"):] + f":{line}({name})" if "minicaffe" in f
                    else name) for (f, line, name), (_, nc, tt, _, _) in stats.stats.items()),
                  reverse=True)
    lines = [f"{key}: {1e6 * stats.total_tt / forwards:.1f} us per profiled forward",
             "| function | calls per forward | own us per forward | share |", "|---|---|---|---|"]
    for tt, nc, name in rows[:top]:
        lines.append(f"| {name} | {nc / forwards:.0f} | {1e6 * tt / forwards:.2f} "
                     f"| {100 * tt / stats.total_tt:.0f}% |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--layers", action="store_true", help="also the per-layer table")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile the plain (unplanned) forward, one thread")
    args = ap.parse_args(argv)
    import tempfile  # noqa: PLC0415

    caffe_mod = caffe_module()
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        torch = None
    print(f"build: {ops.build_info()}")
    print("| net | threads | ours ms | ours plain ms | Caffe ms | PyTorch ms | ours / Caffe "
          "| ours / PyTorch | plain / ours |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmpdir:
        for key in args.nets:
            for threads in args.threads:
                _, fns = engines(key, threads, tmpdir, torch, caffe_mod)
                m = interleaved(fns, rounds=args.rounds)

                def ms(name, m=m):
                    return f"{1e3 * m[name]:.4f}" if name in m else "-"

                def ratio(name, m=m):
                    return f"{m['ours'] / m[name]:.2f}" if name in m else "-"
                print(f"| {key} | {threads} | {ms('ours')} | {ms('ours_plain')} | {ms('caffe')} "
                      f"| {ms('torch')} | {ratio('caffe')} | {ratio('torch')} "
                      f"| {m['ours_plain'] / m['ours']:.2f} |", flush=True)
        if args.layers:
            for key in args.nets:
                for threads in args.threads:
                    print(f"\n{key}, {threads} thread(s): per layer, us (minimum of single calls)")
                    print("| layer | plain forward | plan | Caffe |")
                    print("|---|---|---|---|")
                    for name, plain, planned, theirs in layer_table(key, threads, tmpdir,
                                                                    caffe_mod):
                        c = "-" if theirs is None else f"{theirs:.2f}"
                        print(f"| {name} | {plain:.2f} | {planned:.2f} | {c} |", flush=True)
    if args.profile:
        ops.set_num_threads(1)
        for key in args.nets:
            print()
            print("\n".join(profile_plain(key)), flush=True)


if __name__ == "__main__":
    main()
