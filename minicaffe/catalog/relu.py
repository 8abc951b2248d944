"""ReLU layer (Caffe's ReLULayer)."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("ReLU")
class ReLU(Layer):
    """y = max(x, 0) + negative_slope * min(x, 0), elementwise.

    bottom[0]: any shape; top[0]: same shape. Safe in place (top is bottom).
    dL/dx = dL/dy * (1 if x > 0 else negative_slope).
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        s = self.layer_param.relu_param.negative_slope
        xp = backend.xp_of(x)
        if s == 0:
            xp.maximum(x, 0, out=top[0].data)
        else:
            top[0].data[...] = xp.where(x > 0, x, x * x.dtype.type(s))

    def bind_forward(self, bottom, top, program):
        program.relu_forward(bottom[0].data, top[0].data,
                             self.layer_param.relu_param.negative_slope)
        return True

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # Read top, not bottom: in-place runs have overwritten x; sign(y) == sign(x) for s >= 0.
        y, dy = top[0].data, top[0].diff
        s = self.layer_param.relu_param.negative_slope
        xp = backend.xp_of(y)
        if s == 0:
            xp.multiply(dy, y > 0, out=bottom[0].diff)
        else:
            bottom[0].diff[...] = dy * xp.where(y > 0, 1.0, s).astype(dy.dtype, copy=False)
