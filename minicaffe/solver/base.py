"""Solver: Caffe's training loop with the SSL fork's regularization (pycaffe's caffe.Solver).

One iteration, in Caffe's order:
  clear param diffs -> `iter_size` x forward/backward (loss averaged) -> clip_gradients ->
  diff *= 1/iter_size -> weight decay (L2 or L1, per param `regularization_type`) ->
  group Lasso subgradients (SUBGRADIENT) -> freeze masked weights' diffs -> update rule ->
  w -= update -> group soft thresholds (PROXIMAL) -> |w| < zero_threshold set to 0 ->
  connectivity masks re-applied.
Testing happens before the iteration whose number is a multiple of `test_interval`; display
after the forward/backward; snapshots after the update when `iter % snapshot == 0`.
Data parallelism hooks in through `replicas` (solver/replicas.py): gradients and the loss are
averaged after the forward/backward passes, and only the root replica tests, logs and writes.
"""
import collections
import logging
import math
import os
import random
import time

import numpy as np

from minicaffe import backend, groups
from minicaffe.errors import DivergenceError, SolverError
from minicaffe.registry import Registry
from minicaffe.solver import budget
from minicaffe.solver import report as sparsity_report
from minicaffe.solver.lr_policy import learning_rate
from minicaffe.solver.regularizers import REGULARIZERS
from minicaffe.solver.replicas import Replicas
from minicaffe.solver.runlog import RunLog

log = logging.getLogger("minicaffe.solver")

SOLVERS = Registry("solver type")

# the legacy `solver_type` enum -> `type` string
_LEGACY_TYPES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                 "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}

# zero_threshold when a group term is configured and the solver file does not set one (the fork)
SSL_ZERO_THRESHOLD = 1e-4


def register_solver(type_name):
    """Class decorator: make a Solver subclass the one for `type: "<type_name>"`."""
    return SOLVERS.register(type_name)


def solver_type(param):
    """The update rule's type string: `type`, or the legacy `solver_type` enum when only it is set."""
    if not param.has("type") and param.has("solver_type"):
        return _LEGACY_TYPES[param.solver_type]
    return param.type


def read_param(param_or_path):
    """(SolverParameter, path or None) from a path, a parsed SolverParameter or a caffe_pb2
    SolverParameter (converted and upgraded as the reader does)."""
    if isinstance(param_or_path, (str, os.PathLike)):
        from minicaffe.prototxt import read_solver

        return read_solver(os.fspath(param_or_path)), os.fspath(param_or_path)
    from minicaffe import prototxt

    if prototxt.is_protobuf(param_or_path, "SolverParameter"):
        return prototxt.upgrade_solver(prototxt.from_protobuf(param_or_path)), None
    return param_or_path, None


class _Term:
    """One group-Lasso term on one blob: regularizer, strength lambda, name for messages."""

    __slots__ = ("reg", "strength", "name")

    def __init__(self, reg, strength, name):
        self.reg, self.strength, self.name = reg, strength, name


class Solver:
    """Base class of the update rules. Build one with `get_solver(path)` or `SGDSolver(path)`.

    Attributes (pycaffe): `net` (TRAIN), `test_nets` (TEST, sharing the train net's weights),
    `iter`, `param` (the SolverParameter). Methods: `step(n)`, `solve(resume_file=None)`,
    `test_all()`, `snapshot()`, `restore(state_file)`.
    `replicas`: a solver.replicas.Replicas when this process is one of several training the
    net data-parallel (minicaffe.parallel builds it); a replica other than the root builds no
    test nets and writes no snapshots or logs.
    Raises SolverError for a configuration that cannot run.
    """

    history_count = 1

    def __init__(self, param_or_path, train_net=None, test_nets=None, replicas=None):
        self.param, self.path = read_param(param_or_path)
        self.replicas = replicas if replicas is not None else Replicas()
        p = self.param
        wanted = solver_type(p)
        if type(self) is not Solver and getattr(self, "registered_name", wanted) != wanted \
                and (p.has("type") or p.has("solver_type")):
            log.warning("solver file says type \"%s\"; running %s as asked", wanted,
                        type(self).__name__)
        self._check_common()
        self.check_param()
        if p.random_seed >= 0:
            np.random.seed(p.random_seed % 2**32)
            random.seed(p.random_seed)
        if train_net is None:
            train_net, built_tests = self._build_nets()
            test_nets = built_tests if test_nets is None else test_nets
        self.net = train_net
        self.test_nets = list(test_nets or [])
        for tn in self.test_nets:
            tn.share_with(self.net)
        self.iter = 0
        self.current_step = 0
        self._params = list(self.net.learnable_params)
        # shared blobs (owner False) move with their owner: one entry per learnable blob
        self._infos = [info for info in self.net.param_infos if getattr(info, "owner", True)]
        if len(self._infos) != len(self._params):
            raise SolverError(f"net reports {len(self._params)} learnable blobs but "
                              f"{len(self._infos)} owning param infos")
        self.history = [[backend.xp_of(b.data).zeros_like(b.data) for _ in range(self.history_count)]
                        for b in self._params]
        self._layer_params = self._layer_param_map()
        self._decay, self._terms = self._build_regularization()
        if p.bn_recalibration_batches < 0:
            raise budget.field_error(self, "bn_recalibration_batches must be >= 0 (got "
                                     f"{p.bn_recalibration_batches})", "bn_recalibration_batches")
        self.budget = None            # budget.BudgetController when a budget is asked for
        if budget.wanted(p):
            self.budget = budget.BudgetController(self)
        self._log_group_terms()
        self._masks = None            # built on the first step (from the loaded weights)
        self._losses = collections.deque(maxlen=max(1, p.average_loss))
        self.smoothed_loss = 0.0
        self._requested = None        # "stop" | "snapshot", set by signal handlers
        self._last_display = None     # (time, iter) of the previous display line
        self.stopped_early = False
        self.last_snapshot = None
        # The newest snapshot whose weights were finite and whose loss (the next forward at
        # exactly those weights) was finite too; the one a divergence message names.
        self.last_good_snapshot = None
        self._unconfirmed = None      # (iter, path) of a snapshot whose loss is not seen yet
        self.progress = None          # callable(iter, loss) for a progress bar
        self._callbacks = []          # (on_start, on_gradients_ready) pairs, pycaffe's add_callback
        self._curve_path = self._curve_file()
        prefix = self.snapshot_prefix()
        if prefix and self.replicas.is_root:
            from minicaffe.solver import state

            state.remove_stale_temp_files(prefix)
        # `<prefix>_log.jsonl` + `_summary.json`, written by the root replica only
        self.runlog = RunLog(self._curve_path if self.replicas.is_root else None)
        self.last_test = None         # {"iter", "outputs": [per test net]} of the latest test pass
        self.replicas.attach(self)

    # -- configuration ---------------------------------------------------------------------
    def check_param(self):
        """Rule-specific checks (overridden by AdaGrad, RMSProp)."""

    def _check_common(self):
        p = self.param
        if not p.lr_policy:
            raise SolverError(self._where() + "lr_policy is not set (fixed, step, exp, inv, "
                              "multistep, poly or sigmoid)")
        if p.iter_size < 1:
            raise SolverError(self._where() + f"iter_size must be >= 1 (got {p.iter_size})")
        if p.regularization_type not in ("L1", "L2"):
            raise SolverError(self._where() + f"regularization_type \"{p.regularization_type}\" "
                              "is unknown (expected \"L1\" or \"L2\")")

    def _where(self):
        return f"{self.path}: " if self.path else "solver: "

    def _build_nets(self):
        """(train net, test nets) as Caffe's InitTrainNet / InitTestNets build them."""
        from minicaffe.net import Net
        from minicaffe.prototxt.solver_nets import solver_nets

        nets = solver_nets(self.param)

        def build(net_param):
            st = net_param.state
            return Net(net_param, st.phase, level=st.level, stages=tuple(st.stage))

        # Only the root replica tests: the others need no test nets (nor their data).
        return build(nets.train), [build(t) for t in nets.tests] if self.replicas.is_root else []

    def _layer_param_map(self):
        names = list(getattr(self.net, "_layer_names", []))
        return {n: layer.layer_param for n, layer in zip(names, self.net.layers)}

    def _blob_name(self, i):
        info = self._infos[i]
        return f"layer '{info.layer_name}' param {info.index} {tuple(self._params[i].shape)}"

    def _build_regularization(self):
        """Per blob: (decay regularizer or None, local decay) and the list of group terms."""
        p = self.param
        decay, terms = [], []
        for i, info in enumerate(self._infos):
            spec = info.spec
            rtype = getattr(spec, "regularization_type", "") or p.regularization_type
            if rtype not in REGULARIZERS or rtype not in ("L1", "L2"):
                raise SolverError(f"{self._blob_name(i)}: regularization_type \"{rtype}\" is "
                                  "unknown (expected \"L1\" or \"L2\")")
            local = p.weight_decay * _spec(spec, "decay_mult", 1.0)
            decay.append((REGULARIZERS.get(rtype)(), local) if local else (None, 0.0))
            blob_terms = []
            wanted = [("row", p.breadth_decay * _spec(spec, "breadth_decay_mult", 0.0), 0, 0),
                      ("column", p.kernel_shape_decay * _spec(spec, "kernel_shape_decay_mult", 0.0),
                       0, 0)]
            for b in _spec(spec, "block_group_lasso", []):
                wanted.append(("block", p.block_group_decay * b.block_decay_mult,
                               int(b.xdimen), int(b.ydimen)))
            for kind, strength, xd, yd in wanted:
                if not strength:
                    continue
                reg = REGULARIZERS.get("group_lasso")(kind=kind, group=info.group, xdimen=xd,
                                                      ydimen=yd)
                try:
                    reg.validate(self._params[i].shape)
                except SolverError as exc:
                    raise SolverError(f"{self._blob_name(i)}: {exc}") from None
                label = kind if kind != "block" else f"block {yd}x{xd}"
                blob_terms.append(_Term(reg, float(strength), label))
            terms.append(blob_terms)
        return decay, terms

    def _log_group_terms(self):
        """One line per blob with group-Lasso terms: which groupings, at what strength."""
        for i, blob_terms in enumerate(self._terms):
            if blob_terms:
                log.info("Group Lasso (%s) on %s: %s",
                         "PROXIMAL" if self.proximal else "SUBGRADIENT",
                         self._blob_name(i),
                         ", ".join(f"{t.name} {t.strength:g}" for t in blob_terms))

    @property
    def has_group_terms(self):
        return any(self._terms)

    @property
    def zero_threshold(self):
        """|w| below this is set to 0 after each update (1e-4 when any group term is
        configured and the solver file does not say otherwise, else 0)."""
        if self.param.has("zero_threshold"):
            return float(self.param.zero_threshold)
        return SSL_ZERO_THRESHOLD if self.has_group_terms else 0.0

    @property
    def bn_recalibration_batches(self):
        """Forward passes that estimate the BatchNorm statistics again at the end of training
        (`bn_recalibration_batches`, a minicaffe extension; a budget run that does not set it
        uses budget.RECALIBRATE_BATCHES, here and at its freeze; otherwise 0, Caffe's way)."""
        if self.param.has("bn_recalibration_batches"):
            return int(self.param.bn_recalibration_batches)
        return budget.RECALIBRATE_BATCHES if self.budget is not None else 0

    def recalibrate_batch_norm(self, batches):
        """Reset the running statistics of every BatchNorm layer of the training net that
        gathers them and run `batches` forward passes of it, so the statistics the TEST phase
        reads (shared with the test nets) are those of the current weights, not an average over
        the last ~1/(1 - moving_average_fraction) iterations of weights that were still moving.
        Returns the number of layers re-estimated."""
        bns = [layer for layer in self.net.layers
               if layer.type == "BatchNorm" and not layer.use_global_stats]
        if not bns or batches <= 0:
            return 0
        for layer in bns:
            for blob in layer.blobs[:3]:
                blob.data[...] = 0
        for _ in range(batches):
            self.net.forward()
        log.info("BatchNorm statistics of %d layer(s) estimated again over %d batches at "
                 "iteration %d", len(bns), batches, self.iter)
        return len(bns)

    @property
    def proximal(self):
        """Group terms as proximal steps: `group_lasso_update: PROXIMAL`, or a budget run whose
        solver file does not set group_lasso_update (exact zeros are what the budget counts)."""
        return budget.group_lasso_update(self.param) == "PROXIMAL"

    def set_budget(self, flops_target=None, latency_target=None, scope=None):
        """Ask for a budget in code (what `--flops-target` / `--latency-target` do): sets the
        solver fields and rebuilds the group terms and the controller. Raises SolverError
        naming the field for a bad value."""
        p = self.param
        if flops_target is not None:
            p.flops_target = float(flops_target)
            p.clear("latency_target")
        if latency_target is not None:
            p.latency_target = float(latency_target)
            p.clear("flops_target")
        if scope is not None:
            p.flops_target_scope = scope
        self._decay, self._terms = self._build_regularization()
        self.budget = budget.BudgetController(self) if budget.wanted(p) else None
        self._masks = None
        self._log_group_terms()
        return self.budget

    # -- connectivity masks ------------------------------------------------------------------
    def refresh_masks(self):
        """Rebuild the DISCONNECTED_* masks from the current weights (blob 0 of each layer)."""
        masks = {}
        for i, info in enumerate(self._infos):
            lp = self._layer_params.get(info.layer_name)
            mode = getattr(lp, "connectivity_mode", "CONNECTED") if lp is not None else "CONNECTED"
            w = self._params[i].data
            if mode == "CONNECTED" or info.index != 0 or w.ndim < 2:
                continue
            if mode == "DISCONNECTED_ELTWISE":
                masks[i] = w != 0
            elif mode == "DISCONNECTED_GRPWISE":
                masks[i] = (groups.live_mask(w, "row", info.group)
                            & groups.live_mask(w, "column", info.group))
        self._masks = masks

    # -- one iteration -----------------------------------------------------------------------
    def learning_rate(self):
        rate, self.current_step = learning_rate(self.param, self.iter, self.current_step)
        return rate

    def clip_gradients(self):
        clip = self.param.clip_gradients
        if clip < 0:
            return
        sumsq = sum(float((b.diff.astype(np.float64) ** 2).sum()) for b in self._params)
        norm = math.sqrt(sumsq)
        if norm > clip:
            log.info("Gradient clipping: scaling down gradients (L2 norm %g > %g) by scale "
                     "factor %g", norm, clip, clip / norm)
            for b in self._params:
                b.diff[...] *= clip / norm

    def regularize(self, i):
        """Weight decay then (SUBGRADIENT) the group Lasso terms, added to blob i's diff."""
        blob = self._params[i]
        reg, local = self._decay[i]
        if reg is not None:
            reg.add_grad(blob.data, blob.diff, local)
        if not self.proximal:
            for term in self._terms[i]:
                term.reg.add_grad(blob.data, blob.diff, term.strength)

    def apply_update(self):
        """Everything after the forward/backward passes of one iteration (see module doc)."""
        rate = self.learning_rate()
        if self.param.display and self.iter % self.param.display == 0:
            log.info("Iteration %d, lr = %g", self.iter, rate)
        self.clip_gradients()
        if self._masks is None:
            self.refresh_masks()
        scale = 1.0 / self.param.iter_size
        local_rates = [rate * _spec(info.spec, "lr_mult", 1.0) for info in self._infos]
        for i, blob in enumerate(self._params):
            if scale != 1.0:
                blob.diff[...] *= scale
            self.regularize(i)
            if i in self._masks:
                blob.diff[...] *= self._masks[i]
            self.compute_update_value(blob.diff, self.history[i], local_rates[i])
        for blob in self._params:
            blob.data[...] -= blob.diff
        if self.proximal:
            for i, blob in enumerate(self._params):
                # fixed order: row, column, then block terms as listed in the param spec
                for term in self._terms[i]:
                    term.reg.prox(blob.data, local_rates[i] * term.strength)
        thr = self.zero_threshold
        held = self.budget.held() if self.budget is not None else ()
        for i, blob in enumerate(self._params):
            if thr > 0 and i not in held:
                blob.data[backend.xp_of(blob.data).abs(blob.data) < thr] = 0
            if i in self._masks:
                blob.data[...] *= self._masks[i]

    def compute_update_value(self, diff, history, local_rate):
        """Turn the regularized gradient `diff` into the step (in place); rule-specific."""
        raise NotImplementedError

    # -- training loop ------------------------------------------------------------------------
    def request(self, action):
        """Ask the loop to `"stop"` (snapshot and stop) or `"snapshot"` at the next iteration
        boundary (what SIGINT / SIGHUP do in the CLI). A pending "stop" is not turned into a
        "snapshot" by a later request (stopping snapshots anyway)."""
        if action not in ("stop", "snapshot"):
            raise ValueError(f"request: action must be 'stop' or 'snapshot', got {action!r}")
        if self._requested != "stop":
            self._requested = action

    def add_callback(self, on_start, on_gradients_ready):
        """pycaffe's solver.add_callback: in each iteration of `step`, call `on_start()` after
        the test pass (if any) and before forward/backward, and `on_gradients_ready()` after
        backward, before the update is computed and applied (Caffe's Solver::Callback)."""
        self._callbacks.append((on_start, on_gradients_ready))

    @property
    def lr(self):
        """The learning rate of the current iteration (pycaffe's SGDSolver.lr)."""
        return self.learning_rate()

    def share_weights(self, net):
        """Make `net` read this solver's training weights (pycaffe's solver.share_weights)."""
        net.share_with(self.net)

    def forward_backward_all(self):
        loss = 0.0
        for _ in range(self.param.iter_size):
            loss += float(self.net.forward_backward())
        return loss / self.param.iter_size

    def step(self, iters):
        """Run `iters` iterations. Raises DivergenceError on a non-finite loss (weights are
        left as they were before that iteration's update)."""
        p = self.param
        replicas = self.replicas
        stop_iter = self.iter + int(iters)
        replicas.begin(self)
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if (p.test_interval and self.iter % p.test_interval == 0
                    and (self.iter > 0 or p.test_initialization)):
                if replicas.is_root:
                    self.test_all()
                replicas.after_test(self)
                if self._handle_request():
                    break
            for on_start, _ in self._callbacks:
                on_start()
            loss = replicas.reduce(self, self.forward_backward_all())
            if not math.isfinite(loss):
                self._diverged(loss)
            if self._unconfirmed is not None and self._unconfirmed[0] == self.iter:
                self.last_good_snapshot = self._unconfirmed[1]
            self._unconfirmed = None
            self._losses.append(loss)
            self.smoothed_loss = sum(self._losses) / len(self._losses)
            if p.display and self.iter % p.display == 0:
                self._display()
            for _, on_gradients_ready in self._callbacks:
                on_gradients_ready()
            self.apply_update()
            replicas.updated(self)
            self.iter += 1
            if self.budget is not None:
                self.budget.after_iteration()
            if (self.iter == p.max_iter and self.bn_recalibration_batches > 0
                    and (self.budget is None or self.budget.frozen_at != self.iter)):
                self.recalibrate_batch_norm(self.bn_recalibration_batches)
            if self.progress is not None:
                self.progress(self.iter, self.smoothed_loss)
            if p.snapshot and self.iter % p.snapshot == 0:
                self.snapshot()
            if self._handle_request():
                break

    def _handle_request(self):
        action = self.replicas.agree(self)
        if action == "snapshot":
            self.snapshot()
        elif action == "stop":
            self.snapshot()
            self.stopped_early = True
            return True
        return False

    def solve(self, resume_file=None):
        """Train to `max_iter` (Caffe's Solver::Solve): optional restore, steps, final snapshot,
        final display and test."""
        p = self.param
        if resume_file:
            self.restore(resume_file)
        log.info("Solving %s", getattr(self.net, "name", "") or "net")
        log.info("Learning Rate Policy: %s", p.lr_policy)
        self.runlog.start(self)
        start_iter, t0 = self.iter, time.perf_counter()
        self.stopped_early = False
        self.step(p.max_iter - self.iter)
        if self.stopped_early:
            log.info("Optimization stopped early.")
            self._write_summary(start_iter, t0)
            return
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.display and self.iter % p.display == 0:
            loss = float(self.replicas.mean([self._forward_loss()])[0])
            log.info("Iteration %d, loss = %g", self.iter, loss)
        if p.test_interval and self.iter % p.test_interval == 0 and self.replicas.is_root:
            self.test_all()
        log.info("Optimization Done.")
        self._write_summary(start_iter, t0)

    def _write_summary(self, start_iter, t0):
        """`<prefix>_summary.json`: what this solve() did and what it left (see runlog.py)."""
        self.replicas.finish(self)
        if self.runlog.path is None:
            return None
        seconds = time.perf_counter() - t0
        rows = sparsity_report.layer_sparsity(self.net) if hasattr(self.net, "_layer_names") else []
        left = sum(r["flops_left"] for r in rows)
        dense = sum(r["flops_dense"] for r in rows)
        done = self.iter - start_iter
        summary = {
            "status": "stopped" if self.stopped_early else "finished",
            "start_iter": start_iter, "iter": self.iter, "max_iter": self.param.max_iter,
            "wall_s": round(seconds, 3), "iter_per_s": round(done / seconds, 3) if seconds else None,
            "smoothed_loss": self.smoothed_loss if self._losses else None,
            "last_test": self.last_test,
            "flops_left": left, "flops_dense": dense,
            "flops_left_fraction": left / dense if dense else None,
            "sparsity": rows,
            "snapshot": self.last_snapshot,
        }
        if self.budget is not None:
            summary["budget"] = self.budget.summary()
            b = summary["budget"]
            if "final_share" in b:
                log.info("Budget: %s %.2f%% of dense against a target of %.2f%% (%+.2f points)%s",
                         "FLOPs" if b["kind"] == "flops" else "predicted time",
                         100 * b["final_share"], 100 * b["target_share"], b["gap_pp"],
                         "" if b["within_tolerance"] else ", outside the tolerance")
        try:
            path = self.runlog.write_summary(self, summary)
        except OSError as exc:
            # Training and its last snapshot are done; like the curve, the summary is a
            # convenience (a full disk here must not turn a finished run into a failed one).
            log.warning("cannot write %s (%s); the run itself finished",
                        self.runlog.summary_path(), exc.strerror or exc)
            return None
        if path:
            log.info("Summary written to %s", path)
        return path

    def _forward_loss(self):
        outs = self.net.forward()
        if hasattr(self.net, "loss"):
            return float(self.net.loss)
        weights = _loss_weights(self.net)
        return float(sum(float(np.sum(backend.asnumpy(outs[k]))) * w
                         for k, w in weights.items() if k in outs))

    def _display(self):
        # The outputs of the global batch: averaged over the replicas (all of them get here).
        names = list(self.net.outputs)
        values = self.replicas.mean([v for _, v in _output_values(self.net)])
        if not self.replicas.is_root:
            return
        now = time.perf_counter()
        if self._last_display is None:
            log.info("Iteration %d, loss = %g", self.iter, self.smoothed_loss)
        else:
            then, it0 = self._last_display
            n, dt = self.iter - it0, max(now - then, 1e-9)
            log.info("Iteration %d (%.4g iter/s, %.3fs/%d iters), loss = %g", self.iter, n / dt,
                     dt, n, self.smoothed_loss)
        self._last_display = (now, self.iter)
        weights = _loss_weights(self.net)
        for k, (name, value) in enumerate(zip(names, values)):
            log.info("    Train net output #%d: %s = %s%s", k, name, _fmt(value),
                     _loss_suffix(value, weights.get(name, 0.0)))
        record = {"kind": "train", "iter": self.iter, "loss": self.smoothed_loss,
                  "lr": learning_rate(self.param, self.iter, self.current_step)[0]}
        self._report(record)

    def test_all(self):
        """Run every test net for its test_iter batches; log and return the mean outputs."""
        results = []
        for i in range(len(self.test_nets)):
            results.append(self.test(i))
        self.last_test = {"iter": self.iter, "outputs": results}
        return results

    def test(self, i=0):
        log.info("Iteration %d, Testing net (#%d)", self.iter, i)
        tn = self.test_nets[i]
        n = self.param.test_iter[i] if i < len(self.param.test_iter) else 1
        sums = collections.OrderedDict()
        for _ in range(n):
            outs = tn.forward()
            for name in tn.outputs:
                v = backend.asnumpy(outs[name]).astype(np.float64).ravel()
                sums[name] = sums[name] + v if name in sums else v
        weights = _loss_weights(tn)
        means = {}
        for k, (name, total) in enumerate(sums.items()):
            mean = total / max(n, 1)
            means[name] = float(mean[0]) if mean.size == 1 else mean.tolist()
            log.info("    Test net output #%d: %s = %s%s", k, name, _fmt(mean),
                     _loss_suffix(mean, weights.get(name, 0.0)))
        self._report({"kind": "test", "iter": self.iter, "net": i, "outputs": means})
        return means

    def _report(self, record):
        if self.budget is not None and (self.budget.kind == "flops" or self.budget.costs):
            log.info("    %s", self.budget.log_line())
            record["budget"] = {"share": self.budget.measure()[0], "phase": self.budget.phase,
                                "scales": [float(v) for v in self.budget.scales]}
        if not self.param.sparsity_report:
            self._write_curve(record)
            return
        rows = sparsity_report.layer_sparsity(self.net)
        for line in sparsity_report.format_table(rows):
            log.info("    %s", line)
        record["sparsity"] = rows
        self._write_curve(record)

    def _curve_file(self):
        prefix = self.snapshot_prefix()
        return f"{prefix}_log.jsonl" if prefix else None

    def _write_curve(self, record):
        if self.runlog.path is None:
            return
        try:
            self.runlog.append(self, record)
        except OSError as exc:
            # The curve is a convenience; training goes on (a snapshot that cannot be written
            # stops it, with its own error).
            log.warning("cannot append to %s (%s); the loss curve is not recorded from here on",
                        self.runlog.path, exc.strerror or exc)
            self.runlog.path = None

    def _diverged(self, loss):
        where = None
        finder = getattr(self.net, "first_nonfinite_output", None)
        if finder is not None:
            where = finder()
        msg = f"Iteration {self.iter}: loss = {loss}"
        if where:
            msg += f"; first non-finite output: layer '{where[0]}' top '{where[1]}'"
        else:
            msg += "; every layer output is finite (the non-finite value came from the loss itself)"
        if self._unconfirmed is not None and self._unconfirmed[0] == self.iter:
            msg += (f"; snapshot {self._unconfirmed[1]} holds these weights (finite, but their "
                    "loss is not)")
        raise DivergenceError(msg + ". " + self._good_snapshot_note() +
                              " Lower base_lr or set clip_gradients.")

    def _good_snapshot_note(self):
        if self.last_good_snapshot:
            return (f"Last good snapshot (finite weights and loss): {self.last_good_snapshot}; "
                    "resume from it with --snapshot.")
        return "No snapshot of this run had finite weights and loss."

    def _nonfinite_param(self):
        """'layer 'x' param j (shape)' of the first learnable blob holding NaN/inf, or None."""
        for i, blob in enumerate(self._params):
            if not bool(backend.xp_of(blob.data).isfinite(blob.data).all()):
                return self._blob_name(i)
        return None

    # -- snapshots -----------------------------------------------------------------------------
    def snapshot_prefix(self):
        p = self.param
        if p.snapshot_prefix:
            return p.snapshot_prefix
        if self.path:
            return os.path.splitext(self.path)[0]
        return ""

    def snapshot(self):
        """Write `<prefix>_iter_<N>.caffemodel` and `.solverstate`, both or neither; returns
        the state path.

        Raises DivergenceError (writing nothing) when a weight is NaN or inf, naming the blob
        and the last good snapshot; SnapshotError when a write fails (full disk...): nothing of
        this snapshot is kept and the previous one is intact.
        """
        from minicaffe.solver import state

        prefix = self.snapshot_prefix() or "minicaffe"
        model = f"{prefix}_iter_{self.iter}.caffemodel"
        path = f"{prefix}_iter_{self.iter}.solverstate"
        bad = self._nonfinite_param()
        if bad is not None:
            raise DivergenceError(f"Iteration {self.iter}: {bad} holds non-finite values; "
                                  f"snapshot {prefix}_iter_{self.iter} not written. "
                                  f"{self._good_snapshot_note()}")
        if self.replicas.is_root:      # the replicas hold the same weights: one writer
            state.write_snapshot(self, model, path, previous=self.last_snapshot)
            log.info("Snapshotting to binary proto file %s", model)
            log.info("Snapshotting solver state to binary proto file %s", path)
        self.last_snapshot = path
        self._unconfirmed = (self.iter, path)
        return path

    def restore(self, state_file):
        """Continue from a `.solverstate`: weights, iteration, lr step, history, masks, RNG."""
        from minicaffe.solver import state

        log.info("Restoring previous solver status from %s", state_file)
        self.replicas.restore(self, lambda: state.load_state(self, state_file))
        self.runlog.resumed_from = os.fspath(state_file)
        for tn in self.test_nets:
            tn.share_with(self.net)
        self.last_snapshot = os.fspath(state_file)
        self._unconfirmed = (self.iter, os.fspath(state_file))


def _spec(spec, name, default):
    return default if spec is None else getattr(spec, name, default)


def _loss_weights(net):
    """{output blob name: loss weight} when the Net exposes it (pycaffe's blob_loss_weights)."""
    w = getattr(net, "blob_loss_weights", None)
    if w is not None:
        return dict(w)
    out = {}
    tops = getattr(net, "top_names", None) or {}
    for name, layer in zip(getattr(net, "_layer_names", []), net.layers):
        for top, weight in zip(tops.get(name, []), getattr(layer, "loss_weights", [])):
            if weight:
                out[top] = float(weight)
    return out


def _output_values(net):
    for name in net.outputs:
        yield name, backend.asnumpy(net.blobs[name].data).astype(np.float64).ravel()


def _fmt(values):
    values = np.asarray(values).ravel()
    return f"{values[0]:.6g}" if values.size == 1 else "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def _loss_suffix(values, weight):
    if not weight:
        return ""
    total = float(np.sum(values)) * weight
    return f" (* {weight:g} = {total:.6g} loss)"
