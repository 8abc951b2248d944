"""Flatten: merges axes `axis`..`end_axis` into one; shares data and diff with its bottom."""
from minicaffe.catalog.base import Layer, register_layer


def canonical_axis(layer, axis, ndim, bottom, what="axis"):
    """`axis` in [-ndim, ndim) mapped to [0, ndim); LayerSetupError otherwise."""
    if not -ndim <= axis < ndim:
        raise layer.error(f"{what} {axis} out of range for a {ndim}-axis bottom", bottom)
    return axis + ndim if axis < 0 else axis


@register_layer("Flatten")
class Flatten(Layer):
    """top = bottom reshaped to shape[:axis] + (prod(shape[axis:end_axis+1]),) + shape[end_axis+1:].

    bottom[0]: any shape with at least 1 axis; top[0]: the flattened view (no copy).
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        p = self.layer_param.flatten_param
        shape = tuple(bottom[0].shape)
        a = canonical_axis(self, int(p.axis), len(shape), bottom)
        e = canonical_axis(self, int(p.end_axis), len(shape), bottom, "end_axis")
        if e < a:
            raise self.error(f"end_axis {p.end_axis} comes before axis {p.axis}", bottom)
        n = 1
        for d in shape[a:e + 1]:
            n *= d
        share_view(top[0], bottom[0], shape[:a] + (n,) + shape[e + 1:])

    def forward(self, bottom, top):
        pass

    def bind_forward(self, bottom, top, program):
        return True                            # the top views bottom's data (shared in reshape)

    def backward(self, top, propagate_down, bottom):
        pass                                   # the diff is shared too


def share_view(top, bottom, shape):
    """Make `top` a view of `bottom`'s data and diff with another shape of equal count."""
    if top is bottom:
        bottom.reshape(shape)
        return
    top.share_data(bottom)
    top.share_diff(bottom)
    top.reshape(shape)
