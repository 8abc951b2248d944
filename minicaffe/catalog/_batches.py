"""BatchLayer: the part of Data and ImageData that feeds (data, label) batches to the tops."""
from minicaffe import backend
from minicaffe.data.feeder import Feeder, named_errors
from minicaffe.catalog.base import Layer


class BatchLayer(Layer):
    """Base of the record-reading data layers: no bottoms; top[0] data `(batch_size, C, H, W)`,
    top[1] (optional) label `(batch_size,)`. Subclasses open the source and the transformer in
    `setup` and hand them to `_start_feeder`. Under data parallelism (a BatchShard at TRAIN,
    minicaffe/data/shard.py) batch_size is the per-replica batch and each replica reads its
    slice of every global batch."""

    exact_bottoms = 0
    min_tops, max_tops = 1, 2

    def _start_feeder(self, source, transformer, batch_size, chw, dtype, depth, shard=None):
        """Size the tops and start a Feeder of `depth` batches read ahead (0: read in forward).
        With a BatchShard, each batch is this replica's slice of the global batch."""
        self.source, self.transformer = source, transformer
        self.batch_size = n = int(batch_size)
        self.data_shape = (n,) + tuple(chw)

        def produce():          # closes over the source, not the layer (see Feeder)
            data, labels = source.next_batch(n) if shard is None else shard.read(source, n)
            return transformer(data).astype(dtype, copy=False), labels

        self._feeder = Feeder(produce, depth, self.name)

    def reshape(self, bottom, top):
        top[0].reshape(self.data_shape)
        if len(top) > 1:
            top[1].reshape((self.batch_size,))

    def forward(self, bottom, top):
        with named_errors(self):
            data, labels = self._feeder.next()
        top[0].data[...] = backend.to_current(data)
        if len(top) > 1:
            top[1].data[...] = backend.to_current(labels)

    def close(self):
        """Stop the prefetch thread and close the source."""
        self._feeder.close()
        self.source.close()
