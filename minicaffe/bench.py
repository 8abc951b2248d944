"""Kernel benchmark: `python -m minicaffe.bench gemm [--threads N] [--json FILE] [--batch 1|8]
[--quick]`.

For AlexNet's conv1-conv5 as Caffe lowers them (one image or 8 images lowered together, one
group), it times, interleaved and reported as medians:
  dense           our dense convolution forward, ops.conv_forward: im2col + GEMM (fused by
                  blocks of images so the lowered batch stays in cache)
  compact         SSL compacted forward at the paper's Table 4 row/column sparsity,
                  ops.conv_forward: lowering of the kept columns only + (m_kept x k_kept) GEMM
                  + zero rows for removed filters
  torch-conv2d    PyTorch's dense conv2d on the same layer (when torch is installed)
  dense-gemm      the GEMM alone on a prepared lowered matrix (the paper's measurement)
  compact-gemm    the compacted GEMM alone (kept rows of the lowered matrix prepared)
  sgemm-ours      the compacted product (padded kept filters x kept lowered rows) as the
                  forward multiplies: the active instruction set's own GEMM where it applies,
                  else the BLAS (compiled kernels only)
  sgemm-blas      the same product by the BLAS (ops.gemm)
  csr-ours        our CSR x dense at Table 4's L1 (non-structured) sparsity, GEMM alone
  csr-scipy, csr-torch, csr-mkl   the same product in scipy.sparse, torch.sparse, MKL
`speedup_vs_dense` compares forward engines with `dense` and GEMM-only engines with
`dense-gemm`; `ideal_speedup` is M*K / (m_kept*k_kept) for compact and 1/(1-s) for CSR.
The kernels run with the instruction set minicaffe chose (MINICAFFE_ISA=avx2 measures the AVX2
path on an AVX-512 machine, OpenBLAS with its Haswell kernels).
A first row reports sgemm 2048^3 in GFLOP/s against the 117 GFLOP/s single-core peak.
"""
import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from minicaffe import ops

PEAK_GFLOPS = 117.0  # one Zen 4 core at 3.66 GHz, 32 FP32 FLOP/cycle (BUILD_NOTES.md)


@dataclass(frozen=True)
class ConvLayer:
    """One group of an AlexNet conv layer, with the SSL paper's Table 4 sparsity."""

    name: str
    C: int
    H: int
    kernel: int
    pad: int
    stride: int
    M: int
    row_sparsity: float  # SSL: fraction of filters (rows) removed
    col_sparsity: float  # SSL: fraction of shape fibres (columns) removed
    l1_sparsity: float   # L1: fraction of zero weights (non-structured)

    @property
    def geom(self):
        return ops.ConvGeometry(self.C, self.H, self.H, self.kernel, self.kernel, self.pad,
                                self.pad, self.stride, self.stride)


ALEXNET = [
    ConvLayer("conv1", 3, 227, 11, 0, 4, 96, 0.094, 0.000, 0.676),    # M=96  K=363  N=3025
    ConvLayer("conv2", 48, 27, 5, 2, 1, 128, 0.129, 0.632, 0.924),    # M=128 K=1200 N=729
    ConvLayer("conv3", 256, 13, 3, 1, 1, 384, 0.406, 0.769, 0.972),   # M=384 K=2304 N=169
    ConvLayer("conv4", 192, 13, 3, 1, 1, 192, 0.469, 0.847, 0.966),   # M=192 K=1728 N=169
    ConvLayer("conv5", 192, 13, 3, 1, 1, 128, 0.000, 0.807, 0.943),   # M=128 K=1728 N=169
]


def ssl_weights(layer, rng, dtype=np.float32):
    """(M, K) weights with round(r*M) whole rows and round(c*K) whole columns zeroed."""
    K = layer.geom.rows
    w = rng.standard_normal((layer.M, K)).astype(dtype)
    w[rng.permutation(layer.M)[:round(layer.row_sparsity * layer.M)]] = 0
    w[:, rng.permutation(K)[:round(layer.col_sparsity * K)]] = 0
    return w


def l1_weights(layer, rng, dtype=np.float32):
    """(M, K) weights with a random l1_sparsity fraction of elements zeroed."""
    K = layer.geom.rows
    w = rng.standard_normal((layer.M, K)).astype(dtype)
    w.ravel()[rng.permutation(w.size)[:round(layer.l1_sparsity * w.size)]] = 0
    return w


# PyTorch's own instruction-set caps (oneDNN for conv2d, MKL for torch.sparse), applied when
# minicaffe runs an instruction set below the CPU's best (MINICAFFE_ISA=avx2 on an AVX-512
# machine), so that the peer measures what it would run on a CPU without the wider vectors.
_PEER_ISA_ENV = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
                 "baseline": {"ONEDNN_MAX_CPU_ISA": "SSE41",
                              "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}}


def _torch():
    """torch (the benchmark peer) or None; capped to minicaffe's instruction set when that is
    below the CPU's best (the caps take effect only if torch is not imported yet; a user's
    ONEDNN_MAX_CPU_ISA / MKL_ENABLE_INSTRUCTIONS win)."""
    available = ops.available_isas()
    if available and ops.get_isa() != available[-1]:
        for name, value in _PEER_ISA_ENV.get(ops.get_isa(), {}).items():
            os.environ.setdefault(name, value)
    try:
        import torch  # noqa: PLC0415  (optional benchmark peer)
    except ImportError:
        return None
    import warnings  # noqa: PLC0415

    # torch.sparse CSR says "beta" on every construction; the benchmark knows.
    warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")
    return torch


def layer_engines(layer, batch, rng, torch=None):
    """{engine: (callable, check)} for one layer; `check()` verifies the last result."""
    g = layer.geom
    x = rng.standard_normal((batch, g.C, g.H, g.W)).astype(np.float32)
    w_dense = rng.standard_normal((layer.M, g.rows)).astype(np.float32)
    w_ssl, w_l1 = ssl_weights(layer, rng), l1_weights(layer, rng)
    dense = ops.DenseWeights(w_dense)
    compact = ops.CompactWeights(w_ssl)
    csr = ops.CSRWeights(w_l1)
    cols = ops.im2col_batch(x, g)
    kept_cols = np.ascontiguousarray(cols[compact.cols])
    ref_dense, ref_ssl, ref_l1 = w_dense @ cols, w_ssl @ cols, w_l1 @ cols
    # Each engine writes its own output, NaN until it runs: a check can only pass on a result
    # its engine computed (a shared buffer would let an engine that does nothing pass on the
    # previous engine's product).
    outs = {}

    def out_of(name):
        outs[name] = np.full((layer.M, batch * g.cols), np.nan, np.float32)
        return outs[name]

    def close(name, want):
        def check():
            np.testing.assert_allclose(outs[name], want, rtol=1e-3,
                                       atol=1e-3 * np.abs(want).max(), err_msg=name)
        return check

    def engine(name, run, want):
        out = out_of(name)
        return (lambda: run(out)), close(name, want)

    engines = {
        "dense": engine("dense", lambda o: ops.conv_forward(x, g, dense, out=o), ref_dense),
        "compact": engine("compact", lambda o: ops.conv_forward(x, g, compact, out=o), ref_ssl),
        "dense-gemm": engine("dense-gemm", lambda o: ops.matmul(dense, cols, out=o), ref_dense),
        "compact-gemm": engine("compact-gemm", lambda o: ops.matmul(compact, kept_cols, out=o),
                               ref_ssl),
        "csr-ours": engine("csr-ours", lambda o: ops.matmul(csr, cols, out=o), ref_l1),
    }
    sp = csr.scipy()

    def scipy_csr(o):
        o[...] = sp @ cols
    engines["csr-scipy"] = engine("csr-scipy", scipy_csr, ref_l1)
    k = ops.native.kernels()
    if k is not None:
        # The compacted product alone (padded kept filters x kept lowered rows), as the forward
        # multiplies (our own GEMM where the instruction set has one) and by the BLAS.
        packed = compact._padded
        ref_packed = packed.astype(np.float64) @ kept_cols

        def sgemm_engine(name, run):
            outs[name] = np.full((packed.shape[0], batch * g.cols), np.nan, np.float32)
            return (lambda: run(outs[name])), close(name, ref_packed)
        engines["sgemm-ours"] = sgemm_engine(
            "sgemm-ours", lambda o: k.forward_sgemm(packed, kept_cols, o))
        engines["sgemm-blas"] = sgemm_engine(
            "sgemm-blas", lambda o: ops.gemm(packed, kept_cols, out=o))
    if k is not None and hasattr(k, "csrmm_mkl"):
        engines["csr-mkl"] = engine("csr-mkl", lambda o: k.csrmm_mkl(
            csr.indptr, csr.indices, csr.data, g.rows, cols, o), ref_l1)
    if torch is not None:
        tx, tw = torch.from_numpy(x), torch.from_numpy(w_dense.reshape(layer.M, g.C, g.kh, g.kw))
        tcsr = torch.sparse_csr_tensor(torch.from_numpy(csr.indptr), torch.from_numpy(csr.indices),
                                       torch.from_numpy(csr.data), size=csr.shape)
        tcols = torch.from_numpy(cols)
        result = {}

        def torch_conv():
            with torch.no_grad():
                result["y"] = torch.nn.functional.conv2d(tx, tw, stride=layer.stride,
                                                         padding=layer.pad)

        def check_torch_conv():
            assert "y" in result, "torch-conv2d has not run"
            y = result["y"].numpy().reshape(batch, layer.M, -1).transpose(1, 0, 2)
            np.testing.assert_allclose(y.reshape(layer.M, -1), ref_dense, rtol=1e-3,
                                       atol=1e-3 * np.abs(ref_dense).max())

        def torch_csr():
            result["c"] = torch.mm(tcsr, tcols)

        def check_torch_csr():
            assert "c" in result, "csr-torch has not run"
            np.testing.assert_allclose(result["c"].numpy(), ref_l1, rtol=1e-3,
                                       atol=1e-3 * np.abs(ref_l1).max())
        engines["torch-conv2d"] = (torch_conv, check_torch_conv)
        engines["csr-torch"] = (torch_csr, check_torch_csr)
    ideal = {"compact": compact.ideal_speedup, "compact-gemm": compact.ideal_speedup,
             "sgemm-ours": compact.ideal_speedup, "sgemm-blas": compact.ideal_speedup}
    for name in ("csr-ours", "csr-scipy", "csr-mkl", "csr-torch"):
        ideal[name] = 1.0 / (1.0 - csr.sparsity)
    return engines, ideal


def time_interleaved(engines, min_rounds, max_rounds, budget_s, clock=time.perf_counter,
                     burst=3):
    """Median seconds per engine over warm calls.

    Engines alternate round by round, so drift on a shared machine hits all alike; within a
    round each engine runs one untimed call (its data back in cache, as in a layer called
    repeatedly) and then `burst` timed calls. `clock` is wall time by default;
    time.process_time (CPU time of this process) shields one-thread runs from other processes.
    """
    for fn, check in engines.values():  # warm up and verify before timing
        fn()
        check()
    samples = {name: [] for name in engines}
    start = time.perf_counter()
    for r in range(max_rounds):
        for name, (fn, _) in engines.items():
            fn()
            for _ in range(burst):
                t = clock()
                fn()
                samples[name].append(clock() - t)
        if r + 1 >= min_rounds and time.perf_counter() - start > budget_s:
            break
    return {name: statistics.median(ts) for name, ts in samples.items()}


def sgemm_row(threads, n, rounds, clock=time.perf_counter):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    c = np.empty((n, n), np.float32)
    ops.gemm(a, b, out=c)
    ts = []
    for _ in range(rounds):
        t = clock()
        ops.gemm(a, b, out=c)
        ts.append(clock() - t)
    seconds = statistics.median(ts)
    gflops = 2.0 * n ** 3 / seconds / 1e9
    row = {"layer": f"sgemm{n}", "engine": "dense-gemm", "threads": threads, "batch": 1,
           "seconds": seconds, "speedup_vs_dense": 1.0, "ideal_speedup": 1.0,
           "gflops": gflops, "percent_of_peak": 100.0 * gflops / (PEAK_GFLOPS * threads)}
    k = ops.native.kernels()
    if k is not None:  # this core's FMA peak (thread CPU time) at the widths the CPU runs
        widths = {"avx2": 256, "avx512": 512}
        for name in ops.available_isas():
            if name in widths:
                row[f"measured_peak_{widths[name]}"] = k.peak_gflops(widths[name], 0.2)
    return row


GEMM_ONLY = ("dense-gemm", "compact-gemm", "sgemm-ours", "sgemm-blas", "csr-ours", "csr-scipy",
             "csr-mkl", "csr-torch")


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def run_gemm(threads=1, batches=(1, 8), quick=False, layers=None, log=print, clock="wall"):
    """Run the benchmark; returns the list of JSON rows."""
    clock = CLOCKS[clock]
    ops.set_num_threads(threads)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(threads)
    rows = [sgemm_row(threads, 1024 if quick else 2048, 3 if quick else 7, clock)]
    rng = np.random.default_rng(2016)
    for batch in batches:
        for layer in layers or ALEXNET:
            engines, ideal = layer_engines(layer, batch, rng, torch)
            medians = time_interleaved(engines, 2 if quick else 5, 10 if quick else 200,
                                       0.3 if quick else 3.0, clock)
            for engine, seconds in medians.items():
                base = medians["dense-gemm" if engine in GEMM_ONLY else "dense"]
                rows.append({"layer": layer.name, "engine": engine, "threads": threads,
                             "batch": batch, "seconds": seconds,
                             "speedup_vs_dense": base / seconds,
                             "ideal_speedup": ideal.get(engine, 1.0)})
            log(f"  {layer.name} batch {batch}: done", file=sys.stderr)
    return rows


def format_table(rows):
    lines = [f"{'layer':<10}{'engine':<14}{'thr':>4}{'batch':>6}{'ms':>10}{'speedup':>9}"
             f"{'ideal':>8}{'of ideal':>9}"]
    for r in rows:
        frac = r["speedup_vs_dense"] / r["ideal_speedup"] if r["ideal_speedup"] else 0.0
        extra = ""
        if "gflops" in r:
            extra = f"  {r['gflops']:.1f} GFLOP/s = {r['percent_of_peak']:.0f}% of {PEAK_GFLOPS:g}"
            peaks = [f"{r[f'measured_peak_{bits}']:.0f} ({bits}-bit)" for bits in (256, 512)
                     if f"measured_peak_{bits}" in r]
            if peaks:
                extra += f"; measured FMA peak {' / '.join(peaks)} GFLOP/s"
        lines.append(f"{r['layer']:<10}{r['engine']:<14}{r['threads']:>4}{r['batch']:>6}"
                     f"{1e3 * r['seconds']:>10.3f}{r['speedup_vs_dense']:>9.2f}"
                     f"{r['ideal_speedup']:>8.2f}{100 * frac:>8.0f}%{extra}")
    return "\n".join(lines)


def summary(rows):
    """The issue's target ratios, computed from one run's rows."""
    out = []
    by = {(r["layer"], r["engine"], r["batch"]): r for r in rows}
    for batch in sorted({r["batch"] for r in rows if r["layer"].startswith("conv")}):
        names = [layer.name for layer in ALEXNET if (layer.name, "dense", batch) in by]
        if not names:
            continue
        frac = [by[(n, "compact", batch)]["speedup_vs_dense"] / by[(n, "compact", batch)]
                ["ideal_speedup"] for n in names]
        label = "conv1-5" if len(names) == len(ALEXNET) else ", ".join(names)
        out.append(f"batch {batch}: compact forward / dense forward = "
                   f"{100 * np.mean(frac):.0f}% of ideal (mean {label}; target >= 95%)")
        if all((n, "torch-conv2d", batch) in by for n in names):
            vs_torch = [by[(n, "torch-conv2d", batch)]["seconds"] / by[(n, "compact", batch)]
                        ["seconds"] / by[(n, "compact", batch)]["ideal_speedup"] for n in names]
            dense_vs = [by[(n, "dense", batch)]["seconds"] / by[(n, "torch-conv2d", batch)]
                        ["seconds"] for n in names]
            out.append(f"batch {batch}: compact vs torch conv2d = {np.mean(vs_torch):.2f} x ideal "
                       f"(target >= 0.75); dense forward / torch conv2d time = "
                       f"{', '.join(f'{d:.2f}' for d in dense_vs)} (target <= 1.4)")
        if all((n, e, batch) in by for n in names for e in ("sgemm-ours", "sgemm-blas")):
            rate = [by[(n, "sgemm-blas", batch)]["seconds"] / by[(n, "sgemm-ours", batch)]
                    ["seconds"] for n in names]
            out.append(f"batch {batch}: the forward's GEMM / OpenBLAS sgemm on the compacted "
                       f"shapes = {', '.join(f'{100 * r:.0f}%' for r in rate)} "
                       f"(target >= 90% each)")
        csr_engines = [e for e in ("csr-scipy", "csr-torch", "csr-mkl")
                       if all((n, e, batch) in by for n in names)]
        if csr_engines:
            ratio = [min(by[(n, e, batch)]["seconds"] for e in csr_engines) /
                     by[(n, "csr-ours", batch)]["seconds"] for n in names]
            out.append(f"batch {batch}: csr-ours speed / best of {', '.join(csr_engines)} = "
                       f"{', '.join(f'{r:.2f}' for r in ratio)} (target >= 1 each)")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minicaffe.bench",
                                     description="minicaffe kernel benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    gemm = sub.add_parser("gemm", help="AlexNet conv GEMMs: dense, compacted, CSR, peers")
    gemm.add_argument("--threads", type=int, default=1, help="threads (default 1)")
    gemm.add_argument("--json", metavar="FILE", help="write the rows as JSON to FILE")
    gemm.add_argument("--batch", type=int, choices=(1, 8), action="append",
                      help="images lowered together (repeatable; default 1 and 8)")
    gemm.add_argument("--layer", choices=[layer.name for layer in ALEXNET], action="append",
                      help="AlexNet layer to run (repeatable; default all five)")
    gemm.add_argument("--quick", action="store_true", help="few rounds, for a smoke test")
    gemm.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                      help="wall (default) or cpu: CPU time of this process, robust to other "
                           "load on a shared machine; one thread only")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads {args.threads}: expected >= 1")
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu adds up the CPU time of all threads; use it with --threads 1")
    info = ops.build_info()
    print(f"kernels: {info}", file=sys.stderr)
    layers = [layer for layer in ALEXNET if layer.name in args.layer] if args.layer else None
    rows = run_gemm(args.threads, tuple(args.batch or (1, 8)), args.quick, layers,
                    log=lambda *a, **k: print(*a, **k), clock=args.clock)
    info = ops.build_info()                 # the thread count the run set, not the default
    print(f"instruction set {info['isa']}, {info['threads']} thread(s); BLAS: "
          f"{info['blas_version']}")
    print(format_table(rows))
    print(summary(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build_info": info, "peak_gflops_per_core": PEAK_GFLOPS,
                       "clock": args.clock, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
