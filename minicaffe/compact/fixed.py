"""Which units hold input-independent values, and those values (forward, in float64).

A unit is *fixed* when its value does not depend on the net's input: a filter whose weights are
all zero outputs its bias everywhere; a filter or neuron whose non-zero weights read fixed
units only outputs a fixed value too; a unit-wise layer maps a fixed unit to a fixed unit.
Each fixed unit carries its map, the array (len, *rest) every sample holds there. Maps are what
compaction folds into the consumers' biases (or, after a residual sum, into a Bias layer) when
it removes the unit.

Unit-wise layers are run for real on a one-sample float64 input (the fixed maps in place, zeros
elsewhere), so their exact Caffe numerics apply: a constant channel through AVE pooling with
padding comes out non-constant at the border, as it does in the net.
"""
import copy
import math

import numpy as np

from minicaffe import backend, ops
from minicaffe.blob import Blob
from minicaffe.catalog import create_layer


def compute(g):
    """Fill `version.fixed` of every version of graph `g`, in execution order."""
    for v in g.versions:
        v.fixed = {}
    for node in g.nodes:
        _RULES.get(node.kind, _nothing)(g, node)


def _nothing(g, node):
    return None


def sample_array(v, fill=None):
    """A (1, *shape[1:]) float64 array holding the fixed maps of version `v` (zeros elsewhere,
    or `fill` maps when given)."""
    x = np.zeros((1,) + tuple(v.shape[1:]), dtype=np.float64)
    for u, a in (v.fixed if fill is None else fill).items():
        x[0, v.bounds[u]:v.bounds[u + 1]] = a
    return x


def _maps_from(v, y, units):
    return {int(u): np.array(y[0, v.bounds[u]:v.bounds[u + 1]]) for u in units}


def run_layer(node, bottoms, n_tops=None):
    """Run a fresh TEST-phase copy of `node`'s layer on float64 arrays `bottoms` (batch 1), with
    the node's parameter arrays; returns the top arrays."""
    layer = create_layer(copy.deepcopy(node.lp), "TEST")
    bottom = []
    for a in bottoms:
        blob = Blob(a.shape, dtype=np.float64)
        blob.data[...] = backend.to_current(a)
        bottom.append(blob)
    top = [Blob((), dtype=np.float64) for _ in range(n_tops or len(node.tops))]
    layer.check_counts(bottom, top)
    layer.setup(bottom, top)
    for blob, array in zip(layer.blobs, node.blobs):
        blob.astype(np.float64)
        blob.data[...] = backend.to_current(np.asarray(array, dtype=np.float64).reshape(blob.shape))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    return [np.array(backend.asnumpy(t.data)) for t in top]


def _row_fixed(node, x):
    """Rows whose non-zero weights read fixed units of `x` only (all-zero rows included):
    those whose count of non-zero units equals their count over fixed units."""
    if "units_read" not in node.extra:
        node.extra["units_read"] = np.count_nonzero(node.nz, axis=1)
    fixed = np.flatnonzero(x.fixed_mask())
    return node.extra["units_read"] == np.count_nonzero(node.nz[:, fixed], axis=1)


def _conv(g, node):
    x, top = g.v(node.bottoms[0]), g.v(node.tops[0])
    rows = np.flatnonzero(_row_fixed(node, x))
    if not len(rows):
        return
    layer = node.layer
    geom = layer.geom
    bias = node.blobs[1].astype(np.float64) if layer.bias_term else np.zeros(layer.num_output)
    reads_fixed = node.nz[rows].any()
    if not reads_fixed:
        for r in rows:
            top.fixed[int(r)] = np.full((1, geom.oh, geom.ow), bias[r])
        return
    if layer.group == 1:             # the fixed rows only
        w = node.blobs[0][rows].astype(np.float64).reshape(len(rows), -1)
        y = ops.conv_forward_nchw(sample_array(x), geom, np.ascontiguousarray(w), 1,
                                  np.ascontiguousarray(bias[rows]))
        for k, r in enumerate(rows):
            top.fixed[int(r)] = y[0, k].reshape(1, geom.oh, geom.ow)
        return
    w = node.blobs[0].astype(np.float64).reshape(layer.num_output, -1)
    y = ops.conv_forward_nchw(sample_array(x), geom, np.ascontiguousarray(w), layer.group,
                              np.ascontiguousarray(bias))
    y = y.reshape(1, layer.num_output, geom.oh, geom.ow)
    top.fixed.update(_maps_from(top, y, rows))


def _ip(g, node):
    x, top = g.v(node.bottoms[0]), g.v(node.tops[0])
    rows = np.flatnonzero(_row_fixed(node, x))
    if not len(rows):
        return
    layer = node.layer
    bias = node.blobs[1].astype(np.float64) if layer.bias_term else np.zeros(layer.num_output)
    w = node.blobs[0].T if layer.transpose else node.blobs[0]
    units = sorted(x.fixed)
    cols = x.columns(units)
    xs = np.concatenate([np.zeros(0)] + [x.fixed[u].reshape(-1) for u in units])
    y = bias[rows] + w[np.ix_(rows, cols)].astype(np.float64) @ xs
    for r, value in zip(rows, y):
        top.fixed[int(r)] = np.array([value])


def _unitwise(g, node):
    x = g.v(node.bottoms[0])
    if not x.fixed:
        return
    ys = run_layer(node, [sample_array(x)])
    for vid, y in zip(node.tops, ys):
        top = g.v(vid)
        top.fixed.update(_maps_from(top, y, x.fixed))


def _lrn(g, node):
    """Across channels: output unit c is fixed when input unit c is fixed at zero (0 times any
    scale) or when every unit of its window is fixed."""
    x, top = g.v(node.bottoms[0]), g.v(node.tops[0])
    if not x.fixed:
        return
    half = (int(node.lp.lrn_param.local_size) - 1) // 2
    fixed, zero = x.fixed_mask(), x.zero_mask()
    units = [c for c in range(x.n)
             if zero[c] or fixed[max(0, c - half):c + half + 1].all()]
    if units:
        y = run_layer(node, [sample_array(x)])[0]
        top.fixed.update(_maps_from(top, y, units))


def _reshape(g, node):
    x, top = g.v(node.bottoms[0]), g.v(node.tops[0])
    for u, a in x.fixed.items():
        top.fixed[u] = a.reshape((top.unit_len(u),) + top.rest)


def _concat(g, node):
    top = g.v(node.tops[0])
    offset = 0
    for vid in node.bottoms:
        x = g.v(vid)
        for u, a in x.fixed.items():
            top.fixed[offset + u] = a
        offset += x.n


def _slice(g, node):
    x = g.v(node.bottoms[0])
    for vid, first in zip(node.tops, node.extra["first_unit"]):
        top = g.v(vid)
        for u in range(top.n):
            if first + u in x.fixed:
                top.fixed[u] = x.fixed[first + u]


def _eltwise(g, node):
    xs = [g.v(b) for b in node.bottoms]
    top = g.v(node.tops[0])
    op = node.lp.eltwise_param.operation
    coeff = node.extra.get("coeff") or [float(c) for c in node.lp.eltwise_param.coeff] \
        or [1.0] * len(xs)
    for u in range(top.n):
        maps = [x.fixed.get(u) for x in xs]
        if op == "PROD" and any(m is not None and not np.any(m) for m in maps):
            top.fixed[u] = np.zeros((top.unit_len(u),) + top.rest)
            continue
        if any(m is None for m in maps):
            continue
        if op == "SUM":
            top.fixed[u] = sum(c * m for c, m in zip(coeff, maps))
        elif op == "PROD":
            top.fixed[u] = math.prod(maps[1:], start=maps[0])
        else:
            top.fixed[u] = np.maximum.reduce(maps)


def _identity(g, node):
    x = g.v(node.bottoms[0])
    for vid in node.tops:
        g.v(vid).fixed.update(x.fixed)


_RULES = {"conv": _conv, "ip": _ip, "unitwise": _unitwise, "lrn": _lrn, "reshape": _reshape,
          "concat": _concat, "slice": _slice, "eltwise": _eltwise, "identity": _identity}
