"""Concat: joins bottoms along one axis."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.flatten import canonical_axis


@register_layer("Concat")
class Concat(Layer):
    """top = concatenate(bottom[0], bottom[1], ..., axis) (`concat_param.axis`, default 1;
    legacy `concat_dim` when set). Every bottom has the same shape except along `axis`.
    Backward hands each bottom its slice of the top diff.
    """

    min_bottoms = 1
    exact_tops = 1

    def _axis(self, bottom):
        p = self.layer_param.concat_param
        axis = int(p.concat_dim) if p.has("concat_dim") else int(p.axis)
        return canonical_axis(self, axis, bottom[0].ndim, bottom)

    def reshape(self, bottom, top):
        axis = self._axis(bottom)
        first = tuple(bottom[0].shape)
        total = 0
        for i, b in enumerate(bottom):
            s = tuple(b.shape)
            if len(s) != len(first) or s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]:
                raise self.error(f"bottom {i} shape {s} differs from bottom 0 {first} outside "
                                 f"the concat axis {axis}", bottom)
            total += s[axis]
        self._axis_value = axis
        top[0].reshape(first[:axis] + (total,) + first[axis + 1:])

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        if len(bottom) == 1:
            top[0].data[...] = bottom[0].data
            return
        xp.concatenate([b.data for b in bottom], axis=self._axis_value, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        axis, offset = self._axis_value, 0
        for b, down in zip(bottom, propagate_down):
            n = b.shape[axis]
            if down:
                index = (slice(None),) * axis + (slice(offset, offset + n),)
                b.diff[...] = top[0].diff[index]
            offset += n
