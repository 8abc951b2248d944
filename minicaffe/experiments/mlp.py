"""`mlp`: the SSL paper's multilayer perceptron (Fig. 4): neurons per layer and the map of
input pixels that keep a connection.

    dense baseline (prototxt/mlp/mlp_solver.prototxt: 784-300-100-10, ReLU)
      -> SSL from its weights at two strengths (group Lasso on the rows = a neuron's input
         connections and the columns = its output connections of ip1 and ip2)
         -> compact (a neuron goes when its inputs or its outputs are all zero) -> fine-tune
Table: error, neurons per layer (input pixels with a connection, hidden 1, hidden 2), FLOPs
left; figure: (a) neurons per layer, (b) connections of each input pixel of the stronger net.
"""
import os
import time

from minicaffe.experiments import common, datasets, runner

ROOT_FILES = {"baseline": "prototxt/mlp/mlp_solver.prototxt",
              "ssl": "prototxt/mlp/mlp_ssl_solver.prototxt",
              "finetune": "prototxt/mlp/mlp_finetune_solver.prototxt"}
# SSL from the baseline's weights: proximal group Lasso at a fixed learning rate, two strengths
SSL = {"group_lasso_update": "PROXIMAL", "base_lr": 0.005, "lr_policy": "fixed",
       "max_iter": 6000, "test_interval": 2000}
STRENGTHS = {"MLP 2": 0.02, "MLP 3": 0.05}
FINETUNE = {"base_lr": 0.005, "max_iter": 3000}
QUICK = {"baseline": 300, "ssl": 200, "finetune": 100}


def run(out_dir="results/mlp", root=".", data_root="data", dataset="auto", quick=False,
        jobs_n=2, threads=1, log=print, **_):
    t0 = time.time()
    out = common.Output(out_dir)
    ds = datasets.mnist_like(data_root, dataset)
    path = {k: os.path.join(root, v) for k, v in ROOT_FILES.items()}
    base_over = runner.quick_overrides({}, QUICK["baseline"]) if quick else {}
    chains = []
    for k, (label, lam) in enumerate(STRENGTHS.items()):
        over = dict(SSL, breadth_decay=lam, kernel_shape_decay=lam)
        ft = dict(FINETUNE)
        if quick:
            over = runner.quick_overrides(over, QUICK["ssl"])
            ft = runner.quick_overrides(ft, QUICK["finetune"])
        chains.append({"name": f"mlp{k + 2}", "label": label, "solver": path["ssl"],
                       "overrides": over, "finetune": path["finetune"], "ft_overrides": ft,
                       "lambda": lam})
    base, results = runner.baseline_then_chains(out, ds, path["baseline"], base_over, chains,
                                                jobs_n, threads, every=2.0 if quick else 20.0,
                                                label="dense MLP")
    rows = [{"net": "MLP 1 (baseline)", "lambda": 0.0, "error": base.error,
             "neurons": _dense_neurons(base), "flops_pct": 100.0, "pixels": 784}]
    pixel_map = None
    for c, spec in zip(results, chains):
        rep = c["report"]
        layers = {r["layer"]: r for r in rep["rows"]}
        first = rep["first_layer"][0] if rep["first_layer"] else None
        pixels = first["count"] - first["unconnected"] if first else None
        rows.append({"net": spec["label"], "lambda": spec["lambda"], "error": c["error"],
                     "ssl_error": c["ssl_error"],
                     "neurons": [layers["ip1"]["filters"][1], layers["ip2"]["filters"][1],
                                 layers["ip3"]["filters"][1]],
                     "flops_pct": 100 * c["flops"][1] / c["flops"][0], "pixels": pixels,
                     "pixel_share_unconnected": first["unconnected"] / first["count"]
                     if first else None})
        if first is not None:
            pixel_map = (spec["label"], first["connections"])
    result = {"experiment": "mlp", "quick": quick, "dataset": ds.__dict__,
              "machine": common.machine(), "rows": rows, "chains": _strip(results),
              "baseline": base.to_dict(), "schedule": _schedule(base_over, chains),
              "seconds": time.time() - t0}
    try:
        from minicaffe.experiments import figures  # noqa: PLC0415

        table = {r["net"]: [("input", r["pixels"]), ("hidden 1", r["neurons"][0]),
                            ("hidden 2", r["neurons"][1])] for r in rows}
        if pixel_map:
            result["figures"] = [figures.neurons_and_pixels(
                table, pixel_map[1], (28, 28), out.path("mlp_neurons_pixels.png"),
                title=f"MLP on {ds.name}: neurons left (a) and input-pixel connections of "
                      f"{pixel_map[0]} (b)")]
    except ImportError as exc:
        log(f"mlp: no figures ({exc})")
    out.write_json("mlp.json", result)
    out.write_text("mlp.md", format_markdown(result))
    return result


def _dense_neurons(base):
    sizes = {r["layer"]: r["filters"] for r in base.sparsity}
    return [sizes.get("ip1", 300), sizes.get("ip2", 100), sizes.get("ip3", 10)]


def _strip(results):
    return [{k: v for k, v in c.items() if k != "train_param"} for c in results]


def _schedule(base_over, chains):
    c = chains[0]
    over = {k: v for k, v in c["overrides"].items() if k not in ("breadth_decay",
                                                                  "kernel_shape_decay")}
    return (f"baseline: mlp_solver.prototxt{' ' + str(base_over) if base_over else ''}; "
            f"SSL: mlp_ssl_solver.prototxt with {over}, breadth_decay = kernel_shape_decay = "
            f"lambda per row; fine-tuning: mlp_finetune_solver.prototxt with "
            f"{c['ft_overrides']} on the compacted net; batch 64")


def format_markdown(result):
    lines = ["# MLP: learning the number of neurons (SSL paper Fig. 4)", "",
             f"Data: {result['dataset']['description']}.", f"Schedule: {result['schedule']}.",
             f"Machine: {common.machine_line(result['machine'])}.",
             common.wall_time_line(result), ""]
    body = []
    for r in result["rows"]:
        body.append([r["net"], f"{r['lambda']:g}" if r["lambda"] else "–",
                     f"{100 * r['error']:.2f}%",
                     "–" if r.get("ssl_error") is None else f"{100 * r['ssl_error']:.2f}%",
                     f"{r['pixels']}—{r['neurons'][0]}—{r['neurons'][1]}—{r['neurons'][2]}",
                     f"{r['flops_pct']:.1f}%"])
    lines.append(common.markdown_table(
        ["MLP #", "lambda (rows = columns)", "error", "error before fine-tune",
         "neurons (input pixels—hidden 1—hidden 2—output)", "FLOPs left"], body))
    unconnected = [r for r in result["rows"] if r.get("pixel_share_unconnected") is not None]
    if unconnected:
        r = unconnected[-1]
        lines += ["", f"{r['net']}: {100 * r['pixel_share_unconnected']:.1f}% of the input pixels "
                  "have no connection left (the paper's MLP 2 on MNIST: 40.18%, at the image "
                  "border). Figure: `mlp_neurons_pixels.png`."]
    lines += ["", "*FLOPs left*: multiply-adds of ip1-ip3 after compaction, % of dense (zero "
              "input pixels are counted as read: the input keeps its shape)."]
    return "\n".join(lines) + "\n"
