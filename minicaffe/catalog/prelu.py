"""PReLU layer (Caffe's PReLULayer): ReLU with a learned negative slope per channel."""
from minicaffe import backend, fillers
from minicaffe.blob import Blob
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.prototxt import FillerParameter


@register_layer("PReLU")
class PReLU(Layer):
    """y = max(x, 0) + a_c * min(x, 0), c the channel (axis 1) of each element.

    bottom[0]: (N, C, ...) with at least 2 axes; top[0]: same shape.
    blobs[0]: the slopes a, shape (C,), or with `prelu_param.channel_shared` a single value in a
    0-axis blob (shape (), as Caffe stores it); filled by `prelu_param.filler`, constant 0.25 when
    none is given.
    Backward: da_c += sum over n and positions of dL/dy * x * [x <= 0];
    dL/dx = dL/dy * (1 if x > 0 else a_c). In place, x is copied before forward overwrites it.
    Raises LayerSetupError for a bottom with fewer than 2 axes or one whose channel count
    disagrees with the slopes.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.prelu_param
        if bottom[0].ndim < 2:
            raise self.error("expects a bottom with at least 2 axes (N, C, ...)", bottom)
        self.channel_shared = bool(p.channel_shared)
        shape = () if self.channel_shared else (bottom[0].shape[1],)
        slope = Blob(shape, dtype=bottom[0].dtype, name="slope")
        filler = p.filler if p.has("filler") else FillerParameter(
            type="constant", value=0.25)
        fillers.fill(slope, filler)
        self.blobs = [slope]
        self._saved_x = None

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.ndim < 2:
            raise self.error("expects a bottom with at least 2 axes (N, C, ...)", bottom)
        if not self.channel_shared and x.shape[1] != self.blobs[0].count:
            raise self.error(f"bottom has {x.shape[1]} channels but the slopes "
                             f"{tuple(self.blobs[0].shape)} expect {self.blobs[0].count}", bottom)
        top[0].reshape(x.shape)

    def _slopes(self, x):
        """The slopes shaped to broadcast against x (N, C, ...)."""
        a = self.blobs[0].data
        if self.channel_shared:
            return a.reshape(())
        return a.reshape((1, -1) + (1,) * (x.ndim - 2))

    def forward(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        if top[0] is bottom[0]:
            if self._saved_x is None or self._saved_x.shape != x.shape or self._saved_x.dtype != x.dtype:
                self._saved_x = xp.empty_like(x)
            self._saved_x[...] = x
        neg = xp.minimum(x, 0)
        neg *= self._slopes(x)
        xp.maximum(x, 0, out=top[0].data)
        top[0].data[...] += neg

    def backward(self, top, propagate_down, bottom):
        x = self._saved_x if top[0] is bottom[0] else bottom[0].data
        dy = top[0].diff
        xp = backend.xp_of(x)
        # The slope gradient first: in place, writing the bottom diff overwrites dy.
        if self.param_needs_diff(0):
            g = dy * xp.minimum(x, 0)
            if self.channel_shared:
                self.blobs[0].diff[...] += g.sum()
            else:
                axes = (0,) + tuple(range(2, x.ndim))
                self.blobs[0].diff[...] += g.sum(axis=axes)
        if propagate_down[0]:
            slope = xp.where(x > 0, x.dtype.type(1), self._slopes(x)).astype(x.dtype, copy=False)
            xp.multiply(dy, slope, out=bottom[0].diff)
