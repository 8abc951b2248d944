"""Pooling layer (Caffe's PoolingLayer): MAX and AVE, windowed or global."""
import numpy as np

from minicaffe import ops
from minicaffe.catalog._spatial import pair
from minicaffe.catalog.base import Layer, register_layer


def pooled_shape(H, W, kernel, pad, stride, round_mode="CEIL"):
    """Caffe's (oh, ow) for an H x W plane; kernel, pad, stride are (h, w) pairs.

    Each axis: ceil((size + 2 pad - kernel) / stride) + 1 (FLOOR rounds down). Then, when
    *either* pad is non-zero (Caffe tests `pad_h || pad_w`), each axis whose last window would
    start at or beyond size + pad loses that window, the unpadded axis included (5x9, pad 1x0,
    kernel 3x2, stride 2x3 gives 3x3, not 3x4). Without padding a window may lie wholly past
    the image (stride > kernel with the ceil rule); Caffe keeps it (see the Pooling layer).
    """
    out = []
    for size, k, p, s in zip((H, W), kernel, pad, stride):
        span = size + 2 * p - k
        out.append((-(-span // s) if round_mode == "CEIL" else span // s) + 1)
    if any(pad):
        for axis, (size, p, s) in enumerate(zip((H, W), pad, stride)):
            if (out[axis] - 1) * s >= size + p:
                out[axis] -= 1
    return tuple(out)


@register_layer("Pooling")
class Pooling(Layer):
    """Spatial pooling of (N, C, H, W) into (N, C, oh, ow) with Caffe's window rules.

    Window (y, x) covers rows y*sh - ph ... y*sh - ph + kh - 1 (likewise columns).
    MAX: the largest value of the window clipped to the image; the first maximum in row-major
    order wins and receives the whole gradient. An optional top[1] holds its index h*W + w.
    AVE: the sum over the window clipped to the image divided by the window size clipped to
    H + ph / W + pw (padding counts, overhang past the padding does not); backward spreads
    dy / size over the clipped window.
    Output size: `pooled_shape` (Caffe's ceil rule and its pad_h || pad_w clip). With no padding
    and stride > kernel the last window can lie wholly past the image; as in Caffe it is kept,
    gives -FLT_MAX (the lowest float32, Caffe's starting value) for MAX and gets no gradient.
    For AVE it gives 0, where Caffe divides 0 by a window size <= 0 (NaN or -0): no output is
    -inf or NaN for finite input.
    `global_pooling` uses the whole plane (kernel = H x W, no pad, stride 1).
    Raises LayerSetupError for a missing kernel, pad >= kernel, STOCHASTIC pooling (Caffe runs it
    on GPU only) or global pooling with a kernel/pad/stride given.
    """

    exact_bottoms = 1
    min_tops, max_tops = 1, 2

    def setup(self, bottom, top):
        p = self.layer_param.pooling_param
        if bottom[0].ndim != 4:
            raise self.error("expects a 4-D bottom (N, C, H, W)", bottom)
        self.method = p.pool
        if self.method == "STOCHASTIC":
            raise self.error("STOCHASTIC pooling is not supported (Caffe implements it on GPU only); "
                             "use MAX or AVE", bottom)
        if len(top) == 2 and self.method != "MAX":
            raise self.error(f"a second top (the argmax mask) needs pool: MAX, got {self.method}", bottom)
        self.global_pooling = bool(p.global_pooling)
        if self.global_pooling:
            if p.has("kernel_size") or p.has("kernel_h") or p.has("kernel_w"):
                raise self.error("global_pooling takes the whole plane; do not set kernel_size", bottom)
            self.ph = self.pw = 0
            self.sh = self.sw = 1
        else:
            self.kh, self.kw = pair(self, bottom, p, "kernel", 0, repeated=False)
            if self.kh <= 0 or self.kw <= 0:
                raise self.error(f"kernel size must be positive, got ({self.kh}, {self.kw}); "
                                 f"set kernel_size or kernel_h/kernel_w", bottom)
            self.ph, self.pw = pair(self, bottom, p, "pad", 0, repeated=False)
            self.sh, self.sw = pair(self, bottom, p, "stride", 1, repeated=False)
            if self.sh <= 0 or self.sw <= 0:
                raise self.error(f"stride must be positive, got ({self.sh}, {self.sw})", bottom)
            if self.ph >= self.kh or self.pw >= self.kw:
                raise self.error(f"pad ({self.ph}, {self.pw}) must be smaller than the kernel "
                                 f"({self.kh}, {self.kw})", bottom)
        if self.global_pooling and (p.has("pad") or p.has("stride") or p.has("pad_h")
                                    or p.has("stride_h")):
            raise self.error("global_pooling needs pad 0 and stride 1", bottom)
        self.round_mode = getattr(p, "round_mode", "CEIL")
        self._key = None
        self._mask = None                            # int32 argmax of MAX, kept for backward
        self._bound = False                          # forward bound into a plan (no argmax)

    # -- shapes and buffers ---------------------------------------------------------------------
    def reshape(self, bottom, top):
        x = bottom[0]
        if x.ndim != 4:
            raise self.error("expects a 4-D bottom (N, C, H, W)", bottom)
        N, C, H, W = x.shape
        if self.global_pooling:
            self.kh, self.kw = H, W
        if self._key != (x.shape, x.dtype):
            self.oh, self.ow = pooled_shape(H, W, (self.kh, self.kw), (self.ph, self.pw),
                                            (self.sh, self.sw), self.round_mode)
            if self.oh <= 0 or self.ow <= 0:
                raise self.error(f"kernel ({self.kh}, {self.kw}) does not fit the {H}x{W} input "
                                 f"with pad ({self.ph}, {self.pw})", bottom)
            self._key = (x.shape, x.dtype)
        for t in top:
            t.reshape(N, C, self.oh, self.ow)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, bottom, top):
        x = bottom[0].data
        geometry = (self.kh, self.kw), (self.ph, self.pw), (self.sh, self.sw), (self.oh, self.ow)
        if self.method == "AVE":
            ops.ave_pool_forward(x, *geometry, out=top[0].data)
            return
        # The argmax mask is kept for backward (and copied to top[1]).
        if self._mask is None or self._mask.shape != top[0].shape:
            self._mask = np.empty(top[0].shape, dtype=np.int32)
        ops.max_pool_forward(x, *geometry, out=top[0].data, mask=self._mask)
        if len(top) == 2:
            top[1].data[...] = self._mask

    def bind_forward(self, bottom, top, program):
        """One bound pooling call. MAX computes the values only (no argmax mask: an inference
        forward does not need it, and writing it cost about a third of the kernel's time);
        a backward after a planned forward recomputes the mask from the bottom (`backward`).
        With the mask as a second top, `forward` runs (it converts the mask to floats)."""
        if len(top) != 1:
            return False
        geometry = (self.kh, self.kw), (self.ph, self.pw), (self.sh, self.sw), (self.oh, self.ow)
        x = bottom[0].data
        if self.method == "AVE":
            program.ave_pool_forward(x, *geometry, out=top[0].data)
            return True
        program.max_pool_forward(x, *geometry, out=top[0].data, mask=None)
        self._bound = True
        return True

    # -- backward ------------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        geometry = dx.shape[2:], (self.kh, self.kw), (self.ph, self.pw), (self.sh, self.sw)
        if self.method == "AVE":
            ops.ave_pool_backward(dy, *geometry, dx=dx)
        else:
            if self._bound or self._mask is None or self._mask.shape != dy.shape:
                # The last forward may have run in a plan, which keeps no mask: the argmax of
                # the bottom, which still holds the forward's input (a later layer that changes
                # it in place reads a Split's copy), so the mask a forward would have written.
                self._mask = np.empty(dy.shape, dtype=np.int32)
                ops.max_pool_forward(bottom[0].data, (self.kh, self.kw), (self.ph, self.pw),
                                     (self.sh, self.sw), (self.oh, self.ow),
                                     out=np.empty(dy.shape, dtype=dy.dtype), mask=self._mask)
            ops.max_pool_backward(dy, self._mask, *geometry, dx=dx)
