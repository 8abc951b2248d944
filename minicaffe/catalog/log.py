"""Log layer (Caffe's LogLayer)."""
import math

from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Log")
class Log(Layer):
    """y = log_base(shift + scale * x), elementwise; `log_param { base: -1 scale: 1 shift: 0 }`,
    base -1 meaning e. Inputs with shift + scale * x <= 0 give -inf / NaN, as in Caffe.

    dL/dx = dL/dy * scale / (ln(base) * (shift + scale * x)). In place, x is gone after
    forward, so backward recovers shift + scale * x = exp(y * ln(base)) from y.
    bottom[0]: any shape; top[0]: same shape.
    Raises LayerSetupError for a base that is not -1 or > 0, or base 1 (log_1 is undefined).
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.log_param
        if p.base != -1 and not p.base > 0:
            raise self.error(f"log_param.base = {p.base:g} must be strictly positive (or -1 for "
                             f"e)", bottom, at=(p, "base"))
        self.log_base = 1.0 if p.base == -1 else math.log(p.base)
        if self.log_base == 0:
            raise self.error("log_param.base = 1 has no logarithm (1 / ln(1) is infinite)",
                             bottom, at=(p, "base"))

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def _argument(self, x, out):
        """out = shift + scale * x."""
        p = self.layer_param.log_param
        t = x.dtype.type
        backend.xp_of(x).multiply(x, t(p.scale), out=out)
        if p.shift != 0:
            out += t(p.shift)
        return out

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        xp = backend.xp_of(x)
        self._argument(x, y)
        xp.log(y, out=y)
        if self.log_base != 1:
            y *= x.dtype.type(1.0 / self.log_base)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        p = self.layer_param.log_param
        y = top[0].data
        xp = backend.xp_of(y)
        t = y.dtype.type
        if top[0] is bottom[0]:
            u = xp.exp(y * t(self.log_base)) if self.log_base != 1 else xp.exp(y)
        else:
            u = self._argument(bottom[0].data, xp.empty_like(y))
        bottom[0].diff[...] = top[0].diff * (t(p.scale / self.log_base) / u)
