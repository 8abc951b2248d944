"""Dense convolution for training: NCHW forward with the bias fused, and its backward.

`conv_forward_nchw` and `conv_backward` take the lowered weights w (M, C/group*kh*kw) of all
groups (group gi owns filters gi*M/group.. and channels gi*C/group..), so a Convolution layer
calls each once per batch. The compiled kernels split the batch over threads by whole images
(kernels/conv.cc); the NumPy twins run the same chunks one after another and are the reference.
"""
import numpy as np

from minicaffe.errors import KernelError
from minicaffe.ops import _checks, native
from minicaffe.ops.formats import CompactWeights
from minicaffe.ops.im2col import _check_input, _np_col2im_batch, _np_im2col_batch

BLOCK_BYTES = 1 << 20  # lowered input per chunk of images: stays in the core's L2 cache


def _check_weights(op, x, geom, w, group):
    w = _checks.float_array(op, "w", w)
    _checks.same_dtype(op, x=x, w=w)
    _checks.check_ndim(op, "w", w, 2, "(M, C/group*kh*kw)")
    if isinstance(group, bool) or int(group) != group or group < 1 or geom.C % group:
        raise KernelError(f"{op}: group = {group!r}; expected a divisor of the {geom.C} channels")
    M = w.shape[0]
    if M % group or w.shape[1] != geom.rows // group:
        raise KernelError(f"{op}: w has shape {tuple(w.shape)}; expected (M, C/group*kh*kw) = "
                          f"(a multiple of {group}, {geom.rows // group})")
    return w, int(group)


def _vector(op, name, v, M, dtype, writeable=False):
    if v is None:
        return None
    if writeable:
        return _checks.output(op, v, (M,), dtype, name=name)
    v = _checks.float_array(op, name, v)
    if v.shape != (M,) or v.dtype != dtype:
        raise KernelError(f"{op}: {name} has shape {tuple(v.shape)} and dtype {v.dtype}; "
                          f"expected ({M},) {np.dtype(dtype)}")
    return v


def conv_forward_nchw(x, geom, w, group=1, bias=None, out=None, block_bytes=BLOCK_BYTES):
    """out (N, M, oh*ow) = convolution of x (N, C, H, W) by w (M, C/group*kh*kw), + bias (M,).

    `w` may also be the CompactWeights of a one-group convolution: only its kept columns are
    lowered, the GEMM has its kept rows only, and removed filters output their bias.
    Raises TypeError for mixed or non-float dtypes, KernelError for shapes that disagree.
    """
    args = _forward_args(x, geom, w, group, bias, out, block_bytes)
    out = args[5]
    k = native.kernels()
    if k is not None:
        k.conv_forward_nchw(*args)
        return out
    x, bias = args[0], args[4]
    if isinstance(w, CompactWeights):
        return _np_forward_compact(x, geom, w, bias, out, block_bytes)
    w, group = args[3], args[2]
    M = w.shape[0]
    P, mg, kg = geom.cols, M // group, geom.rows // group
    for n0, n in _chunks(x.shape[0], geom, x.dtype, block_bytes):
        cols = _np_im2col_batch(x[n0:n0 + n], geom, np.empty((geom.rows, n * P), x.dtype))
        for gi in range(group):
            y = w[gi * mg:(gi + 1) * mg] @ cols[gi * kg:(gi + 1) * kg]
            out[n0:n0 + n, gi * mg:(gi + 1) * mg] = y.reshape(mg, n, P).transpose(1, 0, 2)
    if bias is not None:
        out += bias[:, None]
    return out


def _forward_args(x, geom, w, group=1, bias=None, out=None, block_bytes=BLOCK_BYTES):
    """The checked arguments of conv_forward_nchw as the compiled kernel takes them:
    (x, geom tuple, group, weights or packed block, bias, out, block_bytes, rows, cols), with
    `out` allocated when None; rows and cols are None for dense weights. Raises as
    conv_forward_nchw does (an inference plan binds these once)."""
    op = "conv_forward_nchw"
    x = _check_input(op, x, geom, batched=True)
    if isinstance(w, CompactWeights):
        if group != 1:
            raise KernelError(f"{op}: CompactWeights hold one group; got group = {group!r} (pass "
                              "each group's weights and channels separately)")
        if w.shape[1] != geom.rows:
            raise KernelError(f"{op}: geom lowers to {geom.rows} rows (C*kh*kw) but the weights "
                              f"have K = {w.shape[1]} (shape {w.shape})")
        _checks.same_dtype(op, x=x, weights=w.packed)
        M = w.shape[0]
        bias = _vector(op, "bias", bias, M, x.dtype)
        out = _checks.output(op, out, (x.shape[0], M, geom.cols), x.dtype)
        return (x, geom.native, 1, w._padded, bias, out, int(block_bytes), w.rows, w.cols)
    w, group = _check_weights(op, x, geom, w, group)
    M = w.shape[0]
    bias = _vector(op, "bias", bias, M, x.dtype)
    out = _checks.output(op, out, (x.shape[0], M, geom.cols), x.dtype)
    return (x, geom.native, group, w, bias, out, int(block_bytes), None, None)


def _np_forward_compact(x, geom, w, bias, out, block_bytes):
    P = geom.cols
    out[...] = 0 if bias is None else bias[:, None]
    for n0, n in _chunks(x.shape[0], geom, x.dtype, block_bytes):
        cols = _np_im2col_batch(x[n0:n0 + n], geom, np.empty((geom.rows, n * P), x.dtype))
        y = w.packed @ cols[w.cols]
        out[n0:n0 + n, w.rows] += y.reshape(len(w.rows), n, P).transpose(1, 0, 2)
    return out


def conv_backward(x, geom, w, dy, dw, group=1, db=None, dx=None, block_bytes=BLOCK_BYTES):
    """Gradients of conv_forward_nchw from dy (N, M, oh*ow): dw (M, C/group*kh*kw) += dL/dw,
    db (M,) += dL/dbias, dx (N, C, H, W) = dL/dx (overwritten). db and dx may be None.
    """
    op = "conv_backward"
    x = _check_input(op, x, geom, batched=True)
    w, group = _check_weights(op, x, geom, w, group)
    N, M, P = x.shape[0], w.shape[0], geom.cols
    dy = _checks.float_array(op, "dy", dy)
    _checks.same_dtype(op, x=x, dy=dy)
    if dy.shape != (N, M, P):
        raise KernelError(f"{op}: dy has shape {tuple(dy.shape)}; expected (N, M, oh*ow) = "
                          f"({N}, {M}, {P})")
    dw = _checks.output(op, dw, w.shape, x.dtype, name="dw")
    db = _vector(op, "db", db, M, x.dtype, writeable=True)
    if dx is not None:
        dx = _checks.output(op, dx, x.shape, x.dtype, name="dx")
    k = native.kernels()
    if k is not None:
        k.conv_backward(x, geom.native, group, w, dy, dw, db, dx, int(block_bytes))
        return dw, db, dx
    mg, kg = M // group, geom.rows // group
    for n0, n in _chunks(N, geom, x.dtype, block_bytes):
        cols = _np_im2col_batch(x[n0:n0 + n], geom, np.empty((geom.rows, n * P), x.dtype))
        dy2 = dy[n0:n0 + n].transpose(1, 0, 2).reshape(M, n * P)
        if db is not None:
            db += dy2.sum(axis=1)
        dcols = np.empty_like(cols) if dx is not None else None
        for gi in range(group):
            rows, ks = slice(gi * mg, (gi + 1) * mg), slice(gi * kg, (gi + 1) * kg)
            dw[rows] += dy2[rows] @ cols[ks].T
            if dcols is not None:
                dcols[ks] = w[rows].T @ dy2[rows]
        if dx is not None:
            _np_col2im_batch(dcols, geom, n, dx[n0:n0 + n])
    return dw, db, dx


def _chunks(N, geom, dtype, block_bytes):
    """(first image, count) of chunks whose lowered input is about block_bytes."""
    per = max(1, min(N, int(block_bytes) // (geom.rows * geom.cols * np.dtype(dtype).itemsize)))
    return [(n0, min(per, N - n0)) for n0 in range(0, N, per)]
