"""TanH layer (Caffe's TanHLayer)."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("TanH")
class TanH(Layer):
    """y = tanh(x), elementwise; dL/dx = dL/dy * (1 - y^2).

    bottom[0]: any shape; top[0]: same shape. Safe in place (backward reads only y).
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        backend.xp_of(bottom[0].data).tanh(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        bottom[0].diff[...] = top[0].diff * (1 - y * y)
