"""Generators of small dataset files in the real on-disk formats, written by hand here (not by
the code under test): IDX, CIFAR-10 binary batches, HDF5, image lists."""
import gzip
import struct

import numpy as np
import pytest


def idx_bytes(array):
    """IDX encoding of a uint8 array (magic 0x0000 08 ndim, big-endian dims, row-major)."""
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.tobytes()


def write_idx_pair(folder, prefix="train", n=10, h=6, w=5, gz=True, seed=0):
    """`<prefix>-images-idx3-ubyte[.gz]` and labels; returns (images path, images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    img_path = folder / f"{prefix}-images-idx3-ubyte{ext}"
    lbl_path = folder / f"{prefix}-labels-idx1-ubyte{ext}"
    opener = gzip.open if gz else open
    with opener(img_path, "wb") as f:
        f.write(idx_bytes(images))
    with opener(lbl_path, "wb") as f:
        f.write(idx_bytes(labels))
    return img_path, images, labels


def write_cifar_batch(path, n=7, seed=0):
    """A CIFAR-10 binary batch: per record one label byte, then R, G, B 32x32 planes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    with open(path, "wb") as f:
        for img, lbl in zip(images, labels):
            f.write(bytes([lbl]) + img.tobytes())
    return images, labels


@pytest.fixture
def idx_pair(tmp_path):
    return write_idx_pair(tmp_path)


@pytest.fixture
def helpers():
    """The generator functions above, for tests that need other sizes."""
    class H:
        pass
    h = H()
    h.idx_bytes = staticmethod(idx_bytes)
    h.write_idx_pair = staticmethod(write_idx_pair)
    h.write_cifar_batch = staticmethod(write_cifar_batch)
    return h
