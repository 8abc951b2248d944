"""The record-source interface the data layers read from, and its in-memory implementation.

A source yields records of one shape `(C, H, W)` with an integer label, in a fixed order that
wraps around at the end (Caffe's data layers never stop). `next_batch(n)` returns
`(data (n, C, H, W), labels (n,) int64)`; data keeps the stored dtype (uint8 or float32) so the
transformer sees the raw values.
"""
import numpy as np

from minicaffe.errors import DataError


def read_text_lines(path):
    """The lines of a UTF-8 text file (list files). Raises DataError naming `path:line` at
    the first byte that is not UTF-8, or the file when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); is this a "
                        "list file?") from None
    return text.splitlines()


class Source:
    """Base class: `name` (file for messages), `shape` (C, H, W), `len()`, `next_batch(n)`,
    `skip(k)`, `close()`."""

    name = "<source>"
    shape = None

    def __len__(self):
        raise NotImplementedError

    def next_batch(self, n):
        raise NotImplementedError

    def skip(self, k):
        """Advance past `k` records (Caffe's rand_skip)."""
        for _ in range(k):
            self.next_batch(1)

    def close(self):
        """Release files; the source cannot be read afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ArraySource(Source):
    """Records held in memory: `images (N, C, H, W)`, `labels (N,)`.

    With `shuffle`, each pass goes through a fresh permutation drawn from
    `np.random.default_rng(seed)`; otherwise records come in stored order.
    """

    def __init__(self, images, labels, name="<array>", shuffle=False, seed=None):
        if images.shape[0] == 0:
            raise DataError(f"{name}: holds no records")
        if len(labels) != images.shape[0]:
            raise DataError(f"{name}: {len(labels)} labels for {images.shape[0]} records")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.name = name
        self.shape = tuple(images.shape[1:])
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._new_order()
        self._cursor = 0

    def __len__(self):
        return self.images.shape[0]

    def _new_order(self):
        n = len(self)
        return self._rng.permutation(n) if self.shuffle else np.arange(n)

    def take_indices(self, n):
        """The next `n` record indices, starting a new pass (re-shuffled) at the end."""
        out = np.empty(n, dtype=np.int64)
        filled = 0
        while filled < n:
            if self._cursor == len(self._order):
                self._order, self._cursor = self._new_order(), 0
            k = min(n - filled, len(self._order) - self._cursor)
            out[filled:filled + k] = self._order[self._cursor:self._cursor + k]
            filled += k
            self._cursor += k
        return out

    def next_batch(self, n):
        idx = self.take_indices(n)
        return self.images[idx], self.labels[idx]

    def skip(self, k):
        self.take_indices(k)
