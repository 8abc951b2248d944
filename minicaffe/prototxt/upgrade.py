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
V0 nets (`layers { layer { type: "conv" } }`, before 2014) are refused with a pointer to Caffe's
upgrade tool.
"""
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
    layer = LayerParameter()
    object.__setattr__(layer, "_source", v1._source)
    layer.position = v1.position
    for name, raw in v1.unmodeled:
        if name == "layer":
            raise _error(v1, "name", "V0 layer definitions ('layers { layer { ... } }') are "
                         "not supported; convert the file with Caffe's "
                         "upgrade_net_proto_text tool first")
        layer.unmodeled.append((name, raw))
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
