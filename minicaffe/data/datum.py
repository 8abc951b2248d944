"""Caffe's `Datum` record and image decoding shared by the LMDB source and the data tool.

caffe.proto: `Datum { channels=1 height=2 width=3 (int32), data=4 (bytes, uint8 C*H*W),
label=5 (int32), float_data=6 (repeated float, unpacked), encoded=7 (bool) }`.
Encoded datums hold a compressed image file (PNG/JPEG...) in `data`; they decode, as Caffe's
OpenCV path does, to BGR channel order for colour images and one channel for greyscale.
"""
import io
from dataclasses import dataclass

import numpy as np

from minicaffe import wire
from minicaffe.errors import DataError


@dataclass
class Datum:
    """One record: raw fields as stored (`data` bytes, `float_data` float32 array)."""
    channels: int = 0
    height: int = 0
    width: int = 0
    data: bytes = b""
    label: int = 0
    float_data: np.ndarray = None
    encoded: bool = False


def encode_datum(array=None, label=0, encoded_bytes=None):
    """Datum bytes for an image `(C, H, W)` (uint8 → `data`, other dtypes → `float_data`) or,
    with `encoded_bytes`, a compressed image file (`encoded: true`, shape fields left 0 as
    convert_imageset --encoded writes them)."""
    w = wire.Writer()
    if encoded_bytes is not None:
        w.bytes(4, encoded_bytes).varint(5, label).varint(7, 1)
        return w.getvalue()
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"a Datum holds a (C, H, W) image, got shape {array.shape}")
    c, h, wd = array.shape
    w.varint(1, c).varint(2, h).varint(3, wd)
    if array.dtype == np.uint8:
        w.bytes(4, np.ascontiguousarray(array).tobytes())
        w.varint(5, label)
    else:
        w.varint(5, label)
        w.unpacked_floats(6, array.reshape(-1))
    return w.getvalue()


def decode_datum(buf, where="Datum"):
    """Datum bytes → Datum; `where` names the record in error messages."""
    try:
        f = wire.parse(buf)
        return Datum(channels=f.int(1), height=f.int(2), width=f.int(3), data=f.bytes(4),
                     label=f.int(5), float_data=f.floats(6), encoded=f.bool(7))
    except DataError as e:
        raise DataError(f"{where}: not a valid Caffe Datum ({e})") from None


def decode_image(data, where, force_color=False, force_gray=False):
    """A compressed image file → `(C, H, W)` uint8, BGR for colour (C=3), C=1 for greyscale."""
    from PIL import Image
    try:
        img = Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
        img.load()
        return image_to_chw(img, force_color=force_color, force_gray=force_gray)
    except Exception as e:  # noqa: BLE001  (Pillow raises many kinds on hostile bytes: OSError,
        # DecompressionBombError, ValueError, SyntaxError...)
        raise DataError(f"{where}: cannot decode image ({type(e).__name__}: {e})") from None


def image_to_chw(img, force_color=False, force_gray=False):
    """PIL image → `(C, H, W)` uint8: greyscale stays 1 channel unless `force_color`; colour
    becomes BGR (3 channels) unless `force_gray`."""
    gray = force_gray or (img.mode in ("1", "L", "I", "I;16", "F") and not force_color)
    if gray:
        return np.asarray(img.convert("L"), dtype=np.uint8)[None].copy()
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1].transpose(2, 0, 1))


def datum_to_array(datum, where="Datum", force_color=False, force_gray=False):
    """The datum's image `(C, H, W)`: uint8 from `data`, float32 from `float_data`, decoded
    when `encoded`. Raises DataError when the byte count disagrees with the shape."""
    if datum.encoded:
        return decode_image(datum.data, where, force_color, force_gray)
    c, h, w = datum.channels, datum.height, datum.width
    count = c * h * w
    if min(c, h, w) <= 0:
        raise DataError(f"{where}: Datum shape ({c}, {h}, {w}) is empty")
    if datum.data:
        if len(datum.data) != count:
            raise DataError(f"{where}: Datum data has {len(datum.data)} bytes, shape "
                            f"({c}, {h}, {w}) needs {count}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(c, h, w)
    if datum.float_data is not None and datum.float_data.size:
        if datum.float_data.size != count:
            raise DataError(f"{where}: Datum float_data has {datum.float_data.size} values, shape "
                            f"({c}, {h}, {w}) needs {count}")
        return datum.float_data.reshape(c, h, w)
    raise DataError(f"{where}: Datum has neither data nor float_data")
