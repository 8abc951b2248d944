"""Writing Caffe-compatible LMDBs and mean files (Caffe's convert_mnist_data,
convert_cifar_data, convert_imageset and compute_image_mean).

- `convert(source, out, fmt)`: IDX or CIFAR-10 records → Datum (uint8 `data`) with keys
  `%08d`; an image list → Datum per image with keys `%08d_<path>` (BGR, optionally resized,
  greyscale, shuffled, or kept `encoded` as PNG/JPEG bytes).
- `compute_mean(source, backend)` → per-pixel mean image `(C, H, W)` float32 over all records.
"""
import io
import os
import sys

import numpy as np

from minicaffe.data.cifar import CIFARSource
from minicaffe.data.datum import datum_to_array, decode_datum, encode_datum
from minicaffe.data.idx import IDXSource
from minicaffe.data.image_list import load_image, read_image_list
from minicaffe.data.lmdb_source import LMDBWriter, open_env, release_env
from minicaffe.errors import DataError

FORMATS = ("idx", "cifar10", "imagelist")


def guess_format(source):
    """'idx', 'cifar10' or 'imagelist' from a source path's name (DataError when unclear)."""
    s = str(source)
    base = os.path.basename(os.path.normpath(s.split(",")[0]))
    if "idx3" in base or "-images-" in base:
        return "idx"
    if base.endswith(".bin") or os.path.isdir(s):
        return "cifar10"
    if base.endswith((".txt", ".list", ".lst")):
        return "imagelist"
    raise DataError(f"{source}: cannot tell the format from the name; pass --format "
                    f"({' | '.join(FORMATS)})")


def _bar(total, desc):
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="rec", leave=False)


def convert(source, out, fmt=None, root_folder="", resize_height=0, resize_width=0, gray=False,
            shuffle=False, encoded=False, seed=0, log=print):
    """Write `source` into a new LMDB `out`; return the number of records written.

    `fmt` is 'idx' (images file; labels found by name), 'cifar10' (a .bin, a list or a
    directory) or 'imagelist' (`path label` lines; `root_folder`, resize, `gray`, `shuffle`,
    `encoded` apply). Raises DataError for unreadable input or an existing `out`.
    """
    fmt = fmt or guess_format(source)
    if fmt not in FORMATS:
        raise DataError(f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")
    with LMDBWriter(str(out)) as db:
        if fmt in ("idx", "cifar10"):
            src = IDXSource(source) if fmt == "idx" else CIFARSource(source)
            n = len(src)
            bar = _bar(n, os.path.basename(str(out)))
            for i in range(n):
                db.put(f"{i:08d}", encode_datum(src.images[i], int(src.labels[i])))
                if bar is not None:
                    bar.update(1)
        else:
            entries = read_image_list(source)
            if shuffle:
                order = np.random.default_rng(seed).permutation(len(entries))
                entries = [entries[i] for i in order]
            bar = _bar(len(entries), os.path.basename(str(out)))
            for i, (name, label, lineno) in enumerate(entries):
                where = f"{source}:{lineno}"
                path = root_folder + name
                if encoded:
                    value = encode_datum(label=label, encoded_bytes=_encoded_bytes(
                        path, gray, resize_height, resize_width, where))
                else:
                    image = load_image(path, not gray, resize_height, resize_width, where=where)
                    value = encode_datum(image, label)
                db.put(f"{i:08d}_{name}", value)
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        count = db.count
    log(f"wrote {count} records to {out}")
    return count


def _encoded_bytes(path, gray, h, w, where):
    """The image file's own bytes, or a PNG re-encoding when it must be resized / made grey."""
    if not os.path.isfile(path):
        raise DataError(f"{where}: image file {path} not found")
    if not gray and not h:
        with open(path, "rb") as f:
            return f.read()
    from PIL import Image
    chw = load_image(path, not gray, h, w, where=where)
    img = Image.fromarray(chw[0] if gray else chw[::-1].transpose(1, 2, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def iterate_records(source, backend):
    """Yield `(C, H, W)` arrays of every record of an LMDB / IDX / CIFAR10 source, once."""
    backend = backend.upper()
    if backend == "IDX":
        yield from IDXSource(source).images
    elif backend == "CIFAR10":
        yield from CIFARSource(source).images
    elif backend == "LMDB":
        if not os.path.exists(source):
            raise DataError(f"{source}: no such LMDB")
        env = open_env(source)
        try:
            with env.begin() as txn:
                for i, (key, value) in enumerate(txn.cursor()):
                    where = f"{source}: record {i} (key {key.decode('latin-1')!r})"
                    yield datum_to_array(decode_datum(value, where), where)
        finally:
            release_env(source)
    else:
        raise DataError(f"unknown backend '{backend}' (known: LMDB, IDX, CIFAR10)")


def compute_mean(source, backend="LMDB", log=print):
    """Per-pixel mean `(C, H, W)` float32 over every record; DataError when records disagree
    in shape or there are none."""
    total, shape, n = None, None, 0
    bar = _bar(None, f"mean of {os.path.basename(os.path.normpath(str(source)))}")
    for i, array in enumerate(iterate_records(source, backend)):
        if bar is not None:
            bar.update(1)
        if total is None:
            shape, total = array.shape, np.zeros(array.shape, np.float64)
        elif array.shape != shape:
            raise DataError(f"{source}: record {i} has shape {array.shape}, the first {shape}")
        total += array
        n += 1
    if bar is not None:
        bar.close()
    if not n:
        raise DataError(f"{source}: no records")
    mean = (total / n).astype(np.float32)
    log(f"mean over {n} records of shape {shape}; per channel: "
        + ", ".join(f"{v:.4f}" for v in mean.reshape(shape[0], -1).mean(axis=1)))
    return mean
