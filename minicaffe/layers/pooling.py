"""Pooling layer (Caffe's PoolingLayer): MAX and AVE, windowed or global."""
import numpy as np

from minicaffe import backend
from minicaffe.layers._spatial import pair
from minicaffe.layers.base import Layer, register_layer

_BLOCK_BYTES = 1 << 17


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
            if not self.global_pooling:
                self._plan(x.shape, x.dtype, backend.xp_of(x.data))
            self._key = (x.shape, x.dtype)
        for t in top:
            t.reshape(N, C, self.oh, self.ow)

    def _plan(self, shape, dtype, xp):
        """Stride-phase planes and scratch buffers for windowed pooling.

        The padded input is split into sh*sw phase planes, plane (a, b) holding padded pixels
        (a + u*sh, b + v*sw) as a (Hh, Wh) grid flattened per image-channel. Kernel tap (i, j)
        of every window is then ONE contiguous slice of plane (i % sh, j % sw), starting at
        (i // sh) * Wh + j // sw, if outputs live on an (oh, Wh) grid whose columns >= ow are
        scratch. Each tap is a long contiguous NumPy operation instead of a strided 4-D one.
        """
        N, C, H, W = shape
        NC, sh, sw, kh, kw = N * C, self.sh, self.sw, self.kh, self.kw
        self.Hh, self.Wh = self.oh + (kh - 1) // sh, self.ow + (kw - 1) // sw
        L = self.oh * self.Wh                       # output grid, with scratch columns
        plane = self.Hh * self.Wh + self.Wh         # one spare row: the last taps overhang
        # Image pixels of each plane: (rows of x, columns of x, rows of plane, cols of plane).
        self._parts = []
        self.covered = True
        for a in range(sh):
            u0 = max(0, -(-(self.ph - a) // sh))
            h0 = a + u0 * sh - self.ph
            nu = max(0, min(len(range(h0, H, sh)), self.Hh - u0))
            for b in range(sw):
                v0 = max(0, -(-(self.pw - b) // sw))
                w0 = b + v0 * sw - self.pw
                nv = max(0, min(len(range(w0, W, sw)), self.Wh - v0))
                self._parts.append((a, b, slice(h0, h0 + sh * (nu - 1) + 1 if nu else h0, sh),
                                    slice(w0, w0 + sw * (nv - 1) + 1 if nv else w0, sw),
                                    slice(u0, u0 + nu), slice(v0, v0 + nv)))
        self.covered = sum(len(range(*p[2].indices(H))) * len(range(*p[3].indices(W)))
                           for p in self._parts) == H * W
        self._taps = [((i % sh) * sw + (j % sw), (i // sh) * self.Wh + j // sw)
                      for i in range(kh) for j in range(kw)]
        fill = -np.inf if self.method == "MAX" else 0.0
        self._planes = xp.full((sh * sw, NC, plane), fill, dtype=dtype)
        self._dplanes = None
        self._y = xp.empty((NC, L), dtype=dtype)
        # Image-channels per block: a block's operands stay in L2 across all the taps
        # (measured ~2x faster than whole-array passes on CIFAR-10 shapes).
        rows = max(1, _BLOCK_BYTES // (L * np.dtype(dtype).itemsize))
        self._blocks = [slice(r, min(NC, r + rows)) for r in range(0, NC, rows)]
        self._dy = None                             # (NC, L), scratch columns kept at 0
        if self.method == "AVE":
            self._inv = self._ave_inverse_grid(H, W, dtype, xp)

    def _ave_inverse_grid(self, H, W, dtype, xp):
        """1 / Caffe's window size on the (oh, Wh) grid (0 on scratch columns), flattened."""
        def sizes(n_out, k, p, s, size):
            start = np.arange(n_out) * s - p
            return np.minimum(start + k, size + p) - start
        inv = np.zeros((self.oh, self.Wh))
        inv[:, :self.ow] = 1.0 / np.outer(sizes(self.oh, self.kh, self.ph, self.sh, H),
                                          sizes(self.ow, self.kw, self.pw, self.sw, W))
        return xp.asarray(inv.reshape(-1), dtype=dtype)

    def _plane_views(self, planes):
        """(sh*sw) arrays (NC, Hh, Wh) viewing the flattened planes without their spare row."""
        body = planes[:, :, :self.Hh * self.Wh]
        return body.reshape(planes.shape[0], planes.shape[1], self.Hh, self.Wh)

    def _tap(self, planes, t, rows=slice(None)):
        """Tap t of every window of the image-channels `rows`: a (rows, oh*Wh) slice."""
        k, off = self._taps[t]
        return planes[k, rows, off:off + self._y.shape[1]]

    # -- forward -------------------------------------------------------------------------------
    def forward(self, bottom, top):
        x = bottom[0].data
        if self.global_pooling:
            self._forward_global(x, top)
            return
        N, C, H, W = x.shape
        x3 = x.reshape(N * C, H, W)
        views = self._plane_views(self._planes)
        for a, b, hs, ws, us, vs in self._parts:
            views[a * self.sw + b][:, us, vs] = x3[:, hs, ws]
        xp = backend.xp_of(x)
        reduce = xp.maximum if self.method == "MAX" else xp.add
        for rows in self._blocks:
            y = self._y[rows]
            y[...] = self._tap(self._planes, 0, rows)
            for t in range(1, len(self._taps)):
                reduce(y, self._tap(self._planes, t, rows), out=y)
            if self.method == "AVE":
                y *= self._inv
        y = self._y
        grid = y.reshape(N * C, self.oh, self.Wh)[:, :, :self.ow]
        top[0].data.reshape(N * C, self.oh, self.ow)[...] = grid
        if len(top) == 2:
            self._write_mask(x.shape, top[1].data)

    def _first_max_taps(self):
        """Index of the first tap (row-major in the window) equal to each output's maximum."""
        xp = backend.xp_of(self._y)
        arg = xp.full(self._y.shape, -1, dtype=np.int32)
        hit = xp.empty(self._y.shape, dtype=bool)
        for t in range(len(self._taps)):
            xp.equal(self._tap(self._planes, t), self._y, out=hit)
            hit &= arg < 0
            arg[hit] = t
        return arg

    def _write_mask(self, shape, mask):
        """Caffe's MAX mask top: the argmax as h*W + w of the unpadded input."""
        N, C, H, W = shape
        xp = backend.xp_of(mask)
        arg = self._first_max_taps().reshape(N, C, self.oh, self.Wh)[..., :self.ow]
        i, j = xp.divmod(arg, self.kw)
        h = xp.arange(self.oh)[:, None] * self.sh - self.ph + i
        w = xp.arange(self.ow)[None, :] * self.sw - self.pw + j
        mask[...] = h * W + w

    def _forward_global(self, x, top):
        N, C, H, W = x.shape
        x2 = x.reshape(N * C, H * W)
        y = top[0].data.reshape(N * C)
        if self.method == "MAX":
            self._arg = x2.argmax(axis=1)
            y[...] = x2[backend.xp_of(x).arange(N * C), self._arg]
            if len(top) == 2:
                top[1].data.reshape(N * C)[...] = self._arg
        else:
            y[...] = x2.mean(axis=1)

    # -- backward ------------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        N, C, H, W = dx.shape
        xp = backend.xp_of(dy)
        if self.global_pooling:
            dx2 = dx.reshape(N * C, H * W)
            if self.method == "MAX":
                dx2.fill(0)
                dx2[xp.arange(N * C), self._arg] = dy.reshape(N * C)
            else:
                dx2[...] = dy.reshape(N * C, 1) / (H * W)
            return
        if self._dy is None:
            self._dy = xp.zeros_like(self._y)
            self._dplanes = xp.empty_like(self._planes)
            self._tmp = xp.empty_like(self._y)
            self._hit = xp.empty(self._y.shape, dtype=bool)
            self._done = xp.empty(self._y.shape, dtype=bool)
        g = self._dy
        g.reshape(N * C, self.oh, self.Wh)[:, :, :self.ow] = dy.reshape(N * C, self.oh, self.ow)
        dplanes = self._dplanes
        dplanes.fill(0)
        if self.method == "AVE":
            for rows in self._blocks:
                gb = g[rows]
                gb *= self._inv
                for t in range(len(self._taps)):
                    self._tap(dplanes, t, rows)[...] += gb
        else:
            # Route dy to the first tap equal to the maximum (Caffe's argmax on ties). The
            # comparison uses this layer's own copy of the input and output, so in-place layers
            # after it cannot disturb it. Scratch columns carry dy = 0.
            last = len(self._taps) - 1
            for rows in self._blocks:
                hit, done, tmp = self._hit[rows], self._done[rows], self._tmp[rows]
                gb, yb = g[rows], self._y[rows]
                for t in range(len(self._taps)):
                    xp.equal(self._tap(self._planes, t, rows), yb, out=hit)
                    if t:
                        xp.greater(hit, done, out=hit)      # hit and not yet routed
                        if t < last:
                            xp.logical_or(done, hit, out=done)
                    else:
                        done[...] = hit
                    xp.multiply(gb, hit, out=tmp)
                    self._tap(dplanes, t, rows)[...] += tmp
        if not self.covered:
            dx.fill(0)
        dx3 = dx.reshape(N * C, H, W)
        views = self._plane_views(dplanes)
        for a, b, hs, ws, us, vs in self._parts:
            dx3[:, hs, ws] = views[a * self.sw + b][:, us, vs]
