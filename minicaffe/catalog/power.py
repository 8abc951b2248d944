"""Power layer (Caffe's PowerLayer)."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Power")
class Power(Layer):
    """y = (shift + scale * x) ^ power, elementwise (power_param: power 1, scale 1, shift 0).

    dL/dx = dL/dy * power * scale * (shift + scale * x) ^ (power - 1); when power * scale == 0
    the output is constant (1 for power 0, shift^power for scale 0) and the gradient is 0.
    bottom[0]: any shape; top[0]: same shape. Not in place: backward needs x.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("cannot run in place (top and bottom are the same blob); "
                             "backward needs the input", bottom)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        p = self.layer_param.power_param
        x, y = bottom[0].data, top[0].data
        xp = backend.xp_of(x)
        if p.power * p.scale == 0:
            y[...] = 1.0 if p.power == 0 else p.shift ** p.power
            return
        xp.multiply(x, x.dtype.type(p.scale), out=y)
        if p.shift != 0:
            y += x.dtype.type(p.shift)
        if p.power == 2:
            xp.square(y, out=y)
        elif p.power != 1:
            xp.power(y, x.dtype.type(p.power), out=y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        p = self.layer_param.power_param
        dx = bottom[0].diff
        diff_scale = p.power * p.scale
        if diff_scale == 0:
            dx[...] = 0
            return
        x = bottom[0].data
        t = x.dtype.type
        if p.power == 1:
            dx[...] = top[0].diff * t(diff_scale)
            return
        base = x * t(p.scale)
        if p.shift != 0:
            base += t(p.shift)
        if p.power != 2:
            backend.xp_of(x).power(base, t(p.power - 1), out=base)
        dx[...] = top[0].diff * base * t(diff_scale)
