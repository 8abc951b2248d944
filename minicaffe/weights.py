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
    """[(name, type, [arrays])] from NetParameter bytes (current `layer` and V1 `layers`).

    Raises DataError naming `path` and the byte offset when the bytes are not a well-formed
    NetParameter: cut short inside a record (saying how many layers were complete), a layer
    name that is not UTF-8, a blob with negative or impossibly large dimensions or with a value
    count that disagrees with its shape. A file cut exactly between two layers cannot be told
    from a smaller model; Net.copy_from reports which of its layers the file did not hold.
    """
    head = f"{path}: not a readable .caffemodel (binary NetParameter)"
    try:
        net = wire.parse(buf)
    except wire.WireError as exc:
        raise DataError(f"{head}: {exc}; {_cut_note(buf)}") from None
    out = []
    # (field of the layer list, name, type, blobs field, type decoder)
    for number, name_f, type_f, blobs_f, v1 in ((100, 1, 2, 7, False), (2, 4, 5, 6, True)):
        offsets = net.message_offsets(number)
        k, where = 0, ""
        try:
            for k, layer in enumerate(net.messages(number)):
                where = f"{'V1 ' if v1 else ''}layer {k} at byte {offsets[k]}"
                name = layer.string(name_f)
                where = f"{'V1 ' if v1 else ''}layer '{name}'"
                type_ = V1_TYPES.get(layer.int(type_f), f"V1:{layer.int(type_f)}") if v1 \
                    else layer.string(type_f)
                blobs = [wire.decode_blob_proto(b, what=f"{where} blob {j}")[0]
                         for j, b in enumerate(layer.messages(blobs_f))]
                out.append((name, type_, blobs))
        except wire.WireError as exc:
            text = str(exc)
            text = text if text.startswith(where) else f"{where}: {text}"
            raise DataError(f"{path}: {text}") from None
    return out


def _cut_note(buf):
    """Where a malformed NetParameter stops being readable: 'the file is cut short or corrupt
    after N complete layers (the last: 'name')', from a scan of its top-level records."""
    pos, n, names = 0, len(buf), []
    try:
        while pos < n:
            key, pos = wire.decode_varint(buf, pos)
            if key & 7 != wire.LEN:
                if key & 7 == wire.VARINT:
                    _, pos = wire.decode_varint(buf, pos)
                    continue
                break
            length, pos = wire.decode_varint(buf, pos)
            if pos + length > n:
                break
            if key >> 3 in (100, 2):
                fields = wire.parse(buf[pos:pos + length])
                names.append(fields.string(1 if key >> 3 == 100 else 4))
            pos += length
    except wire.WireError:
        pass
    count = f"{len(names)} complete layer{'' if len(names) == 1 else 's'}"
    last = f" (the last: '{names[-1]}')" if names else ""
    return f"the file is cut short or corrupt after {count}{last}"


def read_caffemodel(path):
    """[(name, type, [arrays])] from a binary .caffemodel file (DataError when it is
    malformed, see decode_caffemodel; an empty file holds no layers)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        buf = f.read()
    if not buf:
        raise DataError(f"{path}: holds no layers (the file is empty)")
    return decode_caffemodel(buf, path)


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
    `<layer>/<index>`; then the types are empty and the order is the file's).

    Raises DataError naming the file for anything else: not a zip archive, truncated, a
    member that is not a plain numeric array (object arrays would need pickle, refused),
    `__layers__`/`__types__` that are not 1-D string arrays of one length, no `<layer>/<index>`
    array at all.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return _npz_layers(path, z)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001  (zipfile/NumPy raise many kinds on hostile bytes)
        raise DataError(f"{path}: cannot read weights .npz ({type(exc).__name__}: {exc})") from None


def _npz_layers(path, z):
    keys = list(z.keys())
    if "__layers__" in keys:
        names = _string_list(path, z, "__layers__")
        types = _string_list(path, z, "__types__") if "__types__" in keys else [""] * len(names)
        if len(types) != len(names):
            raise DataError(f"{path}: __types__ has {len(types)} entries for {len(names)} layers")
    else:
        names, types = [], []
        for k in keys:
            layer, sep, index = k.rpartition("/")
            if sep and index.isdigit() and layer not in names:
                names.append(layer)
                types.append("")
        if not names:
            shown = ", ".join(sorted(keys)[:10]) + (", ..." if len(keys) > 10 else "")
            raise DataError(f"{path}: no '<layer>/<index>' arrays (keys: {shown or 'none'}); not "
                            "a minicaffe weights .npz")
    out = []
    for name, type_ in zip(names, types):
        blobs, j = [], 0
        while f"{name}/{j}" in keys:
            array = np.array(z[f"{name}/{j}"])
            if array.dtype.kind not in "fiu":
                raise DataError(f"{path}: array '{name}/{j}' has dtype {array.dtype}; expected "
                                "numbers")
            blobs.append(array)
            j += 1
        out.append((name, type_, blobs))
    return out


def _string_list(path, z, key):
    array = z[key]
    if array.ndim != 1 or array.dtype.kind != "U":
        raise DataError(f"{path}: {key} is a {array.dtype} array of shape {array.shape}; expected "
                        "a 1-D array of strings")
    return [str(v) for v in array]


# -- dispatch ------------------------------------------------------------------------------
def _is_npz(path):
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"      # a zip archive


def load(path):
    """[(name, type, [arrays])] from a .caffemodel or .npz (recognised by content; a file named
    .npz that is not a zip archive is refused as such). DataError for a malformed file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file '{path}' not found")
    if _is_npz(path):
        return read_npz(path)
    if path.endswith(".npz"):
        raise DataError(f"{path}: not a zip archive (a truncated or foreign .npz?)")
    return read_caffemodel(path)


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
