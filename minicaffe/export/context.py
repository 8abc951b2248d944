"""What a converter sees of the layer it exports: its ONNX inputs, the shapes of its blobs, the
names its outputs should carry, and helpers that name nodes after the layer."""
from dataclasses import dataclass

import numpy as np

from minicaffe.errors import ExportError


@dataclass(frozen=True)
class Shape:
    """A blob's shape in the net (`dims`) and which axes follow the batch (`dynamic`): the
    exporter reshapes the net to a second batch size and marks the axes that changed."""

    dims: tuple
    probe: tuple

    @property
    def dynamic(self):
        return tuple(a != b for a, b in zip(self.dims, self.probe))

    @property
    def ndim(self):
        return len(self.dims)

    def __iter__(self):
        return iter(self.dims)

    def __getitem__(self, i):
        return self.dims[i]

    def __len__(self):
        return len(self.dims)


def where(layer_param):
    """`path:line:col: ` of a layer in its prototxt ('' for one built in code)."""
    pos = getattr(layer_param, "position", None)
    if not pos or not pos[0]:
        return ""
    return f"{pos[0]}:{pos[1]}:{pos[2]}: "


class LayerContext:
    """One layer's view of the export.

    Attributes: `graph` (graph.Graph), `layer` (the minicaffe Layer, set up and reshaped),
    `param` (its LayerParameter), `bottoms` (ONNX value names, one per bottom),
    `bottom_shapes` / `top_shapes` (Shape per blob), `opset`, `report` (notes go there).
    A converter returns one ONNX value name per top; `top(j)` is the name top j should carry
    (the Caffe blob name where the graph can use it), so the last node a converter adds for a
    top writes `out=ctx.top(j)`.
    """

    def __init__(self, graph, layer, bottoms, bottom_shapes, top_shapes, top_names, report):
        self.graph = graph
        self.layer = layer
        self.param = layer.layer_param
        self.name = layer.name
        self.type = layer.type
        self.bottoms = list(bottoms)
        self.bottom_shapes = list(bottom_shapes)
        self.top_shapes = list(top_shapes)
        self._top_names = list(top_names)
        self.report = report
        self.opset = graph.opset

    # -- naming -------------------------------------------------------------------------------
    def top(self, j=0):
        """The ONNX name top j should be written to."""
        return self._top_names[j]

    def hint(self, what=None):
        return self.name if what is None else f"{self.name}/{what}"

    # -- errors and notes ---------------------------------------------------------------------
    def error(self, message):
        """ExportError naming this layer (and where it was written, when known)."""
        return ExportError(f"{where(self.param)}layer '{self.name}' ({self.type}): {message}")

    def note(self, message):
        self.report.notes.append(f"layer '{self.name}' ({self.type}): {message}")

    # -- graph helpers named after the layer --------------------------------------------------
    def node(self, op, inputs, out=None, what=None, **attrs):
        """Add `op`; `out` is an output name (e.g. ctx.top(0)), a list of names or None (fresh)."""
        hint = self.hint(what or op)
        return self.graph.node(op, inputs, out, name=hint, hint=hint, **attrs)

    def const(self, array, what="const", dtype=None):
        return self.graph.const(array, self.hint(what), dtype=dtype)

    def scalar(self, value, what="scalar"):
        return self.graph.const(np.float32(value), self.hint(what))

    def ints(self, values, what="ints"):
        return self.graph.ints(values, self.hint(what))

    def weight(self, j):
        """Param blob j of the layer as a float32 NumPy array."""
        return np.asarray(self.layer.blobs[j].data, dtype=np.float32)

    # -- shapes -------------------------------------------------------------------------------
    def reshape(self, x, src, dst, out=None, what="Reshape"):
        """Reshape value `x` of Shape `src` to Shape `dst` without fixing the batch: an axis
        of `dst` that follows the batch is copied from the same axis of `src` (ONNX's 0) when
        it equals it at both batch sizes, else it is the one inferred axis (-1).

        Raises ExportError when `dst` has several batch-dependent axes that cannot be copied.
        """
        target, inferred = [], []
        for k, (d, p) in enumerate(zip(dst.dims, dst.probe)):
            if d == p:
                if d == 0:
                    raise self.error(f"cannot reshape to {dst.dims}: ONNX's Reshape reads a 0 "
                                     "dimension as 'copy the input's'")
                target.append(int(d))
            elif k < src.ndim and src.dims[k] == d and src.probe[k] == p:
                target.append(0)
            else:
                target.append(-1)
                inferred.append(k)
        if len(inferred) > 1:
            raise self.error(f"the reshape {src.dims} -> {dst.dims} moves the batch into "
                             f"several axes ({inferred}); export with a fixed batch "
                             "(dynamic_batch=False / --static-batch)")
        return self.graph.reshape(x, target, out=out, name=self.hint(what))

    def static(self, what, shape):
        """ExportError unless `shape` (a Shape) is free of the batch (a constant would fix it)."""
        if any(shape.dynamic):
            raise self.error(f"{what} depends on the batch size; export with a fixed batch "
                             "(dynamic_batch=False / --static-batch)")
