"""Caffe's rules that the weights reader follows, checked against independent sources: the V1
layer-type numbers of caffe.proto, Blob::ShapeEquals' legacy padding, and the scan that says
where a damaged .caffemodel stops being readable."""
import re
from pathlib import Path

import numpy as np
import pytest

from minicaffe import weights
from minicaffe.errors import DataError
from minicaffe.net import Net
from minicaffe.prototxt import upgrade

CAFFE_PROTO = Path(weights.__file__).resolve().parent / "proto" / "caffe.proto"


def _v1_enum():
    """{number: NAME} of V1LayerParameter.LayerType, read from caffe.proto's text."""
    text = CAFFE_PROTO.read_text()
    body = re.search(r"message V1LayerParameter \{.*?enum LayerType \{(.*?)\}", text, re.S).group(1)
    return {int(num): name for name, num in re.findall(r"(\w+)\s*=\s*(\d+);", body)}


def test_v1_type_numbers_are_caffe_protos():
    enum = _v1_enum()
    assert len(enum) == 40 and enum[14] == "INNER_PRODUCT"
    assert weights.V1_TYPES == {num: upgrade.V1_TYPES[name] for num, name in enum.items()}


def _blob(shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize("file_shape, net_shape, ok", [
    ((2, 3), (2, 3), True), ((1, 1, 2, 3), (2, 3), True), ((2, 3), (1, 1, 2, 3), True),
    ((1, 1, 1, 5), (5,), True), ((5,), (1, 5), True), ((1, 1, 1, 1), (), True),
    ((), (), True), ((2, 3), (3, 2), False), ((1, 2, 3), (2, 3, 1), False),
    ((1, 1, 2, 3, 4), (2, 3, 4), False),            # past 4 axes only exact shapes match
    ((2, 3, 4), (1, 1, 2, 3, 4), False), ((1, 2, 3, 4), (1, 2, 3, 4), True),
    ((2, 1, 1, 1), (2,), False), ((1, 2, 3, 4, 5), (1, 2, 3, 4, 5), True),
])
def test_shapes_compatible_is_caffes_shape_equals(file_shape, net_shape, ok):
    assert weights.shapes_compatible(file_shape, net_shape) is ok
    assert weights.shapes_compatible(net_shape, file_shape) is ok


def test_shapes_compatible_compares_values_not_objects():
    a = tuple(int(d) for d in "2 300 7".split())      # large ints: not cached objects
    assert weights.shapes_compatible(a, (2, 300, 7))
    assert weights.shapes_compatible(list(a), np.array([2, 300, 7]))


def _layer(name, blob_bytes=b""):
    body = weights.wire.Writer().string(1, name).string(2, "InnerProduct").getvalue() + blob_bytes
    return weights.wire.Writer().bytes(100, body).getvalue()


@pytest.mark.parametrize("tail, complete", [
    (b"\xa2\x06\x10\x0a\x02ip", 2),          # a layer record cut inside
    (b"\xa2\x06", 2),                         # a key and no length
    (b"\x08", 2),                             # a varint key (name field 1 as varint) cut
    (b"\x08\x05\x0a", 2),                     # a varint field, then a cut record
    (b"\x0d\x00\x00", 2),                     # a fixed32 field: the scan stops there
])
def test_a_cut_caffemodel_names_its_last_complete_layer(tail, complete):
    buf = _layer("conv1") + _layer("conv2") + tail
    with pytest.raises(DataError, match=rf"cut short or corrupt after {complete} complete layers "
                                        r"\(the last: 'conv2'\)"):
        weights.decode_caffemodel(buf, "m.caffemodel")


def _v1_layer(name):
    body = weights.wire.Writer().string(4, name).varint(5, 14).getvalue()   # V1 INNER_PRODUCT
    return weights.wire.Writer().bytes(2, body).getvalue()


@pytest.mark.parametrize("head, layers, last", [
    # the net's name (field 1) and force_backward (field 5, a varint) before the layers
    (weights.wire.Writer().string(1, "net").varint(5, 1).getvalue(),
     _layer("a") + _layer("b") + _layer("c"), "c"),
    (b"", _v1_layer("v1a") + _v1_layer("v1b"), "v1b"),                 # V1 `layers` (field 2)
    (weights.wire.Writer().varint(5, 0).getvalue(), _v1_layer("old") + _layer("new"), "new"),
])
def test_the_cut_note_skips_other_fields_and_counts_both_layer_lists(head, layers, last):
    complete = 3 if last == "c" else 2
    with pytest.raises(DataError, match=rf"after {complete} complete layers \(the last: "
                                        rf"'{last}'\)$"):
        weights.decode_caffemodel(head + layers + b"\xa2\x06\x10\x0a\x02ip", "m.caffemodel")


def test_a_cut_after_one_layer_says_layer_in_the_singular():
    with pytest.raises(DataError, match=r"after 1 complete layer \(the last: 'conv1'\)"):
        weights.decode_caffemodel(_layer("conv1") + b"\xa2\x06\x10\x0a", "m.caffemodel")
    with pytest.raises(DataError, match=r"after 0 complete layers$"):
        weights.decode_caffemodel(b"\xa2\x06\x10\x0a", "m.caffemodel")


def test_npz_without_layer_arrays_lists_at_most_ten_keys(tmp_path):
    for count, more in ((10, False), (11, True)):
        path = tmp_path / ("many.npz" if more else "ten.npz")
        np.savez(path, **{f"k{i:02d}": np.zeros(1) for i in range(count)})
        with pytest.raises(DataError) as info:
            weights.read_npz(str(path))
        assert ("k09" in str(info.value)) and (("..." in str(info.value)) == more)
        assert "k10" not in str(info.value)


def test_shapes_compatible_compares_five_axis_shapes_by_value():
    assert weights.shapes_compatible(tuple(range(1, 6)), (1, 2, 3, 4, 5))


@pytest.mark.parametrize("head", [weights.wire.Writer().fixed32(5, b"\0\0\0\0").getvalue(),
                                  weights.wire.Writer().double(5, 0.0).getvalue(),
                                  b"\x0b\x00"],                   # a group start (wire type 3)
                         ids=["fixed32", "fixed64", "group"])
def test_the_cut_note_stops_at_a_field_it_cannot_skip(head):
    """A fixed-width or group field at the top level (NetParameter has none): the scan stops
    there rather than guess, so no layer after it is counted."""
    with pytest.raises(DataError, match=r"after 0 complete layers$"):
        weights.decode_caffemodel(head + _layer("a") + _layer("b") + b"\xa2\x06\x10\x0a",
                                  "m.caffemodel")


def test_the_cut_note_does_not_look_inside_a_record_cut_short():
    """The bytes of a record that runs past the end are not scanned as records, even when they
    hold what looks like a whole layer."""
    ghost = _layer("ghost")
    tail = b"\xa2\x06" + bytes([len(ghost) + 40]) + ghost
    with pytest.raises(DataError, match=r"after 2 complete layers \(the last: 'conv2'\)$"):
        weights.decode_caffemodel(_layer("conv1") + _layer("conv2") + tail, "m.caffemodel")


def test_npz_types_must_match_the_layer_list_both_ways(tmp_path):
    path = tmp_path / "types.npz"
    np.savez(path, __layers__=np.array(["a", "b"]), __types__=np.array(["InnerProduct"]),
             **{"a/0": np.zeros(2), "b/0": np.zeros(2)})
    with pytest.raises(DataError, match="__types__ has 1 entries for 2 layers"):
        weights.read_npz(str(path))
    names = [f"l{i}" for i in range(300)]          # counts beyond CPython's small-int cache
    np.savez(path, __layers__=np.array(names), __types__=np.array(["ReLU"] * 300),
             **{f"{n}/0": np.zeros(1) for n in names})
    assert [n for n, _, _ in weights.read_npz(str(path))] == names


@pytest.mark.parametrize("types, what", [(np.array("InnerProduct"), r"<U12 array of shape \(\)"),
                                         (np.array([b"InnerProduct"]), r"\|S12 array")])
def test_npz_type_list_must_be_a_1d_array_of_str(tmp_path, types, what):
    path = tmp_path / "types.npz"
    np.savez(path, __layers__=np.array(["a"]), __types__=types, **{"a/0": np.zeros(2)})
    with pytest.raises(DataError, match=f"__types__ is a {what}.*expected a 1-D array of strings"):
        weights.read_npz(str(path))


def test_npz_without_a_layer_list_takes_layers_from_the_keys(tmp_path):
    """Without __layers__, every '<layer>/<index>' key names a layer (in key order, once);
    keys without a slash or with a non-numeric index are not layers."""
    path = tmp_path / "plain.npz"
    np.savez(path, **{"a/0": np.ones(2), "a/1": np.ones(3), "meta": np.zeros(1),
                      "c/x": np.zeros(1), "b/0": np.ones(4)})
    got = [(n, t, [a.shape for a in b]) for n, t, b in weights.read_npz(str(path))]
    assert got == [("a", "", [(2,), (3,)]), ("b", "", [(4,)])]


def test_net_layers_leaves_out_only_the_inserted_splits():
    net = Net('''
        layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h"
                inner_product_param { num_output: 4 } }
        layer { name: "t" type: "TanH" bottom: "h" top: "h" }
        layer { name: "u" type: "TanH" bottom: "h" top: "y1" }
        layer { name: "v" type: "Softmax" bottom: "h" top: "y2" }''', phase="TEST")
    assert "Split" in [layer.type for layer in net.layers]
    assert [(n, t) for n, t, _ in weights.net_layers(net)] == [
        ("data", "Input"), ("ip", "InnerProduct"), ("t", "TanH"), ("u", "TanH"), ("v", "Softmax")]


def test_npz_layer_list_must_be_strings(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, __layers__=np.array([1, 2]), **{"ip/0": np.zeros(2)})
    with pytest.raises(DataError, match="__layers__ is a int64 array of shape \\(2,\\); expected "
                                        "a 1-D array of strings"):
        weights.read_npz(str(path))
    np.savez(path, __layers__=np.array([["ip"]]), **{"ip/0": np.zeros(2)})
    with pytest.raises(DataError, match="expected a 1-D array of strings"):
        weights.read_npz(str(path))
    np.savez(path, __layers__=np.array(["ip"]), **{"ip/0": np.zeros(2)})
    assert [(n, len(b)) for n, _, b in weights.read_npz(str(path))] == [("ip", 1)]
