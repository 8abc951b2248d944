"""HDF5 sources as Caffe's HDF5Data layer reads them: `read_list_file`, `HDF5Source`.

`source` is a text file listing one .h5 path per line. Each .h5 file holds one dataset per top
blob, named like the top (usually `data` and `label`), all with the same first dimension N.
One file is held in memory at a time. With `shuffle`, the file order is permuted at every pass
and the rows within each file every time it is loaded, as Caffe does.
"""
import os

import numpy as np

from minicaffe.data.source import read_text_lines
from minicaffe.errors import DataError


def read_list_file(path, what="file"):
    """Non-empty, non-comment lines of a list file, paths resolved relative to the list file's
    folder when they do not exist as written. Raises DataError when the list is missing/empty."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such list file")
    folder = os.path.dirname(path)
    entries = []
    for line in read_text_lines(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not os.path.exists(line) and os.path.exists(os.path.join(folder, line)):
            line = os.path.join(folder, line)
        entries.append(line)
    if not entries:
        raise DataError(f"{path}: list file names no {what}")
    return entries


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise DataError("the 'h5py' package is needed for HDF5Data (pip install h5py)") from None
    return h5py


class HDF5Source:
    """Rows of the datasets `names` across the listed .h5 files.

    `next_batch(n)` → list of arrays, one per name, each `(n,) + row shape` (float32, as Caffe
    stores blobs; integer datasets are converted). Raises DataError naming the file and
    dataset when one is missing, empty, or has a shape disagreeing with the first file's.
    """

    def __init__(self, list_path, names, shuffle=False, seed=None):
        self.h5py = _import_h5py()
        self.name = str(list_path)
        self.names = list(names)
        self.files = read_list_file(list_path, "HDF5 files")
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._file_order = self._permute(len(self.files))
        self._file_pos = 0
        self.shapes = None
        self._load(self._file_order[0])

    def _permute(self, n):
        return self._rng.permutation(n) if self.shuffle else np.arange(n)

    def _load(self, file_index):
        path = self.files[file_index]
        if not os.path.isfile(path):
            raise DataError(f"{self.name}: listed HDF5 file {path} does not exist")
        try:
            with self.h5py.File(path, "r") as f:
                arrays = []
                for name in self.names:
                    if name not in f:
                        raise DataError(f"{path}: no dataset '{name}' (has: {', '.join(sorted(f.keys()))}); "
                                        f"HDF5Data reads one dataset per top, named like the top")
                    arrays.append(np.asarray(f[name], dtype=np.float32))
        except OSError as e:
            raise DataError(f"{path}: cannot read as HDF5 ({e})") from None
        rows = {a.shape[0] if a.ndim else 0 for a in arrays}
        if len(rows) != 1 or 0 in rows:
            desc = ", ".join(f"'{n}' {a.shape}" for n, a in zip(self.names, arrays))
            raise DataError(f"{path}: datasets must be non-empty with equal first dimensions, "
                            f"found {desc}")
        shapes = [a.shape[1:] for a in arrays]
        if self.shapes is None:
            self.shapes = shapes
        elif shapes != self.shapes:
            desc = ", ".join(f"'{n}' {s}" for n, s in zip(self.names, shapes))
            first = ", ".join(f"'{n}' {s}" for n, s in zip(self.names, self.shapes))
            raise DataError(f"{path}: row shapes {desc} differ from the first file's {first}")
        self._arrays = arrays
        self._rows = self._permute(rows.pop())
        self._row_pos = 0

    def __len__(self):
        """Rows in the file currently loaded (the total is unknown without reading all)."""
        return len(self._rows)

    def next_batch(self, n):
        out = [np.empty((n,) + s, dtype=np.float32) for s in self.shapes]
        filled = 0
        while filled < n:
            if self._row_pos == len(self._rows):
                self._next_file()
            k = min(n - filled, len(self._rows) - self._row_pos)
            idx = self._rows[self._row_pos:self._row_pos + k]
            for dst, src in zip(out, self._arrays):
                dst[filled:filled + k] = src[idx]
            filled += k
            self._row_pos += k
        return out

    def _next_file(self):
        self._file_pos += 1
        if self._file_pos == len(self.files):
            self._file_pos = 0
            self._file_order = self._permute(len(self.files))
        if len(self.files) == 1:
            self._rows, self._row_pos = self._permute(len(self._rows)), 0
        else:
            self._load(self._file_order[self._file_pos])

    def skip(self, k):
        """Advance past `k` rows without copying them (files are still loaded in turn: each
        load draws its row permutation, which the rows after it depend on)."""
        while k > 0:
            if self._row_pos == len(self._rows):
                self._next_file()
            step = min(k, len(self._rows) - self._row_pos)
            self._row_pos += step
            k -= step

    def close(self):
        self._arrays = None
