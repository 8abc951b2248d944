"""The net as compaction sees it: layers (nodes) reading and writing blob *versions*, and the
channel *units* of every version.

A version is one value of a blob: an in-place layer writes a new version under the same name.
Axis 1 of a version (N, A, ...) is cut into units, the pieces that one filter or one output
neuron produces: `bounds` (n+1,) gives unit u the axis-1 range [bounds[u], bounds[u+1]), and
`rest` is the shape after axis 1. A convolution's output has one unit per filter; Flatten keeps
the units and widens them (a channel of pool2 becomes 16 inputs of ip1); Concat lines them up
with shifted offsets. A version without a channel axis (a loss) is opaque: one unit, and only
layers compaction does not look through may read it.

Every node gets a `kind`, the rule it follows:
  source    no bottoms (Input, Data...): its tops are the net's interface, always kept
  conv, ip  Convolution / InnerProduct: rows (filters, neurons) produce the units of the top
  unitwise  each unit of the top depends on the same unit of the bottom only (ReLU, Pooling,
            BatchNorm, Scale, Bias, Dropout, LRN within a channel, Split, ...)
  lrn       LRN across channels: units stay, but neighbours mix (see plan.py)
  reshape   Flatten / Reshape that keep the batch axis and whole units
  concat, slice   along axis 1
  eltwise   SUM / PROD / MAX of bottoms with the same units
  sink      Silence
  mixing    a layer compaction knows mixes channels (Softmax, losses, Accuracy): all its inputs
            stay, and nothing is warned about
  barrier   anything else, or a known layer in a configuration compaction does not follow
            (`why` says which): all its inputs stay, its outputs are opaque-but-kept, and a
            warning names it when it sits after a pruned producer or before a pruned consumer
"""
import math
from dataclasses import dataclass, field

import numpy as np

from minicaffe import backend

ELEMENTWISE = frozenset({"ReLU", "Sigmoid", "TanH", "AbsVal", "Power", "Dropout", "BNLL", "ELU",
                         "Exp", "Log", "Clip", "Swish", "Threshold", "PReLU"})
MIXING = frozenset({"Softmax", "SoftmaxWithLoss", "Accuracy", "ArgMax", "EuclideanLoss",
                    "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss",
                    "MultinomialLogisticLoss", "ContrastiveLoss", "Reduction"})
DATA_SOURCES = frozenset({"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData"})


@dataclass
class Version:
    """One value of a blob. `name` is the Net's blob name (split copies are renamed there);
    `emit_name` the name written to the prototxt."""

    id: int
    name: str
    emit_name: str
    shape: tuple
    producer: tuple = None              # (node index, top index)
    readers: list = field(default_factory=list)   # [(node index, bottom index)]
    bounds: np.ndarray = None           # (n+1,) axis-1 offsets of the units
    opaque: bool = False
    fixed: dict = field(default_factory=dict)     # unit -> float64 map (len, *rest)

    @property
    def n(self):
        return len(self.bounds) - 1

    @property
    def rest(self):
        return tuple(self.shape[2:]) if not self.opaque else ()

    def unit_len(self, u):
        return int(self.bounds[u + 1] - self.bounds[u])

    def indices(self, units):
        """Axis-1 indices covered by `units` (in order)."""
        units = np.asarray(units, dtype=np.int64).reshape(-1)
        starts = self.bounds[units]
        lens = self.bounds[units + 1] - starts
        if not len(units) or np.all(lens == 1):
            return starts.astype(np.int64)
        offsets = np.cumsum(lens) - lens                  # where each unit starts in the result
        return (np.repeat(starts - offsets, lens) + np.arange(int(lens.sum()))).astype(np.int64)

    def columns(self, units):
        """Per-sample flat indices of `units` (axis 1 and the axes after it, in memory order):
        the inputs of an InnerProduct that reads this version."""
        r = math.prod(self.rest)
        return (self.indices(units)[:, None] * r + np.arange(r)).reshape(-1)

    def fixed_mask(self):
        m = np.zeros(self.n, dtype=bool)
        m[list(self.fixed)] = True
        return m

    def zero_mask(self):
        """Units whose value is input-independent and exactly 0 everywhere."""
        m = np.zeros(self.n, dtype=bool)
        for u, a in self.fixed.items():
            m[u] = not np.any(a)
        return m


@dataclass
class Node:
    """One layer. `layer` is the Net's layer object (None for one compaction adds); `blobs`
    its parameter arrays (host NumPy); `lp` its LayerParameter (never modified here)."""

    index: int
    name: str
    type: str
    lp: object
    layer: object
    bottoms: list
    tops: list
    blobs: list
    implicit: bool = False
    kind: str = "barrier"
    why: str = ""
    nz: np.ndarray = None               # conv / ip: (rows, input units) any non-zero weight
    extra: dict = field(default_factory=dict)


class Graph:
    """Nodes in execution order and their versions; built by `from_net`."""

    def __init__(self, net):
        self.net = net
        self.dtype = np.dtype(net.dtype)
        self.nodes = []
        self.versions = []
        self.outputs = []                # version ids of the net's outputs
        self.inputs = []                 # version ids of the net's inputs
        self.warnings = []

    # -- building ------------------------------------------------------------------------
    def new_version(self, name, emit_name, shape, producer):
        v = Version(len(self.versions), name, emit_name, tuple(shape), producer)
        self.versions.append(v)
        return v.id

    def add_reader(self, vid, node_index, bottom_index):
        self.versions[vid].readers.append((node_index, bottom_index))

    def v(self, vid):
        return self.versions[vid]

    def renumber(self):
        """Recompute node indices, producers and readers after nodes were added or changed."""
        for v in self.versions:
            v.producer, v.readers = None, []
        for i, node in enumerate(self.nodes):
            node.index = i
            for b, vid in enumerate(node.bottoms):
                self.versions[vid].readers.append((i, b))
            for j, vid in enumerate(node.tops):
                self.versions[vid].producer = (i, j)

    def layer_names(self):
        return {node.name for node in self.nodes}


def _replay_shapes(net):
    """Top shapes of every layer right after it ran (an in-place Flatten or Reshape changes a
    blob's shape, so the blobs' present shapes are not enough)."""
    shapes = []
    for layer, bottom, top in zip(net.layers, net._bottom_vecs, net._top_vecs):
        layer.reshape(bottom, top)
        shapes.append([tuple(t.shape) for t in top])
    return shapes


def from_net(net):
    """The Graph of `net` with every version's units and every node's kind."""
    g = Graph(net)
    shapes = _replay_shapes(net)
    current = {}
    for i, layer in enumerate(net.layers):
        lp = layer.layer_param
        implicit = layer.name in net._implicit_splits
        bottoms = []
        for b, name in enumerate(net._bottom_names[i]):
            vid = current[name]
            bottoms.append(vid)
            g.add_reader(vid, i, b)
        tops = []
        for j, name in enumerate(net._top_names[i]):
            # A split's copies are written as the blob they copy (the Net inserts the split again).
            emit = g.v(bottoms[0]).emit_name if implicit else lp.top[j]
            tops.append(g.new_version(name, emit, shapes[i][j], (i, j)))
            current[name] = tops[-1]
        blobs = [np.asarray(backend.asnumpy(b.data)) for b in layer.blobs]
        g.nodes.append(Node(i, layer.name, layer.type, lp, layer, bottoms, tops, blobs,
                            implicit=implicit))
        if layer.type == "Input" or (not bottoms and layer.type in DATA_SOURCES):
            g.inputs.extend(tops)
    g.outputs = [current[name] for name in net.outputs]
    for node in g.nodes:
        classify(g, node)
    return g


# -- kinds and units ----------------------------------------------------------------------
def _arange_bounds(n):
    return np.arange(n + 1, dtype=np.int64)


def units_nonzero(w2d, bounds, scale=1):
    """(rows, units) bool: row r of `w2d` (rows, K) has a non-zero in unit u's columns
    [bounds[u]*scale, bounds[u+1]*scale). Equal-width units take one reshape (several times
    faster than reduceat on a 4096 x 9216 fc6)."""
    rows, n = w2d.shape[0], len(bounds) - 1
    if n == 0:
        return np.zeros((rows, 0), dtype=bool)
    widths = np.diff(bounds) * scale
    if bounds[0] == 0 and bounds[-1] * scale == w2d.shape[1] and np.all(widths == widths[0]):
        return (w2d.reshape(rows, n, int(widths[0])) != 0).any(axis=2)
    return np.logical_or.reduceat(w2d != 0, bounds[:-1] * scale, axis=1)


def _set_channel_units(g, vid):
    """Units of a version that nothing is known about: one per axis-1 entry (opaque if none)."""
    v = g.v(vid)
    if len(v.shape) >= 2:
        v.bounds = _arange_bounds(v.shape[1])
    else:
        v.bounds = np.array([0, 1], dtype=np.int64)
        v.opaque = True


def _barrier(g, node, kind, why=""):
    node.kind, node.why = kind, why
    for vid in node.tops:
        _set_channel_units(g, vid)


def _canonical(axis, ndim):
    axis = int(axis)
    return axis + ndim if axis < 0 else axis


def classify(g, node):
    """Set node.kind (and node.why for barriers) and the units of its tops."""
    t = node.type
    bottoms = [g.v(b) for b in node.bottoms]
    if not node.bottoms:
        return _barrier(g, node, "source")
    if t == "Silence":
        node.kind = "sink"
        return None
    if t in MIXING:
        return _barrier(g, node, "mixing")
    opaque = [b.name for b in bottoms if b.opaque]
    if opaque:
        return _barrier(g, node, "barrier", f"its input '{opaque[0]}' has no channel axis")
    handler = _HANDLERS.get(t)
    if handler is None:
        return _barrier(g, node, "barrier", "compaction has no rule for this layer type")
    why = handler(g, node, bottoms)
    if why:
        return _barrier(g, node, "barrier", why)
    return None


def _same_units(g, node, bottoms, kind="unitwise"):
    x = bottoms[0]
    for vid in node.tops:
        v = g.v(vid)
        if len(v.shape) < 2 or v.shape[:2] != x.shape[:2]:
            return f"top '{v.name}' {v.shape} does not keep the (N, C) of '{x.name}' {x.shape}"
    for vid in node.tops:
        g.v(vid).bounds = x.bounds.copy()
    node.kind = kind
    return None


def _unitwise(g, node, bottoms):
    if len(bottoms) != 1:
        return "a second bottom (a computed operand) is not followed"
    return _same_units(g, node, bottoms)


def _scale_or_bias(g, node, bottoms):
    if len(bottoms) != 1:
        return "a second bottom (a computed operand) is not followed"
    p = node.lp.scale_param if node.type == "Scale" else node.lp.bias_param
    if int(p.num_axes) != 0 and _canonical(p.axis, len(bottoms[0].shape)) == 0:
        return "its parameter spans the batch axis"
    return _same_units(g, node, bottoms)


def _lrn(g, node, bottoms):
    if node.lp.lrn_param.norm_region == "WITHIN_CHANNEL":
        return _same_units(g, node, bottoms)
    if not np.array_equal(bottoms[0].bounds, _arange_bounds(bottoms[0].shape[1])):
        return "its input's units are not single channels"
    return _same_units(g, node, bottoms, kind="lrn")


def _mvn(g, node, bottoms):
    if node.lp.mvn_param.across_channels:
        node.kind = "mixing"
        for vid in node.tops:
            _set_channel_units(g, vid)
        return None
    return _same_units(g, node, bottoms)


def _conv(g, node, bottoms):
    layer, x = node.layer, bottoms[0]
    C, group = layer.channels, layer.group
    cg = C // group
    b = x.bounds
    if np.any(b[:-1] // cg != (b[1:] - 1) // cg):
        return f"a unit of its input '{x.name}' straddles two of its {group} groups"
    w = node.blobs[0]
    M = w.shape[0]
    per_channel = (w.reshape(M, cg, -1) != 0).any(axis=2)         # (M, C/g)
    mg = M // group
    full = np.zeros((M, C), dtype=bool)
    for gi in range(group):
        full[gi * mg:(gi + 1) * mg, gi * cg:(gi + 1) * cg] = per_channel[gi * mg:(gi + 1) * mg]
    node.nz = units_nonzero(full, b)
    g.v(node.tops[0]).bounds = _arange_bounds(M)
    node.kind = "conv"
    return None


def _ip(g, node, bottoms):
    layer, x = node.layer, bottoms[0]
    if layer.axis != 1:
        return f"axis {layer.axis}: only axis 1 (one sample per row) is followed"
    w = node.blobs[0]
    w = w.T if layer.transpose else w                              # (num_output, K)
    node.nz = units_nonzero(w, x.bounds, math.prod(x.rest))
    g.v(node.tops[0]).bounds = _arange_bounds(w.shape[0])
    node.kind = "ip"
    return None


def _reshape(g, node, bottoms):
    x, top = bottoms[0], g.v(node.tops[0])
    if node.type == "Flatten":
        if _canonical(node.lp.flatten_param.axis, len(x.shape)) < 1:
            return "it merges the batch axis"
    else:
        p = node.lp.reshape_param
        dims = [int(d) for d in p.shape.dim]
        start = int(p.axis) if int(p.axis) >= 0 else len(x.shape) + int(p.axis) + 1
        if start == 0 and (not dims or dims[0] != 0):
            return "its shape does not copy the batch axis (dim 0 must be 0)"
    if len(top.shape) < 2 or top.shape[0] != x.shape[0]:
        return f"top '{top.name}' {top.shape} does not keep the batch axis of {x.shape}"
    r_in, p_out = math.prod(x.rest), math.prod(top.shape[2:])
    flat = x.bounds * r_in
    if p_out == 0 or np.any(flat % p_out):
        return (f"top '{top.name}' {top.shape} cuts the units of '{x.name}' {x.shape} (a unit "
                "must stay whole entries of axis 1)")
    top.bounds = flat // p_out
    node.kind = "reshape"
    return None


def _concat(g, node, bottoms):
    p = node.lp.concat_param
    axis = int(p.concat_dim) if p.has("concat_dim") else int(p.axis)
    if _canonical(axis, len(bottoms[0].shape)) != 1:
        return f"axis {axis}: only concatenation along channels (axis 1) is followed"
    bounds, offset = [0], 0
    for b in bottoms:
        bounds.extend((b.bounds[1:] + offset).tolist())
        offset += int(b.shape[1])
    g.v(node.tops[0]).bounds = np.array(bounds, dtype=np.int64)
    node.kind = "concat"
    return None


def _slice(g, node, bottoms):
    p = node.lp.slice_param
    x = bottoms[0]
    axis = int(p.slice_dim) if p.has("slice_dim") else int(p.axis)
    if _canonical(axis, len(x.shape)) != 1:
        return f"axis {axis}: only slicing along channels (axis 1) is followed"
    lo = 0
    ranges = []
    for vid in node.tops:
        n = g.v(vid).shape[1]
        ranges.append((lo, lo + n))
        lo += n
    b = x.bounds
    first = []
    for vid, (a, z) in zip(node.tops, ranges):
        ua, uz = np.searchsorted(b, a), np.searchsorted(b, z)
        if ua >= len(b) or b[ua] != a or uz >= len(b) or b[uz] != z:
            return f"slice range [{a}, {z}) cuts a unit of its input '{x.name}'"
        g.v(vid).bounds = b[ua:uz + 1] - a
        first.append(int(ua))
    node.extra["first_unit"] = first
    node.kind = "slice"
    return None


def _eltwise(g, node, bottoms):
    b0 = bottoms[0].bounds
    if any(not np.array_equal(b.bounds, b0) for b in bottoms[1:]):
        return "its inputs are cut into units differently"
    g.v(node.tops[0]).bounds = b0.copy()
    node.kind = "eltwise"
    return None


def _split(g, node, bottoms):
    for vid in node.tops:
        g.v(vid).bounds = bottoms[0].bounds.copy()
    node.kind = "unitwise"
    return None


_HANDLERS = {t: _unitwise for t in ELEMENTWISE}
_HANDLERS.update({
    "BatchNorm": _unitwise, "Pooling": _unitwise, "Scale": _scale_or_bias,
    "Bias": _scale_or_bias, "LRN": _lrn, "MVN": _mvn, "Convolution": _conv,
    "InnerProduct": _ip, "Flatten": _reshape, "Reshape": _reshape, "Concat": _concat,
    "Slice": _slice, "Eltwise": _eltwise, "Split": _split,
})
