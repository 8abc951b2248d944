"""Image list files as Caffe's ImageData layer and convert_imageset read them.

Each line is `<path> <label>` (split at the last space, so paths may contain spaces); the path
is prefixed with `root_folder` (plain string concatenation, as in Caffe). Images load with
Pillow: colour images as BGR `(3, H, W)` (OpenCV's order, which Caffe's mean values assume),
greyscale `(1, H, W)` when `is_color` is false. With `new_height` and `new_width` both > 0 every
image is resized (bilinear) to that size; otherwise all images must have the first one's size.
"""
import os

import numpy as np

from minicaffe.data.datum import image_to_chw
from minicaffe.data.source import Source, read_text_lines
from minicaffe.errors import DataError


def read_image_list(path):
    """[(image path, label int, line number)] of a `path label` list file."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such image list file")
    entries = []
    for lineno, line in enumerate(read_text_lines(path), 1):
        line = line.strip()
        if not line:
            continue
        name, sep, label = line.rpartition(" ")
        if not sep:
            raise DataError(f"{path}:{lineno}: expected '<image path> <label>', got {line[:200]!r}")
        try:
            value = int(label[:40])
        except ValueError:
            raise DataError(f"{path}:{lineno}: label {label[:40]!r} is not an integer") from None
        if len(label) > 40 or not -2**31 <= value < 2**31:
            raise DataError(f"{path}:{lineno}: label {label[:40]!r} is outside the int32 range")
        entries.append((name.strip(), value, lineno))
    if not entries:
        raise DataError(f"{path}: image list is empty")
    return entries


def load_image(path, is_color=True, new_height=0, new_width=0, where=None):
    """One image file → `(C, H, W)` uint8 (BGR when colour). Raises DataError naming `where`
    (default: the path) when it is missing or undecodable."""
    from PIL import Image
    where = where or path
    if (new_height > 0) != (new_width > 0):
        raise DataError(f"{where}: new_height and new_width must both be set or both be 0, got "
                        f"{new_height} and {new_width}")
    try:
        with Image.open(path) as img:
            img.load()
            if new_height > 0:
                img = img.convert("RGB" if is_color else "L").resize(
                    (new_width, new_height), Image.BILINEAR)
            return image_to_chw(img, force_color=is_color, force_gray=not is_color)
    except FileNotFoundError:
        raise DataError(f"{where}: image file {path} not found") from None
    except Exception as e:  # noqa: BLE001  (Pillow raises many kinds on hostile bytes)
        raise DataError(f"{where}: cannot decode image {path} ({type(e).__name__}: {e})") from None


class ImageListSource(Source):
    """Records of an image list, loaded per batch; the first image fixes the shape.

    With `shuffle` the list order is permuted at the start and after every pass.
    """

    def __init__(self, list_path, root_folder="", new_height=0, new_width=0, is_color=True,
                 shuffle=False, seed=None):
        self.name = str(list_path)
        self.entries = read_image_list(list_path)
        self.root_folder = root_folder or ""
        self.resize = (int(new_height), int(new_width))
        self.is_color = is_color
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._new_order()
        self._cursor = 0
        first = self._load(self._order[0])
        self.shape = first.shape

    def __len__(self):
        return len(self.entries)

    def _new_order(self):
        n = len(self.entries)
        return self._rng.permutation(n) if self.shuffle else np.arange(n)

    def _load(self, i):
        name, _, lineno = self.entries[i]
        return load_image(self.root_folder + name, self.is_color, *self.resize,
                          where=f"{self.name}:{lineno}")

    def _take(self):
        if self._cursor == len(self._order):
            self._order, self._cursor = self._new_order(), 0
        i = self._order[self._cursor]
        self._cursor += 1
        return i

    def next_batch(self, n):
        data = np.empty((n,) + self.shape, dtype=np.uint8)
        labels = np.empty(n, dtype=np.int64)
        for k in range(n):
            i = self._take()
            image = self._load(i)
            if image.shape != self.shape:
                name, _, lineno = self.entries[i]
                raise DataError(f"{self.name}:{lineno}: image {name} has shape {image.shape}, the "
                                f"first image {self.shape}; set new_height/new_width to resize")
            data[k] = image
            labels[k] = self.entries[i][1]
        return data, labels

    def skip(self, k):
        for _ in range(k):
            self._take()
