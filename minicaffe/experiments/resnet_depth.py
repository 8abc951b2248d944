"""`resnet-depth`: error vs depth of ResNet-20 under depth regularisation (SSL paper Fig. 6).

    dense ResNet-20 (prototxt/resnet20/resnet20_solver.prototxt, reduced schedule)
      -> SSL from its weights with one group per convolution (`block_group_lasso` covering the
         whole lowered matrix) on the convolutions between shortcut endpoints (res*_a, res*_b;
         not conv1, not the 1x1 projection shortcuts), at several strengths
         -> compact (a residual branch whose convolutions are all zero is dropped; the
            shortcut carries the signal) -> fine-tune at a lower learning rate
    Figure: test error vs layers kept (conv layers with weights left + the fc layer).
On CIFAR-10 when present, else Fashion-MNIST padded to 32x32 (said so in the table).
"""
import os
import time

from minicaffe.experiments import common, datasets, runner
from minicaffe.prototxt import message_class, read_net
from minicaffe.solver.budget import RECALIBRATE_BATCHES

FILES = {"baseline": "prototxt/resnet20/resnet20_solver.prototxt",
         "ssl": "prototxt/resnet20/resnet20_ssl_solver.prototxt",
         "finetune": "prototxt/resnet20/resnet20_finetune_solver.prototxt",
         "net": "prototxt/resnet20/resnet20_train_test.prototxt"}
# A reduced schedule (the paper's is 64k iterations at batch 128): batch 32, few iterations.
BATCH = 32
# Every stage ends with its BatchNorm statistics estimated again over 20 batches: at this
# schedule the running averages lag the weights (docs/SSL.md, "Budget-driven SSL").
BN = {"bn_recalibration_batches": RECALIBRATE_BATCHES}
BASELINE = {"max_iter": 2000, "lr_policy": "multistep", "stepvalue": [1500], "gamma": 0.1,
            "test_interval": 1000, **BN}
SSL = {"group_lasso_update": "PROXIMAL", "base_lr": 0.01, "lr_policy": "fixed",
       "max_iter": 1500, "test_interval": 500, "breadth_decay": 0, "kernel_shape_decay": 0, **BN}
# block_group_decay, one group per residual convolution. With BatchNorm after each
# convolution its output does not depend on the weights' scale: the data gradient grows as the
# group Lasso shrinks them, and the norm collapses and jumps up again instead of reaching zero
# unless base_lr x lambda is large. At this schedule 0.02-0.1 and 1-4 removed no convolution,
# 10 and 20 none, 40 three residual blocks (docs/RESULTS.md, "ResNet-20 depth").
STRENGTHS = [10.0, 20.0, 40.0]
FINETUNE = {"base_lr": 0.01, "lr_policy": "fixed", "max_iter": 500, "test_interval": 500, **BN}
QUICK = {"baseline": 20, "ssl": 15, "finetune": 10, "test_iter": 2, "batch": 8}
PAPER = "ResNet-20 8.82%, SSL-ResNet-14 8.54%, SSL-ResNet-18 7.40%, ResNet-32 7.51% (CIFAR-10)"


def depth_net(net_path, dataset, batch=None):
    """The ResNet-20 train/test net with one group Lasso term per residual convolution (the
    whole weight: xdimen = C*kh*kw, ydimen = num_output) and no row / column terms; `batch`
    replaces the training batch size."""
    from minicaffe.net import Net  # noqa: PLC0415
    from minicaffe.phase import TRAIN  # noqa: PLC0415

    param = datasets.retarget(read_net(net_path), dataset)
    if batch:
        for lp in param.layer:
            if lp.type == "Data" and {r.phase for r in lp.include} == {"TRAIN"}:
                lp.data_param.batch_size = int(batch)
    shapes = {layer.name: layer.blobs[0].shape for layer in Net(param, TRAIN).layers
              if layer.type == "Convolution" and layer.blobs}
    block = message_class("BlockGroupLassoSpec")
    for lp in param.layer:
        if lp.type != "Convolution" or not lp.param:
            continue
        lp.param[0].breadth_decay_mult = 0
        lp.param[0].kernel_shape_decay_mult = 0
        if residual(lp.name):
            n, c, kh, kw = shapes[lp.name]
            lp.param[0].block_group_lasso = [block(xdimen=c * kh * kw, ydimen=n)]
    return param


def residual(name):
    """Whether a layer is a convolution between shortcut endpoints (res*_a / res*_b)."""
    return name.startswith("res") and (name.endswith("_a") or name.endswith("_b"))


def layers_kept(report_rows):
    """Layers counted as the paper counts them: conv1, the residual convolutions with weights
    left, the fc layer (projection shortcuts not counted)."""
    n = 0
    for r in report_rows:
        if r["type"] == "InnerProduct" or r["layer"] == "conv1":
            n += 1
        elif residual(r["layer"]) and not r["removed"] and r["filters"][1] > 0 \
                and r["flops"][1] > 0:
            n += 1
    return n


def run(out_dir="results/resnet-depth", root=".", data_root="data", dataset="auto",
        quick=False, jobs_n=2, threads=1, log=print, schedule=1.0, **_):
    """`schedule`: a factor on every iteration count (BASELINE, SSL, FINETUNE); the table
    states the iterations run."""
    t0 = time.time()
    out = common.Output(out_dir)
    ds = datasets.cifar_like(data_root, want=dataset)
    path = {k: os.path.join(root, v) for k, v in FILES.items()}
    q = {}
    if quick:
        q = {k: runner.quick_overrides({}, QUICK[k], QUICK["test_iter"])
             for k in ("baseline", "ssl", "finetune")}
    elif schedule != 1.0:
        q = {k: runner.scaled_schedule(v, schedule)
             for k, v in (("baseline", BASELINE), ("ssl", SSL), ("finetune", FINETUNE))}
    batch = QUICK["batch"] if quick else BATCH
    net = depth_net(path["net"], ds, batch)
    chains = [{"name": f"depth{k + 1}", "label": f"block_group_decay {lam:g}",
               "solver": path["ssl"], "net": net,
               "overrides": dict(SSL, block_group_decay=lam, **q.get("ssl", {})),
               "finetune": path["finetune"],
               "ft_overrides": dict(FINETUNE, **q.get("finetune", {})), "lambda": lam}
              for k, lam in enumerate(STRENGTHS)]
    base, results = runner.baseline_then_chains(
        out, ds, path["baseline"], dict(BASELINE, **q.get("baseline", {})), chains, jobs_n,
        threads, every=2.0 if quick else 30.0, net=net, label="dense ResNet-20")
    points = []
    for c, spec in zip(results, chains):
        c.pop("train_param", None)
        depth = layers_kept(c["report"]["rows"])
        points.append({"lambda": spec["lambda"], "layers": depth, "error": c["error"],
                       "ssl_error": c["ssl_error"],
                       "removed": [r["layer"] for r in c["report"]["rows"]
                                   if residual(r["layer"]) and (r["removed"]
                                                                or r["flops"][1] == 0)],
                       "flops_pct": 100 * c["flops"][1] / c["flops"][0]})
    result = {"experiment": "resnet-depth", "quick": quick, "dataset": ds.__dict__,
              "machine": common.machine(), "baseline": dict(base.to_dict(), layers=20),
              "points": points, "chains": results, "schedule": _schedule(q, batch),
              "seconds": time.time() - t0}
    try:
        from minicaffe.experiments import figures  # noqa: PLC0415

        result["figures"] = [figures.error_vs_depth(
            [(p["layers"], 100 * p["error"], f"λ {p['lambda']:g}") for p in points],
            [("ResNet-20 (baseline)", 20, 100 * base.error)], out.path("resnet_depth.png"),
            title=f"ResNet-20 on {ds.name}: error vs depth (Fig. 6)")]
    except ImportError as exc:
        log(f"resnet-depth: no figures ({exc})")
    out.write_json("resnet-depth.json", result)
    out.write_text("resnet-depth.md", format_markdown(result))
    return result


def _schedule(q, batch):
    def show(d):
        return ", ".join(f"{k} {v}" for k, v in d.items())
    return (f"baseline: resnet20_solver.prototxt with {show(dict(BASELINE, **q.get('baseline', {})))}; "
            f"SSL: resnet20_ssl_solver.prototxt with {show(dict(SSL, **q.get('ssl', {})))} and "
            "block_group_decay per row, one group per residual convolution; fine-tuning: "
            f"resnet20_finetune_solver.prototxt with {show(dict(FINETUNE, **q.get('finetune', {})))}; "
            f"training batch {batch}. A reduced schedule: the paper "
            "trains 64k iterations at batch 128")


def format_markdown(result):
    base = result["baseline"]
    lines = ["# ResNet-20: depth regularisation (SSL paper Fig. 6)", "",
             f"Data: {result['dataset']['description']}.", f"Schedule: {result['schedule']}.",
             f"Machine: {common.machine_line(result['machine'])}.",
             common.wall_time_line(result), ""]
    body = [["ResNet-20 (baseline)", "–", 20, f"{100 * base['error']:.2f}%", "–", "100%", ""]]
    for p in sorted(result["points"], key=lambda p: -p["layers"]):
        body.append([f"SSL-ResNet-{p['layers']}", f"{p['lambda']:g}", p["layers"],
                     f"{100 * p['error']:.2f}%", f"{100 * p['ssl_error']:.2f}%",
                     f"{p['flops_pct']:.1f}%", ", ".join(p["removed"]) or "none"])
    lines.append(common.markdown_table(
        ["net", "block_group_decay", "layers", "error", "error before fine-tune",
         "FLOPs left", "residual convolutions removed"], body))
    lines += ["", f"The paper: {PAPER}. Layers: conv1, the residual convolutions with weights "
              "left and the fc layer (projection shortcuts not counted, as in the paper). "
              "Figure: `resnet_depth.png`."]
    return "\n".join(lines) + "\n"
