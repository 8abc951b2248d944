"""Pooling layer (Caffe's PoolingLayer): MAX and AVE, windowed or global."""
import numpy as np

from minicaffe import ops
from minicaffe.catalog._spatial import pair
from minicaffe.catalog.base import Layer, register_layer


def pooled_size(size, kernel, pad, stride, round_mode="CEIL"):
    """Caffe's output length: ceil((size + 2 pad - kernel) / stride) + 1, one fewer when
    pad > 0 and the last window would start at or beyond size + pad (FLOOR rounds down)."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if round_mode == "CEIL" else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@register_layer("Pooling")
class Pooling(Layer):
    """Spatial pooling of (N, C, H, W) into (N, C, oh, ow) with Caffe's window rules.

    Window (y, x) covers rows y*sh - ph ... y*sh - ph + kh - 1 (likewise columns).
    MAX: the largest value of the window clipped to the image; the first maximum in row-major
    order wins and receives the whole gradient. An optional top[1] holds its index h*W + w.
    AVE: the sum over the window clipped to the image divided by the window size clipped to
    H + ph / W + pw (padding counts, overhang past the padding does not); backward spreads
    dy / size over the clipped window.
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

    # -- shapes and buffers ---------------------------------------------------------------------
    def reshape(self, bottom, top):
        x = bottom[0]
        if x.ndim != 4:
            raise self.error("expects a 4-D bottom (N, C, H, W)", bottom)
        N, C, H, W = x.shape
        if self.global_pooling:
            self.kh, self.kw = H, W
        if self._key != (x.shape, x.dtype):
            self.oh = pooled_size(H, self.kh, self.ph, self.sh, self.round_mode)
            self.ow = pooled_size(W, self.kw, self.pw, self.sw, self.round_mode)
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

    # -- backward ------------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        geometry = dx.shape[2:], (self.kh, self.kw), (self.ph, self.pw), (self.sh, self.sw)
        if self.method == "AVE":
            ops.ave_pool_backward(dy, *geometry, dx=dx)
        else:
            ops.max_pool_backward(dy, self._mask, *geometry, dx=dx)
