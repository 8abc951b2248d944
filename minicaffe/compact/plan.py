"""Which units stay: a fixpoint over unit classes, from the outputs back.

Layers that pass units through (unit-wise layers, reshapes, Concat, Slice, Eltwise, LRN) tie a
unit of their input to a unit of their output: the tied units form a *class*, which stays or
goes as a whole (an Eltwise unit goes only when it goes from every input: its inputs are tied).
A class's producers are the rows of Convolution / InnerProduct layers (or the net's inputs).

Every class starts removed; rules keep classes until nothing changes (so a chain nobody reads
goes entirely: a filter is dead when its output is zero, and also when no live weight reads it):
  - the net's outputs and inputs stay;
  - a kept row of a Convolution / InnerProduct keeps every input unit it reads with a non-zero
    weight, unless that unit is fixed and can be folded into the layer's bias exactly: always
    for an InnerProduct; for a Convolution when the unit is zero everywhere, or constant and
    the convolution has no padding (zero padding makes a constant map non-constant);
  - a live layer compaction does not see through keeps all its inputs and outputs;
  - a Convolution with `group: g` keeps as many input channels and filters in every group it
    keeps (zero ones are added back, lowest index first), and a live Convolution or
    InnerProduct keeps at least one input unit;
  - LRN across channels: a unit may go only if it is zero there or no kept unit within the
    window reads it, and only if no two kept non-zero units come within a window of each other
    that were not before (zero units are kept as spacers where needed).
Each class remembers the first reason it was kept; the report shows it for kept zero filters.
"""
import numpy as np


class Plan:
    """Unit classes of a graph and the decision per class (`kept`)."""

    def __init__(self, g):
        self.g = g
        self.offset = np.zeros(len(g.versions) + 1, dtype=np.int64)
        for v in g.versions:
            self.offset[v.id + 1] = self.offset[v.id] + (v.n if v.bounds is not None else 0)
        self.count = int(self.offset[-1])          # units of all versions
        self._edges = []
        self.reason = {}
        self.foldable = {}          # node index -> bool (input units,) folded when removed
        self.fold_reason = {}       # node index -> {unit: why it cannot be folded}

    # -- unit ids and classes ---------------------------------------------------------------
    def units(self, vid, which=None):
        ids = np.arange(self.offset[vid], self.offset[vid + 1])
        return ids if which is None else ids[which]

    def union(self, a, b):
        """Tie unit ids a[k] and b[k] into one class (collected; classes form in
        finish_classes)."""
        self._edges.append((np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)))

    def finish_classes(self):
        """Label every unit with the smallest id of its class: min-label propagation over the
        tie edges with pointer jumping, vectorised (tens of thousands of units in AlexNet)."""
        n = self.count
        label = np.arange(n, dtype=np.int64)
        if self._edges:
            a = np.concatenate([e[0] for e in self._edges])
            b = np.concatenate([e[1] for e in self._edges])
            while True:
                m = np.minimum(label[a], label[b])
                before = label.copy()
                np.minimum.at(label, a, m)
                np.minimum.at(label, b, m)
                label = label[label]
                if np.array_equal(label, before):
                    break
        self.root = label
        self.kept = np.zeros(n, dtype=bool)

    def is_kept(self, vid):
        """Boolean (n,) mask of the kept units of version `vid`."""
        return self.kept[self.root[self.units(vid)]]

    def keep(self, ids, reason):
        """Keep the classes of unit ids; `reason` a string or a callable(position) -> string.
        Returns True when a class was newly kept."""
        roots = self.root[np.asarray(ids, dtype=np.int64)]
        new = ~self.kept[roots]
        if not new.any():
            return False
        for k in np.flatnonzero(new):
            r = int(roots[k])
            if not self.kept[r]:
                self.kept[r] = True
                self.reason[r] = reason(k) if callable(reason) else reason
        return True

    def why(self, vid, u):
        return self.reason.get(int(self.root[self.offset[vid] + u]), "")


def _couple(plan, g):
    for node in g.nodes:
        kind = node.kind
        if kind in ("unitwise", "lrn", "reshape", "identity"):
            x = node.bottoms[0]
            for vid in node.tops:
                plan.union(plan.units(x), plan.units(vid))
        elif kind == "eltwise":
            for x in node.bottoms:
                plan.union(plan.units(x), plan.units(node.tops[0]))
        elif kind == "concat":
            top = plan.units(node.tops[0])
            offset = 0
            for x in node.bottoms:
                n = g.v(x).n
                plan.union(plan.units(x), top[offset:offset + n])
                offset += n
        elif kind == "slice":
            x = plan.units(node.bottoms[0])
            for vid, first in zip(node.tops, node.extra["first_unit"]):
                n = g.v(vid).n
                plan.union(x[first:first + n], plan.units(vid))


def _foldability(plan, g):
    """Per Convolution / InnerProduct: which fixed input units can be folded into its bias."""
    for node in g.nodes:
        if node.kind not in ("conv", "ip"):
            continue
        x = g.v(node.bottoms[0])
        ok = np.zeros(x.n, dtype=bool)
        why = {}
        pad = (node.layer.ph, node.layer.pw) if node.kind == "conv" else (0, 0)
        for u, a in x.fixed.items():
            if node.kind == "ip" or not np.any(a):
                ok[u] = True
                continue
            flat = a.reshape(a.shape[0], -1)
            constant = bool(np.all(flat == flat[:, :1]))
            if constant and pad == (0, 0):
                ok[u] = True
            elif constant:
                why[u] = (f"'{node.name}' pads its input by {pad[0]}x{pad[1]}: a constant "
                          "channel is not constant after zero padding, so it cannot become a bias")
            else:
                why[u] = (f"its value is input-independent but not constant over the map, so "
                          f"'{node.name}' cannot fold it into a bias")
        plan.foldable[node.index] = ok
        plan.fold_reason[node.index] = why


def decide(g):
    """The Plan of graph `g` (fixed maps computed) after the fixpoint."""
    plan = Plan(g)
    _couple(plan, g)
    plan.finish_classes()
    _foldability(plan, g)
    for vid in g.outputs:
        plan.keep(plan.units(vid), f"the net's output '{g.v(vid).emit_name}' keeps its shape")
    for vid in g.inputs:
        plan.keep(plan.units(vid), f"the net's input '{g.v(vid).emit_name}' keeps its shape")
    changed = True
    while changed:
        changed = False
        for node in reversed(g.nodes):
            rule = _RULES.get(node.kind)
            if rule is not None and rule(plan, g, node):
                changed = True
    return plan


def barrier_live(plan, g, node):
    """A layer compaction does not see through runs when anything reads one of its outputs
    (or it has none: it may have effects of its own)."""
    if node.kind == "source" or not node.tops:
        return True
    return any(plan.is_kept(vid).any() for vid in node.tops)


def _barrier(plan, g, node):
    if not barrier_live(plan, g, node):
        return False
    changed = False
    if node.kind == "mixing":
        text = f"read by '{node.name}' ({node.type}), which mixes channels"
    else:
        text = (f"read by '{node.name}' ({node.type}), which compaction does not see through"
                + (f": {node.why}" if node.why else ""))
    for vid in node.bottoms:
        changed |= plan.keep(plan.units(vid), text)
    for vid in node.tops:
        changed |= plan.keep(plan.units(vid), f"produced by '{node.name}' ({node.type}), "
                                              "whose outputs keep their shape")
    return changed


def _matrix(plan, g, node):
    top, x = node.tops[0], node.bottoms[0]
    rows = plan.is_kept(top)
    if not rows.any():
        return False
    xv = g.v(x)
    need = node.nz[rows].any(axis=0) & ~plan.foldable[node.index]
    why = plan.fold_reason[node.index]
    units = np.flatnonzero(need)
    changed = plan.keep(plan.units(x, units),
                        lambda k: why.get(int(units[k]), f"read by '{node.name}'"))
    changed |= _balance(plan, g, node, xv, rows)
    return changed


def _balance(plan, g, node, xv, rows):
    """Equal kept input channels and filters in every kept group; at least one of each."""
    group = node.layer.group if node.kind == "conv" else 1
    top = node.tops[0]
    kin_mask = plan.is_kept(xv.id)
    m = len(rows)
    if group == 1:
        groups_in = np.zeros(xv.n, dtype=np.int64)
        groups_out = np.zeros(m, dtype=np.int64)
    else:
        cg = node.layer.channels // group
        groups_in = xv.bounds[:-1] // cg
        groups_out = np.arange(m) // (m // group)
    kin = np.bincount(groups_in[kin_mask], minlength=group)
    kout = np.bincount(groups_out[rows], minlength=group)
    alive = (kin > 0) | (kout > 0)
    want_in, want_out = max(1, int(kin[alive].max())), max(1, int(kout[alive].max()))
    changed = False
    for gi in np.flatnonzero(alive):
        for have, want, mask, where, vid, what in (
                (kin[gi], want_in, kin_mask, groups_in, xv.id, "input channels"),
                (kout[gi], want_out, rows, groups_out, top, "filters")):
            if have >= want:
                continue
            extra = np.flatnonzero((where == gi) & ~mask)[:want - have]
            text = (f"kept so that '{node.name}' keeps at least one of its {what}"
                    if want == 1 else
                    f"kept so that the {group} groups of '{node.name}' keep equal numbers "
                    f"of {what}")
            changed |= plan.keep(plan.units(vid, extra), text)
    return changed


def _lrn(plan, g, node):
    x = g.v(node.bottoms[0])
    half = (int(node.lp.lrn_param.local_size) - 1) // 2
    kept = plan.is_kept(x.id)
    zero = x.zero_mask()
    live = kept & ~zero                      # kept units whose value matters to a neighbour
    changed = False
    for c in np.flatnonzero(~kept & ~zero):
        if live[max(0, c - half):c + half + 1].any():
            changed |= plan.keep(plan.units(x.id, [c]),
                                 f"LRN '{node.name}' normalises its neighbours with it "
                                 "(across channels)")
    if changed:
        return True
    # Removing unit c pulls the units after it one place closer: refuse when that brings two
    # kept non-zero units within a window that were not in each other's window before.
    present = list(range(x.n))
    for c in np.flatnonzero(~kept):
        k = present.index(c)
        left = [a for a in present[max(0, k - half - 1):k] if live[a]]
        right = [b for b in present[k + 1:k + half + 2] if live[b]]
        pos = {u: i for i, u in enumerate(present[max(0, k - half - 1):k + half + 2])}
        clash = any(b - a > half and pos[b] - pos[a] - 1 <= half for a in left for b in right)
        if clash:
            changed |= plan.keep(plan.units(x.id, [c]),
                                 f"kept as a zero spacer: without it LRN '{node.name}' "
                                 "would normalise two channels together that it did not")
        else:
            present.pop(k)
    return changed


_RULES = {"source": _barrier, "barrier": _barrier, "mixing": _barrier, "conv": _matrix,
          "ip": _matrix, "lrn": _lrn}
