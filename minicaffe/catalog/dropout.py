"""Dropout layer (Caffe's DropoutLayer)."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.data.shard import draw_rows, shard_for
from minicaffe.phase import phase_name


@register_layer("Dropout")
class Dropout(Layer):
    """TRAIN: y = x * m / (1 - r) with m ~ Bernoulli(1 - r) per element (r = dropout_ratio,
    default 0.5); TEST: y = x. Backward applies the same mask and scale.

    bottom[0]: any shape; top[0]: same shape. Safe in place. The mask is drawn from NumPy's
    global generator (CuPy's on GPU), so a seeded run repeats. Data parallel (TRAIN, axis 0 the
    batch): each replica draws the mask of the whole global batch and keeps its rows, as the
    one process with the global batch would draw it (minicaffe/data/shard.py).
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        r = self.layer_param.dropout_param.dropout_ratio
        if not 0.0 <= r < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {r}", bottom)
        self._scale = 1.0 / (1.0 - r)
        self._mask = None
        self._shard = shard_for(self.phase)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def _training(self):
        return phase_name(self.phase) == "TRAIN"

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        if not self._training():
            if y is not x:
                y[...] = x
            return
        xp = backend.xp_of(x)
        r = self.layer_param.dropout_param.dropout_ratio
        # Scaled mask in the blob's dtype: one multiply in forward and one in backward.
        keep = draw_rows(xp.random.random_sample, x.shape, self._shard) >= r
        self._mask = keep.astype(x.dtype)
        self._mask *= x.dtype.type(self._scale)
        xp.multiply(x, self._mask, out=y)

    def bind_forward(self, bottom, top, program):
        if self._training():
            return False                       # a fresh mask every forward
        if top[0] is not bottom[0]:
            program.copy(bottom[0].data, top[0].data)
        return True

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        if not self._training():
            if dx is not dy:
                dx[...] = dy
            return
        backend.xp_of(dy).multiply(dy, self._mask, out=dx)
