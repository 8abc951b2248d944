"""The data an experiment reads, found under a data root (`data/` by default), and the
stand-ins the paper's experiments use when their data set is absent.

    mnist_like(root, want="auto")  -> Dataset: MNIST when present (auto), else Fashion-MNIST
    cifar_like(root, cache)        -> Dataset: CIFAR-10 when present, else Fashion-MNIST padded
                                      to 32x32 and repeated over 3 channels, written as CIFAR-10
                                      binary batches (so the shipped CIFAR-10 nets run unchanged)
    retarget(net_param, dataset)   -> the net with its Data layers reading the dataset's files

Folders are the data tool's (`python -m minicaffe.data get mnist|fashion-mnist|cifar10`):
`<root>/mnist/`, `<root>/fashion-mnist/` (`*-idx?-ubyte[.gz]`) and
`<root>/cifar10/cifar-10-batches-bin/`.
"""
import gzip
import os
import struct
from dataclasses import dataclass

import numpy as np

from minicaffe.data.idx import read_idx
from minicaffe.errors import DataError
from minicaffe.files import write_atomic

IDX_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}


@dataclass
class Dataset:
    """Where a data set's train and test files are and how to describe it."""

    name: str             # "mnist", "fashion-mnist", "cifar10", "fashion-mnist-32"
    backend: str          # Data layer backend: IDX or CIFAR10
    train: str            # Data layer `source` of the TRAIN phase
    test: str             # ... of the TEST phase
    description: str      # one sentence for the tables

    @property
    def is_stand_in(self):
        return self.name == "fashion-mnist-32"


def _idx_file(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return None


def idx_dataset(root, name):
    """The IDX data set `name` (mnist / fashion-mnist) under `root`, or None when incomplete."""
    folder = os.path.join(root, name)
    train, test = _idx_file(folder, IDX_FILES["train"]), _idx_file(folder, IDX_FILES["test"])
    if not train or not test:
        return None
    title = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}.get(name, name)
    n_train, n_test = _count(train), _count(test)
    return Dataset(name, "IDX", train, test,
                   f"{title} ({n_train} training, {n_test} test images, 28x28) from {folder}")


def _count(path):
    """Number of records of an IDX file, read from its header only."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    with (gzip.open if gzipped else open)(path, "rb") as f:
        head = f.read(8)
    return struct.unpack(">I", head[4:8])[0] if len(head) == 8 else 0


def mnist_like(root="data", want="auto"):
    """MNIST when present (want="auto" or "mnist"), else Fashion-MNIST.

    Raises DataError naming the folders looked at and the command that fetches the data."""
    order = {"auto": ["mnist", "fashion-mnist"], "mnist": ["mnist"],
             "fashion-mnist": ["fashion-mnist"]}.get(want)
    if order is None:
        raise DataError(f"unknown data set '{want}' (expected auto, mnist or fashion-mnist)")
    for name in order:
        found = idx_dataset(root, name)
        if found:
            return found
    looked = ", ".join(os.path.join(root, n) for n in order)
    raise DataError(f"no {' or '.join(order)} IDX files in {looked}; fetch them with "
                    f"`python -m minicaffe.data get {order[-1]} --dir {os.path.join(root, order[-1])}`")


def cifar_like(root="data", cache=None, want="auto"):
    """CIFAR-10 when its batches are under `root/cifar10/` (and want is auto or cifar10), else
    Fashion-MNIST padded to 32x32 as CIFAR-10 batches written once into `cache` (default
    `root/fashion-mnist-32/`)."""
    folder = os.path.join(root, "cifar10", "cifar-10-batches-bin")
    if want in ("auto", "cifar10") and os.path.exists(os.path.join(folder, "test_batch.bin")):
        return Dataset("cifar10", "CIFAR10", folder, os.path.join(folder, "test_batch.bin"),
                       f"CIFAR-10 (50000 training, 10000 test images, 32x32x3) from {folder}")
    if want == "cifar10":
        raise DataError(f"no CIFAR-10 batches in {folder}; fetch them with "
                        "`python -m minicaffe.data get cifar10`")
    fm = mnist_like(root, "fashion-mnist")
    cache = cache or os.path.join(root, "fashion-mnist-32")
    write_padded_as_cifar(fm, cache)
    return Dataset("fashion-mnist-32", "CIFAR10", cache, os.path.join(cache, "test_batch.bin"),
                   "Fashion-MNIST as a stand-in for CIFAR-10 (not present): 28x28 images "
                   "zero-padded to 32x32, the grey plane repeated as R, G and B, written as "
                   f"CIFAR-10 binary batches to {cache}")


def write_cifar_batch(path, images, labels):
    """Write uint8 images (N, 3, 32, 32) and labels (N,) as one CIFAR-10 binary batch."""
    images = np.asarray(images, np.uint8).reshape(len(labels), -1)
    if images.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: CIFAR-10 records hold 3x32x32 images, got {images.shape[1]} "
                        "values per image")
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], images], axis=1)
    # Experiments started side by side write the same stand-in at the same time: each writer
    # has a temporary file of its own (a shared ".tmp" name let one writer's rename take the
    # file from under the other's).
    write_atomic(path, records.tofile, binary=True)


def _pad32(images):
    n, h, w = images.shape
    out = np.zeros((n, 3, 32, 32), np.uint8)
    top, left = (32 - h) // 2, (32 - w) // 2
    out[:, :, top:top + h, left:left + w] = images[:, None]
    return out


def write_padded_as_cifar(dataset, folder, batches=5):
    """Fashion-MNIST (an IDX Dataset) as CIFAR-10 batches in `folder`: data_batch_1..N and
    test_batch.bin. Skipped when the files are there with the expected sizes."""
    os.makedirs(folder, exist_ok=True)
    train_x = read_idx(dataset.train)
    test_x = read_idx(dataset.test)
    from minicaffe.data.idx import labels_path_for  # noqa: PLC0415

    train_y, test_y = read_idx(labels_path_for(dataset.train)), read_idx(labels_path_for(dataset.test))
    parts = np.array_split(np.arange(len(train_y)), batches)
    wanted = [(os.path.join(folder, f"data_batch_{k + 1}.bin"), idx) for k, idx in enumerate(parts)]
    record = 1 + 3 * 32 * 32
    for path, idx in wanted:
        if not (os.path.exists(path) and os.path.getsize(path) == len(idx) * record):
            write_cifar_batch(path, _pad32(train_x[idx]), train_y[idx])
    test = os.path.join(folder, "test_batch.bin")
    if not (os.path.exists(test) and os.path.getsize(test) == len(test_y) * record):
        write_cifar_batch(test, _pad32(test_x), test_y)


def write_idx(folder, split, images, labels, gz=True):
    """Write uint8 images (N, H, W) and labels (N,) as `<split>-images-idx3-ubyte[.gz]` and
    the labels file next to it (split: "train" or "t10k"); returns the images path."""
    os.makedirs(folder, exist_ok=True)
    images = np.asarray(images, np.uint8)
    labels = np.asarray(labels, np.uint8)
    n, h, w = images.shape
    img = struct.pack(">IIII", 0x803, n, h, w) + images.tobytes()
    lab = struct.pack(">II", 0x801, n) + labels.tobytes()
    suffix = ".gz" if gz else ""
    paths = []
    for stem, raw in ((f"{split}-images-idx3-ubyte", img), (f"{split}-labels-idx1-ubyte", lab)):
        path = os.path.join(folder, stem + suffix)
        with open(path, "wb") as f:
            f.write(gzip.compress(raw, compresslevel=1) if gz else raw)
        paths.append(path)
    return paths[0]


def retarget(net_param, dataset):
    """A copy of `net_param` whose Data layers read `dataset` (TRAIN: its train files, TEST:
    its test files) with its backend. Layers of other types are unchanged."""
    out = net_param.copy()
    for lp in out.layer:
        if lp.type != "Data":
            continue
        phases = {r.phase for r in lp.include if r.has("phase")}
        source = dataset.test if phases == {"TEST"} else dataset.train
        lp.data_param.source = source
        lp.data_param.backend = dataset.backend
    return out
