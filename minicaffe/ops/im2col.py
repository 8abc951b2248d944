"""Lowering (im2col) and its adjoint (col2im), Caffe's layout, NCHW, float32/float64.

Lowered matrix of one image: (C*kh*kw, oh*ow), row r = c*kh*kw + i*kw + j, column p = y*ow + x,
entry = x_padded[c, y*sh + i*dh, x*sw + j*dw]. A batch of N images is lowered side by side:
(C*kh*kw, N*oh*ow), column n*oh*ow + p, so one GEMM serves the whole batch.
Each function runs the compiled kernel when it is available and its NumPy twin (`_np_*`)
otherwise; both share the argument checks.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from minicaffe.ops import _checks, native
from minicaffe.ops.geometry import ConvGeometry


def _check_input(op, x, geom, batched):
    if not isinstance(geom, ConvGeometry):
        raise TypeError(f"{op}: geom must be a ConvGeometry, got {type(geom).__name__}")
    _checks.check_geometry(op, geom)
    x = _checks.float_array(op, "x", x)
    if batched:
        _checks.check_ndim(op, "x", x, 4, "(N, C, H, W)")
        if x.shape[1:] != geom.image_shape:
            raise _checks.KernelError(f"{op}: x has shape {tuple(x.shape)}; geom expects "
                                      f"(N, C, H, W) = (N, {geom.C}, {geom.H}, {geom.W})")
    else:
        _checks.check_ndim(op, "x", x, 3, "(C, H, W)")
        if x.shape != geom.image_shape:
            raise _checks.KernelError(f"{op}: x has shape {tuple(x.shape)}; geom expects "
                                      f"(C, H, W) = ({geom.C}, {geom.H}, {geom.W})")
    return x


def _padded(x, g):
    """x (N, C, H, W) zero-padded to (N, C, H + 2ph, W + 2pw) (no copy without padding)."""
    if g.ph == 0 and g.pw == 0:
        return x
    xp = np.zeros(x.shape[:2] + (g.H + 2 * g.ph, g.W + 2 * g.pw), dtype=x.dtype)
    xp[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W] = x
    return xp


def _windows(x, g):
    """Read-only strided view (C, kh, kw, N, oh, ow) of the padded batch: the lowered matrix."""
    xp = _padded(x, g)
    sn, sc, sy, sx = xp.strides
    return as_strided(xp, shape=(g.C, g.kh, g.kw, xp.shape[0], g.oh, g.ow),
                      strides=(sc, g.dh * sy, g.dw * sx, sn, g.sh * sy, g.sw * sx),
                      writeable=False)


def _np_im2col_batch(x, g, out):
    out.reshape(g.C, g.kh, g.kw, x.shape[0], g.oh, g.ow)[...] = _windows(x, g)
    return out


def _np_im2col_rows(x, g, rows, out):
    c, rest = np.divmod(rows, g.kh * g.kw)
    i, j = np.divmod(rest, g.kw)
    out.reshape(len(rows), x.shape[0], g.oh, g.ow)[...] = _windows(x, g)[c, i, j]
    return out


def _np_col2im_batch(cols, g, n, out):
    hp, wp = g.H + 2 * g.ph, g.W + 2 * g.pw
    padded = out if (g.ph == 0 and g.pw == 0) else np.empty((n, g.C, hp, wp), out.dtype)
    padded.fill(0)
    cols6 = cols.reshape(g.C, g.kh, g.kw, n, g.oh, g.ow).transpose(3, 0, 1, 2, 4, 5)
    # One strided slice per kernel tap: inside a slice no two outputs overlap, so += is exact.
    for i in range(g.kh):
        y0 = i * g.dh
        for j in range(g.kw):
            x0 = j * g.dw
            padded[:, :, y0:y0 + g.sh * (g.oh - 1) + 1:g.sh,
                   x0:x0 + g.sw * (g.ow - 1) + 1:g.sw] += cols6[:, :, i, j]
    if padded is not out:
        out[...] = padded[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W]
    return out


def im2col_batch(x, geom, out=None):
    """Lower a batch for one GEMM.

    x: (N, C, H, W) -> (C*kh*kw, N*oh*ow), column n*oh*ow + p.
    Raises TypeError for a non-float dtype, KernelError for shapes that do not match `geom`.
    """
    x = _check_input("im2col_batch", x, geom, batched=True)
    out = _checks.output("im2col_batch", out, (geom.rows, x.shape[0] * geom.cols), x.dtype)
    k = native.kernels()
    if k is not None:
        k.im2col_batch(x, geom.native, out)
        return out
    return _np_im2col_batch(x, geom, out)


def im2col(x, geom, out=None):
    """Lower one image: x (C, H, W) -> (C*kh*kw, oh*ow), Caffe's im2col_cpu."""
    x = _check_input("im2col", x, geom, batched=False)
    out = _checks.output("im2col", out, (geom.rows, geom.cols), x.dtype)
    k = native.kernels()
    if k is not None:
        k.im2col_batch(x[None], geom.native, out)
        return out
    return _np_im2col_batch(x[None], geom, out)


def im2col_rows(x, geom, rows, out=None):
    """Lower only the listed rows of the batch's lowered matrix (the kept weight columns).

    x: (N, C, H, W); rows: strictly increasing indices into [0, C*kh*kw) ->
    (len(rows), N*oh*ow), equal to im2col_batch(x)[rows] without building the full matrix.
    """
    x = _check_input("im2col_rows", x, geom, batched=True)
    k = native.kernels()
    if k is not None:  # the kernel validates the list itself, in C, with the same messages
        rows = _checks.index_list("im2col_rows", "rows", rows)
    else:
        rows = _checks.check_index_list("im2col_rows", "rows", rows, geom.rows)
    out = _checks.output("im2col_rows", out, (len(rows), x.shape[0] * geom.cols), x.dtype)
    if k is not None:
        k.im2col_rows(x, geom.native, rows, out)
        return out
    return _np_im2col_rows(x, geom, rows, out)


def _check_cols(op, cols, geom, n):
    if not isinstance(geom, ConvGeometry):
        raise TypeError(f"{op}: geom must be a ConvGeometry, got {type(geom).__name__}")
    _checks.check_geometry(op, geom)
    cols = _checks.float_array(op, "cols", cols)
    want = (geom.rows, n * geom.cols)
    if tuple(cols.shape) != want:
        raise _checks.KernelError(f"{op}: cols has shape {tuple(cols.shape)}; expected "
                                  f"(C*kh*kw, N*oh*ow) = {want}")
    return cols


def col2im_batch(cols, geom, N, out=None):
    """Adjoint of im2col_batch: (C*kh*kw, N*oh*ow) -> (N, C, H, W), overlaps summed.

    `out` is overwritten (not accumulated into).
    """
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise _checks.KernelError(f"col2im_batch: N = {N!r}; expected an integer >= 1")
    N = int(N)
    cols = _check_cols("col2im_batch", cols, geom, N)
    out = _checks.output("col2im_batch", out, (N, geom.C, geom.H, geom.W), cols.dtype)
    k = native.kernels()
    if k is not None:
        k.col2im_batch(cols, geom.native, N, out)
        return out
    return _np_col2im_batch(cols, geom, N, out)


def col2im(cols, geom, out=None):
    """Adjoint of im2col: (C*kh*kw, oh*ow) -> (C, H, W), overlaps summed; `out` is overwritten."""
    cols = _check_cols("col2im", cols, geom, 1)
    out = _checks.output("col2im", out, (geom.C, geom.H, geom.W), cols.dtype)
    k = native.kernels()
    if k is not None:
        k.col2im_batch(cols, geom.native, 1, out[None])
        return out
    _np_col2im_batch(cols, geom, 1, out[None])
    return out
