"""The SSL paper's pipeline as library calls: train a stage, compact, fine-tune, evaluate, time.

    param = solver_param("prototxt/lenet/lenet_ssl_solver.prototxt", {"breadth_decay": 0.04},
                         dataset=ds)                     # the net embedded, data retargeted
    ssl = train_stage("ssl", param, out, weights=base.weights, progress=progress)
    small = compact_stage(ssl, deploy="prototxt/lenet/lenet_deploy.prototxt")
    ft = train_stage("finetune", finetune_param(ft_param, small), out,
                     weights=small.weights_path)     # the compacted net, zero groups frozen
    timing = time_compaction(small.report, dense_deploy, ft_deploy, batches=(1, 64))

A stage is one `Solver.solve()` with `snapshot_prefix` inside the output folder: it leaves
`<stage>_iter_<N>.caffemodel`, `<stage>_log.jsonl` and `<stage>_summary.json` there, and
returns a StageResult (final weights, test outputs, structure left, wall time). Solver fields
are overridden by name (`overrides`): any SolverParameter field, so a solver that steers its own
lambdas (a `flops_target`) is one more override, not a new pipeline.
"""
import copy
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from minicaffe import groups
from minicaffe.errors import SolverError
from minicaffe.experiments import datasets
from minicaffe.net import Net
from minicaffe.phase import TEST
from minicaffe.prototxt import read_net, read_solver, resolve_net_path
from minicaffe.solver import get_solver
from minicaffe.solver import report as sparsity_report


# -- solver parameters ------------------------------------------------------------------------
def parse_value(param, name, text):
    """`text` (from a command line) converted to the type of SolverParameter field `name`.

    Raises SolverError naming the field for an unknown field or a value of the wrong type."""
    spec = type(param)._spec.fields.get(name)
    if spec is None:
        import difflib  # noqa: PLC0415

        close = difflib.get_close_matches(name, list(type(param)._spec.fields), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise SolverError(f"--set {name}: SolverParameter has no field '{name}'{hint}")
    if not isinstance(text, str):
        return text
    try:
        if spec.kind in ("float", "double"):
            return float(text)
        if spec.kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if spec.enum is None and spec.kind.startswith(("int", "uint")):
            return int(float(text)) if float(text).is_integer() else int(text)
    except ValueError:
        raise SolverError(f"--set {name}={text}: expected a {spec.kind}") from None
    return text.strip('"')


def apply_overrides(param, overrides):
    """Set SolverParameter fields from {name: value}; values may be strings (converted by the
    field's type). Repeated fields take a list. Returns `param`."""
    for name, value in (overrides or {}).items():
        spec = type(param)._spec.fields.get(name)
        if spec is not None and spec.repeated and not isinstance(value, (list, tuple)):
            value = [v for v in str(value).split(":") if v]
        if isinstance(value, (list, tuple)):
            value = [parse_value(param, name, v) for v in value]
        else:
            value = parse_value(param, name, value)
        try:
            setattr(param, name, value)
        except (TypeError, ValueError) as exc:
            raise SolverError(f"--set {name}={value}: {exc}") from None
    return param


def budget_param(param, flops_target, scope="CONV", reach=0.625):
    """Turn an SSL stage's SolverParameter into a budget run (docs/SSL.md, "Budget-driven
    SSL"): no lambda (the solver file's group decays set to 0; the controller adds its own
    terms), the PROXIMAL update (the file's `group_lasso_update` cleared: the controller counts
    exact zeros, which SUBGRADIENT steps reach only through zero_threshold), `flops_target` of
    the dense multiply-adds (`scope` CONV or ALL), reached by `reach` x max_iter, the structure
    frozen at the end of the stage (the pipeline's own fine-tuning stage follows). Returns
    `param`."""
    for name in ("breadth_decay", "kernel_shape_decay", "block_group_decay",
                 "group_lasso_update"):
        param.clear(name)
    param.flops_target = float(flops_target)
    param.flops_target_scope = scope
    param.budget_schedule.reach_iter = max(1, int(reach * param.max_iter))
    param.budget_schedule.finetune_iter = int(param.max_iter)
    param.budget_schedule.interval = max(1, min(20, param.max_iter // 50))
    return param


def solver_param(path, overrides=None, net=None, dataset=None, freeze=False):
    """The SolverParameter of solver file `path` with the net embedded (`net_param`), so the
    stage does not depend on the working directory: `net` (a NetParameter or a path) replaces
    the file's net, `dataset` (datasets.Dataset) retargets its Data layers, `freeze` marks every
    Convolution / InnerProduct `connectivity_mode: DISCONNECTED_GRPWISE` (fine-tuning with the
    zero rows and columns held at zero)."""
    param = read_solver(path)
    if net is None:
        for name in ("train_net", "net"):
            if param.has(name):
                net = resolve_net_path(param, name, getattr(param, name))
                break
        if net is None and param.has("net_param"):
            net = param.net_param
        if net is None:
            raise SolverError(f"{path}: names no net (net, train_net or net_param)")
    if isinstance(net, (str, os.PathLike)):
        net = read_net(os.fspath(net))
    net = net.copy()
    if dataset is not None:
        net = datasets.retarget(net, dataset)
    if freeze:
        for lp in net.layer:
            if lp.type in ("Convolution", "InnerProduct"):
                lp.connectivity_mode = "DISCONNECTED_GRPWISE"
    for name in ("net", "train_net", "test_net", "train_net_param", "test_net_param"):
        param.clear(name)
    param.net_param = net
    return apply_overrides(param, overrides)


# -- stages -----------------------------------------------------------------------------------
@dataclass
class StageResult:
    """What one training stage left behind."""

    name: str
    weights: str                  # final .caffemodel
    net_param: object             # the train/test NetParameter it trained
    solver: object = None         # the SolverParameter it ran
    test: dict = field(default_factory=dict)   # mean test outputs at the end
    sparsity: list = field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0
    log: str = ""
    summary: str = ""

    @property
    def error(self):
        """1 - accuracy of the final test pass (None when the net has no `accuracy` output)."""
        acc = self.test.get("accuracy")
        return None if acc is None else 1.0 - acc

    def to_dict(self):
        return {"name": self.name, "weights": self.weights, "test": self.test,
                "error": self.error, "iterations": self.iterations,
                "seconds": round(self.seconds, 2), "log": self.log, "summary": self.summary}


def train_stage(name, param, out_dir, weights=None, progress=None, what="", make_solver=None):
    """Train `param` (a SolverParameter with its net embedded) from `weights` (a path, or None
    for the fillers) for its `max_iter`, snapshots and logs under `out_dir/<name>`.

    `progress`: a common.Progress (one status line with ETA every few seconds) or None.
    `make_solver(param)`: builds the solver (default get_solver; the sweep's MPI rank groups
    pass one that trains data parallel over the group, minicaffe/parallel/groups.py).
    Returns a StageResult; the last test pass runs at max_iter even when test_interval does not
    divide it."""
    param = param.copy()
    prefix = os.path.join(os.fspath(out_dir), name)
    param.snapshot_prefix = prefix
    param.snapshot = 0
    param.snapshot_after_train = True
    solver = (make_solver or get_solver)(param)
    if weights:
        solver.net.copy_from(weights)
        for tn in solver.test_nets:
            tn.share_with(solver.net)
        solver.runlog.info["weights"] = [os.fspath(weights)]
    solver.runlog.info["stage"] = name
    if progress is not None:
        solver.progress = progress.start(name, param.max_iter, what)
    t0 = time.perf_counter()
    solver.solve()
    last = solver.last_test
    if last is None or last["iter"] != solver.iter:
        solver.test_all()
        last = solver.last_test
        solver._write_summary(0, t0)
    seconds = time.perf_counter() - t0
    result = StageResult(name=name, weights=f"{prefix}_iter_{solver.iter}.caffemodel",
                         net_param=param.net_param, solver=param,
                         test=last["outputs"][0] if last["outputs"] else {},
                         sparsity=sparsity_report.layer_sparsity(solver.net),
                         iterations=solver.iter, seconds=seconds,
                         log=solver.runlog.path or "", summary=solver.runlog.summary_path() or "")
    if progress is not None:
        err = result.error
        progress.end(name, "" if err is None else f"test error {100 * err:.2f}%")
    return result


def test_net(net_param, weights):
    """The TEST-phase Net of a train/test NetParameter with `weights` loaded."""
    return Net(net_param, TEST, weights=weights)


def evaluate(net_param, weights, iterations):
    """Mean test outputs of `iterations` TEST batches (as Solver.test does)."""
    net = test_net(net_param, weights)
    sums = {}
    for _ in range(iterations):
        outs = net.forward()
        for k in net.outputs:
            sums[k] = sums.get(k, 0.0) + float(np.asarray(outs[k]).mean())
    return {k: v / max(iterations, 1) for k, v in sums.items()}


# -- compaction -------------------------------------------------------------------------------
@dataclass
class Compacted:
    """A compacted net: its deploy NetParameter and weights, the train/test NetParameter of the
    same structure (data layers from the original), and compaction's report."""

    deploy_param: object
    deploy_weights: list
    train_param: object           # None when the compacted net cannot be trained as such
    weights_path: str
    report: object
    conv_flops: tuple             # (dense, kept) multiply-adds x 2 of the Convolution layers
    flops: tuple                  # (dense, kept) of the Convolution + InnerProduct layers
    original: tuple = None        # (train/test NetParameter, weights path) before compaction
    why_full_size: str = ""       # why fine-tuning runs on the original net, if it does

    @property
    def finetune_net(self):
        """The train/test net fine-tuning trains: the compacted one, or (when its layers do not
        map onto the training net's) the original with the zero groups frozen."""
        return self.train_param if self.train_param is not None else self.original[0]

    @property
    def finetune_weights(self):
        return self.weights_path if self.train_param is not None else self.original[1]


def _layers_with_rules(train_param):
    """{(name, phase-set)}: rules of each layer of the original train/test net."""
    out = {}
    for lp in train_param.layer:
        phases = frozenset(r.phase for r in lp.include if r.has("phase"))
        out.setdefault(lp.name, []).append((phases, lp))
    return out


def compacted_train_param(train_param, compact_param):
    """A train/test NetParameter of the compacted structure: the original's TRAIN-only layers
    (its training data layer), then the compacted TEST net's layers with the include / exclude
    rules of the same-named original layers. Raises SolverError when a compacted layer has no
    original (the structure changed beyond renumbering: fine-tune the original with masks)."""
    originals = _layers_with_rules(train_param)
    out = copy.deepcopy(train_param)
    layers = []
    for lp in train_param.layer:
        phases = {r.phase for r in lp.include if r.has("phase")}
        if phases == {"TRAIN"}:
            layers.append(copy.deepcopy(lp))
    for lp in compact_param.layer:
        candidates = originals.get(lp.name)
        if not candidates:
            raise SolverError(f"compacted layer '{lp.name}' ({lp.type}) has no layer of that name "
                              "in the training net")
        test_side = [c for c in candidates if c[0] != frozenset({"TRAIN"})]
        orig = (test_side or candidates)[0][1]
        new = copy.deepcopy(lp)
        new.include = copy.deepcopy(orig.include)
        new.exclude = copy.deepcopy(orig.exclude)
        if orig.param and not new.param:
            new.param = copy.deepcopy(orig.param)
        layers.append(new)
    out.layer = layers
    return out


def conv_flops(report_rows, kinds=("Convolution",)):
    dense = sum(r["flops"][0] for r in report_rows if r["type"] in kinds)
    kept = sum(r["flops"][1] for r in report_rows if r["type"] in kinds)
    return dense, kept


def compact_stage(stage, out_dir, name="compact"):
    """Compact the TEST net of `stage` (a StageResult): writes `<name>.prototxt` (deploy) and
    `<name>.caffemodel` into `out_dir` and returns a Compacted."""
    from minicaffe import compact  # noqa: PLC0415  (compact sits below; imported on use)
    from minicaffe import weights as weights_io  # noqa: PLC0415
    from minicaffe.prototxt import to_text  # noqa: PLC0415

    net = test_net(stage.net_param, stage.weights)
    result = compact.compact_net(net, deploy=False)
    small_param, small_weights = result
    deploy = compact.compact_net(net, deploy=True)
    why = ""
    try:
        train = compacted_train_param(stage.net_param, small_param)
    except SolverError as exc:
        train, why = None, str(exc)
    path = os.path.join(os.fspath(out_dir), f"{name}.caffemodel")
    weights_io.write_caffemodel(path, list(small_weights), getattr(small_param, "name", ""))
    with open(os.path.join(os.fspath(out_dir), f"{name}.prototxt"), "w") as f:
        f.write(to_text(deploy.net_param))
    rows = result.report.rows
    return Compacted(deploy.net_param, list(deploy.weights), train, path, result.report,
                     conv_flops(rows), conv_flops(rows, ("Convolution", "InnerProduct")),
                     (stage.net_param, stage.weights), why)


def finetune_param(param, compacted):
    """`param` (a fine-tuning SolverParameter) set to train the compacted structure with its
    zero rows and columns frozen (`DISCONNECTED_GRPWISE` on every Convolution / InnerProduct:
    shape fibres compaction left inside a kept channel stay zero)."""
    param = param.copy()
    net = compacted.finetune_net.copy()
    for lp in net.layer:
        if lp.type in ("Convolution", "InnerProduct"):
            lp.connectivity_mode = "DISCONNECTED_GRPWISE"
    param.net_param = net
    return param


# -- timing -----------------------------------------------------------------------------------
def deploy_net(path, weights, batch):
    """Net of a deploy prototxt at TEST with `weights`, its Input blobs' batch set to `batch`,
    every Convolution in dense mode (LOWERED_GEMM): the dense net a compacted one is timed
    against."""
    param = read_net(os.fspath(path))
    for lp in param.layer:
        if lp.type == "Input":
            for shape in lp.input_param.shape:
                shape.dim[0] = batch
        if lp.type == "Convolution":
            lp.convolution_param.conv_mode = "LOWERED_GEMM"
    return Net(param, TEST, weights=weights)


INFERENCE_ONLY = ("Accuracy", "SoftmaxWithLoss", "Silence")


def compacted_deploy(train_param, weights, batch, tmp_dir):
    """The inference net of a (fine-tuned) compacted train/test net: compact_net of its TEST
    net in deploy form, without the label input, accuracy and loss, at batch `batch`."""
    from minicaffe import compact  # noqa: PLC0415
    from minicaffe import weights as weights_io  # noqa: PLC0415

    net = Net(train_param, TEST, weights=weights)
    deploy, arrays = compact.compact_net(net, deploy=True)
    param = deploy.copy()
    keep = []
    for lp in param.layer:
        if lp.type in INFERENCE_ONLY:
            continue
        if lp.type == "Input":
            pairs = [(t, sh) for t, sh in zip(lp.top, lp.input_param.shape) if t != "label"]
            lp.top = [t for t, _ in pairs]
            lp.input_param.shape = [sh for _, sh in pairs]
            for sh in lp.input_param.shape:
                sh.dim[0] = batch
        keep.append(lp)
    param.layer = keep
    path = os.path.join(os.fspath(tmp_dir), f".deploy-b{batch}-{os.getpid()}.caffemodel")
    weights_io.write_caffemodel(path, list(arrays), param.name)
    try:
        return Net(param, TEST, weights=path)
    finally:
        os.remove(path)


def time_compaction(dense_deploy, dense_weights, chain, batches, rounds):
    """{batch: report dict}: compaction's report of `chain` (an ssl_chain result) with the
    forward times of the dense deploy net (`dense_deploy` with `dense_weights`) and of the
    compacted fine-tuned net, measured interleaved in this process (compact.measure)."""
    from minicaffe import compact  # noqa: PLC0415
    from minicaffe.compact.report import Report  # noqa: PLC0415

    out = {}
    tmp = os.path.dirname(os.path.abspath(chain["weights"]))
    for batch in batches:
        before = deploy_net(dense_deploy, dense_weights, batch)
        after = compacted_deploy(chain["train_param"], chain["weights"], batch, tmp)
        rep = Report(**chain["report"])
        compact.measure(rep, before, after, rounds=rounds)
        out[batch] = rep.to_dict()
    return out


def full_lenet_result(path, dataset):
    """The lenet experiment's result dict from `path` (its lenet.json) when that was a full
    (not --quick) run on `dataset` and its baseline weights are still there; else None. The
    trade-off sweep and l1-vs-ssl reuse its dense baseline instead of training another."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        res = json.load(f)
    if res.get("dataset", {}).get("name") != dataset.name or res.get("quick"):
        return None
    return res if os.path.exists(res["baseline"]["weights"]) else None


# -- structure --------------------------------------------------------------------------------
def conv1_filters(weights_path, layer="conv1"):
    """conv1's weights (N, C, kh, kw) from a weights file (for the Fig. 3 picture)."""
    from minicaffe import weights as weights_io  # noqa: PLC0415

    for name, _, arrays in weights_io.load(weights_path):
        if name == layer:
            return np.asarray(arrays[0])
    raise KeyError(f"{weights_path}: no layer '{layer}'")


def structure_of(net_param, weights_path, layers):
    """Per layer (of `layers`): filters kept, channels kept, filter size (kept shape fibres of
    a kept filter), from the weights as they are (before compaction)."""
    from minicaffe import weights as weights_io  # noqa: PLC0415

    found = {name: np.asarray(arrays[0]) for name, _, arrays in weights_io.load(weights_path)
             if arrays}
    out = {}
    for name in layers:
        w = found[name]
        zr = groups.zero_groups(w, "row")[0]
        zc = groups.zero_groups(w, "column")[0]
        zch = groups.zero_groups(w, "channel")[0] if w.ndim == 4 else zc
        out[name] = {"filters": [int(zr.size), int((~zr).sum())],
                     "channels": [int(zch.size), int((~zch).sum())],
                     "filter_size": [int(zc.size), int((~zc).sum())]}
    return out


# -- chains (one worker process each) ---------------------------------------------------------
def ssl_chain(spec):
    """SSL stage -> compaction -> optional fine-tune of the compacted net: the paper's
    pipeline after the baseline, as one job (see jobs.run_jobs).

    spec keys: "name", "solver" (path), "overrides" (dict), "weights" (start), "out" (folder),
    optional "net" (a NetParameter replacing the solver's), "dataset" (datasets.Dataset),
    "finetune" (solver path) with "ft_overrides", "budget" (budget_param's keyword arguments:
    the SSL stage steers to that budget instead of using the file's lambdas), "make_solver" (see
    train_stage),
    "every" (seconds between progress lines), "label" (for the progress lines).
    Returns a dict: stages, ssl_error, error (after fine-tuning when there is one), weights,
    ssl_weights, compact_weights, report (compaction's, as a dict), conv_flops and flops
    ([dense, kept]), layers (per Convolution / InnerProduct), train_param (the fine-tuned
    net's NetParameter, or None).
    """
    from minicaffe.experiments import common  # noqa: PLC0415

    name, out = spec["name"], spec["out"]
    os.makedirs(out, exist_ok=True)
    restore = common.log_to_file(os.path.join(out, f"{name}.log"))
    t0 = time.perf_counter()
    try:
        ds = spec.get("dataset")
        param = solver_param(spec["solver"], spec.get("overrides"), net=spec.get("net"),
                             dataset=ds)
        if spec.get("budget"):
            budget_param(param, **spec["budget"])
        ft = None
        if spec.get("finetune"):
            ft = solver_param(spec["finetune"], spec.get("ft_overrides"), dataset=ds)
        plan = [(f"ssl-{name}", param.max_iter)]
        if ft is not None:
            plan.append((f"finetune-{name}", ft.max_iter * spec.get("ft_cost", 0.6)))
        progress = common.Progress(plan, every=spec.get("every", 30.0))
        label = spec.get("label", name)
        make = spec.get("make_solver")
        ssl = train_stage(f"ssl-{name}", param, out, spec.get("weights"), progress,
                          what=f"SSL {label}, {param.max_iter} iterations", make_solver=make)
        small = compact_stage(ssl, out, name=f"compact-{name}")
        d, k = small.conv_flops
        fd, fk = small.flops
        progress.note(f"{name}: compacted; conv FLOPs {100 * k / max(d, 1):.1f}%, all "
                      f"{100 * fk / max(fd, 1):.1f}% of dense")
        result = {"name": name, "stages": [ssl.to_dict()], "ssl_error": ssl.error,
                  "error": ssl.error, "weights": small.weights_path, "ssl_weights": ssl.weights,
                  "compact_weights": small.weights_path, "report": small.report.to_dict(),
                  "conv_flops": list(small.conv_flops), "flops": list(small.flops),
                  "layers": [{"layer": r["layer"], "type": r["type"], "filters": r["filters"],
                              "channels": r["channels"], "filter_size": r["filter_size"],
                              "flops": r["flops"], "row_sparsity": r["row_sparsity"],
                              "column_sparsity": r["column_sparsity"]}
                             for r in small.report.rows],
                  "train_param": small.train_param}
        if ft is not None:
            if small.why_full_size:
                progress.note(f"{name}: fine-tuning the original net with frozen zero groups "
                              f"({small.why_full_size})")
            fts = train_stage(f"finetune-{name}", finetune_param(ft, small), out,
                              small.finetune_weights, progress,
                              what=f"fine-tune the compacted {label}, {ft.max_iter} iterations",
                              make_solver=make)
            result["stages"].append(fts.to_dict())
            result.update(error=fts.error, weights=fts.weights, train_param=fts.net_param)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        return result
    finally:
        restore()


def dense_chain(spec):
    """Dense stages one after another from `weights` (each starts from the previous one's
    result): spec keys "name", "stages" ([(solver path, overrides[, net])]), "weights", "out",
    optional "dataset", "every". Returns {"name", "stages", "error", "weights", "iterations"}."""
    from minicaffe.experiments import common  # noqa: PLC0415

    name, out = spec["name"], spec["out"]
    os.makedirs(out, exist_ok=True)
    restore = common.log_to_file(os.path.join(out, f"{name}.log"))
    try:
        params = [solver_param(st[0], st[1], net=st[2] if len(st) > 2 else None,
                               dataset=spec.get("dataset")) for st in spec["stages"]]
        names = [name if len(params) == 1 else f"{name}-{k + 1}" for k in range(len(params))]
        progress = common.Progress([(n, p.max_iter) for n, p in zip(names, params)],
                                   every=spec.get("every", 30.0))
        weights, stages = spec.get("weights"), []
        for n, p in zip(names, params):
            st = train_stage(n, p, out, weights, progress,
                             what=spec.get("label", "dense") + f", {p.max_iter} iterations")
            stages.append(st.to_dict())
            weights = st.weights
        return {"name": name, "stages": stages, "error": stages[-1]["error"],
                "weights": weights, "iterations": sum(s["iterations"] for s in stages)}
    finally:
        restore()
