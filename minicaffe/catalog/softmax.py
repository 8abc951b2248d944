"""Softmax over one axis."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.flatten import canonical_axis


def softmax(x, axis, out=None):
    """exp(x - max) / Σ exp(x - max) along `axis` (the shift keeps exp from overflowing)."""
    xp = backend.xp_of(x)
    out = xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


@register_layer("Softmax")
class Softmax(Layer):
    """y_c = exp(x_c) / Σ_k exp(x_k) along `softmax_param.axis` (default 1).

    Backward: dx = y · (dy - Σ_k dy_k y_k). bottom[0]: any shape; top[0]: the same shape.
    Safe in place.
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        self._axis = canonical_axis(self, int(self.layer_param.softmax_param.axis), bottom[0].ndim,
                                    bottom)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        softmax(bottom[0].data, self._axis, out=top[0].data)

    def bind_forward(self, bottom, top, program):
        program.softmax_forward(bottom[0].data, top[0].data, self._axis)
        return True

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y, dy = top[0].data, top[0].diff
        dot = (dy * y).sum(axis=self._axis, keepdims=True)
        bottom[0].diff[...] = y * (dy - dot)
