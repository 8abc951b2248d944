"""Blob: an N-D array with its gradient, as in Caffe (data + diff share one shape)."""
import functools
import os

import numpy as np

from minicaffe import backend
from minicaffe.errors import AllocationError


@functools.lru_cache(maxsize=1)
def memory_limit():
    """Bytes of RAM plus swap on this machine (None when the OS does not say). A host array
    larger than this cannot be used even where the kernel would promise it (overcommit), so a
    blob asking for more is refused up front, naming its size, instead of being killed later."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("SwapTotal:"):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return total


def _size_text(nbytes):
    return f"{nbytes / 1e9:.1f} GB" if nbytes < 1e18 else f"{nbytes:.3g} bytes"


class Blob:
    """`data` and `diff` arrays of one shape on the current backend.

    Buffers are reused: `reshape` to a shape of the same or smaller count keeps the storage
    (views of it), so a training loop allocates nothing after its first iteration, and
    `reshape` to the current shape keeps the very same `data` array.

    `Blob.layout_version` (one counter for every blob) grows whenever some blob's storage or
    shape changes (reshape, share_data, astype). The data array of a blob is always its
    storage's first `count` values in its shape, so (storage, shape) says where and how it
    lies; an inference plan bound to the arrays compares the counter to know that none moved.
    """

    layout_version = 0

    def __init__(self, shape=(), dtype=np.float32, name=""):
        self.name = name
        self.dtype = np.dtype(dtype)
        self._shape = ()
        self._data_store = None
        self._diff_store = None
        self._data = None
        self._diff = None
        self.reshape(shape)

    # -- shape -------------------------------------------------------------------------------
    @property
    def shape(self):
        return self._shape

    @property
    def count(self):
        n = 1
        for d in self._shape:
            n *= d
        return n

    @property
    def ndim(self):
        return len(self._shape)

    def shape_at(self, axis):
        return self._shape[axis]

    # pycaffe's legacy 4-D accessors
    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    def _legacy(self, i):
        return self._shape[i] if i < len(self._shape) else 1

    def reshape(self, *shape):
        """Reshape in place; accepts `reshape((2, 3))` or `reshape(2, 3)`. Never loses data
        when the count is unchanged."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        shape = tuple(int(d) for d in shape)
        if shape == self._shape and self._data is not None:
            return                               # the same view: `data` keeps its identity
        if any(d < 0 for d in shape):
            raise ValueError(f"blob '{self.name}': negative dimension in shape {shape}")
        Blob.layout_version += 1
        count = 1
        for d in shape:
            count *= d
        if self._data_store is None or self._data_store.size < count:
            xp = backend.xp()
            old = self._data_store
            store = self._allocate(xp, shape, count)
            if old is not None:
                n = min(old.size, count)
                store[:n] = old[:n]
            self._data_store = store
            self._diff_store = None
        self._shape = shape
        self._data = self._data_store[:count].reshape(shape)
        self._diff = None if self._diff_store is None else self._diff_store[:count].reshape(shape)

    def _allocate(self, xp, shape, count):
        """Zeroed storage of `count` elements; AllocationError naming the blob, its shape and
        size when it cannot exist (more than RAM + swap, past NumPy's limit, or refused)."""
        nbytes = count * self.dtype.itemsize
        what = f"blob '{self.name}': shape {shape} of {self.dtype} needs {_size_text(nbytes)}"
        limit = memory_limit() if xp is np else None
        if limit is not None and nbytes > limit:
            raise AllocationError(f"{what}; this machine has {limit / 1e9:.1f} GB of memory "
                                  "(RAM + swap)")
        if count > np.iinfo(np.intp).max // self.dtype.itemsize:
            raise AllocationError(f"{what}, more than one array can hold")
        try:
            return xp.zeros(max(count, 1), dtype=self.dtype)
        except (MemoryError, ValueError) as exc:
            raise AllocationError(f"{what} ({exc})") from None

    def reshape_like(self, other):
        self.reshape(other.shape)

    # -- arrays ------------------------------------------------------------------------------
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        self._data[...] = value

    @property
    def diff(self):
        if self._diff is None:
            xp = backend.xp_of(self._data_store)
            self._diff_store = self._allocate(xp, self._shape, self._data_store.size)
            self._diff = self._diff_store[: self.count].reshape(self._shape)
        return self._diff

    @diff.setter
    def diff(self, value):
        self.diff[...] = value

    def share_data(self, other):
        """Make this blob's data the same storage as `other`'s (shared weights, in-place).

        Takes `other`'s shape; this blob's own diff is kept when it is large enough."""
        if self._data_store is not other._data_store or self._shape != other.shape:
            Blob.layout_version += 1
        self._data_store = other._data_store
        self._shape = other.shape
        self._data = other._data
        if self._diff_store is not None and self._diff_store.size < other.count:
            self._diff_store = None
        self._diff = None if self._diff_store is None else \
            self._diff_store[: other.count].reshape(other.shape)

    def share_diff(self, other):
        other.diff  # noqa: B018  (the property allocates the diff store)
        self._diff_store = other._diff_store
        self._diff = other._diff

    def astype(self, dtype):
        """Change the element type, converting current values."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return
        self.dtype = dtype
        self._data_store = self._data_store.astype(dtype)
        self._diff_store = None if self._diff_store is None else self._diff_store.astype(dtype)
        self._data = None                        # new storage: rebuild the views
        self.reshape(self._shape)

    def __repr__(self):
        return f"Blob({self.name!r}, shape={self._shape}, dtype={self.dtype})"
