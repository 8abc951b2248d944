"""Trained weights on disk: Caffe's binary `.caffemodel` and a NumPy `.npz` form.

A weights file is a list of `(layer_name, layer_type, [arrays])`, one entry per layer with its
parameter blobs in Caffe's order.

.caffemodel is a binary `NetParameter` (caffe.proto field numbers):
  NetParameter   { name = 1, layers = 2 (V1LayerParameter), layer = 100 (LayerParameter) }
  LayerParameter { name = 1, type = 2, bottom = 3, top = 4, blobs = 7 (BlobProto) }
  V1LayerParameter { bottom = 2, top = 3, name = 4, type = 5 (enum), blobs = 6 }
  BlobProto      { num..width = 1..4 (legacy), data = 5 (packed float), shape = 7,
                   double_data = 8 }
Written files use the current `layer` form with `shape` and packed `data` (float64 blobs as
`double_data`), as Caffe 1.0 writes them, so BVLC Caffe reads them back; a 0-axis blob (one
value) has no `shape`, as in Caffe. Reading also accepts V1 `layers` and legacy 4-D blob
dimensions (which win over `shape` when both are present, as in Caffe's Blob::FromProto).

.npz holds `<layer>/<index>` arrays plus `__layers__` and `__types__` (string arrays giving the
layer order); it is read with `allow_pickle=False`, so loading never runs code from the file.
"""
import os

import numpy as np

from minicaffe import backend, wire
from minicaffe.errors import DataError

# V1LayerParameter.LayerType enum values -> current type strings (caffe.proto).
V1_TYPES = {
    0: "", 1: "Accuracy", 2: "BNLL", 3: "Concat", 4: "Convolution", 5: "Data", 6: "Dropout",
    7: "EuclideanLoss", 8: "Flatten", 9: "HDF5Data", 10: "HDF5Output", 11: "Im2col",
    12: "ImageData", 13: "InfogainLoss", 14: "InnerProduct", 15: "LRN", 16: "MultinomialLogisticLoss",
    17: "Pooling", 18: "ReLU", 19: "Sigmoid", 20: "Softmax", 21: "SoftmaxWithLoss", 22: "Split",
    23: "TanH", 24: "WindowData", 25: "Eltwise", 26: "Power", 27: "SigmoidCrossEntropyLoss",
    28: "HingeLoss", 29: "MemoryData", 30: "ArgMax", 31: "Threshold", 32: "DummyData",
    33: "Slice", 34: "MVN", 35: "AbsVal", 36: "Silence", 37: "ContrastiveLoss", 38: "Exp",
    39: "Deconvolution",
}


def shapes_compatible(file_shape, net_shape):
    """Whether a stored blob fits a net blob: equal shapes, or equal after padding both to 4
    axes with leading 1s (Caffe's legacy num/channels/height/width check)."""
    a, b = tuple(file_shape), tuple(net_shape)
    if a == b:
        return True
    if len(a) > 4 or len(b) > 4:
        return False
    return (1,) * (4 - len(a)) + a == (1,) * (4 - len(b)) + b


# -- .caffemodel ---------------------------------------------------------------------------
def encode_blob(array):
    """BlobProto bytes in protobuf's field order (data = 5 or, for float64, shape = 7 then
    double_data = 8), as Caffe 1.0 serialises a blob without its diff. A 0-axis array gets no
    shape field (Caffe's Blob::ToProto adds one dim per axis, so none is ever created)."""
    array = np.asarray(array)
    w = wire.Writer()
    if array.dtype == np.float64:
        if array.ndim:
            w.message(7, wire.encode_blob_shape(array.shape))
        w.packed_doubles(8, array.reshape(-1))
    else:
        w.packed_floats(5, array.reshape(-1))
        if array.ndim:
            w.message(7, wire.encode_blob_shape(array.shape))
    return w.getvalue()


def encode_caffemodel(layers, net_name=""):
    """Bytes of a NetParameter holding `layers` [(name, type, [arrays])]."""
    net = wire.Writer()
    if net_name:
        net.string(1, net_name)
    for name, type_, arrays in layers:
        layer = wire.Writer().string(1, name).string(2, type_)
        for array in arrays:
            array = np.asarray(backend.asnumpy(array))
            if array.dtype != np.float64:
                array = array.astype(np.float32)
            layer.message(7, encode_blob(array))
        net.message(100, layer)
    return net.getvalue()


def decode_caffemodel(buf, path="<bytes>"):
    """[(name, type, [arrays])] from NetParameter bytes (current `layer` and V1 `layers`)."""
    try:
        net = wire.parse(buf)
        out = []
        for k, layer in enumerate(net.messages(100)):
            name = layer.string(1)
            blobs = [wire.decode_blob_proto(b, what=f"{path}: layer '{name}' blob {j}")[0]
                     for j, b in enumerate(layer.messages(7))]
            out.append((name, layer.string(2), blobs))
        for layer in net.messages(2):
            name = layer.string(4)
            type_id = layer.int(5)
            blobs = [wire.decode_blob_proto(b, what=f"{path}: V1 layer '{name}' blob {j}")[0]
                     for j, b in enumerate(layer.messages(6))]
            out.append((name, V1_TYPES.get(type_id, f"V1:{type_id}"), blobs))
    except wire.WireError as exc:
        raise DataError(f"{path}: not a readable .caffemodel (binary NetParameter): {exc}") from None
    return out


def read_caffemodel(path):
    """[(name, type, [arrays])] from a binary .caffemodel file."""
    with open(path, "rb") as f:
        return decode_caffemodel(f.read(), os.fspath(path))


def write_caffemodel(path, layers, net_name=""):
    """Write [(name, type, [arrays])] as a binary .caffemodel."""
    data = encode_caffemodel(layers, net_name)
    with open(path, "wb") as f:
        f.write(data)


# -- .npz ----------------------------------------------------------------------------------
def write_npz(path, layers):
    """Write [(name, type, [arrays])] as `<name>/<index>` arrays plus the layer order."""
    arrays = {"__layers__": np.array([n for n, _, _ in layers], dtype=str),
              "__types__": np.array([t for _, t, _ in layers], dtype=str)}
    for name, _, blobs in layers:
        for j, a in enumerate(blobs):
            arrays[f"{name}/{j}"] = np.asarray(backend.asnumpy(a))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def read_npz(path):
    """[(name, type, [arrays])] from an .npz written by `write_npz` (or any npz whose keys are
    `<layer>/<index>`; then the types are empty and the order is the file's)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if "__layers__" in keys:
                names = [str(n) for n in z["__layers__"]]
                types = [str(t) for t in z["__types__"]] if "__types__" in keys else [""] * len(names)
            else:
                names, types = [], []
                for k in keys:
                    layer = k.rsplit("/", 1)[0]
                    if layer not in names:
                        names.append(layer)
                        types.append("")
            out = []
            for name, type_ in zip(names, types):
                blobs, j = [], 0
                while f"{name}/{j}" in keys:
                    blobs.append(np.array(z[f"{name}/{j}"]))
                    j += 1
                out.append((name, type_, blobs))
    except ValueError as exc:     # object arrays (pickles) are refused by allow_pickle=False
        raise DataError(f"{os.fspath(path)}: cannot read weights .npz: {exc}") from None
    return out


# -- dispatch ------------------------------------------------------------------------------
def _is_npz(path):
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"      # a zip archive


def load(path):
    """[(name, type, [arrays])] from a .caffemodel or .npz (recognised by content)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file '{path}' not found")
    return read_npz(path) if _is_npz(path) else read_caffemodel(path)


def net_layers(net):
    """[(name, type, [arrays])] of a Net's layers (inserted Split layers left out)."""
    return [(layer.name, layer.type, [b.data for b in layer.blobs])
            for layer in net.layers if layer.type != "Split"]


def save(path, net):
    """Write a Net's weights: `.npz` when the name ends so, else a binary .caffemodel."""
    layers = net_layers(net)
    if os.fspath(path).endswith(".npz"):
        write_npz(path, layers)
    else:
        write_caffemodel(path, layers, net.name)
