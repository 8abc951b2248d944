"""Pooling layer (Caffe's PoolingLayer): MAX and AVE, windowed or global."""
import numpy as np

from minicaffe import backend, ops
from minicaffe.layers._spatial import pair
from minicaffe.layers.base import Layer, register_layer
from minicaffe.ops.pooling import PhasePlan


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
            if self.method == "AVE" and not self.global_pooling:
                self._plan(x.shape, x.dtype, backend.xp_of(x.data))
            self._key = (x.shape, x.dtype)
        for t in top:
            t.reshape(N, C, self.oh, self.ow)

    def _plan(self, shape, dtype, xp):
        """AVE: stride-phase planes (ops.pooling.PhasePlan) and the divisor grid."""
        N, C, H, W = shape
        self._phases = PhasePlan(shape, (self.kh, self.kw), (self.ph, self.pw),
                                 (self.sh, self.sw), (self.oh, self.ow), dtype, 0.0, xp)
        self._blocks = self._phases.blocks
        self._y = xp.empty((N * C, self._phases.L), dtype=dtype)
        self._dy = None                             # (NC, L), scratch columns kept at 0
        self._inv = self._ave_inverse_grid(H, W, dtype, xp)

    def _ave_inverse_grid(self, H, W, dtype, xp):
        """1 / Caffe's window size on the (oh, Wh) grid (0 on scratch columns), flattened."""
        def sizes(n_out, k, p, s, size):
            start = np.arange(n_out) * s - p
            return np.minimum(start + k, size + p) - start
        Wh = self._phases.Wh
        inv = np.zeros((self.oh, Wh))
        inv[:, :self.ow] = 1.0 / np.outer(sizes(self.oh, self.kh, self.ph, self.sh, H),
                                          sizes(self.ow, self.kw, self.pw, self.sw, W))
        return xp.asarray(inv.reshape(-1), dtype=dtype)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, bottom, top):
        x = bottom[0].data
        if self.method == "MAX":
            self._forward_max(x, top)
        elif self.global_pooling:
            N, C = x.shape[:2]
            top[0].data.reshape(N * C)[...] = x.reshape(N * C, -1).mean(axis=1)
        else:
            self._forward_ave(x, top)

    def _forward_max(self, x, top):
        """ops.max_pool_forward; its argmax mask is kept for backward (and is top[1])."""
        if self._mask is None or self._mask.shape != top[0].shape:
            self._mask = np.empty(top[0].shape, dtype=np.int32)
        ops.max_pool_forward(x, (self.kh, self.kw), (self.ph, self.pw), (self.sh, self.sw),
                             (self.oh, self.ow), out=top[0].data, mask=self._mask)
        if len(top) == 2:
            top[1].data[...] = self._mask

    def _forward_ave(self, x, top):
        N, C = x.shape[:2]
        plan = self._phases
        plan.load(x)
        xp = backend.xp_of(x)
        for rows in self._blocks:
            y = self._y[rows]
            y[...] = plan.tap(plan.planes, 0, rows)
            for t in range(1, len(plan.taps)):
                xp.add(y, plan.tap(plan.planes, t, rows), out=y)
            y *= self._inv
        top[0].data.reshape(N * C, self.oh, self.ow)[...] = plan.grid(self._y)

    # -- backward ------------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        N, C, H, W = dx.shape
        if self.method == "MAX":
            ops.max_pool_backward(dy, self._mask, (H, W), (self.kh, self.kw), (self.ph, self.pw),
                                  (self.sh, self.sw), dx=dx)
            return
        if self.global_pooling:
            dx.reshape(N * C, H * W)[...] = dy.reshape(N * C, 1) / (H * W)
            return
        xp = backend.xp_of(dy)
        plan = self._phases
        if self._dy is None:
            self._dy = xp.zeros_like(self._y)
            self._dplanes = xp.empty_like(plan.planes)
        g = self._dy
        g.reshape(N * C, self.oh, plan.Wh)[:, :, :self.ow] = dy.reshape(N * C, self.oh, self.ow)
        dplanes = self._dplanes
        dplanes.fill(0)
        for rows in self._blocks:
            gb = g[rows]
            gb *= self._inv
            for t in range(len(plan.taps)):
                plan.tap(dplanes, t, rows)[...] += gb
        plan.unload(dplanes, dx)
