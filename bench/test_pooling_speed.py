"""Pooling forward speed: minicaffe's kernels vs PyTorch CPU on the pooling layers of the
CIFAR-10 quick net and of the compacted SSL LeNet (float32, Caffe's ceil rule).

Three forwards per shape: MAX with the argmax mask (a training forward; PyTorch's
`max_pool2d(return_indices=True)`, whose indices are the same h*W + w per plane), MAX values
only (an inference plan's forward; PyTorch without indices) and AVE. Results (values and
argmax) are compared with PyTorch's before timing; `ratio = minicaffe / torch` (lower is
better) goes into `benchmark.extra_info`, PyTorch timed in the same process before and after.

    pytest bench/test_pooling_speed.py --benchmark-min-rounds=5
    python bench/test_pooling_speed.py [--threads 1 2] [--rounds 21]   # one table, interleaved
"""
import argparse
import statistics
import sys
import time

import numpy as np
import pytest

from minicaffe import ops
from minicaffe.catalog.pooling import pooled_shape

# minicaffe's kernels (and their libgomp) load before PyTorch's (docs/KERNELS.md, "Threads").
ops.build_info()

SHAPES = {   # name: (input shape, kernel, stride), pad 0
    "cifar10_quick_pool1_b64": ((64, 32, 32, 32), 3, 2),
    "cifar10_quick_pool2_b64": ((64, 32, 16, 16), 3, 2),
    "cifar10_quick_pool3_b64": ((64, 64, 8, 8), 3, 2),
    "cifar10_quick_pool1_b1": ((1, 32, 32, 32), 3, 2),
    "cifar10_quick_pool3_b1": ((1, 64, 8, 8), 3, 2),
    "lenet_compact_pool1_b64": ((64, 6, 24, 24), 2, 2),
    "lenet_compact_pool2_b64": ((64, 8, 8, 8), 2, 2),
}
MODES = ("max_argmax", "max_values", "ave")


def _median_time(fn, rounds, inner=1):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def case(torch, key, mode, seed=0):
    """(ours, theirs) callables for one shape and mode, after checking their results agree."""
    shape, k, s = SHAPES[key]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    out_size = pooled_shape(shape[2], shape[3], (k, k), (0, 0), (s, s))
    out = np.empty(shape[:2] + out_size, np.float32)
    mask = np.empty(out.shape, np.int32)
    tx = torch.from_numpy(x)
    geometry = ((k, k), (0, 0), (s, s), out_size)
    F = torch.nn.functional
    if mode == "max_argmax":
        def ours():
            return ops.max_pool_forward(x, *geometry, out=out, mask=mask)

        def theirs():
            return F.max_pool2d(tx, k, s, ceil_mode=True, return_indices=True)
    elif mode == "max_values":
        def ours():
            return ops.max_pool_forward(x, *geometry, out=out, argmax=False)

        def theirs():
            return F.max_pool2d(tx, k, s, ceil_mode=True)
    else:
        def ours():
            return ops.ave_pool_forward(x, *geometry, out=out)

        def theirs():
            return F.avg_pool2d(tx, k, s, ceil_mode=True)
    with torch.no_grad():
        got, want = ours(), theirs()
    if mode == "max_argmax":
        np.testing.assert_array_equal(got[0], want[0].numpy())
        np.testing.assert_array_equal(got[1], want[1].numpy())
    elif mode == "max_values":
        np.testing.assert_array_equal(got[0], want.numpy())
    else:
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    return ours, theirs


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", list(SHAPES))
def test_pooling_speed(benchmark, torch, key, mode, threads):
    ops.set_num_threads(threads)
    torch.set_num_threads(threads)
    ours, theirs = case(torch, key, mode)
    with torch.no_grad():
        torch_s = _median_time(theirs, 5)
        benchmark(ours)
        torch_s = min(torch_s, _median_time(theirs, 5))
    if benchmark.stats is None:                  # --benchmark-disable: checked, not timed
        return
    benchmark.extra_info.update(key=key, mode=mode, threads=threads, torch_median_s=torch_s,
                                ratio=benchmark.stats.stats.median / torch_s,
                                build=ops.build_info())


def main(argv=None):
    import torch  # noqa: PLC0415

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=21)
    args = ap.parse_args(argv)
    print(f"build: {ops.build_info()['isa']}, torch {torch.__version__}")
    print("| shape | mode | threads | minicaffe ms | PyTorch ms | minicaffe / PyTorch |")
    print("|---|---|---:|---:|---:|---:|")
    for threads in args.threads:
        ops.set_num_threads(threads)
        torch.set_num_threads(threads)
        for key in SHAPES:
            for mode in MODES:
                ours, theirs = case(torch, key, mode)
                inner = max(1, int(2e6 // np.prod(SHAPES[key][0])))
                a, b = [], []
                with torch.no_grad():
                    for _ in range(args.rounds):     # interleaved blocks
                        a.append(_median_time(ours, 1, inner))
                        b.append(_median_time(theirs, 1, inner))
                ma, mb = statistics.median(a), statistics.median(b)
                print(f"| {key} | {mode} | {threads} | {1e3 * ma:.4f} | {1e3 * mb:.4f} | "
                      f"{ma / mb:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
