"""Slice: cuts one bottom into several tops along an axis."""
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.flatten import canonical_axis


@register_layer("Slice")
class Slice(Layer):
    """top[i] = bottom[..., points[i-1]:points[i], ...] along `slice_param.axis` (default 1;
    legacy `slice_dim` when set). `slice_point` gives len(top)-1 increasing cut positions;
    without it the axis is divided evenly. Backward writes each top diff into its range.
    """

    exact_bottoms = 1
    min_tops = 1

    def reshape(self, bottom, top):
        p = self.layer_param.slice_param
        axis = int(p.slice_dim) if p.has("slice_dim") else int(p.axis)
        axis = canonical_axis(self, axis, bottom[0].ndim, bottom)
        shape = tuple(bottom[0].shape)
        n = shape[axis]
        points = [int(v) for v in p.slice_point]
        if points:
            if len(points) != len(top) - 1:
                raise self.error(f"slice_point gives {len(points)} cuts for {len(top)} tops; "
                                 f"expected {len(top) - 1}", bottom)
            bounds = [0] + points + [n]
            if any(b1 <= b0 for b0, b1 in zip(bounds, bounds[1:])):
                raise self.error(f"slice_point {points} must increase strictly within (0, {n}) "
                                 f"along axis {axis}", bottom)
        else:
            if n % len(top):
                raise self.error(f"axis {axis} of size {n} does not divide into {len(top)} equal "
                                 f"tops; give slice_point", bottom)
            step = n // len(top)
            bounds = [k * step for k in range(len(top) + 1)]
        self._axis_value = axis
        self._ranges = list(zip(bounds, bounds[1:]))
        for t, (lo, hi) in zip(top, self._ranges):
            t.reshape(shape[:axis] + (hi - lo,) + shape[axis + 1:])

    def _index(self, lo, hi):
        return (slice(None),) * self._axis_value + (slice(lo, hi),)

    def forward(self, bottom, top):
        for t, (lo, hi) in zip(top, self._ranges):
            t.data[...] = bottom[0].data[self._index(lo, hi)]

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        for t, (lo, hi) in zip(top, self._ranges):
            bottom[0].diff[self._index(lo, hi)] = t.diff
