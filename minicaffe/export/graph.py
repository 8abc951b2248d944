"""An ONNX graph under construction: nodes, initializers and unique value names.

The only module of the exporter that touches the `onnx` package (imported when a Graph is
made, so `import minicaffe.export` works without it). Converters call `node`, `const` and
the opset-aware helpers (`reduce`, `split`, `unsqueeze`, `pad`, `clip`), never `onnx.helper`.
"""
import numpy as np

from minicaffe.errors import ExportError

#: Opsets the exporter writes: 13 (Softmax on one axis, Split/Squeeze/ReduceSum taking their
#: sizes and axes as inputs) up to what both onnx and ONNX Runtime here understand.
MIN_OPSET = 13
DEFAULT_OPSET = 17


def load_onnx():
    """The `onnx` module, or ImportError saying how to install it."""
    try:
        import onnx  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package: pip install 'minicaffe[onnx]' "
                          f"({exc})") from None
    return onnx


def max_opset():
    """The newest default-domain opset the installed onnx package defines."""
    return int(load_onnx().defs.onnx_opset_version())


class Graph:
    """Nodes in topological order, named initializers, and a set of used value names.

    `opset` decides how version-dependent operators are written (axes and sizes as inputs or
    attributes); values are float32 unless a constant says otherwise.
    """

    def __init__(self, opset):
        self.onnx = load_onnx()
        top = max_opset()
        if not MIN_OPSET <= opset <= top:
            raise ExportError(f"opset {opset} is not supported: the exporter writes opsets "
                              f"{MIN_OPSET}..{top} (the installed onnx package's newest)")
        self.opset = int(opset)
        self.nodes = []
        self.initializers = []
        self._names = set()
        self._consts = {}          # (dtype, shape, bytes) -> name, so equal constants are shared
        self._node_names = set()

    def child(self):
        """A Graph for a subgraph (a Scan body): its own nodes; names, constants and
        initializers shared with this one (a body reads the outer graph's initializers)."""
        sub = Graph.__new__(Graph)
        sub.__dict__.update(self.__dict__)
        sub.nodes = []
        return sub

    def make_graph(self, name, inputs, outputs):
        """An onnx GraphProto of this graph's nodes (no initializers: a subgraph's come from
        the outer scope). inputs / outputs: (name, dims) pairs, float32."""
        helper, tensor = self.onnx.helper, self.onnx.TensorProto
        return helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(n, tensor.FLOAT, d) for n, d in inputs],
            [helper.make_tensor_value_info(n, tensor.FLOAT, d) for n, d in outputs])

    # -- names --------------------------------------------------------------------------------
    def reserve(self, name):
        """Claim `name` exactly (a graph input or a designated output); ExportError when taken."""
        if name in self._names:
            raise ExportError(f"ONNX value name '{name}' is used twice")
        self._names.add(name)
        return name

    def fresh(self, hint):
        """A new unique value name starting with `hint`."""
        name, k = hint, 1
        while name in self._names:
            name = f"{hint}_{k}"
            k += 1
        self._names.add(name)
        return name

    def _node_name(self, hint):
        name, k = hint, 1
        while name in self._node_names:
            name = f"{hint}_{k}"
            k += 1
        self._node_names.add(name)
        return name

    # -- building blocks ----------------------------------------------------------------------
    def const(self, array, hint="const", dtype=None):
        """An initializer holding `array` (float32 unless it is an integer or bool array, which
        become int64 / bool); equal small constants (axes, shapes, scalars) share one initializer.
        Returns its name."""
        a = np.asarray(array)
        if dtype is not None:
            a = a.astype(dtype)
        elif a.dtype.kind == "f":
            a = a.astype(np.float32)
        elif a.dtype.kind in "iu":
            a = a.astype(np.int64)
        a = np.ascontiguousarray(a)
        key = (a.dtype.str, a.shape, a.tobytes()) if a.size <= 64 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(a, name))
        if key is not None:
            self._consts[key] = name
        return name

    def ints(self, values, hint="ints"):
        """A 1-D int64 initializer (axes, sizes, shapes, pads)."""
        return self.const(np.asarray(list(values), dtype=np.int64).reshape(-1), hint)

    def scalar(self, value, hint="scalar"):
        """A float32 scalar initializer (shape (), broadcasts everywhere)."""
        return self.const(np.float32(value), hint)

    def node(self, op, inputs, outputs=None, name=None, hint=None, **attrs):
        """Append node `op`(inputs) -> outputs. `outputs`: a list of names, a single name, or
        None / an int n for 1 / n fresh names (from `hint`). Returns the output name, or the
        list of names when there are several. Attributes whose value is None are left out."""
        hint = hint or (name or op)
        if outputs is None:
            outputs = [self.fresh(hint)]
        elif isinstance(outputs, int):
            outputs = [self.fresh(f"{hint}_{k}") for k in range(outputs)]
        elif isinstance(outputs, str):
            outputs = [outputs]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = self.onnx.helper.make_node(op, list(inputs), list(outputs),
                                          name=self._node_name(name or hint), **attrs)
        self.nodes.append(node)
        return outputs[0] if len(outputs) == 1 else list(outputs)

    # -- opset-aware helpers ------------------------------------------------------------------
    def reduce(self, op, x, axes, keepdims=1, out=None, name=None):
        """ReduceSum / ReduceMean / ReduceMax / ... over `axes`: the axes are an input from
        opset 18 on (ReduceSum: 13), an attribute before."""
        axes = [int(a) for a in axes]
        if op == "ReduceSum" or self.opset >= 18:
            return self.node(op, [x, self.ints(axes, "axes")], out, name=name, keepdims=keepdims)
        return self.node(op, [x], out, name=name, axes=axes, keepdims=keepdims)

    def split(self, x, sizes, axis, outputs, name=None):
        """Split `x` along `axis` into pieces of `sizes` (sizes are an input since opset 13)."""
        return self.node("Split", [x, self.ints(sizes, "split")], outputs, name=name,
                         axis=int(axis))

    def unsqueeze(self, x, axes, out=None, name=None):
        return self.node("Unsqueeze", [x, self.ints(axes, "axes")], out, name=name)

    def reshape(self, x, shape, out=None, name=None):
        """Reshape with ONNX's rules: 0 copies the input dimension at the same index, one -1
        is inferred."""
        return self.node("Reshape", [x, self.ints(shape, "shape")], out, name=name)

    def pad(self, x, begins, ends, value=0.0, out=None, name=None):
        """Constant padding: begins/ends per axis (negative values crop)."""
        pads = self.ints(list(begins) + list(ends), "pads")
        return self.node("Pad", [x, pads, self.scalar(value, "pad_value")], out, name=name,
                         mode="constant")

    def slice(self, x, starts, ends, axes, steps=None, out=None, name=None):
        inputs = [x, self.ints(starts, "starts"), self.ints(ends, "ends"), self.ints(axes, "axes")]
        if steps is not None:
            inputs.append(self.ints(steps, "steps"))
        return self.node("Slice", inputs, out, name=name)

    def clip(self, x, lo, hi, out=None, name=None):
        return self.node("Clip", [x, self.scalar(lo, "clip_min"), self.scalar(hi, "clip_max")],
                         out, name=name)
