"""Random geometries and sparsity patterns (hypothesis) against the naive loops."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicaffe import ops
from minicaffe.ops import ConvGeometry
from minicaffe.testing import reference


@st.composite
def geometries(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    # the input must hold the dilated kernel once padding is added
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 12))
    W = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 12))
    return ConvGeometry(draw(st.integers(1, 3)), H, W, kh, kw, ph, pw, sh, sw, dh, dw)


def args(g):
    return (g.C, g.H, g.W, g.kh, g.kw, g.ph, g.pw, g.sh, g.sw, g.dh, g.dw)


SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(g=geometries(), n=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_lowering_and_adjoint(engine, g, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, g.C, g.H, g.W))
    cols = ops.im2col_batch(x, g)
    want = reference.im2col_batch(x, *args(g))
    np.testing.assert_array_equal(cols, want, err_msg=str(g))
    rows = np.flatnonzero(rng.random(g.rows) < 0.5)
    np.testing.assert_array_equal(ops.im2col_rows(x, g, rows), want[rows], err_msg=str(g))
    y = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(ops.col2im_batch(y, g, n), reference.col2im_batch(y, n, *args(g)),
                               rtol=1e-12, atol=1e-12, err_msg=str(g))


@SETTINGS
@given(g=geometries(), n=st.integers(1, 3), m=st.integers(1, 9),
       rs=st.sampled_from([0.0, 0.3, 1.0]), cs=st.sampled_from([0.0, 0.5, 1.0]),
       es=st.sampled_from([0.0, 0.7]), mode=st.sampled_from(["dense", "compact", "csr"]),
       seed=st.integers(0, 2**31 - 1))
def test_conv_forward_random(engine, g, n, m, rs, cs, es, mode, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((m, g.rows)).astype(np.float32)
    w[rng.random(m) < rs] = 0
    w[:, rng.random(g.rows) < cs] = 0
    w[rng.random(w.shape) < es] = 0
    x = rng.standard_normal((n, g.C, g.H, g.W)).astype(np.float32)
    want = w.astype(np.float64) @ reference.im2col_batch(x, *args(g))
    weights = ops.make_weights(w, mode)
    got = ops.conv_forward(x, g, weights)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"{mode} {g}")
    np.testing.assert_allclose(ops.matmul(weights, ops.lower(x, g, weights)), want, rtol=1e-4,
                               atol=1e-4, err_msg=f"{mode} {g}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@SETTINGS
@given(m=st.integers(0, 40), k=st.integers(1, 40), n=st.integers(1, 200),
       density=st.sampled_from([0.0, 0.05, 0.5, 1.0]), seed=st.integers(0, 2**31 - 1))
def test_csrmm_random(engine, dtype, m, k, n, density, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((m, k)).astype(dtype)
    w[rng.random(w.shape) >= density] = 0
    b = rng.standard_normal((k, n)).astype(dtype)
    indptr, indices, data = reference.csr_from_dense(w)
    got = ops.matmul(ops.CSRWeights(w), b)
    tol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, reference.csrmm(indptr, indices, data, b), rtol=tol,
                               atol=tol)
