"""Batch shards for data parallelism: which slice of the global batch this process reads.

With P replicas that each read batch B, the *global batch* of an iteration is the P*B records
one process with batch P*B reads in that iteration; replica r takes records [r*B, (r+1)*B) of
it. Every replica therefore walks the whole record stream (same seeds, same shuffles, same
wrap-around) and reads only its slice:

    skip(r*B) -> read B -> skip((P-1-r)*B)        per forward, after the same rand_skip

so within each pass over the data the replicas read disjoint records whose union is what the
single process reads. Random draws that one process makes for the whole batch are made for
the whole global batch by every replica, which keeps its slice (see `draw_rows`):
DataTransformer's crop offsets and mirror flips, Dropout's masks. BatchNorm at TRAIN
normalises with the global batch's mean and variance (`allreduce`), so a P-replica run is
numerically the single process with batch P*B (up to float summation order).

`minicaffe.parallel` sets the shard (`batch_sharding(shard)`) while it builds the solver; the
TRAIN-phase data, Dropout and BatchNorm layers read it once, at setup (`shard_for(phase)`).
TEST nets are never sharded: they read whole batches, as the one process would.
"""
import contextlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from minicaffe.phase import phase_name


@dataclass(frozen=True)
class BatchShard:
    """Replica `rank` of `size` reads slice `rank` of every global batch.

    allreduce: `fn(float64 array) -> elementwise sum over the replicas` (what BatchNorm needs
    for the global statistics), or None. sync_batch_norm: BatchNorm at TRAIN uses the global
    batch statistics (True) or each replica's own (False, Caffe's multi-GPU behaviour; the
    running statistics are then averaged by the replicas after each iteration).
    """

    rank: int
    size: int
    allreduce: Optional[Callable] = None
    sync_batch_norm: bool = True

    def __post_init__(self):
        if not 0 <= self.rank < self.size:
            raise ValueError(f"BatchShard: rank {self.rank} outside 0..{self.size - 1}")

    def read(self, source, n):
        """This replica's `n` records of the next global batch of `source` (whatever
        `source.next_batch(n)` returns), leaving the source after the whole global batch."""
        if self.size == 1:
            return source.next_batch(n)
        if self.rank:
            source.skip(self.rank * n)
        batch = source.next_batch(n)
        rest = (self.size - 1 - self.rank) * n
        if rest:
            source.skip(rest)
        return batch

    def rows(self, n):
        """The slice of a global batch of `size * n` rows that is this replica's."""
        return slice(self.rank * n, (self.rank + 1) * n)

    @property
    def syncs_batch_norm(self):
        return self.size > 1 and self.sync_batch_norm and self.allreduce is not None


_current: Optional[BatchShard] = None


def current_batch_shard():
    """The shard layers being set up now read (None: one process reads everything)."""
    return _current


def shard_for(phase):
    """The current shard for a layer of `phase`: TRAIN layers are sharded, TEST ones never."""
    return _current if _current is not None and phase_name(phase) == "TRAIN" else None


@contextlib.contextmanager
def batch_sharding(shard):
    """Within the block, TRAIN layers set up read `shard` of every global batch."""
    global _current
    previous, _current = _current, shard
    try:
        yield shard
    finally:
        _current = previous


def draw_rows(draw, size, shard, *args):
    """`draw(*args, size=size)` as the one process draws it for the global batch: with a
    shard, the draw is for `shard.size` times the rows (axis 0 of `size`) and this replica's
    rows are kept, so the generator advances exactly as the single process's does.

    draw: a generator method taking `size` (`rng.integers`, `rng.random`, NumPy's or CuPy's
    `random.random_sample`); size: an int or the shape of *this* replica's draw.
    """
    size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    if shard is None or shard.size == 1 or not size:
        return draw(*args, size=size)
    full = draw(*args, size=(shard.size * size[0],) + size[1:])
    return full[shard.rows(size[0])]
