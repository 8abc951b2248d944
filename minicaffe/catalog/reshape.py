"""Reshape: a new shape for the same values (Caffe's 0 = copy, -1 = infer); no copy."""
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.flatten import share_view


@register_layer("Reshape")
class Reshape(Layer):
    """Replaces bottom axes [axis, axis + num_axes) by `reshape_param.shape`.

    In the new shape, 0 copies the bottom dimension at the same position of the replaced range
    and one -1 takes whatever makes the count match. A negative `axis` counts from the end, with
    -1 meaning "after the last axis" (Caffe's rule). num_axes -1 replaces up to the last axis.
    bottom[0]: any shape; top[0]: a view with the new shape (same count).
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        p = self.layer_param.reshape_param
        dims = [int(d) for d in p.shape.dim]
        shape = tuple(bottom[0].shape)
        ndim = len(shape)
        axis = int(p.axis)
        start = axis if axis >= 0 else ndim + axis + 1
        if not 0 <= start <= ndim:
            raise self.error(f"axis {axis} out of range for a {ndim}-axis bottom", bottom)
        num_axes = int(p.num_axes)
        if num_axes < -1:
            raise self.error(f"num_axes must be >= -1, got {num_axes}", bottom)
        end = ndim if num_axes == -1 else start + num_axes
        if end > ndim:
            raise self.error(f"axis {axis} + num_axes {num_axes} runs past the {ndim} bottom axes",
                             bottom)
        if dims.count(-1) > 1:
            raise self.error(f"shape {dims} has more than one -1 (only one axis can be inferred)",
                             bottom)
        new = []
        for i, d in enumerate(dims):
            if d == 0:
                if start + i >= end:
                    raise self.error(f"shape {dims}: dim {i} is 0 (copy) but the replaced bottom "
                                     f"axes {start}..{end - 1} have no axis {start + i}", bottom)
                d = shape[start + i]
            elif d < -1:
                raise self.error(f"shape {dims}: dimension {d} is invalid (use >0, 0 or -1)", bottom)
            new.append(d)
        full = list(shape[:start]) + new + list(shape[end:])
        count = bottom[0].count
        if -1 in full:
            known = 1
            for d in full:
                if d != -1:
                    known *= d
            if known == 0 or count % known:
                raise self.error(f"cannot infer the -1 in shape {dims}: {count} values are not a "
                                 f"multiple of {known}", bottom)
            full[full.index(-1)] = count // known
        n = 1
        for d in full:
            n *= d
        if n != count:
            raise self.error(f"shape {dims} gives top shape {tuple(full)} with {n} values; the "
                             f"bottom has {count}", bottom)
        share_view(top[0], bottom[0], tuple(full))

    def forward(self, bottom, top):
        pass

    def bind_forward(self, bottom, top, program):
        return True                            # the top views bottom's data (shared in reshape)

    def backward(self, top, propagate_down, bottom):
        pass                                   # the diff is shared too
