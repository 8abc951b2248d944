"""MAX and AVE pooling of NCHW float32/float64 arrays with Caffe's rules (compiled kernels,
NumPy twins).

Window (y, x) covers rows y*sh - ph ... y*sh - ph + kh - 1 (likewise columns). The output size
(oh, ow) is the caller's (the Pooling layer applies Caffe's ceil/pad rule); a window may then
lie wholly past the image (ceil rule, stride > kernel, no pad).

MAX: the largest value of the window clipped to the image; `mask` (int32, one per output) holds
the index h*W + w of the FIRST maximum in row-major window order, which alone receives the
gradient. A window past the image gives -FLT_MAX (the lowest float32: Caffe's starting value,
finite) and mask -1, which backward skips. NaN: the scan starts from the window's first pixel
and a pixel wins only when strictly larger, so a NaN first pixel gives NaN (mask: that pixel)
and any other NaN is passed over; the mask always points inside the window.

AVE: the sum over the window clipped to the image divided by the window size clipped to
(H + ph, W + pw) (padding counts, overhang past the padding does not); backward spreads
dy / size over the clipped window. A window past the image gives 0 and no gradient.
"""
import numpy as np

from minicaffe.ops import _checks, native

# Image-channels per NumPy block: a block's operands stay in L2 across all the taps
# (measured ~2x faster than whole-array passes on CIFAR-10 shapes).
_BLOCK_BYTES = 1 << 17


class _PhasePlan:
    """Stride-phase planes of one (N, C, H, W) shape and pooling geometry, for NumPy passes.

    The padded input is split into sh*sw phase planes, plane (a, b) holding padded pixels
    (a + u*sh, b + v*sw) as a (Hh, Wh) grid flattened per image-channel. Kernel tap (i, j)
    of every window is then ONE contiguous slice of plane (i % sh, j % sw), starting at
    (i // sh) * Wh + j // sw, if outputs live on an (oh, Wh) grid whose columns >= ow are
    scratch. Each tap is a long contiguous NumPy operation instead of a strided 4-D one.
    Padding pixels hold `fill` (-inf for MAX, 0 for AVE).
    """

    def __init__(self, shape, kernel, pad, stride, out_size, dtype, fill):
        N, C, H, W = shape
        (kh, kw), (self.ph, self.pw), (sh, sw) = kernel, pad, stride
        self.kh, self.kw, self.sh, self.sw = kh, kw, sh, sw
        self.oh, self.ow = out_size
        NC = N * C
        self.Hh, self.Wh = self.oh + (kh - 1) // sh, self.ow + (kw - 1) // sw
        self.L = self.oh * self.Wh                  # output grid, with scratch columns
        plane = self.Hh * self.Wh + self.Wh         # one spare row: the last taps overhang
        # Image pixels of each plane: (rows of x, columns of x, rows of plane, cols of plane).
        self.parts = []
        for a in range(sh):
            u0 = max(0, -(-(self.ph - a) // sh))
            h0 = a + u0 * sh - self.ph
            nu = max(0, min(len(range(h0, H, sh)), self.Hh - u0))
            for b in range(sw):
                v0 = max(0, -(-(self.pw - b) // sw))
                w0 = b + v0 * sw - self.pw
                nv = max(0, min(len(range(w0, W, sw)), self.Wh - v0))
                self.parts.append((a, b, slice(h0, h0 + sh * (nu - 1) + 1 if nu else h0, sh),
                                   slice(w0, w0 + sw * (nv - 1) + 1 if nv else w0, sw),
                                   slice(u0, u0 + nu), slice(v0, v0 + nv)))
        self.covered = sum(len(range(*p[2].indices(H))) * len(range(*p[3].indices(W)))
                           for p in self.parts) == H * W
        self.taps = [((i % sh) * sw + (j % sw), (i // sh) * self.Wh + j // sw)
                     for i in range(kh) for j in range(kw)]
        self.planes = np.full((sh * sw, NC, plane), fill, dtype=dtype)
        rows = max(1, _BLOCK_BYTES // (self.L * np.dtype(dtype).itemsize))
        self.blocks = [slice(r, min(NC, r + rows)) for r in range(0, NC, rows)]

    def views(self, planes):
        """(sh*sw) arrays (NC, Hh, Wh) viewing the flattened planes without their spare row."""
        body = planes[:, :, :self.Hh * self.Wh]
        return body.reshape(planes.shape[0], planes.shape[1], self.Hh, self.Wh)

    def load(self, x):
        """Copy x (N, C, H, W) into the phase planes (padding keeps `fill`)."""
        N, C, H, W = x.shape
        x3 = x.reshape(N * C, H, W)
        views = self.views(self.planes)
        for a, b, hs, ws, us, vs in self.parts:
            views[a * self.sw + b][:, us, vs] = x3[:, hs, ws]

    def unload(self, dplanes, dx):
        """dx (N, C, H, W) = the image pixels of dplanes (0 where no window reaches)."""
        N, C, H, W = dx.shape
        if not self.covered:
            dx.fill(0)
        dx3 = dx.reshape(N * C, H, W)
        views = self.views(dplanes)
        for a, b, hs, ws, us, vs in self.parts:
            dx3[:, hs, ws] = views[a * self.sw + b][:, us, vs]

    def tap(self, planes, t, rows=slice(None)):
        """Tap t of every window of the image-channels `rows`: a (rows, oh*Wh) slice."""
        k, off = self.taps[t]
        return planes[k, rows, off:off + self.L]

    def grid(self, flat):
        """The (NC, oh, ow) outputs of an (NC, oh*Wh) grid (scratch columns dropped)."""
        return flat.reshape(-1, self.oh, self.Wh)[:, :, :self.ow]


def _reduce_taps(plan, ufunc, dtype):
    """(planes, L) of `ufunc` folded over every kernel tap, a cache-sized block of planes at a
    time (ufunc: np.maximum for MAX, np.add for AVE)."""
    y = np.empty((plan.planes.shape[1], plan.L), dtype=dtype)   # planes: (phases, NC, ...)
    for rows in plan.blocks:
        yb = y[rows]
        yb[...] = plan.tap(plan.planes, 0, rows)
        for t in range(1, len(plan.taps)):
            ufunc(yb, plan.tap(plan.planes, t, rows), out=yb)
    return y


def _np_max_pool_forward(x, g, out, mask):
    N, C, H, W, kh, kw, ph, pw, sh, sw, oh, ow = g
    plan = _PhasePlan(x.shape, (kh, kw), (ph, pw), (sh, sw), (oh, ow), x.dtype, -np.inf)
    plan.load(x)
    y = _reduce_taps(plan, np.maximum, x.dtype)
    has_nan = bool(np.isnan(y).any())
    if has_nan:
        # The kernel's rule: a pixel replaces the running maximum only when strictly larger,
        # so a NaN never wins, except as the window's first pixel (fixed below).
        y = _reduce_taps(plan, np.fmax, x.dtype)
    out.reshape(N * C, oh, ow)[...] = plan.grid(y)
    # The first tap (row-major in the window) equal to the maximum, as h*W + w of the image.
    arg = np.full(y.shape, -1, dtype=np.int32)
    hit = np.empty(y.shape, dtype=bool)
    for t in range(len(plan.taps)):
        np.equal(plan.tap(plan.planes, t), y, out=hit)
        hit &= arg < 0
        arg[hit] = t
    i, j = np.divmod(plan.grid(arg).reshape(N, C, oh, ow), kw)
    h = np.arange(oh)[:, None] * sh - ph + i
    w = np.arange(ow)[None, :] * sw - pw + j
    mask[...] = h * W + w
    if has_nan:
        _fix_nan_windows(x, out, mask, g)
    if np.isneginf(out).any():
        _fix_neginf_windows(out, mask, g)
    return out, mask


def _first_pixels(g):
    """(oh, ow) index h*W + w of each window's first pixel (clipped to the image), -1 for a
    window wholly past the image."""
    N, C, H, W, kh, kw, ph, pw, sh, sw, oh, ow = g
    hs, ws = np.arange(oh) * sh - ph, np.arange(ow) * sw - pw
    first = np.maximum(hs, 0)[:, None] * W + np.maximum(ws, 0)[None, :]
    first[(hs >= H)[:, None] | (ws >= W)[None, :]] = -1
    return first


def _fix_nan_windows(x, out, mask, g):
    """A window whose first pixel is NaN gives NaN with that pixel as its argmax (the kernel
    starts from the first pixel and nothing compares larger than NaN); other NaNs never win
    (out already holds the NaN-ignoring maximum)."""
    N, C, H, W = x.shape
    first = _first_pixels(g)
    inside = first >= 0
    values = x.reshape(N, C, H * W)[:, :, np.where(inside, first, 0)]
    nan = np.isnan(values) & inside
    out[nan] = np.nan
    mask[nan] = np.broadcast_to(first, mask.shape)[nan]


def _fix_neginf_windows(out, mask, g):
    """-inf outputs: the maximum may have matched a padding tap (also -inf); the first pixel
    of the window clipped to the image is the right one, or -1 and -FLT_MAX (Caffe's starting
    value) for a window past the image."""
    first = _first_pixels(g)
    neg = np.isneginf(out)
    mask[neg] = np.broadcast_to(first, mask.shape)[neg]
    out[neg & (mask < 0)] = -np.finfo(np.float32).max


def _np_max_pool_backward(dy, mask, g, dx):
    N, C, H, W = dx.shape
    # One flat bincount over all planes; empty windows (mask -1) go to an extra last bin.
    plane = np.arange(N * C, dtype=np.int64).reshape(N, C, 1, 1) * (H * W)
    flat = np.where(mask >= 0, plane + mask, N * C * H * W).reshape(-1)
    dx.reshape(-1)[...] = np.bincount(flat, weights=dy.reshape(-1),
                                      minlength=N * C * H * W + 1)[:-1]
    return dx


def _ave_inverse_grid(plan, H, W, dtype):
    """1 / Caffe's window size on the (oh, Wh) grid (0 on scratch columns and for windows with
    no image pixel), flattened."""
    def sizes(n_out, k, p, s, size):
        start = np.arange(n_out) * s - p
        return np.minimum(start + k, size + p) - start, start < size
    size_h, in_h = sizes(plan.oh, plan.kh, plan.ph, plan.sh, H)
    size_w, in_w = sizes(plan.ow, plan.kw, plan.pw, plan.sw, W)
    inside = np.outer(in_h, in_w)
    inv = np.zeros((plan.oh, plan.Wh))
    inv[:, :plan.ow] = np.where(inside, 1.0 / np.where(inside, np.outer(size_h, size_w), 1), 0.0)
    return inv.reshape(-1).astype(dtype)


def _ave_plan(shape, g, dtype):
    N, C, H, W, kh, kw, ph, pw, sh, sw, oh, ow = g
    plan = _PhasePlan(shape, (kh, kw), (ph, pw), (sh, sw), (oh, ow), dtype, 0.0)
    return plan, _ave_inverse_grid(plan, H, W, dtype)


def _np_ave_pool_forward(x, g, out):
    N, C = x.shape[:2]
    plan, inv = _ave_plan(x.shape, g, x.dtype)
    plan.load(x)
    y = _reduce_taps(plan, np.add, x.dtype)
    y *= inv
    out.reshape(N * C, plan.oh, plan.ow)[...] = plan.grid(y)
    return out


def _np_ave_pool_backward(dy, g, dx):
    N, C = dx.shape[:2]
    plan, inv = _ave_plan(dx.shape, g, dx.dtype)
    grid = np.zeros((N * C, plan.L), dtype=dx.dtype)      # scratch columns stay 0
    plan.grid(grid)[...] = dy.reshape(N * C, plan.oh, plan.ow)
    dplanes = plan.planes                                 # zeros: reused as the gradient
    for rows in plan.blocks:
        gb = grid[rows]
        gb *= inv
        for t in range(len(plan.taps)):
            plan.tap(dplanes, t, rows)[...] += gb
    plan.unload(dplanes, dx)
    return dx


def _geometry(op, shape, kernel, pad, stride, out_size):
    """(N, C, H, W, kh, kw, ph, pw, sh, sw, oh, ow), checked as the kernel checks it."""
    N, C, H, W = shape
    for name, value in (("H", H), ("W", W)):
        if value < 1:               # as the kernel's check: an empty plane has no window
            raise _checks.KernelError(f"{op}: geom.{name} = {value}; expected >= 1")
    fields = {}
    for name, value, low in (("kernel", kernel, 1), ("pad", pad, 0), ("stride", stride, 1),
                             ("out_size", out_size, 1)):
        pair = tuple(value) if isinstance(value, (tuple, list)) else None
        if pair is None or len(pair) != 2 or any(isinstance(v, bool) or int(v) != v for v in pair):
            raise _checks.KernelError(f"{op}: {name} = {value!r}; expected a pair of integers")
        if min(pair) < low:
            raise _checks.KernelError(f"{op}: {name} = {pair}; expected values >= {low}")
        fields[name] = tuple(int(v) for v in pair)
    (kh, kw), (ph, pw), (sh, sw), (oh, ow) = (fields[k] for k in
                                              ("kernel", "pad", "stride", "out_size"))
    if ph >= kh or pw >= kw:
        raise _checks.KernelError(f"{op}: pad ({ph}, {pw}) must be smaller than the kernel "
                                  f"({kh}, {kw})")
    # One window along an axis: its stride changes nothing, and a huge one would only size the
    # phase scratch (sh*sw planes) for nothing.
    sh, sw = (1 if oh == 1 else sh), (1 if ow == 1 else sw)
    Hh, Wh = oh + (kh - 1) // sh, ow + (kw - 1) // sw
    scratch = sh * sw * (Hh * Wh + Wh)
    limit = max(1 << 24, 16 * (H + 2 * ph + kh) * (W + 2 * pw + kw))
    if scratch > limit:
        raise _checks.KernelError(
            f"{op}: stride ({sh}, {sw}) with output ({oh}, {ow}) needs {scratch} elements of "
            f"phase scratch per thread, more than {limit} (16 times the padded input and "
            "kernel): windows would start far past the image")
    return (N, C, H, W, kh, kw, ph, pw, sh, sw, oh, ow)


def _mask_array(op, mask, shape, out):
    if mask is None and out:
        return np.empty(shape, dtype=np.int32)
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{op}: mask must be a numpy.ndarray, got {type(mask).__name__}")
    if mask.dtype != np.int32:
        raise TypeError(f"{op}: mask has dtype {mask.dtype}; expected int32")
    if tuple(mask.shape) != shape:
        raise _checks.KernelError(f"{op}: mask has shape {tuple(mask.shape)}; expected {shape}")
    if not mask.flags.c_contiguous:
        raise _checks.KernelError(f"{op}: mask must be C-contiguous (strides {mask.strides})")
    if out and not mask.flags.writeable:
        raise _checks.KernelError(f"{op}: mask is read-only")
    return mask


def max_pool_forward(x, kernel, pad, stride, out_size, out=None, mask=None, argmax=True):
    """MAX pooling with the argmax: x (N, C, H, W) -> (out, mask), both (N, C, oh, ow).

    kernel, pad, stride, out_size are (h, w) pairs; out_size = (oh, ow) is the caller's
    (Caffe: Pooling layer's ceil rule). `mask` is int32, h*W + w of each window's first maximum.
    argmax=False computes the values only (an inference forward; `mask` must be None) and
    returns (out, None); the values are the same bit for bit.
    Raises TypeError for non-float x or a non-int32 mask, KernelError for bad geometry/shapes.
    """
    if not argmax and mask is not None:
        raise _checks.KernelError("max_pool_forward: argmax=False writes no mask; pass mask=None")
    x, g, out, mask = _max_pool_args(x, kernel, pad, stride, out_size, out, mask,
                                     argmax=argmax)
    k = native.kernels()
    if k is not None:
        k.max_pool_forward(x, g[2:], out, mask)
        return out, mask
    if mask is None:
        _np_max_pool_forward(x, g, out, np.empty(out.shape, dtype=np.int32))
        return out, None
    return _np_max_pool_forward(x, g, out, mask)


def _max_pool_args(x, kernel, pad, stride, out_size, out, mask, argmax=True):
    """max_pool_forward's checked arguments (x, geometry tuple, out, mask), out and mask
    allocated when None (an inference plan binds them once); mask stays None without argmax."""
    op = "max_pool_forward"
    x = _checks.float_array(op, "x", x)
    _checks.check_ndim(op, "x", x, 4, "(N, C, H, W)")
    g = _geometry(op, x.shape, kernel, pad, stride, out_size)
    shape = x.shape[:2] + g[-2:]
    out = _checks.output(op, out, shape, x.dtype)
    if argmax:
        mask = _mask_array(op, mask, shape, out=True)
    return x, g, out, mask


def max_pool_backward(dy, mask, in_size, kernel, pad, stride, dx=None):
    """Gradient of max_pool_forward: dx (N, C, H, W) = 0, then dy[n, c, y, x] added at pixel
    mask[n, c, y, x] of plane (n, c) (overlapping windows sum). in_size = (H, W).

    Raises TypeError for non-float dy or a non-int32 mask, KernelError for bad shapes or mask
    entries outside [0, H*W).
    """
    op = "max_pool_backward"
    dy = _checks.float_array(op, "dy", dy)
    _checks.check_ndim(op, "dy", dy, 4, "(N, C, oh, ow)")
    N, C, H, W = _input_shape(op, dy, in_size)
    g = _geometry(op, (N, C, H, W), kernel, pad, stride, dy.shape[2:])
    mask = _mask_array(op, mask, dy.shape, out=False)
    dx = _checks.output(op, dx, (N, C, H, W), dy.dtype, name="dx")
    k = native.kernels()
    if k is not None:
        k.max_pool_backward(dy, mask, g[2:], dx)
        return dx
    bad = np.flatnonzero((mask < -1) | (mask >= H * W))
    if bad.size:
        raise _checks.KernelError(f"{op}: mask entry {bad[0]} = {mask.reshape(-1)[bad[0]]}; "
                                  f"expected -1 or an index in [0, {H * W})")
    return _np_max_pool_backward(dy, mask, g, dx)


def ave_pool_forward(x, kernel, pad, stride, out_size, out=None):
    """AVE pooling: x (N, C, H, W) -> out (N, C, oh, ow), Caffe's divisor (see the module).

    kernel, pad, stride, out_size are (h, w) pairs as for max_pool_forward.
    Raises TypeError for non-float x, KernelError for bad geometry/shapes.
    """
    x, g, out = _ave_pool_args(x, kernel, pad, stride, out_size, out)
    k = native.kernels()
    if k is not None:
        k.ave_pool_forward(x, g[2:], out)
        return out
    return _np_ave_pool_forward(x, g, out)


def _ave_pool_args(x, kernel, pad, stride, out_size, out):
    """ave_pool_forward's checked arguments (x, geometry tuple, out), out allocated when None."""
    op = "ave_pool_forward"
    x = _checks.float_array(op, "x", x)
    _checks.check_ndim(op, "x", x, 4, "(N, C, H, W)")
    g = _geometry(op, x.shape, kernel, pad, stride, out_size)
    out = _checks.output(op, out, x.shape[:2] + g[-2:], x.dtype)
    return x, g, out


def ave_pool_backward(dy, in_size, kernel, pad, stride, dx=None):
    """Gradient of ave_pool_forward: dy (N, C, oh, ow) -> dx (N, C, H, W), in_size = (H, W);
    each dy is spread as dy / size over its clipped window (overlaps sum)."""
    op = "ave_pool_backward"
    dy = _checks.float_array(op, "dy", dy)
    _checks.check_ndim(op, "dy", dy, 4, "(N, C, oh, ow)")
    N, C, H, W = _input_shape(op, dy, in_size)
    g = _geometry(op, (N, C, H, W), kernel, pad, stride, dy.shape[2:])
    dx = _checks.output(op, dx, (N, C, H, W), dy.dtype, name="dx")
    k = native.kernels()
    if k is not None:
        k.ave_pool_backward(dy, g[2:], dx)
        return dx
    return _np_ave_pool_backward(dy, g, dx)


def _input_shape(op, dy, in_size):
    if not isinstance(in_size, (tuple, list)) or len(in_size) != 2 or min(in_size) < 1:
        raise _checks.KernelError(f"{op}: in_size = {in_size!r}; expected (H, W) >= 1")
    return dy.shape[:2] + (int(in_size[0]), int(in_size[1]))
