"""`alexnet-speed`: Table 4 and Fig. 7c of the SSL paper on this machine.

AlexNet's five conv layers as Caffe lowers them (one group; conv2, conv4, conv5 have two in
AlexNet, timed as one), with random weights at the sparsities of Table 4:
  AlexNet 1 (L1, non-structured) and 2 (SSL, rows + columns): high sparsity, ~44.7% top-1
  AlexNet 4 (L1) and 5 (SSL, columns only): no accuracy loss, ~42.5% top-1
each timed by `minicaffe.bench.run_gemm` (the benchmark of `python -m minicaffe.bench gemm`):
the dense GEMM, the compacted GEMM (zero rows and columns removed, the paper's measurement),
our CSR x dense and the best CSR peer (scipy.sparse, torch.sparse, MKL when built with it),
plus whole forwards (lowering included), interleaved, 1 thread and all threads. Speedups are
over the dense GEMM of the same run, next to the paper's CPU speedups (Xeon E5-2630, MKL).
"""
import dataclasses
import os
import time

from minicaffe import bench
from minicaffe.experiments import common

# Table 4: per conv1..conv5. (row sparsity, column sparsity) for SSL; element sparsity for L1.
PAPER = {
    "AlexNet 1 (L1)": {"error": 44.67, "l1": [0.676, 0.924, 0.972, 0.966, 0.943],
                       "cpu": [0.80, 2.91, 4.84, 3.83, 2.76]},
    "AlexNet 2 (SSL)": {"error": 44.66, "rows": [0.094, 0.129, 0.406, 0.469, 0.0],
                        "cols": [0.0, 0.632, 0.769, 0.847, 0.807],
                        "cpu": [1.05, 3.37, 6.27, 9.73, 4.93]},
    "AlexNet 4 (L1)": {"error": 42.51, "l1": [0.147, 0.762, 0.853, 0.815, 0.763],
                       "cpu": [0.34, 0.99, 1.30, 1.10, 0.93]},
    "AlexNet 5 (SSL)": {"error": 42.53, "rows": [0.0] * 5,
                        "cols": [0.0, 0.209, 0.397, 0.397, 0.246],
                        "cpu": [1.00, 1.27, 1.64, 1.68, 1.32]},
}
PAIRS = [("AlexNet 1 (L1)", "AlexNet 2 (SSL)"), ("AlexNet 4 (L1)", "AlexNet 5 (SSL)")]
LAYERS = [layer.name for layer in bench.ALEXNET]


def pair_layers(l1_name, ssl_name, names=None):
    """bench.ConvLayer list with the sparsities of one L1 / SSL pair of Table 4 (the layers of
    `names`, default all five)."""
    l1, ssl = PAPER[l1_name], PAPER[ssl_name]
    return [dataclasses.replace(layer, row_sparsity=ssl["rows"][i], col_sparsity=ssl["cols"][i],
                                l1_sparsity=l1["l1"][i])
            for i, layer in enumerate(bench.ALEXNET) if names is None or layer.name in names]


def run(out_dir="results/alexnet-speed", quick=False, threads=None, batches=(1,), log=print,
        layers=None, **_):
    """Time both pairs at 1 thread and `threads` (default: all logical CPUs)."""
    t0 = time.time()
    out = common.Output(out_dir)
    all_threads = threads or os.cpu_count() or 1
    thread_list = [1] if all_threads == 1 else [1, all_threads]
    runs = []
    for l1_name, ssl_name in PAIRS:
        for th in thread_list:
            rows = bench.run_gemm(th, tuple(batches), quick,
                                  pair_layers(l1_name, ssl_name, layers),
                                  log=lambda *a, **k: None)
            runs.append({"pair": [l1_name, ssl_name], "threads": th, "rows": rows})
            log(f"alexnet-speed: {ssl_name} vs {l1_name}, {th} thread(s): done")
    result = {"experiment": "alexnet-speed", "quick": quick, "machine": common.machine(),
              "batches": list(batches), "runs": runs, "paper": PAPER,
              "seconds": time.time() - t0}
    result["table"] = table(result)
    try:
        result["figures"] = figures(result, out)
    except ImportError as exc:
        log(f"alexnet-speed: no figures ({exc})")
    out.write_json("alexnet-speed.json", result)
    out.write_text("alexnet-speed.md", format_markdown(result))
    return result


def _speed(rows, layer, engine, batch):
    for r in rows:
        if r["layer"] == layer and r["engine"] == engine and r["batch"] == batch:
            return r["speedup_vs_dense"]
    return None


def _best_csr_peer(rows, layer, batch):
    vals = [_speed(rows, layer, e, batch) for e in ("csr-scipy", "csr-torch", "csr-mkl")]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def table(result):
    """Rows: one per (net, threads, batch) with the per-layer speedups over dense GEMM."""
    out = []
    for run_ in result["runs"]:
        l1_name, ssl_name = run_["pair"]
        for batch in result["batches"]:
            rows = run_["rows"]
            out.append({"net": ssl_name, "method": "SSL compacted GEMM", "threads": run_["threads"],
                        "batch": batch, "measured": [_speed(rows, n, "compact-gemm", batch)
                                                     for n in LAYERS],
                        "forward": [_speed(rows, n, "compact", batch) for n in LAYERS],
                        "paper": PAPER[ssl_name]["cpu"]})
            out.append({"net": l1_name, "method": "L1 CSR (ours)", "threads": run_["threads"],
                        "batch": batch, "measured": [_speed(rows, n, "csr-ours", batch)
                                                     for n in LAYERS],
                        "best_peer": [_best_csr_peer(rows, n, batch) for n in LAYERS],
                        "paper": PAPER[l1_name]["cpu"]})
    return out


def _x(v):
    return "–" if v is None else f"{v:.2f}"


def _mean(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def format_markdown(result):
    lines = ["# AlexNet: structured (SSL) vs non-structured (L1) sparsity speedups "
             "(SSL paper Table 4, Fig. 7c)", "",
             "Data: none (random weights at Table 4's sparsities; the speed of a GEMM does not "
             "depend on the values). Layers: AlexNet conv1-conv5 lowered as Caffe does (one "
             "group).",
             f"Machine: {common.machine_line(result['machine'])}.",
             "Method: `minicaffe.bench.run_gemm` (as `python -m minicaffe.bench gemm`), engines "
             "interleaved, medians" + (" (--quick: few rounds)." if result["quick"] else "."),
             ""]
    for batch in result["batches"]:
        header = ["net", "method", "threads"] + LAYERS + ["mean", "paper (CPU x)", "paper mean"]
        body = []
        for r in result["table"]:
            if r["batch"] != batch:
                continue
            body.append([r["net"], r["method"], r["threads"]] + [_x(v) for v in r["measured"]]
                        + [_x(_mean(r["measured"])), " ".join(f"{v:.2f}" for v in r["paper"]),
                           f"{sum(r['paper']) / 5:.2f}"])
            if "best_peer" in r:
                body.append([r["net"], "L1 CSR (best of scipy / torch / MKL)", r["threads"]]
                            + [_x(v) for v in r["best_peer"]]
                            + [_x(_mean(r["best_peer"])), "", ""])
            else:
                body.append([r["net"], "SSL compacted forward (lowering included)", r["threads"]]
                            + [_x(v) for v in r["forward"]] + [_x(_mean(r["forward"])), "", ""])
        lines += [f"## Batch {batch}: speedup over the dense GEMM of the same run (x)", "",
                  common.markdown_table(header, body), ""]
    lines += ["Speedup > 1 is faster than dense. The paper's numbers are Caffe with MKL on a "
              "Xeon E5-2630 (its Table 4, CPU rows); ours are the same sparsity patterns on this "
              "machine. Figure: `alexnet_speedups.png`."]
    return "\n".join(lines) + "\n"


def figures(result, out):
    from minicaffe.experiments import figures as fig  # noqa: PLC0415

    groups = {}
    first = PAIRS[0]
    for r in result["table"]:
        if r["batch"] == result["batches"][0] and r["net"] in first:
            groups[f"{r['net']}, {r['threads']} thread(s)"] = dict(zip(LAYERS, r["measured"]))
    for name in first:
        groups[f"paper {name}, Xeon"] = dict(zip(LAYERS, PAPER[name]["cpu"]))
    return [fig.speedup_bars(groups, out.path("alexnet_speedups.png"),
                             title="AlexNet conv layers: speedup over dense GEMM",
                             ylabel="speedup (x)")]
