import numpy as np
import pytest

from minicaffe import ops
from minicaffe.errors import KernelError
from minicaffe.testing import reference

# M, N, K of 1, below/at/above typical block sizes (16, 64, 256) and odd sizes.
SIZES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (4, 6, 1), (16, 64, 16), (17, 65, 257), (33, 3, 70)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,n,k", SIZES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_gemm_matches_reference(engine, rng, dtype, m, n, k, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    got = ops.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    want = reference.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.sqrt(k),
                               err_msg=f"M,N,K={m},{n},{k} trans={trans_a},{trans_b}")


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (0.0, 3.0), (2.0, 0.0)])
def test_gemm_alpha_beta(engine, rng, alpha, beta):
    a, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    c = rng.standard_normal((5, 3))
    want = reference.gemm(a, b, c, alpha=alpha, beta=beta)
    got = ops.gemm(a, b, out=c, alpha=alpha, beta=beta)
    assert got is c
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_beta_zero_ignores_nan_in_out(engine, rng):
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((2, 4))
    out = np.full((3, 4), np.nan)
    np.testing.assert_allclose(ops.gemm(a, b, out=out), a @ b, rtol=1e-12)


def test_gemm_mismatched_inner_dimension(engine):
    with pytest.raises(KernelError, match=r"^gemm: op\(a\) is \(2, 3\) but op\(b\) is \(4, 5\); "
                                          r"inner dimensions must agree \(trans_a=False, "
                                          r"trans_b=False\)$"):
        ops.gemm(np.zeros((2, 3)), np.zeros((4, 5)))


def test_gemm_mixed_dtypes(engine):
    with pytest.raises(TypeError, match=r"^gemm: b has dtype float64 but a has float32; all "
                                        r"operands must share one dtype$"):
        ops.gemm(np.zeros((2, 3), np.float32), np.zeros((3, 5)))


def test_gemm_beta_without_out(engine):
    with pytest.raises(KernelError, match=r"^gemm: beta = 1.0 scales out, but out was not given$"):
        ops.gemm(np.zeros((2, 3)), np.zeros((3, 5)), beta=1.0)


def test_gemm_rejects_1d(engine):
    with pytest.raises(KernelError, match=r"^gemm: a has shape \(3,\); expected 2 dimensions"):
        ops.gemm(np.zeros(3), np.zeros((3, 5)))


@pytest.mark.parametrize("m,n,k", [(1, 37, 19), (23, 1, 19), (1, 1, 5)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, -2.0)])
def test_one_row_or_column_products(engine, rng, m, n, k, trans_a, trans_b, alpha, beta):
    """One row or one column of C: the compiled path runs these as matrix-vector products (a
    batch-1 fully connected layer); alpha, beta and beta = 0 over NaN behave as for GEMM."""
    a = rng.standard_normal((k, m) if trans_a else (m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    c = rng.standard_normal((m, n)) if beta else np.full((m, n), np.nan)
    want = reference.gemm(a, b, None if not beta else c.copy(), alpha=alpha, beta=beta,
                          trans_a=trans_a, trans_b=trans_b)
    got = ops.gemm(a, b, out=c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12,
                               err_msg=f"M,N,K={m},{n},{k} trans={trans_a},{trans_b}")


@pytest.mark.parametrize("m,n", [(1, 4096), (4096, 1)])
def test_one_row_or_column_split_over_threads(engine, rng, threads, m, n):
    """Large enough to be split over the threads (>= 2M multiply-adds): every share is still a
    one-row or one-column product."""
    a = rng.standard_normal((m, 600)).astype(np.float32)
    b = rng.standard_normal((600, n)).astype(np.float32)
    np.testing.assert_allclose(ops.gemm(a, b), reference.gemm(a, b), rtol=1e-4, atol=1e-3)
