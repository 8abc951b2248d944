"""HDF5Data layer: rows of HDF5 datasets named like the tops, from a list of .h5 files."""
from minicaffe import backend
from minicaffe.data import DataTransformer, HDF5Source
from minicaffe.data.feeder import Feeder, layer_seed, named_errors
from minicaffe.data.shard import shard_for
from minicaffe.catalog.base import Layer, register_layer


@register_layer("HDF5Data")
class HDF5Data(Layer):
    """Reads `hdf5_data_param.batch_size` rows per forward from the datasets named by the tops.

    hdf5_data_param: source (text file, one .h5 path per line, relative paths also tried
    against the list file's folder), batch_size, shuffle (file order and rows within a file
    permuted at every pass; seeded from NumPy's global RNG).
    top[i]: `(batch_size,) + row shape of dataset top[i]`, float.
    Caffe applies no transformation here; when `transform_param` is given minicaffe applies it
    to top[0] (which must then be 4-D), reading ahead in a background thread as Data does.
    Data parallel (TRAIN): batch_size rows per replica, each replica its slice of the global
    batch (minicaffe/data/shard.py).
    Raises DataError naming the layer, the file and the dataset.
    """

    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.hdf5_data_param
        if p.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be positive")
        names = list(self.layer_param.top)[:len(top)]
        seed = layer_seed()
        shard = shard_for(self.phase)
        transformer = None
        with named_errors(self):
            source = HDF5Source(p.source, names, shuffle=p.shuffle, seed=seed)
            shapes = list(source.shapes)
            if self.layer_param.has("transform_param"):
                if len(shapes[0]) != 3:
                    raise self.error(f"transform_param needs 4-D data, dataset '{names[0]}' has "
                                     f"rows of shape {shapes[0]}")
                transformer = DataTransformer(self.layer_param.transform_param, self.phase,
                                              seed=seed + 1,
                                              where=f"layer '{self.name}' transform_param",
                                              shard=shard)
                shapes[0] = transformer.output_shape(shapes[0])
        self.source = source
        self.batch_size = n = int(p.batch_size)
        self.top_shapes = [(n,) + tuple(s) for s in shapes]
        dtypes = [t.dtype for t in top]

        def produce():          # closes over the source, not the layer (see Feeder)
            arrays = source.next_batch(n) if shard is None else shard.read(source, n)
            if transformer is not None:
                arrays[0] = transformer(arrays[0])
            return [a.astype(d, copy=False) for a, d in zip(arrays, dtypes)]

        # HDF5 rows are already float: prefetch only pays off when a transform runs.
        self._feeder = Feeder(produce, 2 if transformer is not None else 0, self.name)

    def reshape(self, bottom, top):
        for blob, shape in zip(top, self.top_shapes):
            blob.reshape(shape)

    def forward(self, bottom, top):
        with named_errors(self):
            arrays = self._feeder.next()
        for blob, array in zip(top, arrays):
            blob.data[...] = backend.to_current(array)

    def close(self):
        self._feeder.close()
        self.source.close()
