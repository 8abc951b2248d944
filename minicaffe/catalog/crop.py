"""Crop layer (Caffe's CropLayer): cut bottom[0] to bottom[1]'s shape from an axis on."""
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Crop")
class Crop(Layer):
    """top = bottom[0][..., o_a : o_a + s_a, ..., o_last : o_last + s_last].

    bottom[0]: the data, (d0, ..., d_{k-1}); bottom[1]: the reference, whose sizes s_i on the
    axes i >= `axis` (default 2: the spatial axes of N, C, H, W; negative counts from the end)
    give the crop; axes before `axis` keep bottom[0]'s size. top[0]: (d0, ..., d_{axis-1},
    s_axis, ..., s_{k-1}). `offset` gives o_i: none (all 0), one (used on every cropped axis)
    or one per cropped axis (k - axis values).
    Backward: bottom[0]'s diff is dy inside the crop window and 0 outside; bottom[1] only gives
    a shape, so its diff (when asked for) is 0.
    Raises LayerSetupError for an axis out of range, a wrong number of offsets, a reference
    with fewer axes than the data, or a window that does not fit (d_i - o_i < s_i).
    """

    exact_bottoms = 2
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.crop_param
        ndim = bottom[0].ndim
        if not -ndim <= p.axis < ndim:
            raise self.error(f"axis={p.axis} is out of range for the {ndim}-D bottom "
                             f"(expected {-ndim} <= axis < {ndim})", bottom, at=(p, "axis"))
        self.axis = p.axis % ndim
        self.offsets = [int(o) for o in p.offset]
        cropped = ndim - self.axis
        if len(self.offsets) > 1 and len(self.offsets) != cropped:
            raise self.error(f"offset has {len(self.offsets)} values; give one for all cropped "
                             f"axes or one per axis from axis={self.axis} to the last "
                             f"({cropped} values)", bottom, at=(p, "offset"))

    def reshape(self, bottom, top):
        x, ref = bottom[0].shape, bottom[1].shape
        ndim = len(x)
        if self.axis >= ndim or (len(self.offsets) > 1 and len(self.offsets) != ndim - self.axis):
            raise self.error(f"bottom 0 now has {ndim} axes; crop axis {self.axis} with "
                             f"{len(self.offsets)} offsets was set up for another rank", bottom)
        if len(ref) < ndim:
            raise self.error(f"the reference bottom 1 has {len(ref)} axes; it needs at least the "
                             f"{ndim} of bottom 0 to give the size of axes {self.axis}..{ndim - 1}",
                             bottom)
        shape, window = [], []
        for i in range(ndim):
            if i < self.axis:
                shape.append(x[i])
                window.append(slice(None))
                continue
            off = self.offsets[0] if len(self.offsets) == 1 else (
                self.offsets[i - self.axis] if self.offsets else 0)
            if x[i] - off < ref[i]:
                raise self.error(f"the crop of axis {i} does not fit: size {ref[i]} at offset "
                                 f"{off} needs {off + ref[i]} but bottom 0 has {x[i]}", bottom)
            shape.append(ref[i])
            window.append(slice(off, off + ref[i]))
        self.window = tuple(window)
        top[0].reshape(shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.window]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dx = bottom[0].diff
            dx[...] = 0
            dx[self.window] = top[0].diff
        if len(propagate_down) > 1 and propagate_down[1]:
            bottom[1].diff[...] = 0
