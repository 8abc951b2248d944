"""ELU layer (Caffe's ELULayer): exponential linear unit."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("ELU")
class ELU(Layer):
    """y = x for x > 0, alpha * (exp(x) - 1) for x <= 0 (`elu_param.alpha`, default 1).

    dL/dx = dL/dy for x > 0, dL/dy * (y + alpha) = dL/dy * alpha * exp(x) for x <= 0.
    bottom[0]: any shape; top[0]: same shape; safe in place: for alpha >= 0, y > 0 exactly
    where x > 0, so backward reads y; for a negative alpha the sign mask is kept from forward.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        self._positive = None

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        alpha = self.layer_param.elu_param.alpha
        x = bottom[0].data
        xp = backend.xp_of(x)
        if alpha < 0:
            self._positive = x > 0
        neg = xp.expm1(xp.minimum(x, 0))
        neg *= x.dtype.type(alpha)
        xp.maximum(x, 0, out=top[0].data)
        top[0].data[...] += neg

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        alpha = self.layer_param.elu_param.alpha
        y = top[0].data
        xp = backend.xp_of(y)
        positive = self._positive if alpha < 0 else y > 0
        slope = xp.where(positive, 1.0, y + y.dtype.type(alpha)).astype(y.dtype, copy=False)
        xp.multiply(top[0].diff, slope, out=bottom[0].diff)
