"""Weights files: .caffemodel bytes as protobuf writes them, V1 and legacy blobs, .npz, and
Net.copy_from / Net.save."""
import struct

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe import weights
from minicaffe.errors import DataError, ShapeError
from minicaffe.net import Net
from minicaffe.prototxt import parse_net

NET = """
name: "tiny"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } } }
layer { name: "r" type: "ReLU" bottom: "y" top: "y" }
"""


def _len(field, payload):
    """A length-delimited field (wire type 2) with a one-byte length."""
    assert len(payload) < 128
    key = (field << 3) | 2
    key_bytes = bytes([key]) if key < 128 else bytes([(key & 0x7F) | 0x80, key >> 7])
    return key_bytes + bytes([len(payload)]) + payload


def test_tiny_caffemodel_bytes_are_what_protobuf_writes():
    # caffe.proto: NetParameter.name = 1, .layer = 100; LayerParameter.name = 1, .type = 2,
    # .blobs = 7; BlobProto.data = 5 [packed], .shape = 7; BlobShape.dim = 1 [packed int64].
    # protobuf serialises fields in field-number order, so data (5) precedes shape (7).
    w = np.array([[1.0, -2.0]], dtype=np.float32)
    blob = _len(5, struct.pack("<2f", 1.0, -2.0)) + _len(7, _len(1, bytes([1, 2])))
    layer = _len(1, b"ip") + _len(2, b"InnerProduct") + _len(7, blob)
    expected = _len(1, b"tiny") + b"\xa2\x06" + bytes([len(layer)]) + layer    # 100 << 3 | 2 = 802
    assert weights.encode_caffemodel([("ip", "InnerProduct", [w])], "tiny") == expected
    [(name, type_, blobs)] = weights.decode_caffemodel(expected)
    assert (name, type_) == ("ip", "InnerProduct")
    np.testing.assert_array_equal(blobs[0], w)


def test_float64_blobs_use_double_data():
    a = np.array([0.1, 0.2])
    blob = weights.encode_blob(a)
    assert blob == _len(7, _len(1, bytes([2]))) + _len(8, struct.pack("<2d", 0.1, 0.2))


def test_v1_layers_with_legacy_dims_load():
    # V1LayerParameter: blobs = 6, name = 4, type = 5 (enum: 14 = INNER_PRODUCT);
    # BlobProto legacy num/channels/height/width = 1..4 (varints).
    legacy = bytes([0x08, 1, 0x10, 1, 0x18, 2, 0x20, 3]) + _len(5, np.arange(6, dtype="<f4").tobytes())
    v1 = _len(4, b"ip") + bytes([0x28, 14]) + _len(6, legacy) + _len(6, bytes([0x08, 1, 0x10, 1, 0x18, 1, 0x20, 2]) + _len(5, np.ones(2, "<f4").tobytes()))
    buf = _len(2, v1)
    [(name, type_, blobs)] = weights.decode_caffemodel(buf)
    assert (name, type_) == ("ip", "InnerProduct") and blobs[0].shape == (1, 1, 2, 3)
    assert weights.shapes_compatible(blobs[0].shape, (2, 3))
    assert not weights.shapes_compatible(blobs[0].shape, (3, 2))


def test_net_save_and_copy_from_round_trip(tmp_path):
    for suffix in (".caffemodel", ".npz"):
        a = Net(parse_net(NET), caffe.TEST)
        path = tmp_path / f"w{suffix}"
        a.save(str(path))
        b = Net(parse_net(NET), caffe.TEST)
        assert not np.array_equal(a.params["ip"][0].data, b.params["ip"][0].data)
        b.copy_from(str(path))
        for pa, pb in zip(a.params["ip"], b.params["ip"]):
            np.testing.assert_array_equal(pa.data, pb.data)
        c = Net(parse_net(NET), str(path), caffe.TEST)
        np.testing.assert_array_equal(c.params["ip"][1].data, a.params["ip"][1].data)


def test_write_read_identity_of_many_shapes(tmp_path, rng):
    layers = [("conv1", "Convolution", [rng.standard_normal((4, 3, 5, 5)).astype(np.float32),
                                         rng.standard_normal(4).astype(np.float32)]),
              ("scalar", "Scale", [np.array(2.5, dtype=np.float32)]),
              ("bn/odd name", "BatchNorm", [np.zeros((0,), np.float32), rng.standard_normal((3, 1)).astype(np.float64)]),
              ("relu", "ReLU", [])]
    for writer, reader, suffix in ((weights.write_caffemodel, weights.read_caffemodel, ".caffemodel"),
                                   (weights.write_npz, weights.read_npz, ".npz")):
        path = tmp_path / f"m{suffix}"
        writer(str(path), layers)
        back = reader(str(path))
        assert [(n, t, len(b)) for n, t, b in back] == [(n, t, len(b)) for n, t, b in layers]
        for (_, _, want), (_, _, got) in zip(layers, back):
            for w, g in zip(want, got):
                assert g.shape == w.shape and g.dtype == w.dtype
                np.testing.assert_array_equal(g, w)


def test_copy_from_shape_mismatch_names_layer_and_shapes(tmp_path):
    path = tmp_path / "bad.caffemodel"
    weights.write_caffemodel(str(path), [("ip", "InnerProduct", [np.zeros((2, 4), np.float32), np.zeros(2, np.float32)])])
    net = Net(parse_net(NET), caffe.TEST)
    with pytest.raises(ShapeError, match=r"param 0 of layer 'ip' \(InnerProduct\): file has shape \(2, 4\), net expects \(2, 3\)"):
        net.copy_from(str(path))
    weights.write_caffemodel(str(path), [("ip", "InnerProduct", [np.zeros((2, 3), np.float32)])])
    with pytest.raises(ShapeError, match="2 parameter blob.* here but 1 in the file"):
        net.copy_from(str(path))


def test_copy_from_skips_unknown_layers_and_calls_refresh_weights(tmp_path):
    path = tmp_path / "w.caffemodel"
    weights.write_caffemodel(str(path), [("elsewhere", "InnerProduct", [np.ones((9, 9), np.float32)]),
                                         ("ip", "InnerProduct", [np.ones((2, 3), np.float32), np.ones(2, np.float32)])])
    net = Net(parse_net(NET), caffe.TEST)
    calls = []
    net.layer_dict["ip"].refresh_weights = lambda: calls.append("ip")
    net.copy_from(str(path))
    assert calls == ["ip"] and (net.params["ip"][0].data == 1).all()


def test_garbage_files_fail_clearly(tmp_path):
    path = tmp_path / "junk.caffemodel"
    path.write_bytes(b"\xff\xff\xff")
    with pytest.raises(DataError, match="junk.caffemodel: not a readable .caffemodel"):
        weights.load(str(path))
    with pytest.raises(FileNotFoundError, match="missing.caffemodel"):
        weights.load(str(tmp_path / "missing.caffemodel"))


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"__layers__": np.array(["ip"]), "ip/0": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(DataError, match="cannot read weights .npz"):
        weights.read_npz(str(path))
