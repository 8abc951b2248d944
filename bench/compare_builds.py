"""Two builds of the extension in one process, called in turn on the bench's AlexNet layers.

    cp minicaffe/_kernels*.so /tmp/before.so     # before a change
    ... change, rebuild ...
    python bench/compare_builds.py /tmp/before.so [--threads N]

This host's speed drifts by up to 1.5x within minutes, so only calls alternated in one process
compare two builds. The other build is loaded under the name "_kernels": loading it as
"minicaffe._kernels" hands back the module already imported, and the comparison would time
one build against itself. Prints, per layer and batch, both builds' dense and compacted
forward (`conv_forward`, as `python -m minicaffe.bench gemm` times them), the compacted
speedup as a percentage of the ideal 1/((1-r)(1-c)), and current / other speed ratios.
"""
import argparse
import importlib.util
import time

import numpy as np

from minicaffe import ops
from minicaffe.bench import ALEXNET, ssl_weights


def load_other(path):
    ops.build_info()  # loads OpenBLAS for the current build first; the other one shares it
    spec = importlib.util.spec_from_file_location("_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module is ops.native.kernels():
        raise SystemExit(f"{path} loaded as the current build; nothing to compare")
    return module


def per_call(f, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t0) / reps


def compare(builds, layer, batch, rng, rounds=25):
    """{(build, engine): median seconds} of dense and compacted forward, alternated."""
    g = layer.geom
    gt = g.native
    x = rng.standard_normal((batch, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((layer.M, g.rows)).astype(np.float32)
    cw = ops.CompactWeights(ssl_weights(layer, rng))
    out = np.empty((layer.M, batch * g.cols), np.float32)
    calls = {}
    for name, k in builds.items():
        calls[name, "dense"] = lambda k=k: k.conv_forward(x, gt, w, None, None, out)
        calls[name, "compact"] = lambda k=k: k.conv_forward(x, gt, cw._padded, cw.rows, cw.cols,
                                                            out)
    for f in calls.values():
        f()
    reps = max(1, int(0.01 / per_call(next(iter(calls.values())), 1)))
    samples = {key: [] for key in calls}
    for _ in range(rounds):
        for key, f in calls.items():
            samples[key].append(per_call(f, reps))
    return {key: float(np.median(v)) for key, v in samples.items()}, cw.ideal_speedup


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("other", help="path of the other build's _kernels*.so")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    builds = {"other": load_other(args.other), "current": ops.native.kernels()}
    for k in builds.values():
        k.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for batch in (1, 8):
        for layer in ALEXNET:
            t, ideal = compare(builds, layer, batch, rng)
            line = f"{layer.name} b{batch}"
            for name in builds:
                pct = t[name, "dense"] / t[name, "compact"] / ideal
                line += (f" | {name}: dense {t[name, 'dense'] * 1e3:.3f} ms, compact "
                         f"{t[name, 'compact'] * 1e3:.3f} ms ({pct:.0%} of ideal)")
            dense = t["other", "dense"] / t["current", "dense"]
            line += (f" | current/other speed: dense {dense:.2f}x,"
                     f" compact {t['other', 'compact'] / t['current', 'compact']:.2f}x")
            print(line, flush=True)


if __name__ == "__main__":
    main()
