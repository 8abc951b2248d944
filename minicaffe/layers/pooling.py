"""Pooling layer (Caffe's PoolingLayer): MAX and AVE, windowed or global."""
import numpy as np

from minicaffe import backend
from minicaffe.layers._spatial import pair
from minicaffe.layers.base import Layer, register_layer


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

    # -- shapes --------------------------------------------------------------------------------
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
            # Padded plane large enough for every window, including Caffe's ceil overhang.
            self.hp = max(H + 2 * self.ph, (self.oh - 1) * self.sh + self.kh)
            self.wp = max(W + 2 * self.pw, (self.ow - 1) * self.sw + self.kw)
            xp = backend.xp_of(x.data)
            self._fast = self._non_overlapping(H, W)
            self._padded = None
            self._arg = xp.empty((N, C, self.oh, self.ow), dtype=np.int8 if self.kh * self.kw < 128
                                 else np.int32) if self.method == "MAX" else None
            if self.method == "AVE":
                self._inv_size = self._ave_inverse_sizes(H, W, x.dtype, xp)
            self._key = (x.shape, x.dtype)
        for t in top:
            t.reshape(N, C, self.oh, self.ow)

    def _non_overlapping(self, H, W):
        """Windows tile the plane exactly: a reshape replaces the strided loops."""
        if self.global_pooling:
            return True
        return (self.kh == self.sh and self.kw == self.sw and self.ph == 0 and self.pw == 0
                and H == self.oh * self.kh and W == self.ow * self.kw)

    def _ave_inverse_sizes(self, H, W, dtype, xp):
        def sizes(n_out, k, p, s, size):
            start = np.arange(n_out) * s - p
            return np.minimum(start + k, size + p) - start
        hs = sizes(self.oh, self.kh, self.ph, self.sh, H)
        ws = sizes(self.ow, self.kw, self.pw, self.sw, W)
        return xp.asarray(1.0 / np.outer(hs, ws), dtype=dtype)

    def _pad_buffer(self, x, fill):
        """x written into the reused padded buffer whose border holds `fill`."""
        N, C, H, W = x.shape
        xp = backend.xp_of(x)
        if self._padded is None:
            self._padded = xp.empty((N, C, self.hp, self.wp), dtype=x.dtype)
            self._padded_fill = None
        buf = self._padded
        if self._padded_fill != fill:             # the border never changes: fill it once
            buf.fill(fill)
            self._padded_fill = fill
        buf[:, :, self.ph:self.ph + H, self.pw:self.pw + W] = x
        return buf

    def _tap(self, a, i, j):
        """Strided view (N, C, oh, ow) of padded array `a` at kernel offset (i, j)."""
        return a[:, :, i:i + self.sh * (self.oh - 1) + 1:self.sh, j:j + self.sw * (self.ow - 1) + 1:self.sw]

    # -- forward -------------------------------------------------------------------------------
    def forward(self, bottom, top):
        x = bottom[0].data
        if self.method == "MAX":
            self._forward_max(x, top[0].data)
            if len(top) == 2:
                self._write_mask(x.shape, top[1].data)
        else:
            self._forward_ave(x, top[0].data)

    def _forward_max(self, x, y):
        xp = backend.xp_of(x)
        N, C, H, W = x.shape
        if self._fast:
            win = x.reshape(N, C, self.oh, self.kh, self.ow, self.kw).transpose(0, 1, 2, 4, 3, 5)
            win = win.reshape(N, C, self.oh, self.ow, self.kh * self.kw)
            self._arg[...] = win.argmax(axis=-1)
            y[...] = xp.take_along_axis(win, self._arg[..., None].astype(np.intp), axis=-1)[..., 0]
            return
        a = self._pad_buffer(x, -np.inf)
        arg = self._arg
        y[...] = self._tap(a, 0, 0)
        arg.fill(0)
        better = xp.empty(y.shape, dtype=bool)
        for i in range(self.kh):
            for j in range(self.kw):
                if i == 0 and j == 0:
                    continue
                tap = self._tap(a, i, j)
                xp.greater(tap, y, out=better)     # strict: the first maximum keeps the gradient
                xp.copyto(y, tap, where=better)
                xp.copyto(arg, arg.dtype.type(i * self.kw + j), where=better)

    def _write_mask(self, shape, mask):
        """Caffe's MAX mask top: the argmax as h*W + w of the unpadded input."""
        N, C, H, W = shape
        xp = backend.xp_of(mask)
        i, j = xp.divmod(self._arg.astype(np.int64), self.kw)
        h = xp.arange(self.oh)[:, None] * self.sh - self.ph + i
        w = xp.arange(self.ow)[None, :] * self.sw - self.pw + j
        mask[...] = h * W + w

    def _forward_ave(self, x, y):
        N, C, H, W = x.shape
        if self._fast:
            y[...] = x.reshape(N, C, self.oh, self.kh, self.ow, self.kw).sum(axis=(3, 5))
        else:
            a = self._pad_buffer(x, 0.0)
            y[...] = self._tap(a, 0, 0)
            for i in range(self.kh):
                for j in range(self.kw):
                    if i or j:
                        y += self._tap(a, i, j)
        y *= self._inv_size

    # -- backward ------------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        N, C, H, W = dx.shape
        xp = backend.xp_of(dy)
        if self.method == "AVE":
            g = dy * self._inv_size
            if self._fast:
                dx.reshape(N, C, self.oh, self.kh, self.ow, self.kw)[...] = g[:, :, :, None, :, None]
                return
            da = self._grad_buffer(dx, xp)
            for i in range(self.kh):
                for j in range(self.kw):
                    self._tap(da, i, j)[...] += g
        else:
            if self._fast:
                win = xp.zeros((N, C, self.oh, self.ow, self.kh * self.kw), dtype=dx.dtype)
                xp.put_along_axis(win, self._arg[..., None].astype(np.intp), dy[..., None], axis=-1)
                dx.reshape(N, C, self.oh, self.kh, self.ow, self.kw)[...] = \
                    win.reshape(N, C, self.oh, self.ow, self.kh, self.kw).transpose(0, 1, 2, 4, 3, 5)
                return
            da = self._grad_buffer(dx, xp)
            hit = xp.empty(dy.shape, dtype=bool)
            for i in range(self.kh):
                for j in range(self.kw):
                    xp.equal(self._arg, i * self.kw + j, out=hit)
                    # inside one tap no two windows share a pixel, so += on the view is exact
                    self._tap(da, i, j)[...] += dy * hit
        dx[...] = da[:, :, self.ph:self.ph + H, self.pw:self.pw + W]

    def _grad_buffer(self, dx, xp):
        if getattr(self, "_dpadded", None) is None or self._dpadded.shape[:2] != dx.shape[:2] \
                or self._dpadded.dtype != dx.dtype:
            self._dpadded = xp.empty((dx.shape[0], dx.shape[1], self.hp, self.wp), dtype=dx.dtype)
        self._dpadded.fill(0)
        return self._dpadded
