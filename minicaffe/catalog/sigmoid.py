"""Sigmoid layer (Caffe's SigmoidLayer)."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Sigmoid")
class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), elementwise; dL/dx = dL/dy * y * (1 - y).

    bottom[0]: any shape; top[0]: same shape. Safe in place (backward reads only y).
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        y = top[0].data
        # 0.5 * tanh(x/2) + 0.5 equals the logistic function and never overflows exp.
        xp.multiply(bottom[0].data, 0.5, out=y)
        xp.tanh(y, out=y)
        y *= 0.5
        y += 0.5

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        bottom[0].diff[...] = top[0].diff * y * (1 - y)
