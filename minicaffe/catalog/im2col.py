"""Im2col layer (Caffe's Im2colLayer): the convolution lowering as a layer."""
import numpy as np

from minicaffe import backend, ops
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.flatten import canonical_axis


@register_layer("Im2col")
class Im2col(Layer):
    """Lowers every image as a convolution would: for each image (the axes before the channel
    axis), (C, *spatial) becomes (C * prod(kernel), *out_spatial) with row index
    c * prod(kernel) + kernel offset (row-major) and out = (in + 2 pad - (dil (k - 1) + 1)) //
    stride + 1 per spatial axis.

    Reads convolution_param: kernel_size / kernel_h, kernel_w; stride (1) / stride_h, stride_w;
    pad (0) / pad_h, pad_w; dilation (1); axis (1, the channel axis; the axes after it are
    spatial); force_nd_im2col. Repeated fields give one value for every spatial axis or one per
    axis; the _h/_w forms need exactly 2 spatial axes. Two spatial axes run the compiled
    lowering (ops.im2col / ops.col2im); other counts, or force_nd_im2col, a NumPy N-D path
    with the same layout.
    Backward: col2im, the adjoint (overlapping windows sum).
    Raises LayerSetupError for a kernel, stride or dilation below 1, lists of the wrong length,
    both forms of a field, or an output size below 1.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.convolution_param
        shape = tuple(bottom[0].shape)
        self.channel_axis = canonical_axis(self, int(p.axis), len(shape), bottom)
        self.nsp = len(shape) - self.channel_axis - 1
        if self.nsp < 1:
            raise self.error(f"needs at least one spatial axis after the channel axis "
                             f"{self.channel_axis}", bottom)
        self.kernel = self._per_axis(bottom, "kernel_size", "kernel", None)
        self.stride = self._per_axis(bottom, "stride", "stride", 1)
        self.pad = self._per_axis(bottom, "pad", "pad", 0)
        self.dilation = self._per_axis(bottom, "dilation", None, 1)
        for name, values, low in (("kernel_size", self.kernel, 1), ("stride", self.stride, 1),
                                  ("dilation", self.dilation, 1), ("pad", self.pad, 0)):
            if any(v < low for v in values):
                raise self.error(f"convolution_param.{name} {list(values)} must be >= {low}",
                                 bottom, at=(p, name))
        self.use_2d = self.nsp == 2 and not p.force_nd_im2col

    def _per_axis(self, bottom, field, hw, default):
        """One value per spatial axis from `field` (repeated) or its `<hw>_h`/`<hw>_w` pair."""
        p = self.layer_param.convolution_param
        values = list(getattr(p, field))
        if hw is not None and (p.has(f"{hw}_h") or p.has(f"{hw}_w")):
            if self.nsp != 2:
                raise self.error(f"{hw}_h / {hw}_w need 2 spatial axes, the bottom has "
                                 f"{self.nsp}", bottom, at=(p, f"{hw}_h"))
            if values:
                raise self.error(f"give {field} or {hw}_h / {hw}_w, not both", bottom,
                                 at=(p, field))
            if hw == "kernel" and not (p.has("kernel_h") and p.has("kernel_w")):
                raise self.error("kernel_h and kernel_w must be given together", bottom,
                                 at=(p, "kernel_h"))
            return (int(getattr(p, f"{hw}_h")), int(getattr(p, f"{hw}_w")))
        if not values:
            if default is None:
                raise self.error("convolution_param.kernel_size (or kernel_h / kernel_w) must "
                                 "be given", bottom)
            return (default,) * self.nsp
        if len(values) not in (1, self.nsp):
            raise self.error(f"convolution_param.{field} has {len(values)} values; give 1 or "
                             f"one per spatial axis ({self.nsp})", bottom, at=(p, field))
        return tuple(int(v) for v in values) if len(values) > 1 else (int(values[0]),) * self.nsp

    def reshape(self, bottom, top):
        shape = tuple(bottom[0].shape)
        a = self.channel_axis
        if len(shape) != a + 1 + self.nsp:
            raise self.error(f"expects {a + 1 + self.nsp} axes as at setup, got {len(shape)}",
                             bottom)
        spatial = shape[a + 1:]
        out = tuple((s + 2 * p - (d * (k - 1) + 1)) // st + 1 for s, k, p, st, d in
                    zip(spatial, self.kernel, self.pad, self.stride, self.dilation))
        if any(o < 1 for o in out):
            raise self.error(f"kernel {list(self.kernel)} (dilation {list(self.dilation)}, pad "
                             f"{list(self.pad)}) does not fit the spatial size {list(spatial)}",
                             bottom)
        self.num = int(np.prod(shape[:a], dtype=np.int64))
        self.channels = shape[a]
        self.out_spatial = out
        if self.use_2d:
            self.geom = ops.ConvGeometry(shape[a], spatial[0], spatial[1], self.kernel[0],
                                         self.kernel[1], self.pad[0], self.pad[1], self.stride[0],
                                         self.stride[1], self.dilation[0], self.dilation[1])
        top[0].reshape(shape[:a] + (shape[a] * int(np.prod(self.kernel)),) + out)

    def forward(self, bottom, top):
        spatial = tuple(bottom[0].shape[self.channel_axis + 1:])
        x = bottom[0].data.reshape((self.num, self.channels) + spatial)
        rows = self.channels * int(np.prod(self.kernel))
        y = top[0].data.reshape(self.num, rows, -1)
        for n in range(self.num):
            if self.use_2d:
                ops.im2col(x[n], self.geom, out=y[n])
            else:
                y[n] = _im2col_nd(x[n], self.kernel, self.pad, self.stride, self.dilation,
                                  self.out_spatial).reshape(rows, -1)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        spatial = tuple(bottom[0].shape[self.channel_axis + 1:])
        dx = bottom[0].diff.reshape((self.num, self.channels) + spatial)
        rows = self.channels * int(np.prod(self.kernel))
        dy = top[0].diff.reshape(self.num, rows, -1)
        for n in range(self.num):
            if self.use_2d:
                ops.col2im(dy[n], self.geom, out=dx[n])
            else:
                dx[n] = _col2im_nd(dy[n], self.channels, spatial, self.kernel, self.pad,
                                   self.stride, self.dilation, self.out_spatial)


def _offsets(kernel):
    return list(np.ndindex(*kernel))


def _window(offset, stride, dilation, out):
    """Per-axis slices of the padded image read by kernel offset `offset`."""
    return tuple(slice(o * d, o * d + (n - 1) * s + 1, s)
                 for o, d, n, s in zip(offset, dilation, out, stride))


def _im2col_nd(x, kernel, pad, stride, dilation, out):
    """x (C, *S) -> (C, prod(kernel), *out): row c * prod(kernel) + offset of the kernel."""
    xp = backend.xp_of(x)
    padded = xp.pad(x, [(0, 0)] + [(p, p) for p in pad])
    cols = xp.empty((x.shape[0], len(_offsets(kernel))) + tuple(out), dtype=x.dtype)
    for i, offset in enumerate(_offsets(kernel)):
        cols[:, i] = padded[(slice(None),) + _window(offset, stride, dilation, out)]
    return cols


def _col2im_nd(cols, channels, spatial, kernel, pad, stride, dilation, out):
    """Adjoint of _im2col_nd: (C * prod(kernel), prod(out)) -> (C, *spatial), overlaps summed."""
    xp = backend.xp_of(cols)
    cols = cols.reshape((channels, len(_offsets(kernel))) + tuple(out))
    padded = xp.zeros((channels,) + tuple(s + 2 * p for s, p in zip(spatial, pad)),
                      dtype=cols.dtype)
    for i, offset in enumerate(_offsets(kernel)):
        padded[(slice(None),) + _window(offset, stride, dilation, out)] += cols[:, i]
    return padded[(slice(None),) + tuple(slice(p, p + s) for p, s in zip(pad, spatial))]
