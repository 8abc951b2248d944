"""Protobuf wire codec against bytes computed by hand from the protobuf encoding spec."""
import struct

import numpy as np
import pytest

from minicaffe import wire
from minicaffe.errors import DataError


@pytest.mark.parametrize("value, encoded", [
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (150, b"\x96\x01"),
    (300, b"\xac\x02"), (2**32, b"\x80\x80\x80\x80\x10"),
    (-1, b"\xff" * 9 + b"\x01"), (-2, b"\xfe" + b"\xff" * 8 + b"\x01"),
])
def test_varint_bytes(value, encoded):
    assert wire.encode_varint(value) == encoded
    decoded, pos = wire.decode_varint(encoded)
    assert pos == len(encoded)
    assert wire.to_signed(decoded) == value


def test_field_encodings_match_spec_examples():
    assert wire.Writer().varint(1, 150).getvalue() == b"\x08\x96\x01"
    assert wire.Writer().string(2, "testing").getvalue() == b"\x12\x07testing"
    assert wire.Writer().message(3, wire.Writer().varint(1, 150)).getvalue() == b"\x1a\x03\x08\x96\x01"
    assert wire.Writer().packed_varints(4, [3, 270, 86942]).getvalue() == \
        b"\x22\x06\x03\x8e\x02\x9e\xa7\x05"
    assert wire.Writer().float(5, 1.0).getvalue() == b"\x2d\x00\x00\x80\x3f"
    assert wire.Writer().double(1, 1.0).getvalue() == b"\x09" + b"\x00" * 6 + b"\xf0\x3f"
    assert wire.Writer().packed_floats(5, [1.0, -2.0]).getvalue() == \
        b"\x2a\x08\x00\x00\x80\x3f\x00\x00\x00\xc0"
    assert wire.Writer().unpacked_floats(6, [1.0, 2.0]).getvalue() == \
        b"\x35\x00\x00\x80\x3f\x35\x00\x00\x00\x40"
    # field 16 needs a two-byte tag: (16 << 3 | 0) = 128 -> 0x80 0x01
    assert wire.Writer().varint(16, 1).getvalue() == b"\x80\x01\x01"


def test_parse_reads_every_wire_type():
    buf = (b"\x08\x96\x01"                     # 1: varint 150
           b"\x12\x07testing"                  # 2: string
           b"\x1a\x03\x08\x96\x01"             # 3: nested message {1: 150}
           b"\x22\x06\x03\x8e\x02\x9e\xa7\x05"  # 4: packed varints
           b"\x2d\x00\x00\x80\x3f"             # 5: float 1.0
           b"\x31" + struct.pack("<d", 2.5) +  # 6: double 2.5
           b"\x38\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")  # 7: int32 -1
    f = wire.parse(buf)
    assert f.int(1) == 150
    assert f.string(2) == "testing"
    assert f.message(3).int(1) == 150
    assert f.ints(4) == [3, 270, 86942]
    assert f.float(5) == 1.0
    assert f.double(6) == 2.5
    assert f.int(7) == -1
    assert f.int(7, signed=False, bits=64) == 2**64 - 1
    assert f.int(99, default=42) == 42
    assert not f.has(99) and f.numbers() == [1, 2, 3, 4, 5, 6, 7]
    assert f.message(99).numbers() == []


def test_last_occurrence_wins_and_repeated_collects_packed_and_unpacked():
    buf = b"\x08\x01\x08\x02" + wire.Writer().unpacked_floats(6, [1, 2, 3]).getvalue() \
        + wire.Writer().packed_floats(6, [4, 5]).getvalue() + b"\x35\x00\x00\xc0\x40"
    f = wire.parse(buf)
    assert f.int(1) == 2
    np.testing.assert_array_equal(f.floats(6), [1, 2, 3, 4, 5, 6])
    assert f.float(6) == 6.0


def test_unpacked_float_run_is_read_exactly(rng):
    values = rng.standard_normal(1000).astype(np.float32)
    buf = (wire.Writer().varint(1, 3).unpacked_floats(6, values[:600]).varint(5, 9)
           .unpacked_floats(6, values[600:]).getvalue())
    f = wire.parse(buf)
    np.testing.assert_array_equal(f.floats(6), values)
    assert f.int(1) == 3 and f.int(5) == 9


def test_repeated_messages_in_order():
    w = wire.Writer()
    for i in range(3):
        w.message(2, wire.Writer().varint(1, i).string(2, f"m{i}"))
    msgs = wire.parse(w.getvalue()).messages(2)
    assert [(m.int(1), m.string(2)) for m in msgs] == [(0, "m0"), (1, "m1"), (2, "m2")]


@pytest.mark.parametrize("buf, words", [
    (b"\x08", "truncated varint"),
    (b"\x12\x05abc", "runs past the end"),
    (b"\x2d\x00\x00", "runs past the end"),
    (b"\x0b", "unsupported wire type 3"),
    (b"\x00\x01", "field number 0"),
    (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
])
def test_malformed_input_raises_with_offset(buf, words):
    with pytest.raises(DataError, match=words):
        wire.parse(buf)


def test_wrong_wire_type_for_accessor():
    f = wire.parse(b"\x08\x01")
    with pytest.raises(DataError, match="field 1: expected a float"):
        f.float(1)


def test_blob_proto_bytes_and_roundtrip():
    a = np.array([[1.0, 2.0]], dtype=np.float32)
    expected = (b"\x3a\x04\x0a\x02\x01\x02"          # shape { dim: 1 dim: 2 }
                b"\x2a\x08" + a.tobytes())           # data, packed float
    assert wire.encode_blob_proto(a) == expected
    data, diff = wire.decode_blob_proto(expected)
    assert data.dtype == np.float32 and data.shape == (1, 2) and diff is None
    np.testing.assert_array_equal(data, a)

    d = np.arange(6, dtype=np.float64).reshape(2, 3)
    data, diff = wire.decode_blob_proto(wire.encode_blob_proto(d, diff=-d))
    assert data.dtype == np.float64
    np.testing.assert_array_equal(data, d)
    np.testing.assert_array_equal(diff, -d)


def test_blob_proto_legacy_dims():
    mean = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    buf = wire.encode_blob_proto(mean, legacy_4d=True)
    assert buf[:8] == b"\x08\x01\x10\x03\x18\x02\x20\x02"
    data, _ = wire.decode_blob_proto(buf)
    assert data.shape == (1, 3, 2, 2)
    np.testing.assert_array_equal(data[0], mean)


def test_blob_proto_count_mismatch_names_source():
    buf = wire.Writer().message(7, wire.encode_blob_shape([2, 2])).packed_floats(5, [1, 2, 3]).getvalue()
    with pytest.raises(DataError, match=r"mean.binaryproto: shape \(2, 2\) needs 4 values, found 3"):
        wire.decode_blob_proto(buf, what="mean.binaryproto")


def test_agrees_with_protobuf_package_when_available():
    pytest.importorskip("google.protobuf", reason="protobuf package not installed")
    from google.protobuf import descriptor_pb2
    msg = descriptor_pb2.FieldDescriptorProto(name="x", number=300, json_name="y")
    ours = wire.Writer().string(1, "x").varint(3, 300).string(10, "y").getvalue()
    assert ours == msg.SerializeToString()


def test_unpacked_double_run_and_interleaved_fields():
    values = [0.5, -1.25, 3.0, 1e300]
    buf = b"".join(b"\x09" + struct.pack("<d", v) for v in values[:2]) + b"\x10\x05" \
        + b"".join(b"\x09" + struct.pack("<d", v) for v in values[2:])
    f = wire.parse(buf)
    np.testing.assert_array_equal(f.doubles(1), values)
    assert f.double(1) == 1e300 and f.int(2) == 5


# --- hostile bytes: WireError (a DataError) with the absolute byte offset --------------------
def test_non_utf8_string_is_a_wire_error_with_its_offset():
    buf = wire.Writer().varint(3, 7).bytes(1, b"ok\xff\xfe").getvalue()
    with pytest.raises(DataError, match=r"^field 1 at byte 2: string is not UTF-8 \(byte 0xff "
                                        r"at byte 6\)"):
        wire.parse(buf).string(1)


def test_errors_inside_nested_messages_give_file_offsets():
    inner_bad = b"\x12\x09abc"                             # length 9, only 3 bytes follow
    buf = wire.Writer().varint(1, 5).bytes(2, wire.Writer().varint(1, 1).bytes(7, inner_bad)).getvalue()
    # outer: 08 05 | 12 len | inner: 08 01 | 3a 05 | 12 09 abc  -> the bad tag sits at byte 8
    with pytest.raises(DataError, match=r"field 2: length 9 at byte 8 runs past the end of the "
                                        r"5-byte message that starts at byte 8"):
        wire.parse(buf).message(2).message(7)
    with pytest.raises(DataError, match=r"at byte 8 "):
        wire.parse(buf).messages(2)[0].messages(7)


@pytest.mark.parametrize("dims, words", [
    ([2, -3], r"dimension 1 of shape \(2, -3\) is negative"),
    ([2**62, 2**62], r"shape \(4611686018427387904, 4611686018427387904\) holds "
                     r"21267647932558653966460912964485513216 values, more than an array can"),
    ([0, 2**62], r"shape \(0, 4611686018427387904\) holds 4611686018427387904 values"),
    ([-1, -1], r"dimension 0 of shape \(-1, -1\) is negative"),
])
def test_blob_proto_with_impossible_dims_names_source(dims, words):
    buf = wire.Writer().message(7, wire.encode_blob_shape(dims)).packed_floats(5, [1.0]).getvalue()
    with pytest.raises(DataError, match=rf"^w.caffemodel: layer 'ip' blob 0: {words}"):
        wire.decode_blob_proto(buf, what="w.caffemodel: layer 'ip' blob 0")


def test_legacy_dims_negative_are_refused():
    buf = bytes([0x08, 1, 0x10]) + wire.encode_varint(-2) + bytes([0x18, 1, 0x20, 1])
    with pytest.raises(DataError, match=r"dimension 1 of shape \(1, -2, 1, 1\) is negative"):
        wire.decode_blob_proto(buf, what="mean")


def test_decode_blob_proto_names_the_source_for_malformed_bytes():
    with pytest.raises(DataError, match=r"^mean.binaryproto: field 1: truncated varint at byte 1 of 1"):
        wire.decode_blob_proto(b"\x08", what="mean.binaryproto")


# -- mutation-driven: defaults of absent fields, unsigned ints, legacy dims one at a time, diffs
def test_absent_fields_read_as_their_defaults():
    f = wire.parse(b"")
    assert f.int(1) == 0 and f.int(1, 7) == 7
    assert f.bool(1) is False and f.bool(1, True) is True
    assert f.float(1) == 0.0 and f.double(1) == 0.0 and f.bytes(1) == b""


def test_present_fields_read_as_written():
    buf = (wire.Writer().varint(1, 1).float(2, 1.5).double(3, -2.25).bytes(4, b"ab")
           .varint(5, (1 << 64) - 1).getvalue())
    f = wire.parse(buf)
    assert f.bool(1) is True and f.bool(12) is False
    assert f.float(2) == 1.5 and f.double(3) == -2.25 and f.bytes(4) == b"ab"
    assert f.int(5) == -1 and f.int(5, bits=64) == -1              # int32 / int64: -1
    assert f.int(5, signed=False) == (1 << 32) - 1                    # uint32
    assert f.int(5, bits=64, signed=False) == (1 << 64) - 1           # uint64


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_any_one_legacy_dim_makes_a_legacy_shape(number):
    """Caffe's Blob::FromProto: num/channels/height/width when any is set, the others 0
    (caffe.proto's defaults)."""
    buf = wire.Writer().varint(number, 5).getvalue()
    shape = [0, 0, 0, 0]
    shape[number - 1] = 5
    assert wire.blob_proto_shape(wire.parse(buf)) == tuple(shape)


@pytest.mark.parametrize("shape", [(3,), (2, 3), (1, 2, 3, 4)])
def test_legacy_4d_writes_up_to_four_axes_padded_with_ones(shape):
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    f = wire.parse(wire.encode_blob_proto(data, legacy_4d=True))
    assert tuple(f.int(k) for k in (1, 2, 3, 4)) == (1,) * (4 - len(shape)) + shape
    five = (1,) * (5 - len(shape)) + shape
    with pytest.raises(ValueError, match="at most 4 axes, got shape") as info:
        wire.encode_blob_proto(data.reshape(five), legacy_4d=True)
    assert str(five) in str(info.value)


@pytest.mark.parametrize("dtype, data_field, diff_field", [(np.float32, 5, 6),
                                                           (np.float64, 8, 9)])
def test_a_diff_is_written_beside_the_data(dtype, data_field, diff_field):
    data = np.arange(6, dtype=dtype).reshape(2, 3)
    diff = -np.arange(6, dtype=dtype).reshape(2, 3) - 0.5
    f = wire.parse(wire.encode_blob_proto(data, diff=diff))
    fmt = "<f" if dtype == np.float32 else "<d"
    for field, want in ((data_field, data), (diff_field, diff)):
        raw = f.bytes(field)
        got = struct.unpack(f"<6{fmt[1]}", raw)
        assert got == tuple(want.reshape(-1).tolist())
    out, out_diff = wire.decode_blob_proto(wire.encode_blob_proto(data, diff=diff))
    np.testing.assert_array_equal(out, data)
    np.testing.assert_array_equal(out_diff, diff)
