"""The compacted convolution forward against the dense one, as a fraction of the ideal speedup,
with its spread over rounds, in one process.

    python bench/compact_vs_dense.py [--threads N] [--rounds R] [--burst B] [--clock wall|cpu]
    MINICAFFE_ISA=avx2 python bench/compact_vs_dense.py ...   # the AVX2 path (and OpenBLAS's
                                                              # Haswell kernels)

For each AlexNet layer (the SSL paper's Table 4 row and column sparsity) and batch (1 and 8),
the dense forward and the compacted one (`ops.conv_forward`, as `python -m minicaffe.bench
gemm` times them) alternate round after round: each round runs one untimed call of a forward
and then a burst of timed ones, then the other forward the same way, in alternating order. A
round's ratio is median(dense) / median(compacted) / ideal, ideal = M*K / (m_kept * k_kept).
Printed per layer and batch: the median ratio over rounds and its 10th-90th percentile; then
the mean over conv1-5 of the medians (the issue's target: at least 95%).
"""
import argparse
import statistics
import time

import numpy as np

from minicaffe import ops
from minicaffe.bench import ALEXNET, ssl_weights

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def forwards(layer, batch, rng):
    """(dense, compacted) forward callables of one layer and batch, and the ideal ratio."""
    g = layer.geom
    x = rng.standard_normal((batch, g.C, g.H, g.W)).astype(np.float32)
    dense = ops.DenseWeights(rng.standard_normal((layer.M, g.rows)).astype(np.float32))
    w_ssl = ssl_weights(layer, rng)
    compact = ops.CompactWeights(w_ssl)
    out_d = np.empty((layer.M, batch * g.cols), np.float32)
    out_c = np.empty_like(out_d)
    run_d = lambda: ops.conv_forward(x, g, dense, out=out_d)  # noqa: E731
    run_c = lambda: ops.conv_forward(x, g, compact, out=out_c)  # noqa: E731
    run_c()
    want = w_ssl.astype(np.float64) @ ops.im2col_batch(x, g)
    np.testing.assert_allclose(out_c, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    return run_d, run_c, compact.ideal_speedup


def ratios(run_d, run_c, ideal, rounds, burst, clock):
    """Per-round dense/compacted time ratios as fractions of `ideal`."""
    out = []
    for r in range(rounds):
        t = {}
        order = (("dense", run_d), ("compact", run_c))
        for name, fn in order if r % 2 == 0 else order[::-1]:
            fn()
            samples = []
            for _ in range(burst):
                t0 = clock()
                fn()
                samples.append(clock() - t0)
            t[name] = statistics.median(samples)
        out.append(t["dense"] / t["compact"] / ideal)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu adds up the CPU time of all threads; use it with --threads 1")
    ops.set_num_threads(args.threads)
    info = ops.build_info()
    print(f"instruction set {info['isa']}, {args.threads} thread(s), {args.clock} clock; BLAS: "
          f"{info['blas_version']}")
    rng = np.random.default_rng(2016)
    for batch in (1, 8):
        medians = []
        for layer in ALEXNET:
            run_d, run_c, ideal = forwards(layer, batch, rng)
            got = np.array(ratios(run_d, run_c, ideal, args.rounds, args.burst,
                                  CLOCKS[args.clock]))
            medians.append(np.median(got))
            lo, hi = np.percentile(got, [10, 90])
            print(f"{layer.name} batch {batch}: compacted/dense = {100 * medians[-1]:.0f}% of "
                  f"ideal (10th-90th percentile over {args.rounds} rounds: {100 * lo:.0f}-"
                  f"{100 * hi:.0f}%)", flush=True)
        print(f"batch {batch}: mean over conv1-5 = {100 * np.mean(medians):.0f}% of ideal "
              f"(target >= 95%)", flush=True)


if __name__ == "__main__":
    main()
