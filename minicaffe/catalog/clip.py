"""Clip layer (Caffe's ClipLayer): clamp to [min, max]."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Clip")
class Clip(Layer):
    """y = max(min, min(x, max)), elementwise (`clip_param { min max }`, both required).

    dL/dx = dL/dy where min <= x <= max (the bounds included, as in Caffe), 0 elsewhere.
    bottom[0]: any shape; top[0]: same shape. In place the pass-through mask is kept from
    forward (y alone cannot tell x == min from x < min).
    Raises LayerSetupError when min or max is missing or min > max.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.clip_param
        for name in ("min", "max"):
            if not p.has(name):
                raise self.error(f"clip_param.{name} is required (caffe.proto: required float "
                                 f"{name})", bottom, at=(p, name))
        if p.min > p.max:
            raise self.error(f"clip_param.min = {p.min:g} must not exceed clip_param.max = "
                             f"{p.max:g}", bottom, at=(p, "min"))
        self._mask = None

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        p = self.layer_param.clip_param
        x = bottom[0].data
        xp = backend.xp_of(x)
        t = x.dtype.type
        if top[0] is bottom[0]:
            self._mask = (x >= t(p.min)) & (x <= t(p.max))
        xp.clip(x, t(p.min), t(p.max), out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if top[0] is bottom[0]:
            mask = self._mask
        else:
            p = self.layer_param.clip_param
            x = bottom[0].data
            t = x.dtype.type
            mask = (x >= t(p.min)) & (x <= t(p.max))
        backend.xp_of(mask).multiply(top[0].diff, mask, out=bottom[0].diff)
