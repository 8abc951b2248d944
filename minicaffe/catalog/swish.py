"""Swish layer (Caffe's SwishLayer)."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Swish")
class Swish(Layer):
    """y = x * sigmoid(beta * x), elementwise (`swish_param.beta`, default 1; beta 1 is SiLU).

    dL/dx = dL/dy * (beta * y + s * (1 - beta * y)), s = sigmoid(beta * x) kept from forward,
    so backward reads only y and s: safe in place. bottom[0]: any shape; top[0]: same shape.
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        t = x.dtype.type
        # sigmoid(z) = 0.5 * tanh(z / 2) + 0.5 never overflows exp.
        s = xp.tanh(x * t(0.5 * self.layer_param.swish_param.beta))
        s *= t(0.5)
        s += t(0.5)
        self._sigmoid = s
        xp.multiply(x, s, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y, s = top[0].data, self._sigmoid
        by = y * y.dtype.type(self.layer_param.swish_param.beta)
        slope = s * (1 - by)
        slope += by
        backend.xp_of(y).multiply(top[0].diff, slope, out=bottom[0].diff)
