"""Writing the smaller net: a NetParameter and its weights from a graph and its plan.

Per layer:
  Convolution    kept filters x kept input channels of its kept groups (`num_output`, `group`
                 rewritten); the removed fixed inputs it read are folded into its bias (a
                 constant c under a filter w adds c * sum(w) when there is no padding);
                 `conv_mode: LOWERED_CCNMM` when zero rows or shape fibres are left inside
                 (the compacted lowering skips them), LOWERED_GEMM otherwise
  InnerProduct   kept neurons x the inputs of kept units; removed fixed inputs folded exactly
                 (bias += W[:, unit] @ map)
  BatchNorm, Scale, Bias, PReLU   their per-channel parameters sliced to the kept channels
  Reshape        shape rewritten as (0, -1, rest...) when channels went
  Concat, Slice  inputs / outputs that lost every unit dropped, slice points moved
  Eltwise        as rewrite.py left it; a pass-through becomes nothing (later layers read the
                 shortcut) when nothing else reads the shortcut, a copy (Power) otherwise
  data layers    become an Input layer of the same top shapes (a deploy net)
A layer whose outputs all went is not written; nor are the splits the Net inserts.
"""
import copy

import numpy as np

from minicaffe.compact.graph import DATA_SOURCES
from minicaffe.prototxt import (BlobShape, InputParameter, LayerParameter, NetParameter,
                                PowerParameter)


def _dead(plan, g, node):
    """Whether `node` computes nothing anything keeps (the Net's own splits included: they
    are never written, but they pass reads on to their bottom's producer)."""
    k = node.kind
    if k in ("source", "barrier", "mixing"):
        from minicaffe.compact.plan import barrier_live  # noqa: PLC0415 (same package)

        return not barrier_live(plan, g, node)
    if k == "sink":
        return not any(plan.is_kept(b).any() for b in node.bottoms)
    return not any(plan.is_kept(t).any() for t in node.tops)


class Emitter:
    """Builds the written layers and weights; `info` collects what happened per layer."""

    def __init__(self, g, plan, deploy=True):
        self.g, self.plan, self.deploy = g, plan, deploy
        self.dead = [_dead(plan, g, node) for node in g.nodes]
        self._drop_unread()
        self.rename = {}
        self.layers, self.weights = [], []
        self.info = {}                   # layer name -> dict (conv / ip details, notes)

    def kept(self, vid):
        return self.plan.is_kept(vid)

    def _drop_unread(self):
        """Layers whose outputs no written layer reads (and that are not the net's outputs)
        go too: a Split's branch may lose its consumer while the other branch keeps the units.
        `self.read` holds the versions written layers read."""
        outputs = set(self.g.outputs)
        self.read = set()
        for node in reversed(self.g.nodes):
            i = node.index
            if self.dead[i]:
                continue
            if node.kind in ("source", "sink") or not node.tops or \
                    any(t in outputs or t in self.read for t in node.tops):
                self.read.update(node.bottoms)
            else:
                self.dead[i] = True

    def run(self):
        for node in self.g.nodes:
            if node.implicit:
                continue
            if self.dead[node.index]:
                self.info.setdefault(node.name, {})["removed"] = True
                continue
            lp, blobs = getattr(self, "_" + node.kind, self._as_is)(node)
            if lp is None:
                continue
            lp.bottom = [self.rename.get(b, b) for b in lp.bottom]
            lp.top = [self.rename.get(t, t) for t in lp.top]
            if lp.has("include"):
                lp.clear("include")
            if lp.has("exclude"):
                lp.clear("exclude")
            self.layers.append(lp)
            if blobs and any(tuple(np.shape(a)) != tuple(np.shape(b))
                             for a, b in zip(blobs, node.blobs)):
                # A shared parameter (`param { name }`) is no longer the same blob everywhere.
                for spec in lp.param:
                    if spec.has("name"):
                        spec.clear("name")
            if blobs:
                dtype = self.g.dtype
                # Sliced arrays are new already; unchanged ones were copied by their kind.
                self.weights.append((lp.name, lp.type,
                                     [np.asarray(b, dtype=dtype) for b in blobs]))
        self._silence_leftovers()
        net = self.g.net
        param = NetParameter(name=net.name, layer=self.layers)
        if net.force_backward:
            param.force_backward = True
        return param, self.weights

    def _silence_leftovers(self):
        """Blobs produced and read by nobody that the original net did not output (a top of
        a layer compaction does not see through, whose reader went) go into a Silence layer,
        so that the written net has the original's outputs."""
        outputs = {self.rename.get(self.g.v(v).emit_name, self.g.v(v).emit_name)
                   for v in self.g.outputs}
        available = {}
        for lp in self.layers:
            for b in lp.bottom:
                available.pop(b, None)
            for t in lp.top:
                available[t] = True
        extra = [name for name in available if name not in outputs]
        if extra:
            names = {lp.name for lp in self.layers}
            name, k = "compact_silence", 1
            while name in names:
                k += 1
                name = f"compact_silence{k}"
            self.layers.append(LayerParameter(name=name, type="Silence", bottom=extra))

    # -- helpers ------------------------------------------------------------------------------
    def _lp(self, node):
        lp = copy.deepcopy(node.lp)
        lp.bottom = [self.g.v(b).emit_name for b in node.bottoms]
        lp.top = [self.g.v(t).emit_name for t in node.tops]
        return lp

    def _as_is(self, node):
        lp = self._lp(node)
        if self.deploy and node.kind == "source" and node.type in DATA_SOURCES:
            shapes = [BlobShape(dim=list(self.g.v(t).shape)) for t in node.tops]
            lp = LayerParameter(name=node.name, type="Input", top=lp.top,
                                input_param=InputParameter(shape=shapes))
            self.info.setdefault(node.name, {})["note"] = f"{node.type} layer written as Input"
        return lp, [np.array(b) for b in node.blobs]

    def _channel_index(self, vid):
        v = self.g.v(vid)
        return v.indices(np.flatnonzero(self.kept(vid)))

    # -- kinds ----------------------------------------------------------------------------------
    def _unitwise(self, node):
        lp = self._lp(node)
        if node.type == "Split":
            tops = [t for t in node.tops if t in self.read or t in self.g.outputs]
            lp.top = [self.g.v(t).emit_name for t in tops]
        x = self.g.v(node.bottoms[0])
        kept = self.kept(x.id)
        blobs = [np.array(b) for b in node.blobs]
        if kept.all() or not blobs:
            return lp, blobs
        idx = self._channel_index(x.id)
        t = node.type
        if t == "BatchNorm":
            blobs = [blobs[0][idx], blobs[1][idx], blobs[2]]
        elif t in ("Scale", "Bias"):
            p = lp.scale_param if t == "Scale" else lp.bias_param
            axis = int(p.axis) + (len(x.shape) if int(p.axis) < 0 else 0)
            if int(p.num_axes) != 0 and axis == 1:
                blobs = [b[idx] for b in blobs]
        elif t == "PReLU":
            if not lp.prelu_param.channel_shared:
                blobs = [blobs[0][idx]]
        return lp, blobs

    _lrn = _unitwise

    def _reshape(self, node):
        lp = self._lp(node)
        x = self.g.v(node.bottoms[0])
        if node.type == "Reshape" and not self.kept(x.id).all():
            top = self.g.v(node.tops[0])
            lp.reshape_param.axis = 0
            lp.reshape_param.num_axes = -1
            lp.reshape_param.shape = BlobShape(dim=[0, -1] + list(top.shape[2:]))
        return lp, []

    def _concat(self, node):
        lp = self._lp(node)
        lp.bottom = [self.g.v(b).emit_name for b in node.bottoms if self.kept(b).any()]
        return lp, []

    def _slice(self, node):
        lp = self._lp(node)
        tops = [t for t in node.tops if self.kept(t).any()]
        sizes = [len(self._channel_index(t)) for t in tops]
        lp.top = [self.g.v(t).emit_name for t in tops]
        if len(tops) != len(node.tops) or not self.kept(node.bottoms[0]).all():
            lp.slice_param.clear("slice_dim")
            lp.slice_param.axis = 1
            lp.slice_param.slice_point = [int(s) for s in np.cumsum(sizes)[:-1]]
        return lp, []

    def _eltwise(self, node):
        lp = self._lp(node)
        if "coeff" in node.extra and lp.eltwise_param.coeff:
            lp.eltwise_param.coeff = list(node.extra["coeff"])
        if "dropped" in node.extra:
            self.info.setdefault(node.name, {})["note"] = (
                "input(s) " + ", ".join(f"'{n}'" for n in node.extra["dropped"])
                + " dropped: input-independent, added as a constant")
        return lp, []

    def _identity(self, node):
        s, t = self.g.v(node.bottoms[0]), self.g.v(node.tops[0])
        info = self.info.setdefault(node.name, {})
        info["note"] = ("input(s) " + ", ".join(f"'{n}'" for n in node.extra.get("dropped", []))
                        + " dropped: input-independent zero; the sum is its other input")
        if s.emit_name == t.emit_name:
            return None, []
        if t.id not in self.g.outputs and not self._others_read(s, node):
            self.rename[t.emit_name] = self.rename.get(s.emit_name, s.emit_name)
            info["removed"] = True
            return None, []
        lp = LayerParameter(name=node.name, type="Power", bottom=[s.emit_name],
                            top=[t.emit_name], power_param=PowerParameter())
        return lp, []

    def _others_read(self, s, node):
        """Whether a written layer other than `node` reads version `s` (through the Net's
        splits too), so that renaming could let an in-place layer overwrite it."""
        family = {s.id}
        prod = s.producer
        if prod is not None and self.g.nodes[prod[0]].implicit:
            split = self.g.nodes[prod[0]]
            family |= set(split.bottoms) | set(split.tops)
        for vid in family:
            for i, _ in self.g.v(vid).readers:
                other = self.g.nodes[i]
                if other is not node and not other.implicit and not self.dead[i]:
                    return True
        return False

    def _conv(self, node):
        return _Matrix(self, node).conv()

    def _ip(self, node):
        return _Matrix(self, node).ip()


def _take(w, rows, cols):
    """w[rows][:, cols]: whole rows first, then np.take along the columns (2-3x faster than a
    gather on both axes, or than w[:, cols], on fc6/fc7-sized weights)."""
    if len(rows) == w.shape[0] and len(cols) == w.shape[1]:
        return w.copy()
    sub = w if len(rows) == w.shape[0] else w[rows]
    return sub if len(cols) == w.shape[1] else np.take(sub, cols, axis=1)


class _Matrix:
    """Slicing and folding of one Convolution / InnerProduct."""

    def __init__(self, em, node):
        self.em, self.node, self.g = em, node, em.g
        self.x = self.g.v(node.bottoms[0])
        self.rows = np.flatnonzero(em.kept(node.tops[0]))
        self.in_kept = em.kept(self.x.id)
        self.layer = node.layer

    def _bias(self):
        node = self.node
        if self.layer.bias_term:
            return node.blobs[1].astype(np.float64)
        return np.zeros(self.layer.num_output)

    def _folded_units(self):
        """Removed input units that are fixed, non-zero and read by a kept row."""
        read = self.node.nz[self.rows].any(axis=0)
        return [u for u in np.flatnonzero(~self.in_kept & read)
                if u in self.x.fixed and np.any(self.x.fixed[u])]

    def _record(self, lp, w_rows, w_cols_in, folded, bias_added, groups=1):
        node, x = self.node, self.x
        info = self.em.info.setdefault(node.name, {})
        info.update({"rows_kept": [int(r) for r in self.rows],
                     "inputs_kept": [int(u) for u in np.flatnonzero(self.in_kept)],
                     "folded_units": [int(u) for u in folded], "bias_added": bias_added,
                     "group_after": groups, "input": x.emit_name})
        return lp

    def conv(self):
        node, layer, x = self.node, self.layer, self.x
        lp = self.em._lp(node)
        group, M, C = layer.group, layer.num_output, layer.channels
        mg, cg = M // group, C // group
        w = node.blobs[0]
        channels_kept = x.indices(np.flatnonzero(self.in_kept))
        bias = self._bias()
        folded = self._folded_units()
        for u in folded:
            a = x.fixed[u]                       # (len, H, W), constant per channel
            gi = int(x.bounds[u]) // cg
            rows_g = self.rows[(self.rows >= gi * mg) & (self.rows < (gi + 1) * mg)]
            for k, ch in enumerate(range(x.bounds[u], x.bounds[u + 1])):
                value = float(a[k].flat[0])
                bias[rows_g] += value * w[rows_g, ch - gi * cg].astype(np.float64).sum(axis=(1, 2))
        parts, alive = [], []
        for gi in range(group):
            r = self.rows[(self.rows >= gi * mg) & (self.rows < (gi + 1) * mg)]
            c = channels_kept[(channels_kept >= gi * cg) & (channels_kept < (gi + 1) * cg)]
            if not len(r) and not len(c):
                continue
            alive.append(gi)
            parts.append(w[r][:, c - gi * cg])
        new_w = np.concatenate(parts, axis=0)
        p = lp.convolution_param
        p.num_output = int(new_w.shape[0])
        p.group = len(alive)
        new_b = bias[self.rows]
        bias_added = not layer.bias_term and bool(np.any(new_b))
        if bias_added:
            p.bias_term = True
        blobs = [new_w] + ([new_b] if layer.bias_term or bias_added else [])
        lowered = new_w.reshape(len(alive), new_w.shape[0] // len(alive), -1)
        nzm = lowered != 0
        sparse = bool((~nzm.any(axis=2)).any() or (~nzm.any(axis=1)).any())
        p.conv_mode = "LOWERED_CCNMM" if sparse else "LOWERED_GEMM"
        self._record(lp, self.rows, channels_kept, folded, bias_added, len(alive))
        return lp, blobs

    def ip(self):
        node, layer, x = self.node, self.layer, self.x
        lp = self.em._lp(node)
        w = node.blobs[0].T if layer.transpose else node.blobs[0]        # (M, K)
        cols = x.columns(np.flatnonzero(self.in_kept))
        bias = self._bias()
        folded = self._folded_units()
        for u in folded:
            span = x.columns([u])
            bias[self.rows] += w[np.ix_(self.rows, span)].astype(np.float64) @ \
                x.fixed[u].reshape(-1)
        new_w = _take(w, self.rows, cols)
        new_b = bias[self.rows]
        lp.inner_product_param.num_output = int(len(self.rows))
        bias_added = not layer.bias_term and bool(np.any(new_b))
        if bias_added:
            lp.inner_product_param.bias_term = True
        blobs = [new_w.T.copy() if layer.transpose else new_w]
        if layer.bias_term or bias_added:
            blobs.append(new_b)
        self._record(lp, self.rows, cols, folded, bias_added)
        return lp, blobs
