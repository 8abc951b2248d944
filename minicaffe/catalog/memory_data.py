"""MemoryData: batches from arrays handed over with `net.set_input_arrays(data, labels)`."""
import numpy as np

from minicaffe import backend
from minicaffe.data.shard import shard_for
from minicaffe.errors import DataError
from minicaffe.catalog.base import Layer, register_layer


@register_layer("MemoryData")
class MemoryData(Layer):
    """top[0]: data (batch_size, channels, height, width); top[1]: labels (batch_size,).

    `set_input_arrays(data (n, C, H, W), labels (n,))`, n a multiple of batch_size; each
    forward takes the next batch_size rows and wraps around at the end.
    Data parallel (TRAIN, P replicas): every replica is handed the same arrays, n a multiple
    of P*batch_size; each forward takes this replica's batch_size rows of the next P*batch_size
    (minicaffe/data/shard.py), so the replicas together read what one process with batch
    P*batch_size reads.
    """

    exact_bottoms = 0
    exact_tops = 2

    def setup(self, bottom, top):
        p = self.layer_param.memory_data_param
        self.batch_size = int(p.batch_size)
        self._chw = (int(p.channels), int(p.height), int(p.width))
        if self.batch_size <= 0 or min(self._chw) <= 0:
            raise self.error(f"memory_data_param needs positive batch_size, channels, height and "
                             f"width; got batch_size={self.batch_size}, (C, H, W)={self._chw}")
        self._data = self._labels = None
        self._pos = 0
        self._shard = shard_for(self.phase)
        top[0].reshape((self.batch_size,) + self._chw)
        top[1].reshape((self.batch_size,))

    def set_input_arrays(self, data, labels):
        """Keep references to `data` (n, C, H, W) and `labels` (n,) for the next forwards."""
        data = np.asarray(data)
        labels = np.asarray(labels)
        where = f"layer '{self.name}' (MemoryData)"
        if data.ndim != 4 or data.shape[1:] != self._chw:
            raise DataError(f"{where}: data must have shape (n, {', '.join(map(str, self._chw))}), "
                            f"got {data.shape}")
        n = data.shape[0]
        if labels.size != n:
            raise DataError(f"{where}: expected {n} labels (one per data row), got shape {labels.shape}")
        step = self._step()
        if n == 0 or n % step:
            per = "" if step == self.batch_size else \
                f" x {self._shard.size} replicas = {step} (data parallel)"
            raise DataError(f"{where}: the number of rows ({n}) must be a positive multiple of "
                            f"batch_size {self.batch_size}{per}")
        self._data = data
        self._labels = labels.reshape(n)
        self._pos = 0

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + self._chw)
        top[1].reshape((self.batch_size,))

    def forward(self, bottom, top):
        if self._data is None:
            raise DataError(f"layer '{self.name}' (MemoryData): no data; call "
                            f"net.set_input_arrays(data, labels) before forward")
        lo = self._pos + (self._shard.rank * self.batch_size if self._shard else 0)
        hi = lo + self.batch_size
        top[0].data[...] = backend.to_current(self._data[lo:hi])
        top[1].data[...] = backend.to_current(self._labels[lo:hi])
        end = self._pos + self._step()
        self._pos = 0 if end >= self._data.shape[0] else end

    def _step(self):
        """Rows one forward moves past: the global batch."""
        return self.batch_size * (self._shard.size if self._shard else 1)
