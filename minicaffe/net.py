"""Net: a directed acyclic graph of layers built from a NetParameter and a phase (Caffe's Net).

Building follows Caffe's Net::Init:
1. `filter_net` keeps the layers whose include/exclude rules match (phase, level, stages).
2. A blob read by several layers gets an implicit `Split` layer right after its producer; each
   consumer reads its own copy and the Split sums their diffs in backward.
3. Layers are set up in file order (a bottom must be produced by an earlier layer). A top named
   like one of the layer's bottoms is computed in place (the same Blob).
4. `loss_weight`s are attached (loss layers: 1 on top 0), learnable blobs are collected (blobs
   with the same `param { name }` share data and diff; the first is the owner), and Caffe's
   backward analysis decides which layers and bottoms need a diff (loss dependence,
   `propagate_down`, `lr_mult`, `force_backward`).

The pycaffe surface (`blobs`, `params`, `forward(**inputs)`, `backward(**diffs)`, `copy_from`,
`save`, ...) sits on top; the solver uses `forward_backward`, `learnable_params`, `param_infos`,
`clear_param_diffs` and `first_nonfinite_output`.
"""
import copy
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from minicaffe import backend
from minicaffe.blob import Blob
from minicaffe.errors import (AllocationError, DataError, FillerError, LayerSetupError,
                              MinicaffeError, ShapeError)
from minicaffe.catalog import create_layer
from minicaffe.phase import phase_id, phase_name
from minicaffe.plan import Planner, plan_refusal

log = logging.getLogger("minicaffe.net")


@dataclass
class CopyReport:
    """What `Net.copy_from` did: `loaded` (layers whose weights came from the file),
    `missing` (layers with weights the file did not hold: they keep their values), `unused`
    (layers of the file with weights that this net does not have)."""

    loaded: list
    missing: list
    unused: list


def _name_list(names, limit=8):
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


@dataclass
class ParamInfo:
    """One layer parameter blob as the solver sees it.

    blob: the Blob (for a shared parameter, it shares data and diff with its owner's blob);
    layer_name / layer_type / index: where it lives (`net.params[layer_name][index]`);
    spec: its `ParamSpec` (lr_mult, decay_mult, SSL multipliers...); group: the Convolution
    `group` (1 for other layers); owner: False for a blob that shares another's storage via
    `param { name }` — update only owners, or shared values move twice.
    """

    blob: Blob
    layer_name: str
    layer_type: str
    index: int
    spec: object
    group: int
    owner: bool


def _prototxt():
    import minicaffe.prototxt as proto  # noqa: PLC0415  (keeps `import minicaffe.net` light)

    return proto


def _load_net_param(model):
    """A NetParameter from a path, prototxt text, a NetParameter (returned as is) or a
    caffe_pb2.NetParameter (e.g. NetSpec's to_proto(); converted and upgraded)."""
    proto = _prototxt()
    if isinstance(model, proto.NetParameter):
        return model
    if proto.is_protobuf(model, "NetParameter"):
        return proto.upgrade_net(proto.from_protobuf(model))
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if os.path.exists(text):
            return proto.read_net(text)
        if "{" in text and ("layer" in text or "input" in text):
            return proto.parse_net(text)
        raise FileNotFoundError(f"net definition '{text}' not found")
    raise TypeError(f"Net model must be a path, prototxt text or a NetParameter (minicaffe's or "
                    f"caffe_pb2's), got {type(model).__name__}")


def _out_of_memory(exc):
    """The message of a MemoryError for a layer's error: ours names the blob and size already."""
    if isinstance(exc, AllocationError):
        return str(exc)
    return f"out of memory: {exc or 'an allocation failed'}"


def _filler_field(layer_param, filler_param, depth=3):
    """'inner_product_param.bias_filler (line 11, column 5): ', where `filler_param` sits in
    `layer_param` (found by identity), or '' when it is not one of its fields."""
    def find(msg, prefix, depth):
        spec = getattr(type(msg), "_spec", None)
        if spec is None or depth == 0:
            return None
        for name, f in spec.fields.items():
            if not f.is_message:
                continue
            value = getattr(msg, name)
            items = list(value) if f.repeated else [value]
            for k, item in enumerate(items):
                label = f"{prefix}{name}" + (f"[{k}]" if f.repeated else "")
                if item is filler_param:
                    return label
                found = find(item, label + ".", depth - 1)
                if found:
                    return found
        return None

    if filler_param is None:
        return ""
    label = find(layer_param, "", depth)
    if label is None:
        return ""
    pos = getattr(filler_param, "position", None)
    where = f" (line {pos[1]}, column {pos[2]})" if pos and pos[1] is not None else ""
    return f"{label}{where}: "


_CONV_MODE_NAMES = {"dense": "LOWERED_GEMM", "ccnmm": "LOWERED_CCNMM", "csr": "LOWERED_CSRMM",
                    "LOWERED_GEMM": "LOWERED_GEMM", "LOWERED_CCNMM": "LOWERED_CCNMM",
                    "LOWERED_CSRMM": "LOWERED_CSRMM", "auto": "auto"}


def _conv_mode_name(mode):
    """The Caffe conv_mode for Net(conv_mode=...), "auto", or None (keep the prototxt's)."""
    if mode is None:
        return None
    key = mode if mode in _CONV_MODE_NAMES else str(mode).lower()
    if key not in _CONV_MODE_NAMES:
        hint = (" ('compact' is a separate, smaller net: minicaffe.compact.compact_net)"
                if key == "compact" else "")
        raise ValueError(f"Net: conv_mode={mode!r}; expected one of dense, ccnmm, csr, auto or "
                         f"LOWERED_GEMM, LOWERED_CCNMM, LOWERED_CSRMM{hint}")
    return _CONV_MODE_NAMES[key]


def _split_blob_name(blob, layer, top_index, k):
    return f"{blob}_{layer}_{top_index}_split_{k}"


def _insert_splits(layer_params):
    """Caffe's InsertSplits: returns a list of `(layer_param, bottom_names, top_names)` where a
    blob version read by more than one bottom is fanned out through a Split layer."""
    proto = _prototxt()
    producer = {}                 # blob name -> (layer index, top index) of its latest version
    consumers = {}                # (layer index, top index) -> number of bottoms reading it
    bottom_source = []            # per layer, per bottom: (layer index, top index) or None
    for i, lp in enumerate(layer_params):
        sources = []
        for name in lp.bottom:
            src = producer.get(name)
            sources.append(src)
            if src is not None:
                consumers[src] = consumers.get(src, 0) + 1
        bottom_source.append(sources)
        for j, name in enumerate(lp.top):
            producer[name] = (i, j)
    # A top that carries a loss weight and is also read elsewhere: its weight moves to the
    # split's first output (as in Caffe), so the count gets one extra consumer.
    loss_read = set()
    for i, lp in enumerate(layer_params):
        for j in range(len(lp.top)):
            if (i, j) in consumers and j < len(lp.loss_weight) and lp.loss_weight[j] != 0:
                consumers[(i, j)] += 1
                loss_read.add((i, j))
    out, used = [], {}
    for i, lp in enumerate(layer_params):
        bottoms = list(lp.bottom)
        for b, src in enumerate(bottom_source[i]):
            if src is not None and consumers[src] > 1:
                k = used.get(src, 0) + (1 if src in loss_read else 0)
                used[src] = used.get(src, 0) + 1
                bottoms[b] = _split_blob_name(bottoms[b], layer_params[src[0]].name, src[1], k)
        out.append((lp, bottoms, list(lp.top)))
        for j, name in enumerate(lp.top):
            n = consumers.get((i, j), 0)
            if n > 1:
                split_tops = [_split_blob_name(name, lp.name, j, k) for k in range(n)]
                weights = []
                if (i, j) in loss_read:
                    weights = [lp.loss_weight[j]] + [0.0] * (n - 1)
                split = proto.LayerParameter(name=f"{name}_{lp.name}_{j}_split", type="Split",
                                             bottom=[name], top=split_tops, loss_weight=weights)
                out.append((split, [name], split_tops))
    if loss_read:
        # the producing layer no longer carries the loss itself; the split's top 0 does
        fixed = []
        for lp, bottoms, tops in out:
            idx = next((i for i, p in enumerate(layer_params) if p is lp), None)
            if idx is not None and any((idx, j) in loss_read for j in range(len(tops))):
                lp = copy.copy(lp)
                lp.loss_weight = [0.0 if (idx, j) in loss_read else w
                                  for j, w in enumerate(lp.loss_weight)]
            fixed.append((lp, bottoms, tops))
        out = fixed
    return out


class Net:
    """A network of layers for one phase (pycaffe's `caffe.Net`).

    Net(model, phase) / Net(model, weights, phase) / Net(model, phase, weights=..., level=0,
    stages=()); `model` is a .prototxt path, prototxt text or a NetParameter; `phase` is
    minicaffe.TRAIN / TEST (or "TRAIN" / "TEST"); `weights` a .caffemodel or .npz path;
    `dtype` the element type of every blob (float32 as in Caffe; float64 for gradient checks).
    `conv_mode` overrides every Convolution layer's `conv_mode`: "dense" (LOWERED_GEMM), "ccnmm"
    (LOWERED_CCNMM: zero rows and columns of the lowered weights skipped), "csr"
    (LOWERED_CSRMM), the Caffe names themselves, or "auto": after the weights are loaded, each
    convolution is timed briefly in the three modes and keeps the fastest (the choice is in
    `net.conv_modes` and the layer's `conv_mode`; `choose_conv_modes()` measures again). The
    sparse modes act at TEST only; at TRAIN every convolution runs dense.

    Raises LayerSetupError (a ValueError) naming the layer, its type and its bottoms with
    shapes when the graph or a layer cannot be built.
    """

    def __init__(self, model, *args, phase=None, weights=None, level=0, stages=(), dtype=np.float32,
                 conv_mode=None):
        if len(args) == 1:
            if phase is not None:
                weights = args[0]
            else:
                phase = args[0]
        elif len(args) == 2:
            weights, phase = args
        elif len(args) > 2:
            raise TypeError("Net(model, phase) or Net(model, weights, phase)")
        if phase is None:
            raise TypeError("Net needs a phase: Net(model, caffe.TRAIN) or Net(model, caffe.TEST)")
        self.phase = phase_id(phase)
        self.dtype = np.dtype(dtype)
        proto = _prototxt()
        source = _load_net_param(model)
        filtered = proto.filter_net(source, phase_name(phase), level=level, stages=tuple(stages or ()))
        self.name = filtered.name
        self.force_backward = bool(filtered.force_backward)
        layer_params = [copy.deepcopy(lp) for lp in filtered.layer]
        self._callbacks = {"before_forward": [], "after_forward": [], "before_backward": [],
                           "after_backward": []}
        mode = _conv_mode_name(conv_mode)
        if mode is not None:
            for lp in layer_params:
                if lp.type == "Convolution":
                    lp.convolution_param.conv_mode = "LOWERED_GEMM" if mode == "auto" else mode
        self._build(layer_params)
        # TEST nets forward through an inference plan (minicaffe/plan.py) unless refused.
        self._planner = None if plan_refusal(self, default=True) else Planner(self)
        if weights is not None:
            self.copy_from(weights)
        if mode == "auto":
            self.choose_conv_modes()

    # ------------------------------------------------------------------------------------
    # building
    def _build(self, layer_params):
        self._blobs = OrderedDict()          # blob name -> Blob, in creation order
        self.layers = []
        self._layer_names = []
        self._bottom_names, self._top_names = [], []
        self._bottom_vecs, self._top_vecs = [], []
        self._input_names = []
        available = OrderedDict()            # produced and not yet consumed (Caffe's outputs)
        written = {lp.name for lp in layer_params}
        self._implicit_splits = set()        # Split layers the Net inserted (not in the file)
        for lp, bottoms, tops in _insert_splits(layer_params):
            if lp.name not in written:
                self._implicit_splits.add(lp.name)
            self._append_layer(lp, bottoms, tops, available)
        self._output_names = sorted(available)    # Caffe keeps them in a std::set
        self.conv_modes = {layer.name: layer.conv_mode for layer in self.layers
                           if layer.type == "Convolution"}
        self._collect_params()
        self._analyse_backward()

    def _append_layer(self, lp, bottom_names, top_names, available):
        if lp.name in self._layer_names:
            raise LayerSetupError(f"layer '{lp.name}' ({lp.type}): duplicate layer name")
        layer = create_layer(lp, phase_name(self.phase))
        bottom = []
        for name in bottom_names:
            if name not in self._blobs:
                known = ", ".join(f"'{b}'" for b in self._blobs) or "none"
                raise LayerSetupError(
                    f"unknown bottom '{name}' of layer '{lp.name}' ({lp.type}); blobs available: "
                    f"{known} (a bottom must be produced by an earlier layer)")
            bottom.append(self._blobs[name])
            available.pop(name, None)
        top = []
        for j, name in enumerate(top_names):
            in_place = j < len(lp.bottom) and lp.bottom[j] == name
            if in_place and bottom_names[j] == name:
                blob = self._blobs[name]
            elif name in self._blobs and not in_place:
                raise LayerSetupError(
                    f"layer '{lp.name}' ({lp.type}): top '{name}' is already produced by an "
                    f"earlier layer (only an in-place layer, whose bottom {j} has the same name, "
                    f"may write a blob again)")
            else:
                # a new blob; for an in-place layer whose bottom was split because other layers
                # read it too, this is the next version of that name
                blob = Blob((), dtype=self.dtype, name=name)
                self._blobs[name] = blob
            top.append(blob)
            available[name] = True
        if lp.type == "Input":
            self._input_names.extend(top_names)
        layer.check_counts(bottom, top)
        try:
            layer.setup(bottom, top)
            for b in layer.blobs:
                b.astype(self.dtype)
            layer.reshape(bottom, top)
        except FillerError as exc:
            raise layer.error(f"{_filler_field(lp, exc.filler_param)}{exc}") from None
        except MemoryError as exc:
            raise layer.error(_out_of_memory(exc), bottom) from None
        except MinicaffeError:
            raise
        except (ValueError, IndexError) as exc:
            raise layer.error(f"setup failed: {exc}", bottom) from exc
        self._set_loss_weights(layer, lp, top)
        self.layers.append(layer)
        self._layer_names.append(lp.name)
        self._bottom_names.append(list(bottom_names))
        self._top_names.append(list(top_names))
        self._bottom_vecs.append(bottom)
        self._top_vecs.append(top)

    def _set_loss_weights(self, layer, lp, top):
        weights = list(lp.loss_weight)
        if weights and len(weights) != len(top):
            raise layer.error(f"loss_weight must be given once per top blob or not at all; got "
                              f"{len(weights)} for {len(top)} top(s)")
        if not weights:
            weights = [1.0 if (layer.is_loss and j == 0) else 0.0 for j in range(len(top))]
        layer.loss_weights = [float(w) for w in weights]
        for blob, w in zip(top, layer.loss_weights):
            if w != 0:
                blob.diff[...] = w

    def _collect_params(self):
        proto = _prototxt()
        self._param_infos = []
        self._learnable = []
        owners = {}                            # param name -> ParamInfo of its owner
        for layer, lp in zip(self.layers, (l.layer_param for l in self.layers)):
            specs = list(lp.param)
            if len(specs) > len(layer.blobs):
                raise layer.error(f"{len(specs)} param {{ }} specs given but the layer has only "
                                  f"{len(layer.blobs)} parameter blob(s)")
            group = 1
            if layer.type in ("Convolution", "Deconvolution"):
                group = int(lp.convolution_param.group)
            for j, blob in enumerate(layer.blobs):
                spec = specs[j] if j < len(specs) else proto.ParamSpec()
                name = spec.name
                owner_info = owners.get(name) if name else None
                if owner_info is None:
                    info = ParamInfo(blob, layer.name, layer.type, j, spec, group, True)
                    if name:
                        owners[name] = info
                    self._learnable.append(blob)
                else:
                    self._share_param(layer, j, blob, spec, owner_info)
                    info = ParamInfo(blob, layer.name, layer.type, j, spec, group, False)
                self._param_infos.append(info)
        for layer in self.layers:
            if hasattr(layer, "refresh_weights"):
                layer.refresh_weights()

    def _share_param(self, layer, index, blob, spec, owner):
        mode = getattr(spec, "share_mode", "STRICT") or "STRICT"
        same = (tuple(blob.shape) == tuple(owner.blob.shape) if mode == "STRICT"
                else blob.count == owner.blob.count)
        if not same:
            raise layer.error(
                f"param {index} named '{spec.name}' has shape {tuple(blob.shape)} but its owner "
                f"(layer '{owner.layer_name}', param {owner.index}) has shape "
                f"{tuple(owner.blob.shape)}" + ("" if mode == "STRICT" else " (PERMISSIVE: counts differ)"),
                cls=ShapeError)
        for field in ("lr_mult", "decay_mult"):
            if not spec.has(field):
                continue
            if not owner.spec.has(field):
                # Caffe: a multiplier given only where the param is shared is the owner's too
                # (the solver reads the owner's spec).
                setattr(owner.spec, field, getattr(spec, field))
            elif getattr(spec, field) != getattr(owner.spec, field):
                raise layer.error(f"shared param '{spec.name}' has {field} {getattr(spec, field)} but "
                                  f"its owner in layer '{owner.layer_name}' has {getattr(owner.spec, field)}")
        shape = tuple(blob.shape)
        blob.share_data(owner.blob)
        blob.share_diff(owner.blob)
        blob.reshape(shape)

    def _analyse_backward(self):
        """Caffe's need-backward analysis: which layers run backward and which bottoms get a
        diff (`self._bottom_need_backward`), and which parameters need one."""
        blob_need = {}
        self._layer_need_backward = []
        self._bottom_need_backward = []
        self._param_need_backward = []
        for i, layer in enumerate(self.layers):
            lp = layer.layer_param
            prop = list(lp.propagate_down)
            if prop and len(prop) != len(self._bottom_names[i]):
                raise layer.error(f"propagate_down must be given once per bottom or not at all; "
                                  f"got {len(prop)} for {len(self._bottom_names[i])} bottom(s)",
                                  self._bottom_vecs[i])
            need = False
            bottom_need = []
            for b, name in enumerate(self._bottom_names[i]):
                blob_needs = blob_need.get(name, False)
                need |= blob_needs
                bottom_need.append(bool(prop[b]) if prop else blob_needs)
            specs = list(lp.param)
            params_need = []
            for j in range(len(layer.blobs)):
                lr = specs[j].lr_mult if j < len(specs) else 1.0
                params_need.append(lr != 0)
                need |= lr != 0
            for name in self._top_names[i]:
                blob_need[name] = need
            self._layer_need_backward.append(need)
            self._bottom_need_backward.append(bottom_need)
            self._param_need_backward.append(params_need)
        # Backward sweep: a layer whose tops do not reach a loss needs no backward.
        under_loss, skip_backprop = set(), set()
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            contributes, skip = False, True
            for j, name in enumerate(self._top_names[i]):
                if layer.loss_weights[j] != 0 or name in under_loss:
                    contributes = True
                if name not in skip_backprop:
                    skip = False
                if contributes and not skip:
                    break
            if self._layer_need_backward[i] and skip:
                self._layer_need_backward[i] = False
                self._bottom_need_backward[i] = [False] * len(self._bottom_names[i])
            if not contributes:
                self._layer_need_backward[i] = False
            for b, name in enumerate(self._bottom_names[i]):
                if contributes:
                    under_loss.add(name)
                else:
                    self._bottom_need_backward[i][b] = False
                if not self._bottom_need_backward[i][b]:
                    skip_backprop.add(name)
        if self.force_backward:
            for i, layer in enumerate(self.layers):
                self._layer_need_backward[i] = True
                self._bottom_need_backward[i] = [
                    need or layer.allow_force_backward(b)
                    for b, need in enumerate(self._bottom_need_backward[i])]
                self._param_need_backward[i] = [True] * len(layer.blobs)
        for layer, params_need in zip(self.layers, self._param_need_backward):
            layer.param_propagate_down = list(params_need)

    # ------------------------------------------------------------------------------------
    # pycaffe surface
    @property
    def blobs(self):
        """OrderedDict blob name -> Blob, in the order they were created (includes splits)."""
        return self._blobs

    @property
    def params(self):
        """OrderedDict layer name -> list of its parameter Blobs (layers without any omitted)."""
        return OrderedDict((name, list(layer.blobs))
                           for name, layer in zip(self._layer_names, self.layers) if layer.blobs)

    @property
    def layer_dict(self):
        return OrderedDict(zip(self._layer_names, self.layers))

    @property
    def inputs(self):
        """Names of the blobs fed from outside (tops of Input layers)."""
        return list(self._input_names)

    @property
    def outputs(self):
        """Names of the blobs produced and not consumed, sorted by name (as Caffe lists them)."""
        return list(self._output_names)

    @property
    def top_names(self):
        return OrderedDict(zip(self._layer_names, (list(t) for t in self._top_names)))

    @property
    def bottom_names(self):
        return OrderedDict(zip(self._layer_names, (list(b) for b in self._bottom_names)))

    def _layer_index(self, name, what):
        if name is None:
            return None
        try:
            return self._layer_names.index(name)
        except ValueError:
            raise ValueError(f"{what}='{name}' is not a layer of net '{self.name}' "
                             f"(layers: {', '.join(self._layer_names)})") from None

    def _feed(self, name, value, what):
        """Copy `value` into the data (forward) or diff (backward) of blob `name`, with
        pycaffe's checks: the batch (first) dimension must match the blob's; the rest must
        broadcast to its shape. Raises ShapeError naming the blob and both shapes."""
        blob = self._blobs[name]
        value = backend.to_current(np.asarray(value))
        if value.ndim == 0 or not blob.shape or value.shape[0] != blob.shape[0]:
            noun = "Input" if what == "forward" else "Diff"
            raise ShapeError(
                f"{what}: {noun} is not batch sized: '{name}' got an array of shape "
                f"{tuple(value.shape)}, the blob has shape {tuple(blob.shape)} (to change the "
                f"batch, reshape first: net.blobs['{name}'].reshape(...); net.reshape())")
        try:
            if what == "forward":
                blob.data[...] = value
            else:
                blob.diff[...] = value
        except ValueError:
            raise ShapeError(f"{what}: blob '{name}' has shape {tuple(blob.shape)}, got an array "
                             f"of shape {tuple(value.shape)}") from None

    def forward(self, blobs=None, start=None, end=None, **inputs):
        """Run layers `start`..`end` (layer names, inclusive; default all) after copying the
        keyword arrays into the input blobs (pycaffe's rules: give every net input or none, each
        with the blob's batch size; ShapeError / ValueError otherwise). Returns {name: data} of
        the net outputs (or of `end`'s tops) plus the blob names listed in `blobs`; the arrays
        are the blobs' own storage (views), as in pycaffe."""
        if inputs:
            if set(inputs) != set(self._input_names):
                raise ValueError(f"forward: input blob arguments {sorted(inputs)} do not match "
                                 f"the net inputs {self._input_names}")
            for name, value in inputs.items():
                self._feed(name, value, "forward")
        i0 = self._layer_index(start, "start")
        i1 = self._layer_index(end, "end")
        self._forward_range(0 if i0 is None else i0, len(self.layers) - 1 if i1 is None else i1)
        names = list(self._top_names[i1]) if i1 is not None else list(self._output_names)
        names += [b for b in (blobs or []) if b not in names]
        return {name: self._blob(name, "forward").data for name in names}

    def backward(self, diffs=None, start=None, end=None, **top_diffs):
        """Run backward from `start` down to `end` (layer names; default all), after copying the
        keyword arrays into the diffs of the output blobs (all outputs or none, batch sized).
        Returns {name: diff} of the net inputs (or of `end`'s bottoms) plus the blob names
        listed in `diffs`."""
        if top_diffs:
            if set(top_diffs) != set(self._output_names):
                raise ValueError(f"backward: top diff arguments {sorted(top_diffs)} do not match "
                                 f"the net outputs {self._output_names}")
            for name, value in top_diffs.items():
                self._feed(name, value, "backward")
        i0 = self._layer_index(start, "start")
        i1 = self._layer_index(end, "end")
        self._backward_range(len(self.layers) - 1 if i0 is None else i0, 0 if i1 is None else i1)
        names = list(self._bottom_names[i1]) if i1 is not None else list(self._input_names)
        names += [b for b in (diffs or []) if b not in names]
        return {name: self._blob(name, "backward").diff for name in names}

    def _blob(self, name, what):
        try:
            return self._blobs[name]
        except KeyError:
            raise ValueError(f"{what}: no blob named '{name}' (blobs: "
                             f"{', '.join(self._blobs)})") from None

    def _batches(self, arrays):
        """Split {blob name: array of n rows} into feeds of the net's batch size (that of the
        first named blob); the last feed is padded with zeros. Returns (n, batch, [feeds])."""
        if not arrays:
            return 0, 0, []
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        counts = {len(a) if a.ndim else 0 for a in arrays.values()}
        if len(counts) != 1:
            raise ShapeError(f"input arrays have different first dimensions "
                             f"{ {k: a.shape[:1] for k, a in arrays.items()} }")
        n = counts.pop()
        first = next(iter(arrays))
        shape = self._blob(first, "forward_all").shape
        if not shape or shape[0] < 1:
            raise ShapeError(f"blob '{first}' has shape {tuple(shape)}: no batch dimension to "
                             "split the arrays by")
        batch, feeds = shape[0], []
        for lo in range(0, n, batch):
            feed = {}
            for k, a in arrays.items():
                part = a[lo:lo + batch]
                if len(part) < batch:
                    pad = np.zeros((batch - len(part),) + part.shape[1:], dtype=part.dtype)
                    part = np.concatenate([part, pad])
                feed[k] = part
            feeds.append(feed)
        return n, batch, feeds

    @staticmethod
    def _collect(chunks, n, batch):
        """Join per-batch results: arrays whose first dimension is the batch are concatenated
        and trimmed to `n` rows (the padding dropped); anything else (a loss, an accuracy) is
        stacked, one entry per batch."""
        out = {}
        for k, parts in chunks.items():
            if parts[0].ndim and parts[0].shape[0] == batch:
                out[k] = np.concatenate(parts)[:n]
            else:
                out[k] = np.stack(parts)
        return out

    def forward_all(self, blobs=None, **inputs):
        """Forward many samples in batches of the input blobs' batch size (pycaffe's
        forward_all): every keyword array shares its first dimension n; returns {name: array
        with n rows} for the outputs and the names in `blobs`. The last batch is padded with
        zeros and the padding dropped from the results."""
        if not inputs:
            return {k: np.array(backend.asnumpy(v)) for k, v in self.forward(blobs=blobs).items()}
        n, batch, feeds = self._batches(inputs)
        chunks = {}
        for feed in feeds:
            for k, v in self.forward(blobs=blobs, **feed).items():
                chunks.setdefault(k, []).append(np.array(backend.asnumpy(v)))
        return self._collect(chunks, n, batch)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """Forward and backward in batches (pycaffe's forward_backward_all). Keyword arrays
        named after net inputs feed forward, those named after net outputs are the top diffs
        of backward (all of n rows); a side without arrays runs on what its blobs hold.
        Returns ({output or `blobs` name: data}, {input or `diffs` name: diff}), n rows each."""
        unknown = set(kwargs) - set(self._input_names) - set(self._output_names)
        if unknown:
            raise ValueError(f"forward_backward_all: {sorted(unknown)} are neither net inputs "
                             f"{self._input_names} nor outputs {self._output_names}")
        ins = {k: kwargs[k] for k in self._input_names if k in kwargs}
        outs = {k: kwargs[k] for k in self._output_names if k in kwargs}
        n_in, batch_in, forward_feeds = self._batches(ins)
        n_out, batch_out, backward_feeds = self._batches(outs)
        if ins and outs and n_in != n_out:
            raise ShapeError(f"forward_backward_all: inputs have {n_in} rows, output diffs {n_out}")
        n, batch = (n_in, batch_in) if ins else (n_out, batch_out)
        if not kwargs:
            n = batch = self._blobs[self._output_names[0]].shape[0] \
                if self._output_names and self._blobs[self._output_names[0]].shape else 1
        all_outs, all_diffs = {}, {}
        for i in range(max(len(forward_feeds), len(backward_feeds), 1)):
            fb = forward_feeds[i] if i < len(forward_feeds) else {}
            bb = backward_feeds[i] if i < len(backward_feeds) else {}
            for k, v in self.forward(blobs=blobs, **fb).items():
                all_outs.setdefault(k, []).append(np.array(backend.asnumpy(v)))
            for k, v in self.backward(diffs=diffs, **bb).items():
                all_diffs.setdefault(k, []).append(np.array(backend.asnumpy(v)))
        return self._collect(all_outs, n, batch), self._collect(all_diffs, n, batch)

    def set_input_arrays(self, data, labels):
        """Hand arrays to the net's MemoryData layer (pycaffe's net.set_input_arrays):
        data (n, C, H, W), labels (n,), n a multiple of its batch_size."""
        for layer in self.layers:
            if layer.type == "MemoryData":
                layer.set_input_arrays(data, labels)
                return
        raise ValueError(f"set_input_arrays needs a MemoryData layer; net '{self.name}' has none")

    @property
    def blob_loss_weights(self):
        """OrderedDict blob name -> loss weight (0 for blobs that are not losses)."""
        weights = OrderedDict((name, 0.0) for name in self._blobs)
        for layer, names in zip(self.layers, self._top_names):
            for name, w in zip(names, layer.loss_weights):
                weights[name] = w
        return weights

    @property
    def _blob_names(self):
        return list(self._blobs)

    def reshape(self):
        """Propagate changed input shapes through every layer (pycaffe's net.reshape())."""
        for layer, bottom, top in zip(self.layers, self._bottom_vecs, self._top_vecs):
            layer.reshape(bottom, top)

    def copy_from(self, path):
        """Load trained weights (.caffemodel or .npz) into layers of the same name (Caffe's
        CopyTrainedLayersFrom) and return a CopyReport (loaded, missing, unused layer names).
        `path` may also be a list of `(layer name, type, [arrays])`, the form
        `minicaffe.weights.load` returns (and `minicaffe.compact.compact_net` produces).

        As in Caffe, layers of the file missing here are skipped and layers with weights
        missing from the file keep their values; unlike Caffe, the second case is logged as a
        warning naming them (a file cut short between two layers looks like a smaller model).
        Raises DataError for a malformed file, one holding no layers, or one none of whose
        layers is a layer with weights here; ShapeError naming the layer and both shapes for a
        blob count or shape mismatch. Everything is checked before any blob changes, so a
        failed copy leaves the net as it was.
        """
        from minicaffe import weights as weights_io   # noqa: PLC0415

        where = "<weights list>" if isinstance(path, (list, tuple)) else os.fspath(path)
        layers = self.layer_dict
        file_layers = list(path) if isinstance(path, (list, tuple)) else weights_io.load(path)
        if not file_layers:
            raise DataError(f"{where}: holds no layers")
        with_weights = [layer.name for layer in self.layers if layer.blobs]
        wanted = set(with_weights)
        file_names = [name for name, _, _ in file_layers]
        if wanted and not wanted.intersection(file_names):
            raise DataError(f"{where}: none of its {len(file_names)} layer(s) "
                            f"({_name_list(file_names)}) is a layer with weights in net "
                            f"'{self.name}' ({_name_list(with_weights)}); the weights of another "
                            "net?")
        report = CopyReport([], [], [])
        matched = []
        for name, _type, arrays in file_layers:       # check everything before changing any
            layer = layers.get(name)
            if layer is None:
                if arrays:
                    report.unused.append(name)
                continue
            if len(arrays) != len(layer.blobs):
                raise ShapeError(f"{where}: layer '{name}' ({layer.type}) has "
                                 f"{len(layer.blobs)} parameter blob(s) here but {len(arrays)} in the file")
            for j, (blob, array) in enumerate(zip(layer.blobs, arrays)):
                if not weights_io.shapes_compatible(array.shape, blob.shape):
                    raise ShapeError(
                        f"{where}: cannot copy param {j} of layer '{name}' ({layer.type}): "
                        f"file has shape {tuple(array.shape)}, net expects {tuple(blob.shape)}")
            matched.append((layer, arrays))
        for layer, arrays in matched:
            for blob, array in zip(layer.blobs, arrays):
                blob.data[...] = backend.to_current(np.asarray(array).reshape(blob.shape))
            if arrays:
                report.loaded.append(layer.name)
            if hasattr(layer, "refresh_weights"):
                layer.refresh_weights()
        loaded = set(report.loaded)
        report.missing.extend(n for n in with_weights if n not in loaded)
        if report.missing:
            extra = f"; layers of the file not in the net: {', '.join(report.unused)}" \
                if report.unused else ""
            log.warning("%s: %d of %d layers with weights in net '%s' are not in the file and "
                        "keep their initial values: %s%s", where, len(report.missing),
                        len(with_weights), self.name, ", ".join(report.missing), extra)
        elif report.unused:
            log.info("%s: layers of the file not in net '%s' (ignored): %s", where, self.name,
                     ", ".join(report.unused))
        return report

    def save(self, path):
        """Write every layer's blobs: `.npz` by extension, otherwise a binary .caffemodel."""
        from minicaffe import weights as weights_io   # noqa: PLC0415

        weights_io.save(path, self)

    def save_hdf5(self, path, write_diff=False):
        """Write the parameters as HDF5 in Caffe's layout (Net::ToHDF5): a group `data/<layer>`
        for every layer holding float32 datasets `0`, `1`, ... (only blobs a layer owns; a blob
        shared by `param { name }` is saved by its owner), and with `write_diff` the same under
        `diff/` for every blob."""
        import h5py  # noqa: PLC0415

        owners = {(info.layer_name, info.index): info.owner for info in self._param_infos}
        with h5py.File(os.fspath(path), "w") as f:
            data = f.create_group("data")
            diff = f.create_group("diff") if write_diff else None
            for name, layer in zip(self._layer_names, self.layers):
                group = data.create_group(name)
                dgroup = diff.create_group(name) if write_diff else None
                for j, blob in enumerate(layer.blobs):
                    if owners.get((name, j), True):
                        group.create_dataset(str(j), data=np.asarray(
                            backend.asnumpy(blob.data), dtype=np.float32))
                    if write_diff:
                        dgroup.create_dataset(str(j), data=np.asarray(
                            backend.asnumpy(blob.diff), dtype=np.float32))

    def load_hdf5(self, path):
        """Read parameters written by `save_hdf5` or Caffe's ToHDF5 (Net::CopyTrainedLayers
        FromHDF5): layers of the file missing here are skipped; a dataset missing for a blob
        that owns itself, more datasets than blobs, or a shape mismatch raise ShapeError
        naming the file, layer and blob."""
        import h5py  # noqa: PLC0415

        where = os.fspath(path)
        owners = {(info.layer_name, info.index): info.owner for info in self._param_infos}
        layers = self.layer_dict
        with h5py.File(where, "r") as f:
            if "data" not in f:
                raise ShapeError(f"{where}: no 'data' group (not a Caffe HDF5 weights file)")
            for name, group in f["data"].items():
                layer = layers.get(name)
                if layer is None:
                    continue
                if len(group) > len(layer.blobs):
                    raise ShapeError(f"{where}: layer '{name}' ({layer.type}) has {len(group)} "
                                     f"blob(s) in the file but {len(layer.blobs)} here")
                for j, blob in enumerate(layer.blobs):
                    if str(j) not in group:
                        if owners.get((name, j), True):
                            raise ShapeError(f"{where}: layer '{name}' ({layer.type}) has no "
                                             f"dataset '{j}' for its param {j}")
                        continue
                    array = group[str(j)][()]
                    from minicaffe import weights as weights_io  # noqa: PLC0415

                    if not weights_io.shapes_compatible(array.shape, blob.shape):
                        raise ShapeError(
                            f"{where}: cannot copy param {j} of layer '{name}' ({layer.type}): "
                            f"file has shape {tuple(array.shape)}, net expects {tuple(blob.shape)}")
                    blob.data[...] = backend.to_current(np.asarray(array).reshape(blob.shape))
                if hasattr(layer, "refresh_weights"):
                    layer.refresh_weights()

    def share_with(self, other):
        """Share parameter data with the layers of the same name in `other` (Caffe's
        ShareTrainedLayersWith: a test net reads the training net's weights, no copies).
        Raises ShapeError when a shared blob's shape differs."""
        theirs = other.layer_dict
        for layer in self.layers:
            source = theirs.get(layer.name)
            if source is None or not layer.blobs:
                continue
            if len(source.blobs) != len(layer.blobs):
                raise ShapeError(f"share_with: layer '{layer.name}' ({layer.type}) has "
                                 f"{len(layer.blobs)} blobs here and {len(source.blobs)} in the other net")
            for j, (mine, src) in enumerate(zip(layer.blobs, source.blobs)):
                if tuple(mine.shape) != tuple(src.shape):
                    raise ShapeError(f"share_with: layer '{layer.name}' ({layer.type}) param {j} has "
                                     f"shape {tuple(mine.shape)} here, {tuple(src.shape)} in the other net")
                mine.share_data(src)
            if hasattr(layer, "refresh_weights"):
                layer.refresh_weights()

    @property
    def use_plan(self):
        """Whether forward runs through the inference plan (minicaffe/plan.py): on by default for
        TEST nets on the CPU with the compiled kernels (MINICAFFE_PLAN=0 turns the default off).
        Set it to False to run the plain per-layer forward, e.g. while debugging a layer;
        setting True raises ValueError where a plan cannot run (the message says why)."""
        return self._planner is not None

    @use_plan.setter
    def use_plan(self, on):
        if not on:
            self._planner = None
        elif self._planner is None:
            reason = plan_refusal(self)
            if reason:
                raise ValueError(f"net '{self.name}': no inference plan: {reason}")
            self._planner = Planner(self)

    def choose_conv_modes(self, rounds=5):
        """Time every Convolution layer's forward in the dense, ccnmm and csr modes (`rounds`
        interleaved runs each, after one warm-up) and keep the fastest per layer. Returns and
        stores `net.conv_modes` {layer name: Caffe conv_mode}. At TRAIN (where convolutions
        always run dense) nothing is measured and every layer reads LOWERED_GEMM."""
        from minicaffe import timing   # noqa: PLC0415

        self.conv_modes = timing.choose_conv_modes(self, rounds=rounds)
        return self.conv_modes

    # ------------------------------------------------------------------------------------
    # running
    def before_forward(self, fn):
        """Call `fn(i)` before layer i runs forward (pycaffe's Net.before_forward)."""
        self._callbacks["before_forward"].append(fn)

    def after_forward(self, fn):
        """Call `fn(i)` after layer i ran forward."""
        self._callbacks["after_forward"].append(fn)

    def before_backward(self, fn):
        """Call `fn(i)` before layer i's backward step (every layer in the range, as Caffe)."""
        self._callbacks["before_backward"].append(fn)

    def after_backward(self, fn):
        """Call `fn(i)` after layer i's backward step."""
        self._callbacks["after_backward"].append(fn)

    def _forward_range(self, first, last):
        # The plan runs layers in compiled stretches: per-layer callbacks need the plain loop.
        planner = self._planner
        if self._callbacks["before_forward"] or self._callbacks["after_forward"]:
            planner = None
        loss = None if planner is None else planner.forward(first, last)
        if loss is None:
            loss = self._forward_layers(first, last)
        self._last_loss = loss
        return loss

    def _forward_layers(self, first, last):
        """The plain forward: reshape and forward each layer first..last from Python; returns
        the loss they add."""
        loss = 0.0
        before, after = self._callbacks["before_forward"], self._callbacks["after_forward"]
        for i in range(first, last + 1):
            layer, bottom, top = self.layers[i], self._bottom_vecs[i], self._top_vecs[i]
            for fn in before:
                fn(i)
            try:
                layer.reshape(bottom, top)
                layer.forward(bottom, top)
            except MemoryError as exc:
                raise layer.error(_out_of_memory(exc), bottom) from None
            except MinicaffeError:
                raise
            except (ValueError, IndexError) as exc:
                raise layer.error(f"forward failed: {exc}", bottom) from exc
            for blob, w in zip(top, layer.loss_weights):
                if w != 0:
                    loss += w * float(blob.data.sum())
                    blob.diff[...] = w            # the loss weight seeds backward
            for fn in after:
                fn(i)
        return loss

    def _backward_range(self, first, last):
        before, after = self._callbacks["before_backward"], self._callbacks["after_backward"]
        for i in range(first, last - 1, -1):
            for fn in before:
                fn(i)
            if self._layer_need_backward[i]:
                self.layers[i].backward(self._top_vecs[i], self._bottom_need_backward[i],
                                        self._bottom_vecs[i])
            for fn in after:
                fn(i)

    def forward_all_loss(self):
        """Run every layer forward; returns the total loss Σ loss_weight · sum(top)."""
        return self._forward_range(0, len(self.layers) - 1)

    def forward_backward(self):
        """One forward and one backward pass over the whole net; returns the loss (float).
        Parameter diffs are added to (clear them first with `clear_param_diffs`)."""
        loss = self._forward_range(0, len(self.layers) - 1)
        self._backward_range(len(self.layers) - 1, 0)
        return loss

    @property
    def loss(self):
        """Total loss of the last full or partial forward pass."""
        return getattr(self, "_last_loss", 0.0)

    # ------------------------------------------------------------------------------------
    # for the solver
    @property
    def learnable_params(self):
        """Unique parameter Blobs in Caffe's order (layer by layer, blob by blob); a blob shared
        by `param { name }` appears once, as its owner."""
        return list(self._learnable)

    @property
    def param_infos(self):
        """One ParamInfo per parameter blob of every layer (shared ones with owner=False)."""
        return list(self._param_infos)

    def clear_param_diffs(self):
        """Set every learnable diff to zero (the solver does this before each iteration)."""
        for blob in self._learnable:
            blob.diff[...] = 0

    def first_nonfinite_output(self):
        """(layer name, top name) of the first top holding NaN/inf after the last forward, or
        None when every top is finite."""
        for i, layer in enumerate(self.layers):
            for name, blob in zip(self._top_names[i], self._top_vecs[i]):
                xp = backend.xp_of(blob.data)
                if blob.count and not bool(xp.isfinite(blob.data).all()):
                    return layer.name, name
        return None

    def __repr__(self):
        return f"<Net '{self.name}' {phase_name(self.phase)}: {len(self.layers)} layers>"
