"""`lenet`: the SSL paper's LeNet pipeline (Tables 1-2, Fig. 3), the project's main job.

    dense baseline  (lenet_solver.prototxt)
      -> SSL filters + channels from the baseline's weights (lenet_ssl_solver.prototxt)
           -> compact -> fine-tune the compacted net, zero groups frozen (lenet_finetune_solver)
      -> SSL filter shapes from the baseline's weights (lenet_ssl_shape_solver.prototxt)
           -> compact -> fine-tune
      -> dense reference: the baseline trained on for as many iterations as SSL + fine-tuning
         (the same schedules), the honest comparison at equal training
    then one table in the form of Tables 1-2: error, filters and channels per layer, filter
    sizes, FLOPs per layer, measured speedup per layer and end to end (the dense net and the
    compacted net timed interleaved in this process, batch 1 and 64), and the figures.

The chains after the baseline are independent and run as parallel processes (`jobs`).
Every number of the recipe lives in the solver files, except two cuts that hold the main job
to 15 minutes on 2 cores (MAIN_JOB below: fine-tuning 5000 iterations instead of the solver
file's 8000, the baseline tested every 1000 iterations instead of 500) and the dense
reference, which runs only with `reference=True` (`--reference`, about 10 more minutes);
`--quick` shortens every schedule for a smoke test.
"""
import os
import time


from minicaffe.experiments import common, datasets, jobs, pipeline
from minicaffe.prototxt import read_net
from minicaffe.solver.budget import group_lasso_update

HERE = os.path.join("prototxt", "lenet")
FILES = {
    "baseline": "lenet_solver.prototxt",
    "fc": "lenet_ssl_solver.prototxt",
    "shape": "lenet_ssl_shape_solver.prototxt",
    "finetune": "lenet_finetune_solver.prototxt",
    "deploy": "lenet_deploy.prototxt",
    "net": "lenet_train_test.prototxt",
}
LABELS = {"baseline": "LeNet 1 (baseline)", "reference": "LeNet 1' (dense, equal iterations)",
          "fc": "LeNet 2 (SSL filters + channels)", "shape": "LeNet 3 (SSL filter shapes)"}
CONV = ("conv1", "conv2")
QUICK = {"baseline": 300, "ssl": 200, "finetune": 100, "test_iter": 10, "rounds": 5}
# The main job's cuts to fit 15 minutes on 2 cores (the solver files keep the full recipe:
# 8000 fine-tuning iterations were worth about 0.3 points over 3000 in the research runs).
MAIN_JOB = {"finetune": {"max_iter": 5000}, "baseline": {"test_interval": 1000}}


def _path(root, key):
    return os.path.join(root, HERE, FILES[key])


def _quick(overrides, iters, quick):
    if not quick:
        return overrides
    out = dict(overrides)
    out.update(max_iter=iters, test_iter=[QUICK["test_iter"]], test_interval=max(iters // 2, 1),
               display=max(iters // 4, 1))
    return out


def _chain(spec):
    """One chain of the pipeline after the baseline, in a worker process."""
    if spec["name"] == "reference":
        return pipeline.dense_chain(spec)
    return pipeline.ssl_chain(spec)


def time_chain(root, baseline_weights, chain, batches, rounds):
    """{batch: compaction report with times}: the dense deploy LeNet with the baseline's
    weights against the compacted, fine-tuned net, interleaved in this process."""
    return pipeline.time_compaction(_path(root, "deploy"), baseline_weights, chain, batches,
                                    rounds)


def _ratio(t):
    a, b = t
    return None if not a or not b else a / b


def build_table(result):
    """Rows of the closing table (dicts) from the run's results."""
    rows = []
    base = result["baseline"]
    ref = result.get("reference")
    dense_layer = {"conv1": (20, 1, 25), "conv2": (50, 20, 500)}
    for key in ("baseline", "reference", "fc", "shape"):
        if key in ("baseline", "reference"):
            src = base if key == "baseline" else ref
            if not src:
                continue
            rows.append({"net": LABELS[key], "key": key, "error": src["error"],
                         "iterations": src["iterations"] + (0 if key == "baseline"
                                                            else base["iterations"]),
                         "filters": [dense_layer[n][0] for n in CONV],
                         "channels": [dense_layer[n][1] for n in CONV],
                         "filter_size": [dense_layer[n][2] for n in CONV],
                         "flops_pct": [100.0, 100.0], "conv_flops_pct": 100.0,
                         "speedup": {b: {"conv1": 1.0, "conv2": 1.0, "forward": 1.0}
                                     for b in result["batches"]}})
            continue
        chain = result.get(key)
        if not chain:
            continue
        layer_rows = {r["layer"]: r for r in chain["report"]["rows"]}
        sizes = []
        for n in CONV:
            ks = layer_rows[n]["filter_size"][1]
            sizes.append(ks[0] if isinstance(ks, list) and len(set(ks)) == 1 else ks)
        speed = {}
        for b, rep in chain["timing"].items():
            lr = {r["layer"]: r for r in rep["rows"]}
            speed[b] = {n: _ratio(lr[n]["time_ms"]) for n in CONV}
            speed[b]["forward"] = _ratio(rep["timing"]["forward_ms"])
        d, k = chain["conv_flops"]
        label = LABELS[key]
        if key == "fc" and result.get("flops_target"):
            label = (f"LeNet 2 (SSL filters + channels, budget {100 * result['flops_target']:g}% "
                     "conv FLOPs, no lambdas)")
        rows.append({"net": label, "key": key, "error": chain["error"],
                     "ssl_error": chain["ssl_error"],
                     "iterations": base["iterations"] + sum(s["iterations"]
                                                            for s in chain["stages"]),
                     "filters": [layer_rows[n]["filters"][1] for n in CONV],
                     "channels": [layer_rows[n]["channels"][1] for n in CONV],
                     "filter_size": sizes,
                     "flops_pct": [100 * layer_rows[n]["flops"][1] / layer_rows[n]["flops"][0]
                                   for n in CONV],
                     "conv_flops_pct": 100 * k / d, "net_flops_pct": 100 * chain["flops"][1]
                     / chain["flops"][0], "speedup": speed})
    return rows


def _x(v):
    return "–" if v is None else f"{v:.2f}x"


def format_markdown(result):
    rows = result["table"]
    base_iters = result["baseline"]["iterations"]
    lines = ["# LeNet: Structured Sparsity Learning (SSL paper Tables 1-2, Fig. 3)", "",
             f"Data: {result['dataset']['description']}.",
             f"Schedule: {result['schedule']}.",
             f"Machine: {common.machine_line(result['machine'])}.",
             common.wall_time_line(result), ""]
    header = ["LeNet #", "error", "filters", "channels", "filter size", "FLOPs",
              "conv FLOPs", "total iterations"]
    for b in result["batches"]:
        header += [f"speedup b{b}", f"forward b{b}"]
    body = []
    for r in rows:
        cells = [r["net"], f"{100 * r['error']:.2f}%", "—".join(map(str, r["filters"])),
                 "—".join(map(str, r["channels"])), "—".join(map(str, r["filter_size"])),
                 "—".join(f"{p:.1f}%" for p in r["flops_pct"]), f"{r['conv_flops_pct']:.1f}%",
                 str(r["iterations"])]
        for b in result["batches"]:
            sp = r["speedup"].get(b) or r["speedup"].get(str(b)) or {}
            cells += ["—".join(_x(sp.get(n)) for n in CONV), _x(sp.get("forward"))]
        body.append(cells)
    lines.append(common.markdown_table(header, body))
    lines += ["", "Columns in the order conv1—conv2. *FLOPs*: multiply-adds left after "
              "compaction (zero filters, channels no kept filter reads, zero shape fibres), "
              "% of the dense layer; *conv FLOPs*: conv1 + conv2 together. *speedup*: forward "
              "time of the dense layer over the compacted layer, *forward*: the whole forward "
              "pass (dense LeNet with the baseline's weights vs the compacted, fine-tuned net), "
              f"both timed interleaved in one process, {result['threads']} thread(s), medians "
              f"of {result['rounds']} rounds, batch sizes {', '.join(map(str, result['batches']))}. "
              f"*total iterations*: all training the net received, the {base_iters}-iteration "
              "baseline included"
              + ("; the dense reference trains as many as SSL + fine-tuning." if any(
                  r["key"] == "reference" for r in rows) else ".")]
    gap = result.get("gap")
    if gap:
        lines += ["", gap]
    elif not result.get("reference", True):
        lines += ["", "No dense reference trained as long in this run (`--reference` adds it, "
                  "about 10 minutes more); docs/RESULTS.md reports it."]
    lines += ["", "Figures: `lenet_conv1_filters.png` (Fig. 3), `lenet_curves_fc.png`, "
              "`lenet_curves_shape.png` (loss, accuracy and FLOPs left over the stages), "
              "`lenet_tradeoff.png` (error vs conv FLOPs)."]
    return "\n".join(lines) + "\n"


def _gap_sentence(rows):
    ref = next((r for r in rows if r["key"] == "reference"), None)
    if ref is None:
        return ""
    parts = []
    for r in rows:
        if r["key"] in ("fc", "shape"):
            parts.append(f"{r['net']}: {100 * r['error']:.2f}% at {r['conv_flops_pct']:.1f}% conv "
                         f"FLOPs, {100 * (r['error'] - ref['error']):+.2f} points against the "
                         f"dense net trained as long ({100 * ref['error']:.2f}%)")
    return "Against the equal-iteration dense reference: " + "; ".join(parts) + "."


def figures(result, out, root):
    """Fig. 3, the curves of each chain, and the trade-off plot."""
    from minicaffe import plot  # noqa: PLC0415
    from minicaffe.experiments import figures as fig  # noqa: PLC0415

    made = []
    nets = {LABELS["baseline"]: pipeline.conv1_filters(result["baseline"]["weights"])}
    for key in ("fc", "shape"):
        if key in result:
            nets[LABELS[key]] = pipeline.conv1_filters(result[key]["ssl_weights"])
    made.append(fig.filters_grid(nets, out.path("lenet_conv1_filters.png"),
                                 title="LeNet conv1 filters (Fig. 3); empty boxes: zero filters"))
    for key in ("fc", "shape"):
        if key not in result:
            continue
        logs = [result["baseline"]["log"]] + [s["log"] for s in result[key]["stages"]]
        stages = plot.stages_from_logs(logs, ["baseline", f"SSL {key}", "fine-tune"])
        made.append(plot.draw_curves(stages, out.path(f"lenet_curves_{key}.png"),
                                     title=f"{LABELS[key]}: loss, accuracy, FLOPs left"))
    pts = {"SSL + fine-tune": [(r["conv_flops_pct"], 100 * r["error"], r["net"].split(" (")[0])
                               for r in result["table"] if r["key"] in ("fc", "shape")],
           "SSL before fine-tune": [(r["conv_flops_pct"], 100 * r["ssl_error"], "")
                                    for r in result["table"] if r["key"] in ("fc", "shape")]}
    sweep = result.get("sweep_points")
    if sweep:
        pts["lambda sweep (SSL + fine-tune)"] = sweep
    marks = [(r["net"], 100.0, 100 * r["error"]) for r in result["table"]
             if r["key"] in ("baseline", "reference")]
    made.append(fig.tradeoff(pts, marks, out.path("lenet_tradeoff.png"),
                             title="LeNet: test error vs conv FLOPs left", budget=25.0))
    return made


def reference_stages(root, ssl_param, ft_param):
    """The dense reference's stages: from the baseline's weights, the SSL stage's schedule
    without its group terms, then the fine-tuning schedule without frozen groups: the same
    iterations and learning rates the SSL net gets after the baseline."""
    off = {"breadth_decay": 0, "kernel_shape_decay": 0, "block_group_decay": 0,
           "zero_threshold": 0}
    net = read_net(_path(root, "net"))
    return [(_path(root, "fc"), dict(off, max_iter=ssl_param.max_iter), net),
            (_path(root, "finetune"), {"max_iter": ft_param.max_iter}, net)]


def run(out_dir="results/lenet", root=".", data_root="data", dataset="fashion-mnist",
        quick=False, jobs_n=2, threads=1, rounds=30, batches=(1, 64), log=print,
        reference=False, full_schedule=False, flops_target=None):
    """The whole LeNet pipeline; returns the result dict (also written to out_dir).

    `reference`: also train the dense net for as many iterations as SSL + fine-tuning (the
    honest comparison; one more chain). `full_schedule`: the solver files' schedules without
    the main job's cuts (MAIN_JOB). `flops_target` (e.g. 0.25): the filters + channels chain
    asks the solver for that share of the conv FLOPs (budget-driven SSL, no lambdas) instead of
    using the solver file's lambdas."""
    t0 = time.time()
    machine = common.machine()
    out = common.Output(out_dir)
    runs = out.path("runs")
    os.makedirs(runs, exist_ok=True)
    ds = datasets.mnist_like(data_root, dataset)
    q = QUICK if quick else {}
    every = 2.0 if quick else 20.0
    over = {key: _quick({}, q.get(key), quick) for key in ("baseline", "ssl", "finetune")}
    if not quick and not full_schedule:
        for key, cut in MAIN_JOB.items():
            over[key] = dict(over[key], **cut)
    base_param = pipeline.solver_param(_path(root, "baseline"), over["baseline"], dataset=ds)
    fc_param = pipeline.solver_param(_path(root, "fc"), over["ssl"], dataset=ds)
    sh_param = pipeline.solver_param(_path(root, "shape"), over["ssl"], dataset=ds)
    ft_param = pipeline.solver_param(_path(root, "finetune"), over["finetune"], dataset=ds)
    chain_cost = fc_param.max_iter + 0.6 * ft_param.max_iter
    progress = common.Progress([("baseline", base_param.max_iter),
                                ("chains", chain_cost * (2.3 if reference else 1.3))],
                               every=every)
    restore = common.log_to_file(os.path.join(runs, "baseline.log"))
    try:
        base = pipeline.train_stage("baseline", base_param, runs, None, progress,
                                    what=f"dense LeNet, {base_param.max_iter} iterations")
    finally:
        restore()
    common_spec = {"dataset": ds, "weights": base.weights, "out": runs, "every": every}
    ref = [(s, dict(o, **over["ssl" if i == 0 else "finetune"]), n)
           for i, (s, o, n) in enumerate(reference_stages(root, fc_param, ft_param))]
    fc_budget = {"flops_target": flops_target} if flops_target else None
    specs = [dict(common_spec, name="fc", label=LABELS["fc"], solver=_path(root, "fc"),
                  overrides=over["ssl"], finetune=_path(root, "finetune"),
                  ft_overrides=over["finetune"], budget=fc_budget),
             dict(common_spec, name="shape", label=LABELS["shape"], solver=_path(root, "shape"),
                  overrides=over["ssl"], finetune=_path(root, "finetune"),
                  ft_overrides=over["finetune"]),
             dict(common_spec, name="reference", label="dense reference", stages=ref)]
    if not reference:
        specs.pop()
    progress.start("chains", 1, "SSL filters+channels, SSL filter shapes"
                   + (" and the dense reference" if reference else "")
                   + f": {jobs_n} process(es) x {threads} thread(s)")
    chains = jobs.run_jobs(_chain, specs, jobs=jobs_n, threads=threads,
                           name=lambda s, i: f"chain '{s['name']}'")
    progress.end("chains")
    if flops_target:
        pipeline.budget_param(fc_param, flops_target)
    result = {"experiment": "lenet", "quick": quick, "dataset": ds.__dict__,
              "machine": machine, "batches": list(batches), "reference": reference,
              "flops_target": flops_target,
              "schedule": _schedule(base_param, fc_param, sh_param, ft_param),
              "baseline": dict(base.to_dict(), weights=base.weights, log=base.log)}
    for c in chains:
        result[c["name"]] = c
    from minicaffe.ops import get_num_threads, set_num_threads  # noqa: PLC0415

    saved = get_num_threads()
    set_num_threads(1)
    result["threads"] = 1
    result["rounds"] = q.get("rounds", rounds)
    try:
        progress.note("timing dense vs compacted nets (1 thread, interleaved)")
        for key in ("fc", "shape"):
            result[key]["timing"] = time_chain(root, base.weights, result[key], batches,
                                               result["rounds"])
    finally:
        set_num_threads(saved)
    for key in ("fc", "shape"):
        result[key].pop("train_param", None)
    result["table"] = build_table(result)
    result["gap"] = _gap_sentence(result["table"])
    result["seconds"] = time.time() - t0
    try:
        result["figures"] = figures(result, out, root)
    except ImportError as exc:
        log(f"lenet: no figures ({exc})")
    out.write_json("lenet.json", result)
    out.write_text("lenet.md", format_markdown(result))
    return result


def _schedule(base, fc, sh, ft):
    def desc(p):
        extra = []
        if p.flops_target:
            extra.append(f"flops_target {p.flops_target:g} of {p.flops_target_scope} FLOPs (no "
                         f"lambda; reached by iteration {p.budget_schedule.reach_iter})")
        for name in ("breadth_decay", "kernel_shape_decay", "block_group_decay"):
            if getattr(p, name):
                extra.append(f"{name} {getattr(p, name):g}")
        if extra:
            extra.append(f"group_lasso_update {group_lasso_update(p)}")
        return (f"{p.max_iter} iterations, base_lr {p.base_lr:g}, lr_policy {p.lr_policy}, "
                f"momentum {p.momentum:g}, weight_decay {p.weight_decay:g}"
                + (", " + ", ".join(extra) if extra else ""))
    return (f"baseline: {desc(base)}; SSL filters+channels: {desc(fc)}; SSL shapes: {desc(sh)}; "
            f"fine-tuning: {desc(ft)}; batch 64")
