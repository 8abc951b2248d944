"""BatchNorm under data parallelism (a BatchShard with sync_batch_norm): P replicas, each with
its slice of the global batch, compute what one BatchNorm computes on the whole global batch:
outputs, input gradients and running statistics. The replicas run in threads here, summing
through a barrier (the allreduce MPI does between processes)."""
import threading

import numpy as np
import pytest

from minicaffe.blob import Blob
from minicaffe.catalog import create_layer
from minicaffe.data.shard import BatchShard, batch_sharding
from minicaffe.testing.layer_case import layer_parameter


class ThreadSum:
    """allreduce(values) for P threads: every thread gets the sum in rank order."""

    def __init__(self, size):
        self.size = size
        self.slots = [None] * size
        self.barrier = threading.Barrier(size)
        self.calls = 0

    def for_rank(self, rank):
        def allreduce(values):
            self.slots[rank] = np.array(values, dtype=np.float64)
            self.barrier.wait()
            total = sum(self.slots[1:], self.slots[0].copy())
            self.barrier.wait()
            if rank == 0:
                self.calls += 1
            return total
        return allreduce


def _bn(x, dy, shard, iters=3, dtype=np.float64):
    lp = layer_parameter("bn", "BatchNorm", ["x"], ["y"], "batch_norm_param { eps: 1e-5 }")
    layer = create_layer(lp, "TRAIN")
    bottom, top = [Blob(x.shape, dtype=dtype)], [Blob((), dtype=dtype)]
    with batch_sharding(shard):
        layer.setup(bottom, top)
    outs = []
    for it in range(iters):
        bottom[0].data[...] = x * (1 + it)
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        outs.append((np.array(top[0].data), np.array(bottom[0].diff)))
    return outs, [np.array(b.data) for b in layer.blobs]


@pytest.mark.parametrize("P, shape", [(2, (3, 4, 5, 2)), (3, (2, 3, 4)), (4, (1, 2))])
def test_sync_batch_norm_is_the_global_batch(P, shape):
    rng = np.random.default_rng(P)
    B = shape[0]
    x = rng.standard_normal((P * B,) + shape[1:]) * 3 + 1
    dy = rng.standard_normal((P * B,) + shape[1:])
    want, want_stats = _bn(x, dy, None)
    group = ThreadSum(P)
    results = [None] * P

    def replica(r):
        rows = slice(r * B, (r + 1) * B)
        results[r] = _bn(x[rows], dy[rows], BatchShard(r, P, allreduce=group.for_rank(r)))

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(P)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert group.calls == 3 * 3             # two sums forward, one backward, per iteration
    for it in range(3):
        y = np.concatenate([results[r][0][it][0] for r in range(P)])
        dx = np.concatenate([results[r][0][it][1] for r in range(P)])
        np.testing.assert_allclose(y, want[it][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, want[it][1], rtol=1e-10, atol=1e-12)
    for r in range(P):
        for got, ref in zip(results[r][1], want_stats):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_local_batch_norm_uses_the_replica_batch():
    """sync_batch_norm=False: each replica normalises its own slice (Caffe's multi-GPU way)."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    local, _ = _bn(x[:2], dy[:2], BatchShard(0, 2, allreduce=None, sync_batch_norm=False), 1)
    alone, _ = _bn(x[:2], dy[:2], None, 1)
    np.testing.assert_array_equal(local[0][0], alone[0][0])
