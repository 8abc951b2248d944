"""`budget`: budget-driven SSL (docs/SSL.md) on the CIFAR-10 quick net and ResNet-20: one
number, no lambda, three data orders each.

    per net: dense baseline (reduced schedule)
      -> for each seed: SSL from the baseline's weights steered to `flops_target` of the conv
         multiply-adds (the solver file's lambdas removed: pipeline.budget_param), the
         structure frozen at the end of the stage -> compact -> fine-tune
    Seeds: `random_seed` of the solver and a `rand_skip` on the training Data layer, so each
    run starts the data at another record (another data order, as the LeNet runs of docs/SSL.md).
    Table: per run, the conv FLOPs left (as compaction counts them) and the gap to the budget,
    the test error after fine-tuning against the dense baseline, when the controller froze the
    structure, groups snapped and rollbacks.
On CIFAR-10 when its batches are present, else on Fashion-MNIST padded to 32x32 (said so).
"""
import json
import os
import time

from minicaffe.experiments import common, datasets, runner
from minicaffe.experiments.resnet_depth import BATCH as RESNET_BATCH
from minicaffe.prototxt import read_net
from minicaffe.solver.budget import RECALIBRATE_BATCHES

NETS = {
    "cifar10-quick": {
        "label": "CIFAR-10 quick",
        "baseline": "prototxt/cifar10/cifar10_quick_solver.prototxt",
        "ssl": "prototxt/cifar10/cifar10_quick_ssl_solver.prototxt",
        "finetune": "prototxt/cifar10/cifar10_quick_finetune_solver.prototxt",
        "net": "prototxt/cifar10/cifar10_quick_train_test.prototxt",
        "batch": None,
        "BASELINE": {"max_iter": 2000, "lr_policy": "fixed", "test_interval": 1000},
        "SSL": {"lr_policy": "fixed", "max_iter": 1200, "test_interval": 1200},
        "FINETUNE": {"lr_policy": "fixed", "max_iter": 600, "test_interval": 600},
    },
    "resnet20": {
        "label": "ResNet-20",
        "baseline": "prototxt/resnet20/resnet20_solver.prototxt",
        "ssl": "prototxt/resnet20/resnet20_ssl_solver.prototxt",
        "finetune": "prototxt/resnet20/resnet20_finetune_solver.prototxt",
        "net": "prototxt/resnet20/resnet20_train_test.prototxt",
        "batch": RESNET_BATCH,
        "BASELINE": {"max_iter": 800, "lr_policy": "multistep", "stepvalue": [600],
                     "gamma": 0.1, "test_interval": 800},
        "SSL": {"base_lr": 0.01, "lr_policy": "fixed", "max_iter": 600, "test_interval": 600},
        "FINETUNE": {"base_lr": 0.01, "lr_policy": "fixed", "max_iter": 300,
                     "test_interval": 300},
    },
}
SEEDS = (1, 2, 3)
RAND_SKIP = 50000          # records; each seed starts the training data elsewhere
TARGET = 0.5               # issue 23: the CIFAR-10 quick net and ResNet-20 at 50%
TOLERANCE_PP = 2.0         # the stated target: within 2 percentage points of the budget
BN_BATCHES = RECALIBRATE_BATCHES   # bn_recalibration_batches of every stage
QUICK = {"baseline": 12, "ssl": 10, "finetune": 4, "test_iter": 2, "batch": 8}


def seeded_net(net_path, dataset, seed, batch=None):
    """The train/test net reading `dataset`, its training Data layer skipping a seed-drawn
    number of records (`rand_skip`) and with training batch `batch` when given."""
    param = datasets.retarget(read_net(net_path), dataset)
    for lp in param.layer:
        if lp.type == "Data" and {r.phase for r in lp.include} == {"TRAIN"}:
            lp.data_param.rand_skip = RAND_SKIP if seed else 0
            if batch:
                lp.data_param.batch_size = int(batch)
    return param


def budget_summary(ssl_stage_dir, name):
    """The controller's entry of the SSL stage's `_summary.json` (None when absent)."""
    path = os.path.join(ssl_stage_dir, f"ssl-{name}_summary.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get("budget")


def run(out_dir="results/budget", root=".", data_root="data", dataset="auto", quick=False,
        jobs_n=2, threads=1, log=print, schedule=1.0, nets=tuple(NETS), target=TARGET, **_):
    """`nets`: which of NETS; `target`: the conv FLOP budget (fraction of dense); `schedule`:
    a factor on every iteration count."""
    t0 = time.time()
    out = common.Output(out_dir)
    ds = datasets.cifar_like(data_root, want=dataset)
    result = {"experiment": "budget", "quick": quick, "dataset": ds.__dict__,
              "machine": common.machine(), "target": target, "seeds": list(SEEDS), "nets": []}
    for key in nets:
        spec = NETS[key]
        path = {k: os.path.join(root, spec[k]) for k in ("baseline", "ssl", "finetune", "net")}
        # every stage ends with its BatchNorm statistics estimated again for its final weights
        # (the SSL stage also at the freeze): the running averages of a short schedule lag the
        # weights (docs/SSL.md), and the dense and the SSL nets are compared on the same footing
        stages = {k: dict(spec[k.upper()], bn_recalibration_batches=BN_BATCHES)
                  for k in ("baseline", "ssl", "finetune")}
        if quick:
            stages = {k: runner.quick_overrides(v, QUICK[k], QUICK["test_iter"])
                      for k, v in stages.items()}
        elif schedule != 1.0:
            stages = {k: dict(v, **runner.scaled_schedule(v, schedule))
                      for k, v in stages.items()}
        batch = QUICK["batch"] if quick else spec["batch"]
        sub = common.Output(out.path(key))
        chains = [{"name": f"{key}-seed{s}", "label": f"{spec['label']} seed {s}",
                   "solver": path["ssl"], "net": seeded_net(path["net"], ds, s, batch),
                   "overrides": dict(stages["ssl"], random_seed=s),
                   "budget": {"flops_target": target},
                   "finetune": path["finetune"],
                   "ft_overrides": dict(stages["finetune"], random_seed=s)}
                  for s in SEEDS]
        base, results = runner.baseline_then_chains(
            sub, ds, path["baseline"], stages["baseline"], chains, jobs_n, threads,
            every=2.0 if quick else 30.0, net=seeded_net(path["net"], ds, 0, batch),
            label=f"dense {spec['label']}")
        runs = []
        for seed, c in zip(SEEDS, results):
            d, k = c["conv_flops"]
            share = k / max(d, 1)
            runs.append({"seed": seed, "conv_flops_pct": 100 * share,
                         "gap_pp": 100 * (share - target), "error": c["error"],
                         "ssl_error": c["ssl_error"],
                         "flops_pct": 100 * c["flops"][1] / max(c["flops"][0], 1),
                         "layers": [{"layer": r["layer"], "filters": r["filters"],
                                     "channels": r["channels"]} for r in c["layers"]
                                    if r["type"] == "Convolution"],
                         "budget": budget_summary(sub.path("runs"), c["name"])})
        result["nets"].append({"net": key, "label": spec["label"],
                               "baseline": base.to_dict(), "runs": runs,
                               "schedule": dict(stages),
                               "batch": batch})
    result["seconds"] = time.time() - t0
    out.write_json("budget.json", result)
    out.write_text("budget.md", format_markdown(result))
    return result


def format_markdown(result):
    t = 100 * result["target"]
    lines = [f"# Budget-driven SSL: {t:g}% of the conv FLOPs, no lambda given", "",
             f"Data: {result['dataset']['description']}.",
             f"Machine: {common.machine_line(result['machine'])}.",
             common.wall_time_line(result), ""]
    body = []
    for n in result["nets"]:
        base = n["baseline"]
        body.append([n["label"], "dense", "100%", "", f"{100 * base['error']:.2f}%", "", "",
                     "", "", ""])
        for r in n["runs"]:
            b = r["budget"] or {}
            cut = [f"{x['layer']} {x['filters'][1]}/{x['filters'][0]}" for x in r["layers"]
                   if x["filters"][1] < x["filters"][0]]
            convs = "; ".join(cut) if cut else "all filters kept (shape fibres removed)"
            body.append([n["label"], f"seed {r['seed']}", f"{r['conv_flops_pct']:.1f}%",
                         f"{r['gap_pp']:+.2f} pp", f"{100 * r['error']:.2f}%",
                         f"{100 * (r['error'] - base['error']):+.2f}",
                         f"{r['flops_pct']:.1f}%", b.get("frozen_at", ""),
                         f"{b.get('snapped_groups', '')} / {b.get('rollbacks', '')}", convs])
    lines.append(common.markdown_table(
        ["net", "run", f"conv FLOPs (target {t:g}%)", "gap", "test error", "vs dense (pp)",
         "all FLOPs", "frozen at", "snapped / rollbacks", "convolutions with filters removed"], body))
    within = [abs(r["gap_pp"]) <= TOLERANCE_PP for n in result["nets"] for r in n["runs"]]
    lines += ["", f"Runs within {TOLERANCE_PP:g} points of the budget: {sum(within)} of "
              f"{len(within)}."]
    for n in result["nets"]:
        sched = "; ".join(f"{k}: " + ", ".join(f"{a} {v}" for a, v in s.items())
                          for k, s in n["schedule"].items())
        lines.append(f"{n['label']} schedule (a reduced one): {sched}"
                     + (f"; training batch {n['batch']}" if n["batch"] else "") + ".")
    return "\n".join(lines) + "\n"
