"""Net -> ONNX model: which layers are exported, inputs and outputs, batch-free shapes, names.

1. Each layer is an input (Input), a source or sink that inference leaves out (data layers;
   losses, Accuracy, ...: converters/dropped.py), or a layer with a converter; anything else
   is an ExportError naming it.
2. Outputs are the blobs an exported layer produces and no exported layer reads (the net's
   outputs, and what its losses read), or the blob names asked for. Only the layers those
   outputs need are exported; the blobs they read from inputs and sources are graph inputs.
3. Shapes: the net is reshaped once more with every input's batch axis one larger, and
   every axis that changed follows the batch (it is symbolic in the graph; converters keep it
   free). The net is put back exactly as it was afterwards.
4. Layers are converted in net order. A blob written in place several times gets one ONNX
   value per version: the last is named after the blob, the others `<blob>/<layer>`.
"""
import sys

import numpy as np

from minicaffe.errors import ExportError, MinicaffeError
from minicaffe.export import report as report_mod
from minicaffe.export.context import LayerContext, Shape, where
from minicaffe.export.converters import CONVERTERS, DROPPED
from minicaffe.export.graph import DEFAULT_OPSET, Graph

# Recurrent layers read time-major blobs (T, N, ...): an input feeding these bottoms has its
# batch on axis 1 (x, cont; the exposed initial states (1, N, H)).
_BATCH_AXIS_1 = {"RNN": {0, 1, 3, 4}, "LSTM": {0, 1, 3, 4}, "LSTMUnit": {0, 1, 2}}


class _Layer:
    """A layer of the net as the exporter plans it."""

    def __init__(self, index, layer, bottoms, tops):
        self.index = index
        self.layer = layer
        self.bottoms = list(bottoms)         # blob names
        self.tops = list(tops)
        self.kind = None                     # input | source | sink | export
        self.reason = ""
        self.sources = []                    # per bottom: the version it reads, (index, name)
        self.live = False


def _classify(plan):
    for p in plan:
        t = p.layer.type
        if t == "Input":
            p.kind = "input"
        elif t in DROPPED:
            p.kind, p.reason = DROPPED[t]
        elif getattr(p.layer, "is_loss", False):
            p.kind, p.reason = "sink", "a training loss, not part of inference"
        elif t in CONVERTERS:
            p.kind = "export"
        else:
            # exported like any layer until the graph needs it: then an ExportError
            p.kind = "refused"
            if t == "Python":
                p.reason = "runs user Python code, which ONNX cannot express"
            else:
                p.reason = (f"no ONNX converter for this type (exported types: "
                            f"{', '.join(CONVERTERS.names())})")


def _refuse(p):
    return ExportError(f"{where(p.layer.layer_param)}layer '{p.layer.name}' ({p.layer.type}): "
                       f"{p.reason}; an output depends on it (outputs= / --output can stop "
                       "before it)")


def _link(plan):
    """Each bottom's version: (index of the layer that last wrote the blob, blob name)."""
    writer = {}
    for p in plan:
        p.sources = [(writer[b], b) if b in writer else None for b in p.bottoms]
        for t in p.tops:
            writer[t] = p.index
    return writer


def _aliases(p):
    """Whether layer p passes its bottom's value on unchanged (Split, Dropout)."""
    return p.kind == "export" and getattr(CONVERTERS.get(p.layer.type), "aliases", False)


def _origin(plan, version):
    """The version a Split / Dropout chain passes on."""
    p = plan[version[0]]
    while _aliases(p) and p.sources and p.sources[0] is not None:
        version = p.sources[0]
        p = plan[version[0]]
    return version


def _default_outputs(plan):
    """Versions written by exported layers that no exported layer reads, in net order; not
    the copies of an input (a label split between a loss and Accuracy)."""
    read = set()
    for p in plan:
        if p.kind in ("export", "refused"):
            read.update(s for s in p.sources if s is not None)
    out = []
    for p in plan:
        if p.kind not in ("export", "refused"):
            continue
        for t in p.tops:
            version = (p.index, t)
            if version in read or version in out:
                continue
            if plan[_origin(plan, version)[0]].kind not in ("export", "refused"):
                continue
            out.append(version)
    return out


def _mark_live(plan, outputs):
    stack = list(outputs)
    seen = set()
    while stack:
        version = stack.pop()
        if version in seen:
            continue
        seen.add(version)
        p = plan[version[0]]
        if p.kind == "refused":
            raise _refuse(p)
        p.live = True
        if p.kind == "export":
            stack.extend(s for s in p.sources if s is not None)
    return seen


def _batch_axis(plan, name, batch_axes):
    """Axis of input `name` that holds the batch: `batch_axes[name]` when given, 1 for the
    time-major inputs of the recurrent layers (also through an implicit Split), else 0."""
    if batch_axes and name in batch_axes:
        return batch_axes[name]
    names = {name}
    for p in plan:                               # blobs that are copies of the input
        if p.layer.type == "Split" and p.bottoms and p.bottoms[0] in names:
            names.update(p.tops)
    for p in plan:
        axes = _BATCH_AXIS_1.get(p.layer.type)
        if axes and p.live and any(b in names for i, b in enumerate(p.bottoms) if i in axes):
            return 1
    return 0


def _snapshot(net):
    objs = list(net.blobs.values()) + list(net.layers)
    return [(o, dict(o.__dict__)) for o in objs]


def _restore(saved):
    for obj, state in saved:
        obj.__dict__.clear()
        obj.__dict__.update(state)


def _replay(net, plan, input_shapes):
    """Reshape the live exported layers in order with the graph inputs at `input_shapes`;
    returns {layer index: (bottom shapes, top shapes)}."""
    for name, shape in input_shapes.items():
        net.blobs[name].reshape(shape)
    shapes = {}
    for p in plan:
        if not (p.live and p.kind == "export"):
            continue
        bottom = [net.blobs[b] for b in p.bottoms]
        top = [net.blobs[t] for t in p.tops]
        before = [tuple(b.shape) for b in bottom]
        p.layer.reshape(bottom, top)
        shapes[p.index] = (before, [tuple(t.shape) for t in top])
    return shapes


def _shapes(net, plan, inputs, dynamic_batch, batch_axes):
    """{layer index: ([bottom Shape], [top Shape])} and {input name: Shape}."""
    base = {name: tuple(net.blobs[name].shape) for name in inputs}
    probe = dict(base)
    axes = {}
    if dynamic_batch:
        batch = None
        for name, shape in base.items():
            given = bool(batch_axes) and name in batch_axes
            axis = _batch_axis(plan, name, batch_axes)
            if axis is None:
                continue
            if axis >= len(shape):
                if given:
                    raise ExportError(f"batch_axes['{name}'] = {axis} but input '{name}' has "
                                      f"shape {shape}")
                continue
            # The first input's batch axis gives the batch size; another input is batched
            # when the same axis has that size (a (C,) scale operand fed as an input is not).
            if batch is None:
                batch = shape[axis]
            elif shape[axis] != batch and not given:
                continue
            axes[name] = axis
            probe[name] = shape[:axis] + (shape[axis] + 1,) + shape[axis + 1:]
    saved = _snapshot(net)
    try:
        first = _replay(net, plan, base)
        second = first
        if probe != base:
            try:
                second = _replay(net, plan, probe)
            except (MinicaffeError, ValueError) as exc:
                raise ExportError(f"the net does not run at another batch size, so its batch "
                                  f"cannot be left free in the graph: {exc}. Export with a "
                                  "fixed batch (dynamic_batch=False / --static-batch)") from None
    finally:
        _restore(saved)
    layer_shapes = {}
    for i, (b1, t1) in first.items():
        b2, t2 = second[i]
        layer_shapes[i] = ([Shape(a, b) for a, b in zip(b1, b2)],
                           [Shape(a, b) for a, b in zip(t1, t2)])
    return layer_shapes, {n: Shape(base[n], probe[n]) for n in inputs}, axes


def _dim_names(shape, batch, batch_name):
    """Graph dims: ints, and names for the axes that follow the batch."""
    dims = []
    for d, p in zip(shape.dims, shape.probe):
        if d == p:
            dims.append(int(d))
        elif batch and d == batch and p == batch + 1:
            dims.append(batch_name)
        elif batch and d % batch == 0 and p == d // batch * (batch + 1):
            dims.append(f"{d // batch}*{batch_name}")
        else:
            dims.append(f"{batch_name}_dependent")
    return dims


class _Converter:
    """One export run."""

    def __init__(self, net, opset, outputs, dynamic_batch, batch_axes, batch_name):
        self.net = net
        self.graph = Graph(opset)
        self.report = report_mod.ExportReport(net=net.name or "net", opset=opset)
        self.batch_name = batch_name
        bottom_names, top_names = net.bottom_names, net.top_names
        self.plan = [_Layer(i, layer, bottom_names[name], top_names[name])
                     for i, (name, layer) in enumerate(net.layer_dict.items())]
        _classify(self.plan)
        self.final_writer = _link(self.plan)
        self.outputs = self._outputs(outputs)
        live_versions = _mark_live(self.plan, self.outputs)
        self.inputs = []
        for p in self.plan:
            if p.kind in ("input", "source"):
                for t in p.tops:
                    if (p.index, t) in live_versions and t not in self.inputs:
                        self.inputs.append(t)
        for p in self.plan:
            if p.kind in ("source", "sink"):
                self.report.dropped.append((p.layer.name, p.layer.type, p.reason))
            elif p.kind == "input":
                unused = [t for t in p.tops if t not in self.inputs]
                if unused:
                    self.report.notes.append(
                        f"input{'s' if len(unused) > 1 else ''} {', '.join(unused)} "
                        f"{'are' if len(unused) > 1 else 'is'} not read by the exported graph: "
                        "left out")
            elif p.kind in ("export", "refused") and not p.live and not self._aliases(p):
                self.report.dropped.append((p.layer.name, p.layer.type,
                                            "no exported output depends on it"))
        if not self.outputs:
            raise ExportError(f"net '{net.name}': nothing to export (no layer with an ONNX "
                              "converter produces an output)")
        self.layer_shapes, self.input_shapes, self.batch_axes = _shapes(
            net, self.plan, self.inputs, dynamic_batch, batch_axes)
        self.values = {}
        self.absorbed = set()

    @staticmethod
    def _aliases(p):
        return _aliases(p)

    def _outputs(self, names):
        if names is None:
            return _default_outputs(self.plan)
        out = []
        for name in names:
            if name not in self.final_writer:
                raise ExportError(f"output '{name}' is not a blob of net '{self.net.name}' "
                                  f"(blobs: {', '.join(self.net.blobs)})")
            p = self.plan[self.final_writer[name]]
            if p.kind in ("sink", "source"):
                raise ExportError(f"output '{name}' is produced by layer '{p.layer.name}' "
                                  f"({p.layer.type}), which the export leaves out: {p.reason}")
            out.append((p.index, name))
        return out

    # -- naming ---------------------------------------------------------------------------------
    def _assign_names(self):
        """Graph input names, then the plain blob name for each blob's last version."""
        for name in self.inputs:
            self.graph.reserve(name)
        last = {}
        for p in self.plan:
            if p.live and p.kind == "export" and not self._aliases(p):
                for t in p.tops:
                    last[t] = p.index
        self.top_names = {}
        for p in self.plan:
            if not (p.live and p.kind == "export"):
                continue
            for t in p.tops:
                if last.get(t) == p.index and t not in self.inputs:
                    self.top_names[(p.index, t)] = self.graph.reserve(t)
        for p in self.plan:
            if not (p.live and p.kind == "export"):
                continue
            for t in p.tops:
                if (p.index, t) not in self.top_names:
                    self.top_names[(p.index, t)] = self.graph.fresh(f"{t}/{p.layer.name}")

    def _context(self, p):
        bottoms = [self.values.get(s) if s is not None else None for s in p.sources]
        bshapes, tshapes = self.layer_shapes[p.index]
        ctx = LayerContext(self.graph, p.layer, bottoms, bshapes, tshapes,
                           [self.top_names[(p.index, t)] for t in p.tops], self.report)
        ctx.following = lambda: self._following(p)
        ctx.absorb = lambda nxt, values: self._absorb(p, nxt, values)
        return ctx

    def _following(self, p):
        """The next exported layer's context when it alone reads p's top 0 (for folding)."""
        nxt = next((q for q in self.plan[p.index + 1:] if q.live and q.kind == "export"), None)
        if nxt is None or not nxt.sources or nxt.sources[0] != (p.index, p.tops[0]):
            return None
        version = (p.index, p.tops[0])
        readers = [q for q in self.plan if q.live and q.kind == "export" and version in q.sources]
        if len(readers) != 1 or version in self.outputs:
            return None
        return self._context(nxt)

    def _absorb(self, p, nxt_ctx, values):
        q = next(q for q in self.plan if q.layer is nxt_ctx.layer)
        for t, v in zip(q.tops, values):
            self.values[(q.index, t)] = v
        self.absorbed.add(q.index)
        self.report.layers.append((q.layer.name, q.layer.type, [f"(folded into {p.layer.name})"]))

    # -- conversion -----------------------------------------------------------------------------
    def run(self):
        onnx = self.graph.onnx
        self._assign_names()
        for name in self.inputs:
            writer = next(p for p in self.plan if p.kind in ("input", "source") and name in p.tops
                          and p.live)
            self.values[(writer.index, name)] = name
        if self.net.dtype != np.float32:
            self.report.notes.append(f"the net computes in {self.net.dtype}; the ONNX graph "
                                     "computes in float32")
        batch = self._batch_size()
        for p in self.plan:
            if not (p.live and p.kind == "export") or p.index in self.absorbed:
                continue
            ctx = self._context(p)
            start, position = len(self.graph.nodes), len(self.report.layers)
            fn = CONVERTERS.get(p.layer.type)
            try:
                outs = fn(ctx)
            except (ExportError, ImportError):
                raise
            except Exception as exc:                       # a converter bug: say where
                raise ExportError(f"{where(p.layer.layer_param)}layer '{p.layer.name}' "
                                  f"({p.layer.type}): conversion failed: {exc!r}") from exc
            if len(outs) != len(p.tops):
                raise ExportError(f"layer '{p.layer.name}' ({p.layer.type}): the converter gave "
                                  f"{len(outs)} values for {len(p.tops)} tops")
            for t, v in zip(p.tops, outs):
                self.values[(p.index, t)] = v
            entry = (p.layer.name, p.layer.type,
                     [n.op_type for n in self.graph.nodes[start:]])
            self.report.layers.insert(position, entry)       # before a layer it folded in
            flops = report_mod.layer_flops(p.layer, self.layer_shapes[p.index][1][0].dims,
                                           batch) if p.tops else None
            if flops is not None:
                self.report.flops.append(flops)
        graph_inputs = [onnx.helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT,
            _dim_names(self.input_shapes[name], self._input_batch(name), self.batch_name))
            for name in self.inputs]
        graph_outputs = self._graph_outputs(onnx, batch)
        self.report.inputs = [(v.name, _shape_of(v)) for v in graph_inputs]
        self.report.outputs = [(v.name, _shape_of(v)) for v in graph_outputs]
        graph = onnx.helper.make_graph(self.graph.nodes, self.net.name or "net", graph_inputs,
                                       graph_outputs, self.graph.initializers)
        opsets = [onnx.helper.make_opsetid("", self.graph.opset)]
        model = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="minicaffe",
                                       producer_version=_version(),
                                       ir_version=onnx.helper.find_min_ir_version_for(opsets))
        summary = self.report.flops_summary()
        model.doc_string = (f"Caffe net '{self.net.name}' exported by minicaffe." +
                            (" " + summary if summary else ""))
        self.report.model = model
        return model, self.report

    def _batch_size(self):
        for name in self.inputs:
            if name in self.batch_axes:
                return int(self.input_shapes[name].dims[self.batch_axes[name]])
        return 0

    def _input_batch(self, name):
        axis = self.batch_axes.get(name)
        return None if axis is None else int(self.input_shapes[name].dims[axis])

    def _origin_name(self, version):
        """The blob name to show for an output: through Split / Dropout to what they pass on."""
        return _origin(self.plan, version)[1]

    def _graph_outputs(self, onnx, batch):
        outs, seen = [], set()
        for version in self.outputs:
            value = self.values[version]
            if value in seen:
                continue
            seen.add(value)
            name = self._origin_name(version)
            if value != name or value in self.inputs:
                # an input passed through (or an output whose name is taken) gets a copy
                taken = name in self.graph._names
                target = self.graph.fresh(f"{name}_out") if taken else self.graph.reserve(name)
                self.graph.node("Identity", [value], target, name=f"{name}/output")
                value = target
            p = self.plan[version[0]]
            shape = self.layer_shapes[p.index][1][p.tops.index(version[1])] \
                if p.kind == "export" else self.input_shapes[version[1]]
            outs.append(onnx.helper.make_tensor_value_info(
                value, onnx.TensorProto.FLOAT, _dim_names(shape, batch, self.batch_name)))
        return outs


def _shape_of(value_info):
    return tuple(d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim)


def _version():
    # the package is imported (it is this module's parent); reading the attribute keeps the
    # import stack pointing down
    return str(getattr(sys.modules.get("minicaffe"), "__version__", ""))


def convert(net, opset=DEFAULT_OPSET, outputs=None, dynamic_batch=True, batch_axes=None,
            batch_name="N", check=True):
    """(onnx.ModelProto, ExportReport) for `net`; see minicaffe.export.to_onnx."""
    run = _Converter(net, opset, outputs, dynamic_batch, batch_axes, batch_name)
    model, report = run.run()
    if check:
        checker = run.graph.onnx.checker
        try:
            checker.check_model(model, full_check=True)
        except checker.ValidationError as exc:
            raise ExportError(f"net '{net.name}': the exported model fails onnx.checker: "
                              f"{exc}") from None
    return model, report
