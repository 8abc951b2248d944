"""Caffe's rules that the weights reader follows, checked against independent sources: the V1
layer-type numbers of caffe.proto, Blob::ShapeEquals' legacy padding, and the scan that says
where a damaged .caffemodel stops being readable."""
import re
from pathlib import Path

import numpy as np
import pytest

from minicaffe import weights
from minicaffe.errors import DataError
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
