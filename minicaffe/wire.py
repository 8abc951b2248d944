"""Protocol-buffer wire format: enough to read and write Caffe's binary messages.

Caffe stores `Datum` records (LMDB), mean images (`BlobProto` .binaryproto) and trained weights
(`NetParameter` .caffemodel) as binary protobuf. This module encodes and decodes that format
without the `protobuf` package:

- `Writer` builds a message field by field (varints, fixed32/64, length-delimited bytes,
  nested messages, packed repeated numbers).
- `parse(buf) -> Fields` reads a message into field number → values, and its typed accessors
  (`int`, `float`, `bytes`, `message`, `floats`, `ints`, ...) interpret them, accepting packed and
  unpacked repeated fields alike as protobuf parsers do.
- `encode_blob_proto` / `decode_blob_proto`: Caffe's `BlobProto` ↔ NumPy array, shared by the
  mean files and the .caffemodel reader.

Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit. Groups (3, 4) are
not used by Caffe and are rejected. Malformed input raises `WireError` (a `DataError`) with the
byte offset.
"""
import struct

import numpy as np

from minicaffe.errors import DataError

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_MASK64 = (1 << 64) - 1


class WireError(DataError):
    """Bytes that are not a well-formed protobuf message (the message gives the byte offset)."""


# -- varints ---------------------------------------------------------------------------------
def encode_varint(value):
    """Base-128 varint bytes of an integer; negative values are written as their 64-bit two's
    complement (10 bytes), as protobuf does for int32/int64."""
    value = int(value)
    if value < 0:
        value &= _MASK64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf, pos=0, base=0):
    """(value, next_pos) of the varint at `buf[pos]` (unsigned, up to 64 bits); error messages
    count bytes from `base` (the offset of `buf` in the file)."""
    result = shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise WireError(f"truncated varint at byte {base + pos} of {base + n}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"varint longer than 10 bytes ending at byte {base + pos}")


def to_signed(value, bits=64):
    """Reinterpret an unsigned varint as a signed `bits`-wide integer (int32/int64 fields)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# -- writing ---------------------------------------------------------------------------------
class Writer:
    """Appends fields to a message; every method returns self. `bytes(w)` or `w.getvalue()`
    gives the encoded message."""

    def __init__(self):
        self._buf = bytearray()

    def _tag(self, number, wire_type):
        if number < 1:
            raise ValueError(f"protobuf field number must be >= 1, got {number}")
        self._buf += encode_varint((number << 3) | wire_type)

    def varint(self, number, value):
        """int32/int64/uint/bool/enum field."""
        self._tag(number, VARINT)
        self._buf += encode_varint(int(value))
        return self

    def fixed32(self, number, raw4):
        self._tag(number, I32)
        self._buf += raw4
        return self

    def float(self, number, value):
        return self.fixed32(number, struct.pack("<f", value))

    def double(self, number, value):
        self._tag(number, I64)
        self._buf += struct.pack("<d", value)
        return self

    def bytes(self, number, data):
        """bytes/string field, or a nested message given as its encoded bytes."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif isinstance(data, Writer):
            data = data.getvalue()
        self._tag(number, LEN)
        self._buf += encode_varint(len(data))
        self._buf += data
        return self

    string = message = bytes

    def packed_floats(self, number, values):
        """repeated float [packed=true]: little-endian float32 in one length-delimited field."""
        return self.bytes(number, np.ascontiguousarray(values, dtype="<f4").tobytes())

    def packed_doubles(self, number, values):
        return self.bytes(number, np.ascontiguousarray(values, dtype="<f8").tobytes())

    def packed_varints(self, number, values):
        """repeated int32/int64 [packed=true]."""
        return self.bytes(number, b"".join(encode_varint(int(v)) for v in values))

    def unpacked_floats(self, number, values):
        """repeated float without packing (proto2 default): one tagged fixed32 per value."""
        arr = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
        if arr.size == 0:
            return self
        tag = np.frombuffer(encode_varint((number << 3) | I32), dtype=np.uint8)
        rows = np.empty((arr.size, tag.size + 4), dtype=np.uint8)
        rows[:, : tag.size] = tag
        rows[:, tag.size:] = arr.view(np.uint8).reshape(-1, 4)
        self._buf += rows.tobytes()
        return self

    def getvalue(self):
        return bytes(self._buf)

    __bytes__ = getvalue

    def __len__(self):
        return len(self._buf)


# -- reading ---------------------------------------------------------------------------------
class Fields:
    """A decoded message: `raw[number]` is a list of `(wire_type, value)` in file order, where
    value is an int (varint), bytes (length-delimited) or the raw little-endian payload bytes of
    one or more consecutive fixed32/fixed64 values. `offsets[number]` holds, for each of them,
    `(tag offset, payload offset)` in the outermost buffer, so errors inside nested messages
    give positions in the file.

    Accessors follow protobuf semantics: a singular field takes its last occurrence, a
    repeated numeric field collects packed and unpacked occurrences in order.
    """

    __slots__ = ("raw", "offsets")

    def __init__(self, raw, offsets=None):
        self.raw = raw
        self.offsets = offsets if offsets is not None else {}

    def has(self, number):
        return number in self.raw

    def numbers(self):
        return sorted(self.raw)

    def _at(self, number, k=-1):
        """(tag offset, payload offset) of occurrence k of a field ((0, 0) if unknown)."""
        spots = self.offsets.get(number)
        return spots[k] if spots else (0, 0)

    def _last(self, number, wire_types, what):
        values = self.raw.get(number)
        if not values:
            return None
        wire_type, value = values[-1]
        if wire_type not in wire_types:
            raise WireError(f"field {number}: expected {what} (wire type "
                            f"{'/'.join(map(str, wire_types))}), found wire type {wire_type} at "
                            f"byte {self._at(number)[0]}")
        return wire_type, value

    def int(self, number, default=0, bits=32, signed=True):
        """int32 (default), int64 (bits=64), uint32/uint64 (signed=False), enum."""
        got = self._last(number, (VARINT,), "a varint")
        if got is None:
            return default
        v = got[1]
        return to_signed(v, bits) if signed else v & ((1 << bits) - 1)

    def bool(self, number, default=False):
        got = self._last(number, (VARINT,), "a varint")
        return default if got is None else bool(got[1])

    def float(self, number, default=0.0):
        got = self._last(number, (I32,), "a float")
        return default if got is None else struct.unpack("<f", got[1][-4:])[0]

    def double(self, number, default=0.0):
        got = self._last(number, (I64,), "a double")
        return default if got is None else struct.unpack("<d", got[1][-8:])[0]

    def bytes(self, number, default=b""):
        got = self._last(number, (LEN,), "bytes")
        return default if got is None else bytes(got[1])

    def string(self, number, default=""):
        got = self._last(number, (LEN,), "a string")
        if got is None:
            return default
        try:
            return bytes(got[1]).decode("utf-8")
        except UnicodeDecodeError as exc:
            tag, payload = self._at(number)
            raise WireError(f"field {number} at byte {tag}: string is not UTF-8 (byte "
                            f"0x{got[1][exc.start]:02x} at byte {payload + exc.start})") from None

    def message(self, number):
        """The nested message (empty Fields when absent)."""
        got = self._last(number, (LEN,), "a message")
        return Fields({}) if got is None else parse(got[1], base=self._at(number)[1])

    def messages(self, number):
        """Every occurrence of a repeated message field, decoded, in order."""
        out = []
        for k, (wire_type, value) in enumerate(self.raw.get(number, ())):
            tag, payload = self._at(number, k)
            if wire_type != LEN:
                raise WireError(f"field {number}: expected a message, found wire type "
                                f"{wire_type} at byte {tag}")
            out.append(parse(value, base=payload))
        return out

    def message_offsets(self, number):
        """Tag offsets of every occurrence of field `number` (to name a record by position)."""
        return [tag for tag, _ in self.offsets.get(number, ())]

    def _fixed_array(self, number, wire_type, dtype):
        parts = []
        for wt, value in self.raw.get(number, ()):
            if wt not in (wire_type, LEN):
                raise WireError(f"field {number}: expected repeated {np.dtype(dtype).name}, "
                                f"found wire type {wt}")
            if wt == LEN and len(value) % np.dtype(dtype).itemsize:
                raise WireError(f"field {number}: packed {np.dtype(dtype).name} payload of "
                                f"{len(value)} bytes is not a multiple of {np.dtype(dtype).itemsize}"
                                f" (byte {self._at(number)[0]})")
            parts.append(value)
        if not parts:
            return np.zeros(0, dtype=np.dtype(dtype).newbyteorder("="))
        joined = parts[0] if len(parts) == 1 else b"".join(bytes(p) for p in parts)
        return np.frombuffer(joined, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))

    def floats(self, number):
        """repeated float (packed or not) as a float32 array."""
        return self._fixed_array(number, I32, "<f4")

    def doubles(self, number):
        """repeated double (packed or not) as a float64 array."""
        return self._fixed_array(number, I64, "<f8")

    def ints(self, number, bits=64, signed=True):
        """repeated int32/int64 (packed or not) as a list of Python ints."""
        out = []
        for k, (wt, value) in enumerate(self.raw.get(number, ())):
            if wt == VARINT:
                vals = [value]
            elif wt == LEN:
                vals, pos, buf = [], 0, value
                while pos < len(buf):
                    try:
                        v, pos = decode_varint(buf, pos, self._at(number, k)[1])
                    except WireError as exc:
                        raise WireError(f"field {number}: packed varints: {exc}") from None
                    vals.append(v)
            else:
                raise WireError(f"field {number}: expected repeated varints, found wire type {wt} "
                                f"at byte {self._at(number, k)[0]}")
            out.extend(to_signed(v, bits) if signed else v for v in vals)
        return out


def parse(buf, base=0):
    """Decode one message's fields (not recursing into nested messages) → Fields.

    `base` is the offset of `buf` in the outermost buffer (nested messages), so that errors
    name file positions. Runs of an unpacked repeated fixed-width field with a one-byte tag
    (Caffe's `Datum.float_data`) are gathered with NumPy instead of one Python step per value.
    """
    if isinstance(buf, memoryview):
        buf = buf.tobytes()
    raw, offsets = {}, {}
    pos, n = 0, len(buf)
    arr = None
    whole = f"the {n}-byte message" + (f" that starts at byte {base}" if base else "")
    while pos < n:
        tag_pos = pos
        key, pos = decode_varint(buf, pos, base)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {base + tag_pos}")
        if wire_type == VARINT:
            try:
                value, pos = decode_varint(buf, pos, base)
            except WireError as exc:
                raise WireError(f"field {number}: {exc}") from None
        elif wire_type == LEN:
            try:
                length, pos = decode_varint(buf, pos, base)
            except WireError as exc:
                raise WireError(f"field {number}: length: {exc}") from None
            if pos + length > n:
                raise WireError(f"field {number}: length {length} at byte {base + tag_pos} runs "
                                f"past the end of {whole}")
            value = buf[pos:pos + length]
            offsets.setdefault(number, []).append((base + tag_pos, base + pos))
            raw.setdefault(number, []).append((wire_type, value))
            pos += length
            continue
        elif wire_type in (I32, I64):
            width = 4 if wire_type == I32 else 8
            if pos + width > n:
                raise WireError(f"field {number}: fixed{width * 8} at byte {base + tag_pos} runs "
                                f"past the end of {whole}")
            count = 1
            if pos - tag_pos == 1 and pos + width < n and buf[pos + width] == buf[tag_pos]:
                if arr is None:
                    arr = np.frombuffer(buf, dtype=np.uint8)
                count = _run_length(arr, pos, width, buf[tag_pos])
            if count == 1:
                value = buf[pos:pos + width]
            else:
                stride = width + 1
                idx = pos + np.arange(count)[:, None] * stride + np.arange(width)
                value = arr[idx].tobytes()
            offsets.setdefault(number, []).append((base + tag_pos, base + pos))
            pos += count * (width + 1) - 1
            raw.setdefault(number, []).append((wire_type, value))
            continue
        else:
            raise WireError(f"field {number}: unsupported wire type {wire_type} at byte "
                            f"{base + tag_pos}")
        offsets.setdefault(number, []).append((base + tag_pos, base + tag_pos))
        raw.setdefault(number, []).append((wire_type, value))
    return Fields(raw, offsets)


def _run_length(arr, start, width, tag):
    """How many payloads of `width` bytes, each preceded by the one-byte `tag`, follow from
    `start` (the first payload)."""
    stride = width + 1
    n_max = (arr.size - start + 1) // stride     # the last payload has no tag after it
    if n_max <= 1:
        return 1
    tags = arr[start + width: start + width + (n_max - 1) * stride: stride]
    mismatch = np.flatnonzero(tags != tag)
    return 1 + (int(mismatch[0]) if mismatch.size else tags.size)


# -- Caffe BlobShape / BlobProto ------------------------------------------------------------
# caffe.proto: BlobShape { repeated int64 dim = 1 [packed] }
# BlobProto { num=1 channels=2 height=3 width=4 (legacy int32), data=5 diff=6 (packed float),
#             shape=7 (BlobShape), double_data=8 double_diff=9 (packed double) }
def encode_blob_shape(shape):
    return Writer().packed_varints(1, shape).getvalue()


def encode_blob_proto(data, diff=None, legacy_4d=False):
    """BlobProto bytes of an array (float32 → `data`, float64 → `double_data`).

    `legacy_4d=True` writes num/channels/height/width instead of `shape` (what Caffe's
    compute_image_mean writes; the array must have at most 4 axes). A 0-axis array (one value)
    gets no `shape` at all, as Caffe's Blob::ToProto writes it (it adds a dim per axis).
    """
    data = np.asarray(data)
    w = Writer()
    if legacy_4d:
        if data.ndim > 4:
            raise ValueError(f"legacy BlobProto holds at most 4 axes, got shape {data.shape}")
        dims = (1,) * (4 - data.ndim) + tuple(data.shape)
        for number, d in zip((1, 2, 3, 4), dims):
            w.varint(number, d)
    elif data.ndim:
        w.message(7, encode_blob_shape(data.shape))
    if data.dtype == np.float64:
        w.packed_doubles(8, data.reshape(-1))
        if diff is not None:
            w.packed_doubles(9, np.asarray(diff, dtype=np.float64).reshape(-1))
    else:
        w.packed_floats(5, data.reshape(-1))
        if diff is not None:
            w.packed_floats(6, np.asarray(diff, dtype=np.float32).reshape(-1))
    return w.getvalue()


def blob_proto_shape(fields):
    """The shape a BlobProto (given as Fields) declares, as Caffe's Blob::FromProto reads it:
    the legacy (num, channels, height, width) when any of them is set, else `shape.dim`. A proto
    with neither (how Caffe writes a 0-axis blob: Scale/Bias `num_axes: 0`, a shared PReLU
    slope) is shape () with one value."""
    if any(fields.has(k) for k in (1, 2, 3, 4)):
        return tuple(fields.int(k, 0) for k in (1, 2, 3, 4))
    return tuple(fields.message(7).ints(1))


def check_shape(shape, what="BlobProto"):
    """Raise WireError unless `shape` is one an array can have: no negative dimension, and
    no more elements (counting zero-sized axes as 1) than an 8-byte array can address."""
    for k, d in enumerate(shape):
        if d < 0:
            raise WireError(f"{what}: dimension {k} of shape {tuple(shape)} is negative")
    nonzero = 1
    for d in shape:
        nonzero *= d or 1
    if nonzero > np.iinfo(np.intp).max // 8:
        raise WireError(f"{what}: shape {tuple(shape)} holds {nonzero} values, more than an "
                        "array can hold")


def decode_blob_proto(buf, what="BlobProto"):
    """BlobProto bytes → (data, diff or None) arrays shaped by the proto (float32, or float64
    when it holds `double_data`). Raises WireError, its message starting with `what`, when the
    bytes are malformed, a dimension is negative or too large, or the value count disagrees
    with the shape."""
    try:
        return _decode_blob_proto(buf, what)
    except WireError as exc:
        text = str(exc)
        raise WireError(text if text.startswith(f"{what}: ") else f"{what}: {text}") from None


def _decode_blob_proto(buf, what):
    fields = parse(buf) if not isinstance(buf, Fields) else buf
    shape = blob_proto_shape(fields)
    check_shape(shape, what)
    count = 1
    for d in shape:
        count *= d
    arrays = []
    for f_num, d_num in ((5, 8), (6, 9)):
        if fields.has(d_num):
            values = fields.doubles(d_num)
        elif fields.has(f_num):
            values = fields.floats(f_num)
        else:
            arrays.append(None)
            continue
        if values.size != count:
            raise WireError(f"{what}: shape {shape} needs {count} values, found {values.size}")
        arrays.append(values.reshape(shape))
    data, diff = arrays
    if data is None:
        if count:
            raise WireError(f"{what}: shape {shape} but no data values")
        data = np.zeros(shape, dtype=np.float32)
    return data, diff
