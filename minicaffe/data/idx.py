"""IDX files (MNIST, Fashion-MNIST): `read_idx`, `labels_path_for`, `IDXSource`.

IDX layout (big-endian): magic `00 00 <type> <ndim>`, then `ndim` uint32 sizes, then the values
row-major. Types: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
MNIST images are `2051 = 0x00000803` (uint8, 3 axes N,H,W), labels `2049 = 0x00000801`
(uint8, 1 axis N). Files may be gzip-compressed (detected by content, not by name).
"""
import gzip
import math
import os
import struct
import zlib

import numpy as np

from minicaffe.blob import memory_limit
from minicaffe.data.source import ArraySource
from minicaffe.errors import DataError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGES_MAGIC, LABELS_MAGIC = 0x803, 0x801


def _open(path):
    """A binary file object for `path`, inflating gzip (recognised by its magic bytes)."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _read(f, n, path):
    """Up to `n` bytes of `f`; a broken gzip stream is a DataError naming the file."""
    try:
        return f.read(n)
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip stream ({e}); "
                        "delete it and download it again") from None


def _read_chunks(f, n, path, limit, chunk=1 << 22):
    """Up to `n` bytes of the stream `f`, read a chunk at a time (so memory follows what the
    stream really holds); DataError when more than `limit` bytes (RAM + swap) are asked for and
    the stream holds them."""
    parts, got = [], 0
    while got < n:
        if limit is not None and got > limit:
            raise DataError(f"{path}: the header asks for {n} bytes, more than this machine's "
                            f"memory ({limit / 1e9:.1f} GB)")
        part = _read(f, min(chunk, n - got), path)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_idx(path, expect_magic=None):
    """The array stored in an IDX file, shaped by its header (dtype native-endian).

    Raises DataError naming the file when the magic is unknown or not `expect_magic`, or when
    the file is truncated (naming the first incomplete record) or has trailing bytes. A gzip
    file is inflated only as far as its header's size promises (plus one byte), so a
    decompression bomb costs no memory.
    """
    with _open(path) as f:
        head = _read(f, 4, path)
        if len(head) < 4:
            raise DataError(f"{path}: {len(head)} bytes is too short for an IDX header")
        zero, type_code, ndim = struct.unpack(">HBB", head)
        magic = struct.unpack(">I", head)[0]
        if zero != 0 or type_code not in _TYPES or ndim == 0:
            raise DataError(f"{path}: bad IDX magic number 0x{magic:08x} (expected 0x0000TTDD with "
                            f"a known type TT; MNIST images are 0x{IMAGES_MAGIC:08x}, labels "
                            f"0x{LABELS_MAGIC:08x}); is this an IDX file?")
        if expect_magic is not None and magic != expect_magic:
            raise DataError(f"{path}: IDX magic number 0x{magic:08x}, expected 0x{expect_magic:08x} "
                            f"({'images' if expect_magic == IMAGES_MAGIC else 'labels'})")
        sizes = _read(f, 4 * ndim, path)
        if len(sizes) < 4 * ndim:
            raise DataError(f"{path}: truncated IDX header ({4 + len(sizes)} bytes, need "
                            f"{4 + 4 * ndim})")
        dims = struct.unpack(f">{ndim}I", sizes)
        dtype = np.dtype(_TYPES[type_code])
        record = math.prod(dims[1:]) * dtype.itemsize
        need = dims[0] * record
        if isinstance(f, gzip.GzipFile):
            # in chunks: a read(n) allocates n bytes up front, whatever the stream holds
            raw = _read_chunks(f, need, path, memory_limit())
        else:
            raw = _read(f, min(need, os.path.getsize(path)), path)
        if len(raw) < need:
            have = f"only {len(raw)}"
            complete = len(raw) // record if record else 0
            raise DataError(f"{path}: truncated: header says {dims[0]} records of shape "
                            f"{dims[1:]} ({need} bytes) but {have} bytes follow; record "
                            f"{complete} is incomplete")
        if _read(f, 1, path):
            rest = "" if isinstance(f, gzip.GzipFile) else \
                f"{os.path.getsize(path) - 4 - 4 * ndim - need} "
            raise DataError(f"{path}: {rest}unexpected bytes after the {dims[0]} records of "
                            f"shape {dims[1:]}")
    return np.frombuffer(raw, dtype=dtype, count=math.prod(dims)) \
        .reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def labels_path_for(images_path):
    """The labels file paired with an IDX images file: `-images-idx3-` → `-labels-idx1-`
    (else `images` → `labels`, `idx3` → `idx1`); falls back to the file with or without `.gz`
    when only that one exists."""
    folder, name = os.path.split(images_path)
    if "-images-idx3-" in name:
        label_name = name.replace("-images-idx3-", "-labels-idx1-")
    else:
        label_name = name.replace("images", "labels").replace("idx3", "idx1")
    if label_name == name:
        raise DataError(f"{images_path}: cannot derive the labels file name (expected an images "
                        f"file named like 'train-images-idx3-ubyte.gz')")
    path = os.path.join(folder, label_name)
    if not os.path.exists(path):
        alt = path[:-3] if path.endswith(".gz") else path + ".gz"
        if os.path.exists(alt):
            return alt
    return path


class IDXSource(ArraySource):
    """Images `(N, 1, H, W)` (a 4-D IDX file is taken as `(N, C, H, W)`) and int64 labels
    `(N,)` from a pair of IDX files, read in file order and wrapping around. A missing
    `images_path` falls back to the same name with / without `.gz`.

    `labels_path` defaults to `labels_path_for(images_path)`. Raises DataError when either
    file is missing or malformed, or the counts disagree.
    """

    def __init__(self, images_path, labels_path=None, shuffle=False, seed=None):
        images_path = str(images_path)
        if not os.path.exists(images_path):
            alt = images_path[:-3] if images_path.endswith(".gz") else images_path + ".gz"
            images_path = alt if os.path.exists(alt) else images_path
        images = read_idx(images_path)
        if images.ndim == 3:
            images = images[:, None]
        elif images.ndim != 4:
            raise DataError(f"{images_path}: IDX images must have 3 axes (N, H, W) or 4 "
                            f"(N, C, H, W), found shape {images.shape}")
        labels_path = labels_path or labels_path_for(images_path)
        if not os.path.exists(labels_path):
            raise DataError(f"{images_path}: labels file {labels_path} not found (IDX labels are "
                            f"found by replacing '-images-idx3-' with '-labels-idx1-')")
        labels = read_idx(labels_path)
        if labels.ndim != 1:
            raise DataError(f"{labels_path}: IDX labels must have 1 axis, found shape {labels.shape}")
        if labels.shape[0] != images.shape[0]:
            raise DataError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images "
                            f"in {images_path}")
        super().__init__(images, labels.astype(np.int64), name=images_path,
                         shuffle=shuffle, seed=seed)
