"""Bring old Caffe nets and solvers to the current form, as Caffe's upgrade_proto does.

- V1 `layers { type: CONVOLUTION blobs_lr: 1 weight_decay: 1 param: "w" ... }` becomes
  `layer { type: "Convolution" param { name: "w" lr_mult: 1 decay_mult: 1 } ... }`; in V1 data
  layers the deprecated `data_param { scale mean_file crop_size mirror }` move to
  `transform_param` (Caffe's UpgradeNetDataTransformation).
- Net-level `input:` with `input_shape { }` or four `input_dim:` per input becomes a first layer
  `layer { name: "input" type: "Input" top: ... input_param { shape { ... } } }`.
- A BatchNorm layer declaring three `param { }` gets lr_mult and decay_mult 0 on all three
  (Caffe's UpgradeNetBatchNorm: its blobs are statistics, never learned).
- Solver `solver_type: NESTEROV` (the deprecated enum) becomes `type: "Nesterov"`.
- V0 nets (`layers { layer { type: "conv" kernelsize: 5 ... } }`, 2013-2014) are converted
  field by field (Caffe's UpgradeV0Net), including merging V0 "padding" layers into the
  convolution that follows them. V0 fields with no current equivalent in minicaffe (the
  window-data `det_*` fields, `new_num`...) give an UnmodeledFieldWarning and are dropped.
"""
import warnings

from minicaffe.errors import ParseError
from minicaffe.prototxt.message import message_class

# V1LayerParameter.LayerType -> current type string (Caffe's UpgradeV1LayerType).
V1_TYPES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

SOLVER_TYPES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}

_V1_COPIED = ("name", "bottom", "top", "include", "exclude", "blobs", "loss_weight")
_DATA_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def _error(msg, field, text):
    """ParseError at the position where `field` of `msg` was written (or at `msg`)."""
    pos = msg.position_of(field) or (None, None, None)
    source = msg._source
    line = source.line(pos[1]) if source is not None and pos[1] else None
    return ParseError(text, pos[0], pos[1], pos[2], line)


def upgrade_net(net):
    """Upgrade a NetParameter in place (see the module docstring); returns it."""
    if net.layers:
        if net.layer:
            raise _error(net, "layers", "net mixes V1 'layers' and current 'layer' fields; "
                         "use one form")
        _merge_v0_padding(net)
        net.layer = [_upgrade_v1_layer(v1) for v1 in net.layers]
        net.clear("layers")
    _upgrade_input(net)
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0
    return net


def _upgrade_v1_layer(v1):
    LayerParameter, ParamSpec = message_class("LayerParameter"), message_class("ParamSpec")
    if v1.has("layer"):
        v1 = _v0_to_v1(v1)
    layer = LayerParameter()
    object.__setattr__(layer, "_source", v1._source)
    layer.position = v1.position
    layer.unmodeled.extend(v1.unmodeled)
    for name in _V1_COPIED:
        if v1.has(name):
            setattr(layer, name, getattr(v1, name))
            layer._positions[name] = v1.position_of(name)
    if v1.has("type"):
        layer.type = V1_TYPES[v1.type]
        layer._positions["type"] = v1.position_of("type")
    n_specs = max(len(v1.param), len(v1.blob_share_mode), len(v1.blobs_lr),
                  len(v1.weight_decay))
    for i in range(n_specs):
        spec = ParamSpec()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blob_share_mode):
            spec.share_mode = v1.blob_share_mode[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
        layer.param.append(spec)
    if n_specs:
        layer._positions["param"] = next(v1.position_of(n) for n in
                                         ("blobs_lr", "weight_decay", "param", "blob_share_mode")
                                         if n in v1._positions)
    for name, f in type(v1)._spec.fields.items():
        if name.endswith("_param") and f.is_message and v1.has(name):
            setattr(layer, name, getattr(v1, name))
            layer._positions[name] = v1.position_of(name)
    if layer.type in ("Data", "ImageData", "WindowData"):
        _move_data_transform(layer)
    return layer


def _move_data_transform(layer):
    """V1 data layers kept scale/mean_file/crop_size/mirror in their data_param."""
    which = {"Data": "data_param", "ImageData": "image_data_param"}.get(layer.type)
    if which is None or not layer.has(which):
        return
    params = getattr(layer, which)
    for name in _DATA_TRANSFORM_FIELDS:
        if params.has(name):
            setattr(layer.transform_param, name, getattr(params, name))
            params.clear(name)


# V0 type string -> V1 enum name (Caffe's UpgradeV0LayerType).
V0_TYPES = {
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION",
    "data": "DATA", "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN", "hdf5_data": "HDF5_DATA", "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL", "images": "IMAGE_DATA", "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT", "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS", "pool": "POOLING",
    "relu": "RELU", "sigmoid": "SIGMOID", "softmax": "SOFTMAX", "softmax_loss": "SOFTMAX_LOSS",
    "split": "SPLIT", "tanh": "TANH", "window_data": "WINDOW_DATA",
}
_T = "transform_param"
# (V0 type, V0 field) -> (parameter message field, its field name); repeated targets take a
# list; a field name of None copies the whole message.
_V0_FIELDS = {
    ("conv", "num_output"): ("convolution_param", "num_output"),
    ("conv", "biasterm"): ("convolution_param", "bias_term"),
    ("conv", "weight_filler"): ("convolution_param", "weight_filler"),
    ("conv", "bias_filler"): ("convolution_param", "bias_filler"),
    ("conv", "pad"): ("convolution_param", "pad"),
    ("conv", "kernelsize"): ("convolution_param", "kernel_size"),
    ("conv", "group"): ("convolution_param", "group"),
    ("conv", "stride"): ("convolution_param", "stride"),
    ("innerproduct", "num_output"): ("inner_product_param", "num_output"),
    ("innerproduct", "biasterm"): ("inner_product_param", "bias_term"),
    ("innerproduct", "weight_filler"): ("inner_product_param", "weight_filler"),
    ("innerproduct", "bias_filler"): ("inner_product_param", "bias_filler"),
    ("pool", "pad"): ("pooling_param", "pad"),
    ("pool", "kernelsize"): ("pooling_param", "kernel_size"),
    ("pool", "stride"): ("pooling_param", "stride"),
    ("pool", "pool"): ("pooling_param", "pool"),
    ("dropout", "dropout_ratio"): ("dropout_param", "dropout_ratio"),
    ("lrn", "local_size"): ("lrn_param", "local_size"),
    ("lrn", "alpha"): ("lrn_param", "alpha"),
    ("lrn", "beta"): ("lrn_param", "beta"),
    ("lrn", "k"): ("lrn_param", "k"),
    ("data", "source"): ("data_param", "source"),
    ("data", "batchsize"): ("data_param", "batch_size"),
    ("data", "rand_skip"): ("data_param", "rand_skip"),
    ("data", "scale"): (_T, "scale"), ("data", "meanfile"): (_T, "mean_file"),
    ("data", "cropsize"): (_T, "crop_size"), ("data", "mirror"): (_T, "mirror"),
    ("images", "source"): ("image_data_param", "source"),
    ("images", "batchsize"): ("image_data_param", "batch_size"),
    ("images", "rand_skip"): ("image_data_param", "rand_skip"),
    ("images", "shuffle_images"): ("image_data_param", "shuffle"),
    ("images", "new_height"): ("image_data_param", "new_height"),
    ("images", "new_width"): ("image_data_param", "new_width"),
    ("images", "scale"): (_T, "scale"), ("images", "meanfile"): (_T, "mean_file"),
    ("images", "cropsize"): (_T, "crop_size"), ("images", "mirror"): (_T, "mirror"),
    ("hdf5_data", "source"): ("hdf5_data_param", "source"),
    ("hdf5_data", "batchsize"): ("hdf5_data_param", "batch_size"),
    ("concat", "concat_dim"): ("concat_param", "concat_dim"),
    ("hdf5_output", "hdf5_output_param"): ("hdf5_output_param", None),
}
_V0_COMMON = ("name", "type", "blobs", "blobs_lr", "weight_decay")


def _v0_to_v1(wrapper):
    """A V1 layer from a V1 `layers` entry holding a V0 `layer` (connections stay on the
    wrapper, everything else comes from the V0 message)."""
    v0 = wrapper.layer
    out = wrapper.copy()
    out.clear("layer")
    for name in ("name", "blobs", "blobs_lr", "weight_decay"):
        if v0.has(name):
            setattr(out, name, getattr(v0, name))
            out._positions[name] = v0.position_of(name)
    if v0.type not in V0_TYPES:
        raise _error(v0, "type", f"unknown V0 layer type '{v0.type}' (known: "
                     f"{', '.join(sorted(V0_TYPES))})")
    out.type = V0_TYPES[v0.type]
    out._positions["type"] = v0.position_of("type")
    for name in type(v0)._spec.fields:
        if name in _V0_COMMON or not v0.has(name):
            continue
        target = _V0_FIELDS.get((v0.type, name))
        if target is None:
            pos = v0.position_of(name)
            warnings.warn(_unmodeled_warning(
                f"{pos[0] or '<string>'}:{pos[1]}:{pos[2]}: V0 field '{name}' of a "
                f"'{v0.type}' layer has no minicaffe equivalent; it is dropped"), stacklevel=2)
            continue
        param_name, field_name = target
        value = getattr(v0, name)
        if field_name is None:                       # a whole parameter message
            setattr(out, param_name, value.copy())
            out._positions[param_name] = v0.position_of(name)
            continue
        param = getattr(out, param_name)
        f = type(param)._spec.fields[field_name]
        setattr(param, field_name, [value] if f.repeated else value)
        param._positions[field_name] = v0.position_of(name)
    for name, raw in v0.unmodeled:
        out.unmodeled.append((name, raw))
    return out


def _unmodeled_warning(text):
    from minicaffe.prototxt.bind import UnmodeledFieldWarning
    return UnmodeledFieldWarning(text)


def _merge_v0_padding(net):
    """Fold V0 "padding" layers into the convolution that reads their output (Caffe's
    UpgradeV0PaddingLayers)."""
    pads = {}
    kept = []
    for v1 in net.layers:
        if v1.has("layer") and v1.layer.type == "padding":
            if len(v1.bottom) != 1 or len(v1.top) != 1:
                raise _error(v1, "bottom", "V0 padding layer needs exactly one bottom and top")
            pads[v1.top[0]] = (v1.bottom[0], v1.layer.pad, v1)
            continue
        for i, bottom in enumerate(v1.bottom):
            if bottom in pads:
                source, pad, pad_layer = pads[bottom]
                if not (v1.has("layer") and v1.layer.type == "conv"):
                    raise _error(pad_layer, "top", "a V0 padding layer must feed a "
                                 "convolution")
                v1.bottom[i] = source
                v1.layer.pad = pad
        kept.append(v1)
    net.layers = kept


def _upgrade_input(net):
    if not (net.input or net.input_shape or net.input_dim):
        return
    n = len(net.input)
    if net.input_shape and len(net.input_shape) != n:
        raise _error(net, "input_shape", f"net declares {n} input(s) but "
                     f"{len(net.input_shape)} input_shape(s); give one input_shape per input")
    if not net.input_shape and net.input_dim and len(net.input_dim) != 4 * n:
        raise _error(net, "input_dim", f"net declares {n} input(s) but {len(net.input_dim)} "
                     f"input_dim values; give 4 per input (num, channels, height, width)")
    LayerParameter, BlobShape = message_class("LayerParameter"), message_class("BlobShape")
    layer = LayerParameter(name="input", type="Input", top=list(net.input))
    object.__setattr__(layer, "_source", net._source)
    layer.position = net.position_of("input")
    if net.input_shape:
        layer.input_param.shape = [s.copy() for s in net.input_shape]
    elif net.input_dim:
        layer.input_param.shape = [BlobShape(dim=net.input_dim[4 * i:4 * i + 4])
                                   for i in range(n)]
    net.layer.insert(0, layer)
    for name in ("input", "input_shape", "input_dim"):
        net.clear(name)


def upgrade_solver(solver):
    """Upgrade a SolverParameter in place: legacy solver_type, inline nets; returns it."""
    if solver.has("solver_type"):
        new = SOLVER_TYPES[solver.solver_type]
        if solver.has("type") and solver.type != new:
            raise _error(solver, "solver_type", f"solver sets both solver_type: "
                         f"{solver.solver_type} (deprecated) and type: \"{solver.type}\"; "
                         "keep only type")
        solver.type = new
        solver._positions.setdefault("type", solver.position_of("solver_type"))
        solver.clear("solver_type")
    for name in ("net_param", "train_net_param"):
        if solver.has(name):
            upgrade_net(getattr(solver, name))
    for net in solver.test_net_param:
        upgrade_net(net)
    return solver
