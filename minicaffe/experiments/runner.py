"""The shape most experiments share: a dense baseline, then SSL chains from its weights (each
SSL -> compact -> fine-tune, see pipeline.ssl_chain) run side by side as processes.

    base, chains = baseline_then_chains(out, ds, "prototxt/mlp/mlp_solver.prototxt", {},
                                        [{"name": "mlp2", "solver": ..., "overrides": {...},
                                          "finetune": ..., "ft_overrides": {...}}, ...])
"""
import os

from minicaffe.experiments import common, jobs, pipeline


def quick_overrides(overrides, iters, test_iter=5):
    """`overrides` with a short schedule: `iters` iterations, `test_iter` test batches."""
    out = dict(overrides)
    out.update(max_iter=iters, test_iter=[test_iter], test_interval=max(iters // 2, 1),
               display=max(iters // 4, 1))
    return out


def scaled_schedule(overrides, factor):
    """The iteration counts of `overrides` (max_iter, test_interval, stepvalue) times `factor`,
    rounded, at least 1: a reduced schedule that keeps its shape (`--schedule` of the CIFAR
    experiments)."""
    out = {}
    for key in ("max_iter", "test_interval"):
        if key in overrides:
            out[key] = max(1, round(overrides[key] * factor))
    if "stepvalue" in overrides:
        out["stepvalue"] = [max(1, round(v * factor)) for v in overrides["stepvalue"]]
    return out


def baseline_then_chains(out, dataset, solver, overrides, chains, jobs_n=2, threads=1,
                         every=20.0, net=None, label="dense baseline"):
    """Train the baseline in this process, then every chain spec (pipeline.ssl_chain keys;
    "weights", "dataset", "out" and "every" filled in) in `jobs_n` worker processes.
    Returns (baseline StageResult, [chain result dicts] in the order given)."""
    runs = out.path("runs")
    param = pipeline.solver_param(solver, overrides, net=net, dataset=dataset)
    cost = sum(pipeline.solver_param(c["solver"], c.get("overrides"), net=c.get("net"),
                                      dataset=dataset).max_iter for c in chains)
    progress = common.Progress([("baseline", param.max_iter),
                                ("SSL chains", cost / max(jobs_n, 1) * 1.5)], every=every)
    restore = common.log_to_file(os.path.join(runs, "baseline.log"))
    try:
        base = pipeline.train_stage("baseline", param, runs, None, progress,
                                    what=f"{label}, {param.max_iter} iterations")
    finally:
        restore()
    specs = [dict(c, weights=c.get("weights", base.weights), dataset=dataset, out=runs,
                  every=every) for c in chains]
    progress.start("SSL chains", 1, f"{len(specs)} chain(s), {jobs_n} process(es) x {threads} "
                   "thread(s)")
    results = jobs.run_jobs(pipeline.ssl_chain, specs, jobs=jobs_n, threads=threads,
                            name=lambda s, i: f"chain '{s['name']}'")
    progress.end("SSL chains")
    return base, results
