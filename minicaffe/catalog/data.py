"""Data layer: batches of records from an LMDB of Caffe Datums or raw IDX / CIFAR-10 files."""
import numpy as np

from minicaffe.data import ArraySource, DataTransformer, open_source
from minicaffe.data.feeder import layer_seed, named_errors, transform_param_of
from minicaffe.data.shard import shard_for
from minicaffe.catalog._batches import BatchLayer
from minicaffe.catalog.base import register_layer


@register_layer("Data")
class Data(BatchLayer):
    """Reads `data_param.batch_size` records per forward, in source order, wrapping around.

    data_param: source, batch_size, backend (LMDB | IDX | CIFAR10; LEVELDB is refused),
    rand_skip (skip `U[0, rand_skip)` records at start), prefetch (LMDB batches read ahead in
    a background thread; 0 reads in forward; IDX/CIFAR10 live in memory and are read directly). transform_param (or the deprecated copies in
    data_param): scale, mean_file, mean_value, crop_size, mirror, force_color, force_gray.

    top[0]: data `(batch_size, C, H', W')` float, `x' = (x - mean) * scale` after crop/mirror;
    top[1] (optional): label `(batch_size,)`.
    Data parallel (TRAIN): batch_size records per replica, each replica its slice of the
    global batch (minicaffe/data/shard.py).
    Raises DataError (naming the layer, the file and the record) for missing or malformed data.
    """

    def setup(self, bottom, top):
        p = self.layer_param.data_param
        if p.batch_size <= 0:
            raise self.error("data_param.batch_size must be positive")
        tp = transform_param_of(self.layer_param, p)
        seed = layer_seed()
        shard = shard_for(self.phase)
        rng = np.random.default_rng(seed)
        with named_errors(self):
            source = open_source(p.backend, p.source, force_color=getattr(tp, "force_color", False),
                                 force_gray=getattr(tp, "force_gray", False))
            if p.rand_skip:
                source.skip(int(rng.integers(0, p.rand_skip)))
            transformer = DataTransformer(tp, self.phase, seed=seed + 1,
                                          where=f"layer '{self.name}' transform_param",
                                          shard=shard)
            c, h, w = transformer.output_shape(source.shape)
        # In-memory sources (IDX, CIFAR10) make a batch in microseconds: a thread would only
        # add GIL hand-offs, so only LMDB reads ahead.
        depth = 0 if isinstance(source, ArraySource) else int(p.prefetch)
        self._start_feeder(source, transformer, p.batch_size, (c, h, w), top[0].dtype, depth,
                           shard)
