"""Budget-driven SSL: the solver steers the group-Lasso strengths to a FLOP or latency budget.

A minicaffe extension (docs/SSL.md, "Budget-driven SSL"). The solver file states the budget,
not the lambdas:

    flops_target: 0.25            # fraction of the dense multiply-adds ...
    flops_target_scope: CONV      # ... of the Convolutions (CONV, default) or of the Convolutions
                                  # and InnerProducts (ALL)
    latency_target: 1.5           # or: ms per batch of the deploy net, from measured costs
    budget_schedule { reach_iter: 3000 finetune_iter: 4000 }

Cost. `cost` is the share of the dense cost left: FLOPs counted as compaction counts them,
dead paths included (budget_flops.py), over the layers of the scope; or, for a latency target,
the predicted forward time of the compacted net over the dense one, from per-layer costs
measured on this machine (budget_cost.py: ms = a + b * FLOPs per compacted layer, plus the
other layers' time) so a layer whose removed FLOPs buy more time weighs more.

Schedule. The scheduled cost falls linearly from 1 at iteration 0 to the target at
`reach_iter` (default: half of max_iter) and stays there. At `finetune_iter` (default: 70% of
max_iter) the structure is frozen and the rest is fine-tuning.

Controller (every `interval` iterations, after the update). With `cost` and `scheduled` as
above, t the target share and e = cost - scheduled:
    zero rows and columns are masked (the ratchet: removed structure stays removed);
    cost < t - tolerance (a collapse within one interval): the controlled weights go back to
        the previous check, their weakest groups are zeroed down to the schedule, and every
        scale is divided by max_step;
    cost > scheduled + max_lag (lambda is not removing structure as fast as the schedule
        asks): the weakest groups are zeroed down to scheduled + max_lag, and lambda is not
        raised at this check;
    |cost - t| <= tolerance: freeze (below);
    with e_pred = e + HORIZON x (its change since the last check) (pruning lags lambda):
    |e_pred| <= tolerance / 2: nothing changes (a dead band, against chatter);
    otherwise, for each controlled layer l:
    scale_l <- scale_l * exp(clip(gain * e_pred / (1 - t) * n * share_l, -log max_step,
                                  +log max_step))
where share_l is layer l's part of the cost left (its FLOPs left, or its predicted ms for a
latency target) and n the number of controlled layers: lambda grows where the cost is, and
shrinks (groups may regrow) when the net is below its schedule. "Weakest" ranks the live
filters, input channels and shape fibres by RMS weight over the median RMS of their kind in
their layer (raw RMS is not comparable across layers), never taking a layer's last live filter
or input channel. Every group term of a
controlled layer's weights runs at strength base * scale_l; base is the solver file's
lambda when it gives one (breadth_decay * mult, ...) and `initial_decay` for the row, column
and (Convolution) channel terms the controller adds to layers without any. The update is
PROXIMAL unless the solver file sets `group_lasso_update` itself (SUBGRADIENT steps reach
exact zeros only through zero_threshold: a warning says so).

Freeze (on budget, or at `finetune_iter` at the latest): the weakest groups are zeroed until
the cost is within the tolerance (or the last check is rolled back, as above, if it is
below); dead paths are zeroed so the weights are the counted structure; the controlled terms
go to 0, the zero rows and columns are masked, as DISCONNECTED_GRPWISE does, and
`zero_threshold` no longer touches the controlled weights (every group live at the freeze
stays live: the structure, and the cost, are held). The BatchNorm statistics are estimated
again for the kept structure at the freeze and at max_iter (Solver.recalibrate_batch_norm).

State (in the .solverstate: scales, phase, measured costs, the trace of (iter, cost,
scheduled)) resumes bit-identically; `summary()` goes into `<prefix>_summary.json` and
`log_line()` next to the sparsity report.
"""
import logging
import math

import numpy as np

from minicaffe import backend, groups
from minicaffe.errors import SolverError
from minicaffe.solver.budget_flops import Structure

log = logging.getLogger("minicaffe.solver")

PHASES = ("steer", "finetune")
HORIZON = 3
# automatic starting strength: this share of the lambda whose shrinkage alone zeroes a median
# group by reach_iter (the controller raises it as needed; starting low avoids a collapse)
AUTO_FRACTION = 0.25
# forward passes that estimate the BatchNorm statistics again at the freeze and at the end
# (Solver.recalibrate_batch_norm) when the solver file does not set bn_recalibration_batches
RECALIBRATE_BATCHES = 20


def wanted(param):
    """Whether a SolverParameter asks for a budget."""
    return bool(param.flops_target) or bool(param.latency_target)


def group_lasso_update(param):
    """The group-Lasso update a SolverParameter runs: its `group_lasso_update`, or PROXIMAL for
    a budget run whose file does not set one (exact zeros are what the budget counts)."""
    if wanted(param) and not param.has("group_lasso_update"):
        return "PROXIMAL"
    return param.group_lasso_update


def _group_slice(w, kind, idx):
    """Index into `w.reshape(N, -1)` of filter `idx` ("row"), shape fibre `idx` ("column")
    or input channel `idx` ("channel": its kh*kw columns; an InnerProduct input for 2-D
    weights)."""
    if kind == "row":
        return (idx,)
    if kind == "column":
        return (slice(None), idx)
    area = groups.kernel_area(w.shape)
    return (slice(None), slice(idx * area, (idx + 1) * area))


def field_error(solver, msg, field, sub=None):
    """SolverError naming the field, with file:line:col when the solver file gave it."""
    from minicaffe.prototxt import error_at

    holder = solver.param.budget_schedule if sub else solver.param
    err = error_at(holder, field, msg)
    return SolverError(str(err) if err.line is not None else solver._where() + msg)


class BudgetController:
    """Steers the group-term strengths of `solver` to the budget its param states (module doc).

    Raises SolverError naming the field for a value out of range.
    """

    def __init__(self, solver):
        self.solver = solver
        p = solver.param
        self._check(p)
        self.kind = "latency" if p.latency_target else "flops"
        self.target_value = float(p.latency_target or p.flops_target)
        self.scope = p.flops_target_scope if self.kind == "flops" else "CONV"
        s = p.budget_schedule
        self.reach_iter = int(s.reach_iter) if s.reach_iter else max(1, p.max_iter // 2)
        self.finetune_iter = int(s.finetune_iter) if s.finetune_iter else \
            max(self.reach_iter, int(0.7 * p.max_iter))
        if self.finetune_iter < self.reach_iter:
            raise field_error(solver, f"budget_schedule.finetune_iter = {self.finetune_iter} "
                               f"comes before reach_iter = {self.reach_iter}",
                               "finetune_iter", sub=True)
        self.interval = int(s.interval)
        self.gain, self.max_step = float(s.gain), float(s.max_step)
        self.initial_decay, self.tolerance = float(s.initial_decay), float(s.tolerance)
        self.max_lag = float(s.max_lag)
        self.structure = Structure(solver.net)
        self.layers = [name for _, name, layer in self.structure.gemm
                       if self.scope == "ALL" or layer.type == "Convolution"]
        if not self.layers:
            raise field_error(solver, "the net has no "
                               + ("Convolution" if self.scope == "CONV" else
                                  "Convolution or InnerProduct") + " layer to put a budget on",
                               "flops_target" if self.kind == "flops" else "latency_target")
        self._blob = {}
        for i, info in enumerate(solver._infos):
            if info.layer_name in self.layers and info.index == 0:
                self._blob[info.layer_name] = i
        if group_lasso_update(p) != "PROXIMAL":
            log.warning("Budget: group_lasso_update: %s steps do not reach exact zeros (only "
                        "zero_threshold makes them); the controller counts exact zeros, so its "
                        "lambdas may grow without removing structure. PROXIMAL (the default of a "
                        "budget run) is the update it is made for", p.group_lasso_update)
        self._added = self._add_terms()
        self.base = {name: [t.strength for t in solver._terms[i]]
                     for name, i in self._blob.items()}
        self.based = not self._added    # auto strengths are set from the first weights trained
        self.scales = np.ones(len(self.layers), dtype=np.float64)
        self.phase = "steer"
        self.trace = []                 # (iter, cost, scheduled)
        self.costs = None               # latency: {"layers": {name: [a_ms, b_ms_per_flop]},
        #                                  "other_ms", "dense_ms", "batch", "key"}
        self.frozen_at = None
        self.snapped = 0
        self.rollbacks = 0
        self._last = None
        self._apply_scales()

    # -- configuration -----------------------------------------------------------------------
    def _check(self, p):
        s = self.solver
        if p.flops_target and p.latency_target:
            raise field_error(s, "flops_target and latency_target are both set; give one budget",
                               "latency_target")
        if p.flops_target and not 0 < p.flops_target <= 1:
            raise field_error(s, f"flops_target must be in (0, 1], a fraction of the dense "
                               f"multiply-adds (got {p.flops_target:g})", "flops_target")
        if p.latency_target and not p.latency_target > 0:
            raise field_error(s, f"latency_target must be > 0 ms (got {p.latency_target:g})",
                               "latency_target")
        if p.latency_target and p.has("flops_target_scope") and p.flops_target_scope != "CONV":
            raise field_error(s, "flops_target_scope applies to flops_target; a latency target "
                               "covers the Convolutions", "flops_target_scope")
        sch = p.budget_schedule
        for name, ok, rule in (("reach_iter", sch.reach_iter >= 0, ">= 0"),
                               ("finetune_iter", sch.finetune_iter >= 0, ">= 0"),
                               ("interval", sch.interval >= 1, ">= 1"),
                               ("gain", sch.gain > 0, "> 0"),
                               ("max_step", sch.max_step > 1, "> 1"),
                               ("initial_decay", sch.initial_decay >= 0, ">= 0 (0: from the weights)"),
                               ("tolerance", 0 <= sch.tolerance < 1, "in [0, 1)"),
                               ("max_lag", sch.max_lag > 0, "> 0")):
            if not ok:
                raise field_error(s, f"budget_schedule.{name} must be {rule} (got "
                                   f"{getattr(sch, name):g})", name, sub=True)
        if p.max_iter and sch.reach_iter > p.max_iter:
            raise field_error(s, f"budget_schedule.reach_iter = {sch.reach_iter} is after "
                               f"max_iter = {p.max_iter}", "reach_iter", sub=True)

    def _add_terms(self):
        """Row, column and (Convolution, C > 1) channel terms at `initial_decay` on controlled
        weights the solver file gave no group term."""
        from minicaffe.solver.base import _Term
        from minicaffe.solver.regularizers import REGULARIZERS

        s = self.solver
        added = []
        for name in self.layers:
            i = self._blob[name]
            if s._terms[i]:
                continue
            added.append(name)
            info, shape = s._infos[i], tuple(s._params[i].shape)
            kinds = ["row", "column"]
            if len(shape) == 4 and shape[1] > 1:
                kinds.append("channel")
            for kind in kinds:
                reg = REGULARIZERS.get("group_lasso")(kind=kind, group=info.group)
                s._terms[i].append(_Term(reg, self.initial_decay, f"{kind} (budget)"))
        return added

    def _auto_base(self):
        """Strengths of the terms the controller added, from the weights it starts from: with
        `initial_decay` > 0 that value; with 0 (the default), per term AUTO_FRACTION x the median
        group norm / (base_lr * reach_iter), a quarter of the lambda at which the proximal shrinkage alone would take
        a median group to zero by reach_iter (the data gradient keeps the useful ones)."""
        s = self.solver
        lr = float(s.param.base_lr) or 1.0
        for name in self._added:
            i = self._blob[name]
            w = backend.asnumpy(s._params[i].data).astype(np.float64)
            strengths = []
            for term in s._terms[i]:
                if self.initial_decay > 0:
                    strengths.append(self.initial_decay)
                    continue
                p = term.reg.params
                norms = groups.norms(w, p.kind, p.group).ravel()
                norms = norms[norms > 0]
                med = float(np.median(norms)) if norms.size else 0.0
                strengths.append(AUTO_FRACTION * med / (lr * self.reach_iter) if med > 0 else 1e-6)
            self.base[name] = strengths
        self.based = True
        self._apply_scales()
        log.info("Budget: starting strengths %s", "; ".join(
            f"{n} " + ", ".join(f"{t.name.split()[0]} {b:.3g}"
                                for t, b in zip(s._terms[self._blob[n]], self.base[n]))
            for n in self._added))

    def _apply_scales(self):
        for k, name in enumerate(self.layers):
            scale = 0.0 if self.phase == "finetune" else float(self.scales[k])
            for term, base in zip(self.solver._terms[self._blob[name]], self.base[name]):
                term.strength = base * scale

    # -- measuring -----------------------------------------------------------------------------
    @property
    def target(self):
        """The budget as a share of the dense cost."""
        if self.kind == "flops":
            return self.target_value
        return self.target_value / self.costs["dense_ms"]

    def measure(self):
        """(cost share left, {layer: its cost left}, per-layer FLOP rows)."""
        rows = {r["layer"]: r for r in self.structure.count("ALL")}
        if self.kind == "flops":
            per = {n: float(rows[n]["left"]) for n in self.layers}
            dense = sum(float(rows[n]["dense"]) for n in self.layers)
            return sum(per.values()) / dense, per, rows
        per = {}
        for n in self.layers:
            a, b = self.costs["layers"][n]
            left = rows[n]["left"]
            per[n] = (a + b * left) if left else 0.0
        total = self.costs["other_ms"] + sum(per.values())
        return total / self.costs["dense_ms"], per, rows

    def scheduled(self, it):
        """The scheduled cost share at iteration `it` (linear to the target at reach_iter)."""
        t = self.target
        return 1.0 - (1.0 - t) * min(1.0, it / self.reach_iter)

    def _calibrate(self):
        from minicaffe.solver import budget_cost

        self.costs = budget_cost.calibrate(self.solver, self.layers)
        if self.target_value <= self.costs["other_ms"]:
            raise field_error(self.solver, f"latency_target = {self.target_value:g} ms is below "
                               f"the {self.costs['other_ms']:.3f} ms the layers SSL cannot "
                               "shrink take per batch on this machine", "latency_target")
        if self.target_value >= self.costs["dense_ms"]:
            log.warning("latency_target %g ms is above the dense net's %.3f ms: nothing to prune",
                        self.target_value, self.costs["dense_ms"])

    # -- the controller --------------------------------------------------------------------------
    def after_iteration(self):
        """Called by the solver after each update (`solver.iter` already counts it)."""
        it = self.solver.iter
        if self.phase != "steer":
            return
        if not self.based:
            self._auto_base()
        if self.costs is None and self.kind == "latency":
            self._calibrate()
        if it >= self.finetune_iter:
            self.freeze()
            return
        if it % self.interval:
            return
        self._ratchet()
        cost, per, _ = self.measure()
        sched = self.scheduled(it)
        prev = self.trace[-1] if self.trace else None
        reduced = lagging = False
        if cost < self.target - self.tolerance:
            # overshot within one interval: roll back, snap down to the schedule, lower lambda
            reduced = self._revive(max(sched, self.target))
            cost = self.measure()[0]
        if cost > sched + self.max_lag:
            # lambda is not removing structure as fast as the schedule asks: the weakest
            # groups go now, down to the lagging edge, and lambda is not raised further
            self._snap(sched + self.max_lag)
            lagging = True
        if reduced or lagging:
            self._ratchet()                # the snapped groups stay removed
            cost = self.measure()[0]
        self.trace.append((it, cost, sched))
        if abs(cost - self.target) <= self.tolerance:
            self.freeze()                  # on budget: hold the structure
            return
        self._remember()
        if reduced:
            return
        e = cost - sched
        # the gap expected HORIZON intervals ahead at the current rate (a derivative term:
        # pruning lags lambda, so a gap that is closing fast must not make lambda grow)
        e_pred = e if prev is None else e + HORIZON * ((cost - prev[1]) - (sched - prev[2]))
        if abs(e_pred) <= self.tolerance / 2 or (lagging and e_pred > 0):
            return
        total = sum(per.values())
        n = len(self.layers)
        limit = math.log(self.max_step)
        delta = self.gain * e_pred / max(1.0 - self.target, 1e-3)
        for k, name in enumerate(self.layers):
            share = per[name] / total if total > 0 else 1.0 / n
            if e_pred > 0 and share == 0:
                continue                   # nothing left to take from this layer
            step = delta * (n * share if e_pred > 0 else 1.0)
            self.scales[k] *= math.exp(min(max(step, -limit), limit))
        self._apply_scales()

    def held(self):
        """Blob indices whose weights the solver must not pass through `zero_threshold`: after
        the freeze, the controlled weights (their removed groups are masked; every group live at
        the freeze stays live however small, so the structure, and the cost, are held)."""
        if self.phase != "finetune":
            return ()
        return frozenset(self._blob.values())

    def _remember(self):
        """Keep the controlled weights of this check: `_revive` restores groups from them."""
        self._last = {n: backend.asnumpy(self.solver._params[self._blob[n]].data).copy()
                      for n in self.layers}

    def _ratchet(self):
        """Zero the dead paths and mask every zero row and column of the controlled layers, so
        removed structure stays removed (the cost only falls while steering: no oscillation)."""
        s = self.solver
        self._zero_dead()
        s.refresh_masks()
        for name in self.layers:
            i = self._blob[name]
            w = s._params[i].data
            group = s._infos[i].group
            mask = groups.live_mask(w, "row", group) & groups.live_mask(w, "column", group)
            s._masks[i] = mask if i not in s._masks else (s._masks[i] & mask)
            w[...] *= s._masks[i]

    def _revive(self, floor):
        """Below target - tolerance (the last interval removed too much): roll the controlled
        weights back to the previous check (where the cost was not below the band), zero their
        weakest filters, channels and shape fibres down to `floor` (the schedule, or the target
        at the freeze; `_snap`) and divide every lambda scale by max_step. Returns whether it
        rolled back."""
        if self._last is None:
            return False
        s = self.solver
        for name in self.layers:
            w = s._params[self._blob[name]].data
            w[...] = backend.xp_of(w).asarray(self._last[name])
        self.rollbacks += 1
        s.refresh_masks()
        self._snap(floor + self.tolerance / 2)
        self.scales /= self.max_step
        self._apply_scales()
        return True

    def freeze(self):
        """Hold the structure: meet the budget, zero dead paths, masks on, terms off, and the
        BatchNorm statistics estimated again for the structure that stays."""
        s = self.solver
        self._ratchet()
        cost, _, _ = self.measure()
        if cost > self.target + self.tolerance:
            self._snap(self.target + self.tolerance / 2)
        elif cost < self.target - self.tolerance:
            self._revive(self.target)
        self._ratchet()
        self.phase = "finetune"
        self.frozen_at = s.iter
        self._apply_scales()
        s.recalibrate_batch_norm(s.bn_recalibration_batches)
        cost, _, _ = self.measure()
        self.trace.append((s.iter, cost, self.target))
        log.info("Budget: structure frozen at iteration %d, cost %.2f%% of dense (target "
                 "%.2f%%)%s; fine-tuning with zero groups masked", s.iter, 100 * cost,
                 100 * self.target,
                 f", {self.snapped} group(s) with the smallest weights zeroed on the way"
                 if self.snapped else "")

    def _candidates(self):
        """(score, layer index k, kind, index) of every live filter, channel / input and shape
        fibre, smallest score first. The score is the group's RMS weight over the median RMS of
        the live groups of its kind in its layer: raw RMS is not comparable across layers (a
        layer with a larger fan-in is initialised, and trains, to smaller weights), so each
        layer gives up its relatively weakest groups first."""
        out = []
        for k, name in enumerate(self.layers):
            w = backend.asnumpy(self.solver._params[self._blob[name]].data)
            w2 = (w.reshape(w.shape[0], -1).astype(np.float64)) ** 2
            area = groups.kernel_area(w.shape)
            norms = [("row", np.sqrt(w2.mean(axis=1))),
                     ("channel", np.sqrt(w2.reshape(w.shape[0], -1, area).mean(axis=(0, 2))))]
            if area > 1:
                norms.append(("column", np.sqrt(w2.mean(axis=0))))
            for kind, v in norms:
                live = v[v > 0]
                if not live.size:
                    continue
                med = float(np.median(live))
                out += [(float(x) / med, k, kind, j) for j, x in enumerate(v) if x > 0]
        out.sort(key=lambda t: (t[0], t[1], t[2], t[3]))
        return out

    def _last_live(self, w, kind, idx):
        """Whether group `idx` is its layer's last live filter or last live input channel
        (zeroing it would cut the net's path through the layer)."""
        if kind == "column":
            return False
        w2 = w.reshape(w.shape[0], -1)
        if kind == "row":
            live = backend.asnumpy((w2 != 0).any(axis=1))
        else:
            area = groups.kernel_area(w.shape)
            live = backend.asnumpy((w2.reshape(w.shape[0], -1, area) != 0).any(axis=(0, 2)))
        return bool(live[idx]) and int(live.sum()) == 1

    def _snap(self, ceiling):
        """Zero the candidates (`_candidates` order) one at a time until the cost is at most
        `ceiling`, skipping a group whose removal would take the cost below target - tolerance
        or that is its layer's last live filter or input channel."""
        s = self.solver
        for _, k, kind, idx in self._candidates():
            if self.measure()[0] <= ceiling:
                break
            w = s._params[self._blob[self.layers[k]]].data
            if self._last_live(w, kind, idx):
                continue
            before = w.copy()
            w.reshape(w.shape[0], -1)[_group_slice(w, kind, idx)] = 0
            if self.measure()[0] < self.target - self.tolerance:
                w[...] = before            # this one group undershoots: try the next
                continue
            self.snapped += 1

    def _zero_dead(self):
        """Zero the rows and columns the count removes (dead paths) in the controlled layers."""
        live = self.structure.live()
        for name in self.layers:
            rows, cols = live[name]
            w = self.solver._params[self._blob[name]].data
            g = rows.shape[0]
            w3 = w.reshape(g, rows.shape[1], -1)
            keep = rows[:, :, None] & cols[:, None, :]
            w3 *= backend.xp_of(w).asarray(keep).astype(w.dtype)

    # -- reporting and state ----------------------------------------------------------------------
    def log_line(self):
        cost, _, _ = self.measure()
        it = self.solver.iter
        unit = "FLOPs" if self.kind == "flops" else "predicted ms"
        scales = ", ".join(f"{n} x{v:.3g}" for n, v in zip(self.layers, self.scales))
        return (f"budget {self.phase}: {unit} {100 * cost:.2f}% of dense, scheduled "
                f"{100 * (self.scheduled(it) if self.phase == 'steer' else self.target):.2f}%, "
                f"target {100 * self.target:.2f}%; lambda scales {scales}")

    def summary(self):
        """How close the run came to the budget, as data (goes into the run's summary.json)."""
        if self.kind == "latency" and self.costs is None:
            return {"kind": self.kind, "target": self.target_value, "phase": self.phase}
        cost, per, rows = self.measure()
        after = [(c, sc) for it, c, sc in self.trace if it >= self.reach_iter]
        out = {
            "kind": self.kind, "scope": self.scope, "target": self.target_value,
            "target_share": self.target, "final_share": cost,
            "gap_pp": 100 * (cost - self.target),
            "within_tolerance": abs(cost - self.target) <= self.tolerance + 1e-12,
            "phase": self.phase, "reach_iter": self.reach_iter,
            "finetune_iter": self.finetune_iter, "frozen_at": self.frozen_at,
            "snapped_groups": self.snapped, "rollbacks": self.rollbacks,
            "max_overshoot_pp": 100 * max([self.target - c for c, _ in after] + [0.0]),
            "layers": {n: {"scale": float(v), "lambdas": [b * float(v) for b in self.base[n]],
                           "flops_left": rows[n]["left"], "flops_dense": rows[n]["dense"]}
                       for n, v in zip(self.layers, self.scales)},
            "trace": [list(t) for t in self.trace],
        }
        if self.kind == "latency":
            out["predicted_ms"] = cost * self.costs["dense_ms"]
            out["dense_ms"] = self.costs["dense_ms"]
            out["costs"] = self.costs
        return out

    def state_arrays(self):
        """{name: array} for the .solverstate."""
        arrays = {
            "budget_scales": self.scales.copy(),
            "budget_phase": np.array(PHASES.index(self.phase), dtype=np.int64),
            "budget_trace": np.array(self.trace, dtype=np.float64).reshape(-1, 3),
            "budget_frozen_at": np.array(-1 if self.frozen_at is None else self.frozen_at,
                                         dtype=np.int64),
            "budget_snapped": np.array(self.snapped, dtype=np.int64),
            "budget_based": np.array(self.based),
            "budget_rollbacks": np.array(self.rollbacks, dtype=np.int64),
            "budget_has_last": np.array(self._last is not None),
            "budget_base": np.array([b for n in self.layers for b in self.base[n]],
                                    dtype=np.float64),
        }
        if self._last is not None:
            arrays.update({f"budget_last_{k}": self._last[n] for k, n in enumerate(self.layers)})
        if self.costs is not None:
            ab = np.array([self.costs["layers"][n] for n in self.layers], dtype=np.float64)
            arrays.update(budget_costs=ab, budget_other_ms=np.array(self.costs["other_ms"]),
                          budget_dense_ms=np.array(self.costs["dense_ms"]),
                          budget_cost_batch=np.array(self.costs["batch"], dtype=np.int64),
                          budget_cost_key=np.array(self.costs["key"]))
        return arrays

    def load_state_arrays(self, z, where):
        """Restore from the arrays `state_arrays` wrote; raises SolverError when they do not fit
        this controller (another net or budget)."""
        if "budget_scales" not in z:
            raise SolverError(f"{where}: holds no budget controller state; this solver has a "
                              f"{self.kind} budget (resume with the solver file that wrote it)")
        scales = np.asarray(z["budget_scales"], dtype=np.float64)
        if scales.shape != self.scales.shape:
            raise SolverError(f"{where}: budget state for {scales.size} layer(s); this budget "
                              f"controls {len(self.layers)} ({', '.join(self.layers)})")
        phase = int(z["budget_phase"])
        if not 0 <= phase < len(PHASES):
            raise SolverError(f"{where}: 'budget_phase' = {phase}; expected 0 or 1")
        trace = np.asarray(z["budget_trace"], dtype=np.float64).reshape(-1, 3)
        costs = None
        if "budget_costs" in z:
            ab = np.asarray(z["budget_costs"], dtype=np.float64)
            if ab.shape != (len(self.layers), 2):
                raise SolverError(f"{where}: 'budget_costs' has shape {ab.shape}; expected "
                                  f"({len(self.layers)}, 2)")
            costs = {"layers": {n: [float(a), float(b)] for n, (a, b) in zip(self.layers, ab)},
                     "other_ms": float(z["budget_other_ms"]),
                     "dense_ms": float(z["budget_dense_ms"]),
                     "batch": int(z["budget_cost_batch"]), "key": str(z["budget_cost_key"])}
        base = np.asarray(z["budget_base"], dtype=np.float64).ravel()
        sizes = [len(self.base[n]) for n in self.layers]
        if base.size != sum(sizes):
            raise SolverError(f"{where}: 'budget_base' holds {base.size} strengths; this budget "
                              f"has {sum(sizes)} group terms")
        last = None
        if bool(z["budget_has_last"]):
            last = {}
            for k, n in enumerate(self.layers):
                a = np.asarray(z[f"budget_last_{k}"])
                if a.shape != tuple(self.solver._params[self._blob[n]].shape):
                    raise SolverError(f"{where}: 'budget_last_{k}' has shape {a.shape}; layer "
                                      f"'{n}' has {tuple(self.solver._params[self._blob[n]].shape)}")
                last[n] = a.copy()
        self._last = last
        self.rollbacks = int(z["budget_rollbacks"])
        self.scales = scales.copy()
        self.based = bool(z["budget_based"])
        at = 0
        for n, k in zip(self.layers, sizes):
            self.base[n] = [float(v) for v in base[at:at + k]]
            at += k
        self.phase = PHASES[phase]
        self.trace = [(int(a), float(b), float(c)) for a, b, c in trace]
        frozen = int(z["budget_frozen_at"])
        self.frozen_at = None if frozen < 0 else frozen
        self.snapped = int(z["budget_snapped"])
        if costs is not None:
            self.costs = costs
        self._apply_scales()
