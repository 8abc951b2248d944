"""Fuzzing the ops facade (Hypothesis) with random shapes, dtypes, strides and geometry on both
paths (NumPy twins and compiled kernels): every call returns the reference's answer or raises
the documented TypeError / KernelError, never another exception or a crash (a signal kills the
test run). Budgets: minicaffe.testing.fuzz (MINICAFFE_FUZZ_SCALE for a long run)."""
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from minicaffe import ops
from minicaffe.errors import KernelError
from minicaffe.ops import ConvGeometry
from minicaffe.testing import reference
from minicaffe.testing.fuzz import fuzz_settings

pytestmark = [pytest.mark.fuzz, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

ALLOWED = (TypeError, KernelError)
DTYPES = ["float32", "float64", "float32", "float64", "float16", "int32", "bool", "complex64"]


DIMS = st.integers(0, 6)


@st.composite
def arrays(draw, ndim, dims=DIMS):
    """An array of about `ndim` axes (sometimes one more or less) with a random dtype and
    layout: C order, Fortran order, a transposed view, a strided or reversed slice."""
    nd = draw(st.sampled_from([ndim] * 6 + [max(0, ndim - 1), ndim + 1]))
    shape = tuple(draw(dims) for _ in range(nd))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layout = draw(st.sampled_from(["C", "C", "F", "T", "step", "reverse"]))
    if layout == "step" and nd:
        base = rng.standard_normal(shape[:-1] + (2 * shape[-1],))
        a = base[..., ::2]
    elif layout == "reverse" and nd:
        a = rng.standard_normal(shape)[..., ::-1]
    elif layout == "T" and nd > 1:
        a = rng.standard_normal(shape[::-1]).T
    else:
        a = np.asarray(rng.standard_normal(shape), order="F" if layout == "F" else "C")
    if draw(st.booleans()) and a.size:
        a = a.copy()
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(invalid="ignore"):
        out = a.astype(dtype, copy=False) if dtype.kind != "b" else a > 0
    if dtype.kind == "f" and layout in ("step", "reverse", "T") and nd:
        return out                                  # keep the view (non-contiguous)
    return out


def _float(*arrays_):
    return all(isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64)
               for a in arrays_)


def _close(got, want, dtype):
    tol = 2e-3 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max(
        initial=0, where=np.isfinite(want))))


ints = st.integers(-2, 5)


@fuzz_settings(150)
@given(a=arrays(2), b=arrays(2), ta=st.booleans(), tb=st.booleans(),
       alpha=st.sampled_from([1.0, 0.5, 0.0]), beta=st.sampled_from([0.0, 0.0, 1.0, -2.0]),
       with_out=st.booleans())
def test_gemm(engine, a, b, ta, tb, alpha, beta, with_out):
    out = None
    if with_out and _float(a, b) and a.ndim == 2 and b.ndim == 2:
        shape = (a.shape[1] if ta else a.shape[0], b.shape[0] if tb else b.shape[1])
        out = np.ones(shape, dtype=a.dtype)
    c0 = None if out is None else out.copy()
    try:
        got = ops.gemm(a, b, out=out, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb)
    except ALLOWED:
        return
    assume(np.isfinite(a).all() and np.isfinite(b).all())
    want = reference.gemm(a.astype(np.float64), b.astype(np.float64),
                          None if c0 is None else c0.astype(np.float64), alpha, beta, ta, tb)
    _close(got, want, a.dtype)


@st.composite
def geometries(draw):
    return ConvGeometry(*(draw(st.integers(lo, hi)) for lo, hi in
                          ((0, 3), (0, 7), (0, 7), (0, 4), (0, 4), (-1, 3), (-1, 3), (0, 3),
                           (0, 3), (0, 2), (0, 2))))


def _image(draw, g, batched):
    shape = ((draw(st.integers(0, 3)),) if batched else ()) + (g.C, g.H, g.W)
    if draw(st.integers(0, 9)) == 0:                  # a wrong shape now and then
        shape = shape[:-1] + (shape[-1] + 1,)
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape)
    dtype = draw(st.sampled_from(["float32", "float64", "float64", "int64"]))
    if draw(st.booleans()) and x.ndim:
        x = np.ascontiguousarray(x[..., ::-1])[..., ::-1]   # non-contiguous view, same values
    return x.astype(dtype, copy=False)


@fuzz_settings(150)
@given(g=geometries(), data=st.data())
def test_lowering_and_col2im(engine, g, data):
    x = _image(data.draw, g, batched=True)
    try:
        cols = ops.im2col_batch(x, g)
    except ALLOWED:
        cols = None
    if cols is not None and x.shape[0] == 0:
        assert cols.shape == (g.rows, 0)
    elif cols is not None:
        want = reference.im2col_batch(x.astype(np.float64), *g.native)
        _close(cols, want, x.dtype)
        back = ops.col2im_batch(cols, g, x.shape[0])
        _close(back, reference.col2im_batch(cols.astype(np.float64), x.shape[0], *g.native),
               x.dtype)
    y = _image(data.draw, g, batched=False)
    try:
        one = ops.im2col(y, g)
    except ALLOWED:
        return
    _close(one, reference.im2col(y.astype(np.float64), *g.native), y.dtype)


@fuzz_settings(150)
@given(g=geometries(), m=st.integers(0, 4), group=st.integers(0, 3), bias=st.booleans(),
       mode=st.sampled_from(["dense", "compact", "csr"]), data=st.data())
def test_convolution(engine, g, m, group, bias, mode, data):
    x = _image(data.draw, g, batched=True)
    k = (g.C // group if group and g.C % group == 0 else g.C) * g.kh * g.kw
    w = np.random.default_rng(0).standard_normal((m, max(k, 0))).astype(x.dtype)
    w[:, ::3] = 0
    b = np.ones(m, dtype=x.dtype) if bias else None
    try:
        y = ops.conv_forward_nchw(x, g, w, group=group, bias=b)
    except ALLOWED:
        y = None
    if y is not None:
        assert y.shape == (x.shape[0], m, g.oh * g.ow)
        dy = np.ones_like(y)
        dw, db, dx = np.zeros_like(w), (np.zeros_like(b) if bias else None), np.empty_like(x)
        ops.conv_backward(x, g, w, dy, dw, group=group, db=db, dx=dx)
        assert np.isfinite(dw).all() and np.isfinite(dx).all()
    try:
        weights = ops.make_weights(w, mode)
        cols = ops.lower(x, g, weights)
        got = ops.matmul(weights, cols)
    except ALLOWED:
        return
    if x.shape[0] == 0:
        assert got.shape == (m, 0)
        return
    full = reference.im2col_batch(x.astype(np.float64), *g.native)
    _close(got, w.astype(np.float64) @ full, x.dtype)


@fuzz_settings(100)
@given(x=arrays(2), w=arrays(2), mode=st.sampled_from(["dense", "compact", "csr"]))
def test_linear(engine, x, w, mode):
    try:
        weights = ops.make_weights(w, mode)
        got = ops.linear(x, weights)
    except ALLOWED:
        return
    assume(np.isfinite(x).all() and np.isfinite(w).all())
    _close(got, x.astype(np.float64) @ w.astype(np.float64).T, x.dtype)


pairs = st.one_of(st.tuples(ints, ints), st.tuples(ints), st.just((1.5, 2)), st.just(None),
                  st.tuples(ints, ints, ints))


@fuzz_settings(150)
@given(x=arrays(4, st.integers(0, 5)), kernel=pairs, pad=pairs, stride=pairs, out_size=pairs,
       ave=st.booleans())
@example(x=np.zeros((1, 1, 0, 0), np.float32), kernel=(2, 2), pad=(1, 1), stride=(1, 1),
         out_size=(1, 1), ave=False)                 # an empty plane: mask 0 on the NumPy path
def test_pooling(engine, x, kernel, pad, stride, out_size, ave):
    try:
        if ave:
            y = ops.ave_pool_forward(x, kernel, pad, stride, out_size)
            dx = ops.ave_pool_backward(np.ones_like(y), x.shape[2:], kernel, pad, stride)
        else:
            y, mask = ops.max_pool_forward(x, kernel, pad, stride, out_size)
            H, W = x.shape[2:]
            assert ((mask == -1) | ((mask >= 0) & (mask < H * W))).all()
            dx = ops.max_pool_backward(np.ones_like(y), mask, x.shape[2:], kernel, pad, stride)
    except ALLOWED:
        return
    assert y.shape == x.shape[:2] + tuple(out_size) and dx.shape == x.shape
