"""`lenet-tradeoff`: test error against conv FLOPs left for LeNet over a lambda sweep, with
the dense baseline and the equal-iteration dense reference marked.

Every point is the lenet experiment's filter + channel chain (lenet_ssl_solver.prototxt from
the baseline's weights -> compact -> lenet_finetune_solver.prototxt) with its three group-Lasso
strengths scaled by one factor, run through `minicaffe.sweep` (`--set ... --zip`). The
baseline (and the reference) come from `results/lenet/lenet.json` when the lenet experiment
ran on the same data; otherwise the baseline is trained here. A solver that steers its own
lambdas to a FLOP target replaces the scale list by a list of targets (one more --set field).
"""
import os
import time

from minicaffe import sweep
from minicaffe.experiments import common, datasets, pipeline

FILES = {"baseline": "prototxt/lenet/lenet_solver.prototxt",
         "ssl": "prototxt/lenet/lenet_ssl_solver.prototxt",
         "finetune": "prototxt/lenet/lenet_finetune_solver.prototxt"}
SCALES = [0.25, 0.5, 0.75, 1.0, 1.5, 2.5]
TERMS = ("breadth_decay", "kernel_shape_decay", "block_group_decay")
QUICK = {"baseline": 200, "ssl": 60, "finetune": 30, "test_iter": 5, "scales": [0.5, 2.0]}


def sets_for(ssl_param, scales):
    """`--set` lists for sweep.grid(zipped=True): each term of the solver scaled."""
    return [(name, [f"{getattr(ssl_param, name) * s:.6g}" for s in scales]) for name in TERMS
            if getattr(ssl_param, name)]


def run(out_dir="results/lenet-tradeoff", root=".", data_root="data",
        dataset="fashion-mnist", quick=False, jobs_n=2, threads=1, log=print,
        lenet_result="results/lenet/lenet.json", scales=None, **_):
    t0 = time.time()
    out = common.Output(out_dir)
    ds = datasets.mnist_like(data_root, dataset)
    path = {k: os.path.join(root, v) for k, v in FILES.items()}
    scales = scales or (QUICK["scales"] if quick else SCALES)
    marks, base_weights, main_job = [], None, []
    prior = None if quick else pipeline.full_lenet_result(lenet_result, ds)
    if prior:
        base_weights = prior["baseline"]["weights"]
        for row in prior["table"]:
            if row["key"] in ("baseline", "reference"):
                marks.append((row["net"], 100.0, 100 * row["error"]))
            else:        # the lenet run's own SSL nets, from the same baseline
                main_job.append({"net": row["net"], "conv_flops_pct": row["conv_flops_pct"],
                                 "error": row["error"], "ssl_error": row["ssl_error"],
                                 "iterations": row["iterations"]})
        log(f"lenet-tradeoff: baseline and reference from {lenet_result}")
    else:
        over = {}
        if quick:
            over = {"max_iter": QUICK["baseline"], "test_iter": [QUICK["test_iter"]],
                    "test_interval": QUICK["baseline"]}
        param = pipeline.solver_param(path["baseline"], over, dataset=ds)
        progress = common.Progress([("baseline", param.max_iter)], every=2.0 if quick else 30.0)
        base = pipeline.train_stage("baseline", param, out.path("baseline"), None, progress,
                                    what=f"dense LeNet, {param.max_iter} iterations")
        base_weights = base.weights
        marks.append(("LeNet 1 (baseline)", 100.0, 100 * base.error))
    solver, finetune = path["ssl"], path["finetune"]
    if quick:            # shortened copies of the solvers, written next to the results
        solver = _short_copy(path["ssl"], out.path("ssl_quick.prototxt"), QUICK["ssl"], ds)
        finetune = _short_copy(path["finetune"], out.path("finetune_quick.prototxt"),
                               QUICK["finetune"], ds)
    ssl_param = pipeline.solver_param(path["ssl"], dataset=ds)
    sets = sets_for(ssl_param, scales)
    res = sweep.run_sweep(solver, sets, out.folder, weights=base_weights, finetune=finetune,
                          zipped=True, jobs_n=jobs_n, threads=threads, dataset=ds, log=log,
                          every=2.0 if quick else 60.0)
    points = []
    for p in res["points"]:
        scale = float(p["overrides"][sets[0][0]]) / getattr(ssl_param, sets[0][0])
        points.append({"scale": round(scale, 4), "overrides": p["overrides"],
                       "conv_flops_pct": 100 * p["conv_flops"][1] / p["conv_flops"][0],
                       "flops_pct": 100 * p["flops"][1] / p["flops"][0],
                       "error": p["error"], "ssl_error": p["ssl_error"],
                       "layers": p["layers"], "reused": bool(p.get("reused"))})
    result = {"experiment": "lenet-tradeoff", "quick": quick, "dataset": ds.__dict__,
              "machine": common.machine(), "points": points, "marks": marks,
              "main_job": main_job,
              "baseline_weights": base_weights, "seconds": time.time() - t0,
              "schedule": f"each point: {os.path.basename(path['ssl'])} with its group-Lasso "
                          f"strengths x scale, from the baseline, compacted, then "
                          f"{os.path.basename(path['finetune'])} on the compacted net"}
    try:
        from minicaffe.experiments import figures  # noqa: PLC0415

        result["figures"] = [figures.tradeoff(
            {"SSL + fine-tune": [(p["conv_flops_pct"], 100 * p["error"], f"x{p['scale']:g}")
                                 for p in points],
             "SSL before fine-tune": [(p["conv_flops_pct"], 100 * p["ssl_error"], "")
                                      for p in points],
             **({"lenet run (main job)": [(m["conv_flops_pct"], 100 * m["error"],
                                           m["net"].split(" (")[0]) for m in main_job]}
                if main_job else {})},
            marks, out.path("lenet_tradeoff.png"), budget=25.0,
            title=f"LeNet on {ds.name}: error vs conv FLOPs (lambda sweep)")]
    except ImportError as exc:
        log(f"lenet-tradeoff: no figures ({exc})")
    out.write_json("lenet-tradeoff.json", result)
    out.write_text("lenet-tradeoff.md", format_markdown(result))
    return result


def _short_copy(src, dst, iters, ds):
    from minicaffe.prototxt import to_text  # noqa: PLC0415

    p = pipeline.solver_param(src, {"max_iter": iters, "test_iter": [QUICK["test_iter"]],
                                    "test_interval": iters}, dataset=ds)
    with open(dst, "w") as f:
        f.write(to_text(p))
    return dst


def format_markdown(result):
    lines = ["# LeNet: error vs conv FLOPs over a lambda sweep", "",
             f"Data: {result['dataset']['description']}.", f"Schedule: {result['schedule']}.",
             f"Machine: {common.machine_line(result['machine'])}.",
             common.wall_time_line(result), ""]
    reused = [f"x{p['scale']:g}" for p in result["points"] if p.get("reused")]
    if reused:
        lines += [f"Points {', '.join(reused)} were trained by an earlier run of the same sweep "
                  "that was stopped, and reused from their folders' point.json; the wall time "
                  "above is this run's.", ""]
    for label, _, err in result["marks"]:
        lines.append(f"- {label}: {err:.2f}% at 100% FLOPs")
    lines.append("")
    body = []
    for p in sorted(result["points"], key=lambda p: p["conv_flops_pct"]):
        layers = {x["layer"]: x for x in p["layers"]}
        struct = "; ".join(f"{n} {layers[n]['filters'][1]}/{layers[n]['filters'][0]} filters, "
                           f"{layers[n]['channels'][1]} ch" for n in ("conv1", "conv2")
                           if n in layers)
        body.append([f"x{p['scale']:g}", ", ".join(f"{k} {v}" for k, v in p["overrides"].items()),
                     f"{p['conv_flops_pct']:.1f}%", f"{p['flops_pct']:.1f}%",
                     f"{100 * p['ssl_error']:.2f}%", f"{100 * p['error']:.2f}%", struct])
    lines.append(common.markdown_table(["scale", "lambdas", "conv FLOPs", "all FLOPs",
                                        "error after SSL", "error after fine-tune",
                                        "structure"], body))
    if result.get("main_job"):
        lines += ["", "The lenet run the baseline comes from (its own schedule: "
                  + "; ".join(f"{m['net']}: {100 * m['error']:.2f}% at {m['conv_flops_pct']:.1f}% "
                              f"conv FLOPs, {m['iterations']} iterations in all"
                              for m in result["main_job"]) + ")."]
    lines += ["", "Figure: `lenet_tradeoff.png` (the dotted line: the 25% conv FLOPs budget)."]
    return "\n".join(lines) + "\n"
