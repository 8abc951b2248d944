"""ImageData layer: images listed in a `path label` text file, loaded with Pillow."""
import numpy as np

from minicaffe.data import DataTransformer, ImageListSource
from minicaffe.data.feeder import layer_seed, named_errors, transform_param_of
from minicaffe.data.shard import shard_for
from minicaffe.catalog._batches import BatchLayer
from minicaffe.catalog.base import register_layer


@register_layer("ImageData")
class ImageData(BatchLayer):
    """Reads `image_data_param.batch_size` images per forward, in list order (or shuffled).

    image_data_param: source (list file of `path label` lines), root_folder (prefix added to
    each path), batch_size, rand_skip, shuffle (the list is permuted at start and after every
    pass, seeded from NumPy's global RNG), new_height/new_width (bilinear resize; both or
    neither), is_color (BGR 3 channels, else 1 grey channel). transform_param as for Data.
    top[0]: `(batch_size, C, H', W')`; top[1] (optional): label `(batch_size,)`.
    Images are read and transformed ahead of time in a background thread. Data parallel
    (TRAIN): each replica reads (and decodes) only its slice of every global batch.
    Raises DataError naming the layer, the list file line and the image.
    """

    def setup(self, bottom, top):
        p = self.layer_param.image_data_param
        if p.batch_size <= 0:
            raise self.error("image_data_param.batch_size must be positive")
        tp = transform_param_of(self.layer_param, p)
        seed = layer_seed()
        shard = shard_for(self.phase)
        with named_errors(self):
            source = ImageListSource(p.source, root_folder=p.root_folder, new_height=p.new_height,
                                     new_width=p.new_width, is_color=p.is_color,
                                     shuffle=p.shuffle, seed=seed)
            if p.rand_skip:
                source.skip(int(np.random.default_rng(seed + 2).integers(0, p.rand_skip)))
            transformer = DataTransformer(tp, self.phase, seed=seed + 1,
                                          where=f"layer '{self.name}' transform_param",
                                          shard=shard)
            c, h, w = transformer.output_shape(source.shape)
        self._start_feeder(source, transformer, p.batch_size, (c, h, w), top[0].dtype, 3, shard)
