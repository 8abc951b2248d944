"""Gradient averaging over the replicas: buckets of parameter diffs, allreduced during backward.

The learnable blobs that get a gradient are packed, in the order backward finishes them, into
buckets of about `bucket_bytes` (a blob larger than that is a bucket of its own). A blob's
diff is complete once the lowest-indexed layer using it (its owner or a layer sharing it by
`param { name }`) has run backward, so with `overlap` the bucket's allreduce starts (MPI
non-blocking, in place) from the net's after-backward callback of that layer, in the last of
the `iter_size` passes, while backward goes on through the layers below; every later callback
lets MPI progress the operations in flight. `finish()` waits for all of them and writes
`sum / P` back into the diffs. Without `overlap` the buckets are summed one after the other
after backward (blocking allreduces).

Blobs no layer computes a gradient for (lr_mult 0 everywhere: frozen layers, BatchNorm's
statistics) are left out: their diffs are 0 on every replica.
"""
import time

import numpy as np

from minicaffe import backend

DEFAULT_BUCKET_BYTES = 4 << 20


class _Bucket:
    __slots__ = ("entries", "buffer", "ready_layer", "request")

    def __init__(self, entries, dtype, ready_layer):
        self.entries = entries                      # [(blob, offset, count)]
        total = sum(count for _, _, count in entries)
        self.buffer = np.empty(total, dtype=dtype)
        self.ready_layer = ready_layer              # its diffs are complete after this layer
        self.request = None

    @property
    def nbytes(self):
        return self.buffer.nbytes

    def pack(self):
        for blob, offset, count in self.entries:
            self.buffer[offset:offset + count] = backend.asnumpy(blob.diff).reshape(-1)

    def unpack(self, scale):
        for blob, offset, count in self.entries:
            part = self.buffer[offset:offset + count]
            part *= part.dtype.type(scale)
            blob.diff[...] = backend.to_current(part.reshape(blob.diff.shape))


def _gradient_blobs(net):
    """[(owner blob, lowest layer index using it)] of the blobs that get a gradient, in the
    order backward completes them (highest ready layer first)."""
    index = {name: i for i, name in enumerate(net._layer_names)}
    owners, ready, needed = {}, {}, {}
    infos = net.param_infos
    for info in infos:
        if info.owner and info.spec is not None and info.spec.name:
            owners[info.spec.name] = info.blob
    for info in infos:
        blob = info.blob if info.owner or not info.spec.name else owners[info.spec.name]
        i = index[info.layer_name]
        key = id(blob)
        ready[key] = min(ready.get(key, i), i)
        layer = net.layers[i]
        flags = getattr(layer, "param_propagate_down", None) or []
        wants = bool(flags[info.index]) if info.index < len(flags) else True
        needed[key] = needed.get(key, False) or wants
    out = [(blob, ready[id(blob)]) for blob in net.learnable_params if needed.get(id(blob))]
    out.sort(key=lambda item: -item[1])         # stable: Caffe's order within a layer
    return out


class GradientReducer:
    """Averages the train net's parameter gradients over the ranks of `comm` (see module doc).

    `arm(passes)` before the forward/backward passes of an iteration (`passes` = iter_size);
    `finish()` after them -> seconds spent waiting. Attributes: `buckets` (sizes in bytes),
    `nbytes` (bytes allreduced per iteration).
    """

    def __init__(self, comm, net, bucket_bytes=DEFAULT_BUCKET_BYTES, overlap=True):
        self.comm = comm
        self.overlap = overlap
        self._buckets = self._make_buckets(_gradient_blobs(net), int(bucket_bytes))
        self._armed = False
        self._passes_left = 0
        self._next = 0                  # index of the next bucket to start
        if overlap and self._buckets:
            net.after_backward(self._after_backward)

    @staticmethod
    def _make_buckets(blobs, bucket_bytes):
        buckets, current, size, dtype, ready = [], [], 0, None, None
        for blob, layer in blobs:
            nbytes = blob.diff.nbytes
            blob_dtype = np.dtype(blob.diff.dtype)
            if current and (size + nbytes > bucket_bytes or blob_dtype != dtype):
                buckets.append(_Bucket(current, dtype, ready))
                current, size = [], 0
            if not current:
                dtype = blob_dtype
            current.append((blob, size // dtype.itemsize, blob.count))
            size += nbytes
            ready = layer                    # the lowest so far: blobs come in descending order
        if current:
            buckets.append(_Bucket(current, dtype, ready))
        return buckets

    @property
    def buckets(self):
        return [b.nbytes for b in self._buckets]

    @property
    def nbytes(self):
        return sum(self.buckets)

    def arm(self, passes=1):
        """The next `passes` backward passes form one iteration; buckets start in the last."""
        self._armed = True
        self._passes_left = int(passes)
        self._next = 0

    def _after_backward(self, i):
        if not self._armed:
            return
        if self._passes_left > 1:
            if i == 0:
                self._passes_left -= 1
            return
        started = []
        while self._next < len(self._buckets) and self._buckets[self._next].ready_layer >= i:
            bucket = self._buckets[self._next]
            bucket.pack()
            bucket.request = self.comm.iallreduce(bucket.buffer)
            self._next += 1
            started.append(bucket)
        if not started:
            self.comm.progress([b.request for b in self._buckets[:self._next]
                                if b.request is not None])

    def finish(self, timeout="default"):
        """Wait for (or run) every bucket's allreduce and write the averages back into the
        diffs; returns the seconds this process spent waiting for the other replicas.
        `timeout`: the watchdog limit of the first wait (None: unlimited)."""
        t0 = time.perf_counter()
        scale = 1.0 / self.comm.size
        pending = [b for b in self._buckets[:self._next] if b.request is not None]
        self.comm.wait([b.request for b in pending], "the gradient allreduce", timeout)
        for bucket in self._buckets[self._next:]:
            bucket.pack()
            self.comm.allreduce_inplace(bucket.buffer, "the gradient allreduce", timeout)
        waited = time.perf_counter() - t0
        for bucket in self._buckets:
            bucket.request = None
            bucket.unpack(scale)
        self._armed = False
        self._next = 0
        return waited
