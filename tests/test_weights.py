"""Weights files: .caffemodel bytes as protobuf writes them, V1 and legacy blobs, .npz, and
Net.copy_from / Net.save."""
import re
import struct

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe import weights, wire
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


def _protobuf_classes():
    """NetParameter / V1 classes built at run time from caffe.proto's field numbers, with the
    real protobuf library (no protoc, no caffe_pb2)."""
    pytest.importorskip("google.protobuf", reason="protobuf not installed (optional cross-check)")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="mini_caffe.proto", package="mini", syntax="proto2")

    def message(name, *fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, packed, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = ".mini." + type_name
            if packed:
                f.options.packed = True

    OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("BlobShape", ("dim", 1, F.TYPE_INT64, REP, True, None))
    message("BlobProto", ("num", 1, F.TYPE_INT32, OPT, False, None),
            ("channels", 2, F.TYPE_INT32, OPT, False, None), ("height", 3, F.TYPE_INT32, OPT, False, None),
            ("width", 4, F.TYPE_INT32, OPT, False, None), ("data", 5, F.TYPE_FLOAT, REP, True, None),
            ("shape", 7, F.TYPE_MESSAGE, OPT, False, "BlobShape"),
            ("double_data", 8, F.TYPE_DOUBLE, REP, True, None))
    message("LayerParameter", ("name", 1, F.TYPE_STRING, OPT, False, None),
            ("type", 2, F.TYPE_STRING, OPT, False, None),
            ("blobs", 7, F.TYPE_MESSAGE, REP, False, "BlobProto"))
    message("V1LayerParameter", ("name", 4, F.TYPE_STRING, OPT, False, None),
            ("type", 5, F.TYPE_INT32, OPT, False, None),
            ("blobs", 6, F.TYPE_MESSAGE, REP, False, "BlobProto"))
    message("NetParameter", ("name", 1, F.TYPE_STRING, OPT, False, None),
            ("layers", 2, F.TYPE_MESSAGE, REP, False, "V1LayerParameter"),
            ("layer", 100, F.TYPE_MESSAGE, REP, False, "LayerParameter"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mini.NetParameter"))


def test_bytes_match_the_protobuf_library(rng):
    NetParameter = _protobuf_classes()
    w = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    d = rng.standard_normal((2, 300))                      # float64 -> double_data
    net = NetParameter(name="cross")
    conv = net.layer.add(name="conv1", type="Convolution")
    for a in (w, b):
        blob = conv.blobs.add()
        blob.data.extend(a.reshape(-1).tolist())
        blob.shape.dim.extend(a.shape)
    blob = net.layer.add(name="d", type="Scale").blobs.add()
    blob.shape.dim.extend(d.shape)
    blob.double_data.extend(d.reshape(-1).tolist())
    ours = weights.encode_caffemodel([("conv1", "Convolution", [w, b]), ("d", "Scale", [d])], "cross")
    assert ours == net.SerializeToString()
    # and V1 files written by the library read back here
    old = NetParameter()
    v1 = old.layers.add(name="ip", type=14)
    blob = v1.blobs.add(num=1, channels=1, height=2, width=3)
    blob.data.extend(range(6))
    [(name, type_, [array])] = weights.decode_caffemodel(old.SerializeToString())
    assert (name, type_, array.shape) == ("ip", "InnerProduct", (1, 1, 2, 3))
    np.testing.assert_array_equal(array.reshape(-1), np.arange(6))


# -- 0-axis blobs (Scale/Bias num_axes: 0, PReLU channel_shared: true) ------------------------
# Caffe's Blob::ToProto adds one BlobShape dim per axis, so a 0-axis blob's BlobProto has no
# `shape` and no legacy dims, only its one value; Blob::FromProto reads that back as shape ()
# (count 1). The bytes below follow protobuf's encoding by hand: packed float `data` (field 5,
# key 0x2a), packed double `double_data` (field 8, key 0x42).
SCALAR_NET = """
name: "scalar"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 } } }
layer { name: "sc" type: "Scale" bottom: "x" top: "y" scale_param { num_axes: 0 bias_term: true } }
"""


def _scalar_caffemodel(scale, bias):
    """A .caffemodel as Caffe writes it for SCALAR_NET's Scale layer (float blobs)."""
    blobs = b"".join(_len(7, _len(5, struct.pack("<f", v))) for v in (scale, bias))
    layer = _len(1, b"sc") + _len(2, b"Scale") + blobs
    return _len(1, b"scalar") + b"\xa2\x06" + bytes([len(layer)]) + layer


def test_zero_axis_blob_is_written_without_shape():
    assert weights.encode_blob(np.array(2.5, np.float32)) == b"\x2a\x04" + struct.pack("<f", 2.5)
    assert weights.encode_blob(np.array(0.5)) == b"\x42\x08" + struct.pack("<d", 0.5)
    assert wire.encode_blob_proto(np.array(2.5, np.float32)) == \
        b"\x2a\x04" + struct.pack("<f", 2.5)
    assert weights.encode_caffemodel([("sc", "Scale", [np.array(2.5, np.float32),
                                                       np.array(-1.0, np.float32)])],
                                     "scalar") == _scalar_caffemodel(2.5, -1.0)


@pytest.mark.parametrize("blob, value, dtype", [
    (b"\x2a\x04" + struct.pack("<f", 0.25), 0.25, np.float32),      # data only
    (b"\x42\x08" + struct.pack("<d", -0.75), -0.75, np.float64),    # double_data only
    (b"\x3a\x00\x2a\x04" + struct.pack("<f", 3.0), 3.0, np.float32),  # an empty shape {}
])
def test_zero_axis_blob_reads_as_one_value_of_shape_empty(blob, value, dtype):
    layer = _len(1, b"relu1") + _len(2, b"PReLU") + _len(7, blob)    # a shared PReLU slope
    [(name, type_, [array])] = weights.decode_caffemodel(b"\xa2\x06" + bytes([len(layer)]) + layer)
    assert (name, type_) == ("relu1", "PReLU")
    assert array.shape == () and array.dtype == dtype and array.size == 1
    assert float(array) == value


def test_blob_proto_without_values_is_refused():
    """Caffe checks count (1 for no shape) against the values: an empty BlobProto fails."""
    with pytest.raises(DataError, match=r"m.caffemodel: layer 'sc' blob 0: shape \(\) but no "
                                        r"data values"):
        layer = _len(1, b"sc") + _len(2, b"Scale") + _len(7, b"")
        weights.decode_caffemodel(b"\xa2\x06" + bytes([len(layer)]) + layer, "m.caffemodel")
    two = b"\x2a\x08" + struct.pack("<2f", 1.0, 2.0)
    with pytest.raises(DataError, match=r"shape \(\) needs 1 values, found 2"):
        wire.decode_blob_proto(two)


def test_legacy_dims_win_over_shape_as_in_caffe():
    blob = bytes([0x08, 1, 0x10, 1, 0x18, 1, 0x20, 2]) + _len(7, _len(1, bytes([2, 1]))) + \
        _len(5, struct.pack("<2f", 1.0, 2.0))
    data, _ = wire.decode_blob_proto(blob)
    assert data.shape == (1, 1, 1, 2)


def test_zero_axis_blobs_round_trip_through_a_caffemodel(tmp_path):
    """Caffe's bytes → Net.copy_from → forward → Net.save writes Caffe's blob bytes; a legacy
    1x1x1x1 blob loads into the 0-axis blob too (Caffe's ShapeEquals)."""
    path = tmp_path / "caffe.caffemodel"
    path.write_bytes(_scalar_caffemodel(2.5, -1.0))
    net = Net(parse_net(SCALAR_NET), caffe.TEST)
    assert [b.data.shape for b in net.params["sc"]] == [(), ()]
    net.copy_from(str(path))
    assert float(net.params["sc"][0].data) == 2.5 and float(net.params["sc"][1].data) == -1.0
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    net.blobs["x"].data[...] = x
    np.testing.assert_array_equal(net.forward()["y"], 2.5 * x - 1.0)
    out = tmp_path / "ours.caffemodel"
    net.save(str(out))
    [saved] = [layer for layer in wire.parse(out.read_bytes()).messages(100)
               if layer.string(1) == "sc"]
    assert [bytes(v) for _, v in saved.raw[7]] == [b"\x2a\x04" + struct.pack("<f", v)
                                                  for v in (2.5, -1.0)]
    legacy = bytes([0x08, 1, 0x10, 1, 0x18, 1, 0x20, 1])
    blobs = b"".join(_len(7, legacy + _len(5, struct.pack("<f", v))) for v in (4.0, 0.5))
    layer = _len(1, b"sc") + _len(2, b"Scale") + blobs
    path.write_bytes(b"\xa2\x06" + bytes([len(layer)]) + layer)
    net.copy_from(str(path))
    assert float(net.params["sc"][0].data) == 4.0 and float(net.params["sc"][1].data) == 0.5
    assert net.params["sc"][0].data.shape == ()


def test_zero_axis_bytes_match_the_protobuf_library():
    NetParameter = _protobuf_classes()
    net = NetParameter(name="scalar")
    layer = net.layer.add(name="sc", type="Scale")
    for v in (2.5, -1.0):
        layer.blobs.add().data.append(v)              # Caffe's ToProto: no dim for no axis
    assert _scalar_caffemodel(2.5, -1.0) == net.SerializeToString()
    assert not net.layer[0].blobs[0].HasField("shape")


# --- corrupt and partial files: our errors, naming the file and the offset --------------------
NET3 = """
name: "three"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "a"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" } } }
layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }
layer { name: "ip2" type: "InnerProduct" bottom: "a" top: "b"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
"""


def _layer_bytes(name, type_, arrays):
    return weights.encode_caffemodel([(name, type_, arrays)])


def test_non_utf8_layer_name_is_a_data_error_with_the_offset(tmp_path):
    path = tmp_path / "bad.caffemodel"
    layer = _len(1, b"ip\xff") + _len(2, b"InnerProduct")
    path.write_bytes(_len(1, b"n") + b"\xa2\x06" + bytes([len(layer)]) + layer)
    with pytest.raises(DataError, match=r"bad\.caffemodel: layer 0 "
                                        r"at byte 3: field 1 at byte 6: string is not UTF-8 "
                                        r"\(byte 0xff at byte 10\)"):
        weights.load(str(path))


@pytest.mark.parametrize("dims, words", [
    ([-2, 3], r"dimension 0 of shape \(-2, 3\) is negative"),
    ([2**40, 2**40, 2**40], r"shape \(1099511627776, 1099511627776, 1099511627776\) holds \d+ values, more than an array can hold"),
    ([2**63 - 1, 2], r"shape \(9223372036854775807, 2\) holds \d+ values, more than an array"),
])
def test_impossible_blob_dims_name_the_file_layer_and_blob(tmp_path, dims, words):
    from minicaffe import wire

    blob = wire.Writer().packed_floats(5, [1.0, 2.0]).message(7, wire.encode_blob_shape(dims))
    layer = wire.Writer().string(1, "ip").string(2, "InnerProduct").message(7, blob)
    path = tmp_path / "dims.caffemodel"
    path.write_bytes(wire.Writer().message(100, layer).getvalue())
    with pytest.raises(DataError, match=rf"dims\.caffemodel: .*layer 'ip' blob 0: {words}"):
        weights.load(str(path))


def test_a_caffemodel_cut_at_any_byte_is_an_error_or_a_clean_prefix(tmp_path, rng):
    """Cut inside a record: DataError naming the file and the byte; cut between layers: the
    layers before the cut (the Net then reports which of its layers were not loaded)."""
    layers = [("ip1", "InnerProduct", [rng.standard_normal((4, 3)).astype(np.float32),
                                       rng.standard_normal(4).astype(np.float32)]),
              ("relu", "ReLU", []),
              ("ip2", "InnerProduct", [rng.standard_normal((2, 4)).astype(np.float32),
                                       rng.standard_normal(2).astype(np.float32)])]
    full = weights.encode_caffemodel(layers, "three")
    boundaries = {len(weights.encode_caffemodel(layers[:k], "three")): k for k in range(4)}
    path = tmp_path / "cut.caffemodel"
    for cut in range(len(full)):
        path.write_bytes(full[:cut])
        if cut in boundaries:
            got = weights.load(str(path))
            assert [n for n, _, _ in got] == [n for n, _, _ in layers[:boundaries[cut]]]
            continue
        with pytest.raises(DataError) as err:
            weights.load(str(path))
        assert "cut.caffemodel" in str(err.value), cut
        assert "at byte" in str(err.value) or cut == 0, (cut, str(err.value))


def test_truncated_caffemodel_says_how_many_layers_were_complete(tmp_path, rng):
    layers = [("ip1", "InnerProduct", [np.ones((4, 3), np.float32)]),
              ("ip2", "InnerProduct", [np.ones((2, 4), np.float32)])]
    full = weights.encode_caffemodel(layers)
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(full[:-5])
    with pytest.raises(DataError, match=r"cut\.caffemodel: .*cut short or corrupt after 1 "
                                        r"complete layer \(the last: 'ip1'\)"):
        weights.load(str(path))


def test_copy_from_reports_the_layers_it_did_not_load(tmp_path, caplog):
    """A .caffemodel cut after its first layers loaded "successfully" without a word; Caffe's
    rule (layers missing from the file keep their values) stays, with a report."""
    import logging

    net = Net(parse_net(NET3), caffe.TEST)
    path = tmp_path / "part.caffemodel"
    weights.write_caffemodel(str(path), [("ip1", "InnerProduct", [np.ones((4, 3), np.float32),
                                                                  np.ones(4, np.float32)]),
                                         ("gone", "Convolution", [np.ones(3, np.float32)])])
    before = net.params["ip2"][0].data.copy()
    with caplog.at_level(logging.WARNING, logger="minicaffe.net"):
        report = net.copy_from(str(path))
    assert report.loaded == ["ip1"] and report.missing == ["ip2"] and report.unused == ["gone"]
    assert (net.params["ip1"][0].data == 1).all()
    np.testing.assert_array_equal(net.params["ip2"][0].data, before)
    assert re.search(r"part\.caffemodel: 1 of 2 layers with weights in net 'three' are not in "
                     r"the file and keep their initial values: ip2", caplog.text)
    assert "gone" in caplog.text


def test_copy_from_a_complete_file_logs_no_warning(tmp_path, caplog):
    import logging

    net = Net(parse_net(NET3), caffe.TEST)
    path = tmp_path / "all.caffemodel"
    net.save(str(path))
    with caplog.at_level(logging.WARNING, logger="minicaffe.net"):
        report = net.copy_from(str(path))
    assert report.missing == [] and report.unused == [] and not caplog.records


@pytest.mark.parametrize("suffix", [".caffemodel", ".npz"])
def test_a_file_matching_no_layer_is_an_error(tmp_path, suffix):
    net = Net(parse_net(NET3), caffe.TEST)
    path = tmp_path / f"other{suffix}"
    writer = weights.write_npz if suffix == ".npz" else weights.write_caffemodel
    writer(str(path), [("conv1", "Convolution", [np.ones((2, 2), np.float32)])])
    with pytest.raises(DataError, match=rf"other\{suffix}: none of its 1 layer\(s\) \(conv1\) is "
                                        r"a layer with weights in net 'three' \(ip1, ip2\)"):
        net.copy_from(str(path))


@pytest.mark.parametrize("content", [b"", _len(1, b"only a name")])
def test_an_empty_weights_file_is_an_error(tmp_path, content):
    net = Net(parse_net(NET3), caffe.TEST)
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"empty\.caffemodel: holds no layers"):
        net.copy_from(str(path))


def test_foreign_npz_is_an_error_naming_its_keys(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, weights=np.ones(3), bias=np.zeros(2))
    with pytest.raises(DataError, match=r"foreign\.npz: no '<layer>/<index>' arrays \(keys: "
                                        r"bias, weights\); not a minicaffe weights \.npz"):
        weights.load(str(path))


def test_truncated_npz_at_any_byte_is_a_data_error(tmp_path, rng):
    src = tmp_path / "full.npz"
    weights.write_npz(str(src), [("ip1", "InnerProduct", [rng.standard_normal((4, 3))])])
    full = src.read_bytes()
    path = tmp_path / "cut.npz"
    for cut in list(range(0, len(full), max(1, len(full) // 200))) + [len(full) - 1]:
        path.write_bytes(full[:cut])
        with pytest.raises(DataError, match=r"cut\.npz"):
            weights.load(str(path))


@pytest.mark.parametrize("arrays", [
    {"__layers__": np.array([1, 2]), "1/0": np.ones(2)},                    # numeric layer names
    {"__layers__": np.array(["ip"]), "__types__": np.array(["a", "b"]), "ip/0": np.ones(2)},
    {"__layers__": np.array([["ip"]]), "ip/0": np.ones(2)},                 # 2-D names
    {"__layers__": np.array(["ip"]), "ip/0": np.array(["text"])},           # strings as weights
])
def test_malformed_minicaffe_npz_is_a_data_error(tmp_path, arrays):
    path = tmp_path / "odd.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"odd\.npz"):
        weights.load(str(path))


def test_a_failed_copy_from_changes_no_layer(tmp_path):
    net = Net(parse_net(NET3), caffe.TEST)
    before = {n: [b.data.copy() for b in net.params[n]] for n in ("ip1", "ip2")}
    path = tmp_path / "half.caffemodel"
    weights.write_caffemodel(str(path), [("ip1", "InnerProduct", [np.ones((4, 3), np.float32),
                                                                  np.ones(4, np.float32)]),
                                         ("ip2", "InnerProduct", [np.ones((3, 3), np.float32),
                                                                  np.ones(2, np.float32)])])
    with pytest.raises(ShapeError, match=r"param 0 of layer 'ip2'"):
        net.copy_from(str(path))
    for n, arrays in before.items():
        for b, a in zip(net.params[n], arrays):
            np.testing.assert_array_equal(b.data, a)
