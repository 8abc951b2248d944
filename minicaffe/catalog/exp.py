"""Exp layer (Caffe's ExpLayer)."""
import math

from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Exp")
class Exp(Layer):
    """y = base ^ (shift + scale * x), elementwise; `exp_param { base: -1 scale: 1 shift: 0 }`,
    base -1 meaning e.

    Computed as outer * exp(inner * x) with inner = ln(base) * scale and outer = base ^ shift,
    as Caffe does. dL/dx = dL/dy * y * inner (reads y only: safe in place).
    bottom[0]: any shape; top[0]: same shape.
    Raises LayerSetupError for a base that is neither -1 nor > 0.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.exp_param
        if p.base != -1 and not p.base > 0:
            raise self.error(f"exp_param.base = {p.base:g} must be strictly positive (or -1 for "
                             f"e)", bottom, at=(p, "base"))
        log_base = 1.0 if p.base == -1 else math.log(p.base)
        self.inner_scale = log_base * p.scale
        if p.shift == 0:
            self.outer_scale = 1.0
        else:
            self.outer_scale = math.exp(p.shift) if p.base == -1 else p.base ** p.shift
        if not math.isfinite(self.outer_scale):
            raise self.error(f"exp_param base ^ shift = {p.base:g} ^ {p.shift:g} overflows",
                             bottom, at=(p, "shift"))

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        xp = backend.xp_of(x)
        t = x.dtype.type
        if self.inner_scale == 1:
            xp.exp(x, out=y)
        else:
            xp.multiply(x, t(self.inner_scale), out=y)
            xp.exp(y, out=y)
        if self.outer_scale != 1:
            y *= t(self.outer_scale)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        dx = bottom[0].diff
        backend.xp_of(y).multiply(top[0].diff, y, out=dx)
        if self.inner_scale != 1:
            dx *= y.dtype.type(self.inner_scale)
