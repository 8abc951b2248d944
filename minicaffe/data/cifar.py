"""CIFAR-10 binary batches: `read_cifar_batch`, `cifar_files`, `CIFARSource`.

Each record of a `.bin` batch is 3073 bytes: one label byte (0..9), then the 32x32 red,
green and blue planes (1024 bytes each, row-major). Channels stay in the file's R, G, B order.
"""
import glob
import os

import numpy as np

from minicaffe.data.source import ArraySource
from minicaffe.errors import DataError

RECORD_BYTES = 1 + 3 * 32 * 32
NUM_CLASSES = 10


def read_cifar_batch(path):
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of one binary batch file.

    Raises DataError naming the file and record when the size is not a whole number of records
    or a label is outside 0..9.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such CIFAR-10 batch file")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        raise DataError(f"{path}: empty CIFAR-10 batch file")
    if raw.size % RECORD_BYTES:
        raise DataError(f"{path}: truncated: {raw.size} bytes is not a multiple of the "
                        f"{RECORD_BYTES}-byte CIFAR-10 record; record {raw.size // RECORD_BYTES} "
                        f"is incomplete")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DataError(f"{path}: record {bad[0]}: label {labels[bad[0]]} outside 0..9 "
                        f"(is this a CIFAR-100 file? only CIFAR-10 binaries are supported)")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def cifar_files(source):
    """The batch files a CIFAR10 `source` names: one `.bin` file, a comma-separated list of
    them, or a directory (its `data_batch_*.bin`, or `test_batch.bin` when the directory's name
    contains 'test')."""
    parts = [p.strip() for p in str(source).split(",") if p.strip()]
    if len(parts) > 1:
        return parts
    path = parts[0] if parts else ""
    if os.path.isdir(path):
        if "test" in os.path.basename(os.path.normpath(path)).lower():
            files = [os.path.join(path, "test_batch.bin")]
        else:
            files = sorted(glob.glob(os.path.join(path, "data_batch_*.bin")))
        if not files or not all(os.path.isfile(f) for f in files):
            raise DataError(f"{path}: directory has no CIFAR-10 batches (expected data_batch_*.bin "
                            f"or test_batch.bin; get them with `python -m minicaffe.data get cifar10`)")
        return files
    if not os.path.exists(path):
        raise DataError(f"{path}: no such CIFAR-10 batch file or directory "
                        f"(get it with `python -m minicaffe.data get cifar10`)")
    return [path]


class CIFARSource(ArraySource):
    """All records of the named CIFAR-10 batches, in file order, wrapping around."""

    def __init__(self, source, shuffle=False, seed=None):
        batches = [read_cifar_batch(f) for f in cifar_files(source)]
        images = np.concatenate([b[0] for b in batches]) if len(batches) > 1 else batches[0][0]
        labels = np.concatenate([b[1] for b in batches]) if len(batches) > 1 else batches[0][1]
        super().__init__(images, labels, name=str(source), shuffle=shuffle, seed=seed)
