import numpy as np
import pytest

from minicaffe import ops
from minicaffe.errors import KernelError
from minicaffe.ops import ConvGeometry
from minicaffe.testing import reference

MODES = ["dense", "compact", "csr"]


def structured(rng, m, k, row_sparsity, col_sparsity, elem_sparsity=0.0, dtype="float32"):
    """Random (m, k) weights with that fraction of rows, columns and elements zeroed."""
    w = rng.standard_normal((m, k)).astype(dtype)
    w[rng.permutation(m)[:round(row_sparsity * m)]] = 0
    w[:, rng.permutation(k)[:round(col_sparsity * k)]] = 0
    w[rng.random((m, k)) < elem_sparsity] = 0
    return w


CASES = {  # (M, K, ncols, row sparsity, column sparsity, element sparsity)
    "no_sparsity": (7, 12, 9, 0.0, 0.0, 0.0),
    "half": (8, 12, 10, 0.5, 0.5, 0.0),
    "all_rows_removed": (6, 10, 5, 1.0, 0.0, 0.0),
    "all_cols_removed": (6, 10, 5, 0.0, 1.0, 0.0),
    "elementwise_half": (9, 20, 33, 0.0, 0.0, 0.5),
    "empty_csr_rows": (10, 8, 17, 0.3, 0.0, 0.9),
    "m1": (1, 13, 40, 0.0, 0.3, 0.0),
    "k1": (5, 1, 40, 0.2, 0.0, 0.0),
    "n1": (12, 30, 1, 0.25, 0.5, 0.2),
    "wide_n": (20, 50, 300, 0.1, 0.6, 0.3),
    "n_whole_vectors": (7, 25, 48, 0.1, 0.2, 0.5),  # CSR remainder of whole 64-byte vectors
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
def test_matmul_matches_reference(engine, rng, mode, dtype, case):
    m, k, n, rs, cs, es = CASES[case]
    w = structured(rng, m, k, rs, cs, es, dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    weights = ops.make_weights(w, mode)
    out = np.full((m, n), np.nan, dtype=dtype)
    got = ops.matmul(weights, b, out=out)
    assert got is out
    want = reference.compact_matmul(w, b.astype(np.float64))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.sqrt(k),
                               err_msg=f"{mode} {case}")
    zero_rows = ~(w != 0).any(axis=1)
    assert (got[zero_rows] == 0).all(), "removed rows must be exact zeros"


@pytest.mark.parametrize("case", ["half", "all_rows_removed", "all_cols_removed", "n1"])
def test_compact_matmul_on_kept_rows_only(engine, rng, case):
    m, k, n, rs, cs, es = CASES[case]
    w = structured(rng, m, k, rs, cs, es)
    b = rng.standard_normal((k, n)).astype(np.float32)
    cw = ops.CompactWeights(w)
    got = ops.matmul(cw, np.ascontiguousarray(b[cw.cols]))
    np.testing.assert_allclose(got, reference.compact_matmul(w, b), rtol=1e-5, atol=1e-5)


def test_csr_reference_layout(rng):
    w = structured(rng, 6, 7, 0.3, 0.0, 0.5)
    csr = ops.CSRWeights(w)
    indptr, indices, data = reference.csr_from_dense(w)
    np.testing.assert_array_equal(csr.indptr, indptr)
    np.testing.assert_array_equal(csr.indices, indices)
    np.testing.assert_array_equal(csr.data, data)
    np.testing.assert_allclose(reference.csrmm(indptr, indices, data, np.eye(7)), w)


def test_compact_weights_fields(rng):
    w = np.zeros((4, 6), np.float32)
    w[1, 2], w[3, 5], w[1, 5] = 1.0, 2.0, 3.0
    cw = ops.CompactWeights(w)
    np.testing.assert_array_equal(cw.rows, [1, 3])
    np.testing.assert_array_equal(cw.cols, [2, 5])
    np.testing.assert_array_equal(cw.packed, [[1, 3], [0, 2]])
    assert cw.row_sparsity == 0.5 and cw.col_sparsity == pytest.approx(2 / 3)
    assert cw.ideal_speedup == pytest.approx(6.0)
    np.testing.assert_array_equal(cw.dense(), w)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["no_sparsity", "half", "all_rows_removed", "n1", "wide_n"])
def test_linear_matches_reference(engine, rng, mode, case):
    m, k, n, rs, cs, es = CASES[case]
    w = structured(rng, m, k, rs, cs, es)
    x = rng.standard_normal((n, k)).astype(np.float32)
    got = ops.linear(x, ops.make_weights(w, mode))
    want = reference.compact_matmul(w, x.T.astype(np.float64)).T
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 1.0])
def test_conv_forward_lower_then_matmul(engine, rng, mode, n, sparsity):
    g = ConvGeometry(3, 9, 8, 3, 3, 1, 1, 2, 1)
    w = structured(rng, 5, g.rows, sparsity * 0.5, sparsity, 0.0, "float64")
    x = rng.standard_normal((n, 3, 9, 8))
    weights = ops.make_weights(w, mode)
    cols = ops.lower(x, g, weights)
    if mode == "compact":
        assert cols.shape == (len(weights.cols), n * g.cols)
    got = ops.matmul(weights, cols)
    full = reference.im2col_batch(x, 3, 9, 8, 3, 3, 1, 1, 2, 1, 1, 1)
    np.testing.assert_allclose(got, w @ full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["LOWERED_GEMM", "LOWERED_CCNMM", "LOWERED_CSRMM"])
def test_make_weights_accepts_conv_mode_names(mode):
    expected = {"LOWERED_GEMM": ops.DenseWeights, "LOWERED_CCNMM": ops.CompactWeights,
                "LOWERED_CSRMM": ops.CSRWeights}[mode]
    assert isinstance(ops.make_weights(np.eye(3), mode), expected)


def test_make_weights_unknown_mode():
    with pytest.raises(ValueError, match=r"^make_weights: mode = 'sparse'; expected one of dense, "
                                         r"compact, csr or LOWERED_GEMM"):
        ops.make_weights(np.eye(3), "sparse")


@pytest.mark.parametrize("mode", MODES)
def test_matmul_shape_mismatch(engine, mode):
    weights = ops.make_weights(np.ones((3, 4)), mode)
    with pytest.raises(KernelError, match=r"^matmul: cols has"):
        ops.matmul(weights, np.ones((5, 2)))


def test_matmul_mixed_dtype(engine):
    with pytest.raises(TypeError, match=r"^matmul: cols has dtype float32 but weights has "
                                        r"float64"):
        ops.matmul(ops.DenseWeights(np.ones((3, 4))), np.ones((4, 2), np.float32))


def test_matmul_rejects_raw_arrays(engine):
    with pytest.raises(TypeError, match=r"^matmul: weights must be DenseWeights, CompactWeights "
                                        r"or CSRWeights \(see ops.make_weights\), got ndarray$"):
        ops.matmul(np.ones((3, 4)), np.ones((4, 2)))


def test_lower_checks_k(engine):
    g = ConvGeometry(2, 4, 4, 2, 2)
    with pytest.raises(KernelError, match=r"^lower: geom lowers to 8 rows \(C\*kh\*kw\) but the "
                                          r"weights have K = 9 \(shape \(3, 9\)\)$"):
        ops.lower(np.zeros((1, 2, 4, 4)), g, ops.DenseWeights(np.ones((3, 9))))


def test_dense_weights_share_the_callers_array():
    w = np.ones((2, 3))
    dw = ops.DenseWeights(w)
    w[0, 0] = 5
    assert dw.w[0, 0] == 5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_forward_matches_lower_then_matmul(engine, rng, mode, n, sparsity, dtype):
    g = ConvGeometry(3, 9, 8, 3, 3, 1, 1, 2, 1)
    w = structured(rng, 6, g.rows, sparsity * 0.5, sparsity, 0.0, dtype)
    x = rng.standard_normal((n, 3, 9, 8)).astype(dtype)
    out = np.full((6, n * g.cols), np.nan, dtype=dtype)
    got = ops.conv_forward(x, g, ops.make_weights(w, mode), out=out)
    assert got is out
    full = reference.im2col_batch(x, 3, 9, 8, 3, 3, 1, 1, 2, 1, 1, 1)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, w.astype(np.float64) @ full, rtol=rtol, atol=rtol)
    assert (got[~(w != 0).any(axis=1)] == 0).all()


def test_conv_forward_checks(engine):
    g = ConvGeometry(2, 4, 4, 2, 2)
    with pytest.raises(KernelError, match=r"^conv_forward: geom lowers to 8 rows"):
        ops.conv_forward(np.zeros((1, 2, 4, 4)), g, ops.DenseWeights(np.ones((3, 9))))
    with pytest.raises(TypeError, match=r"^conv_forward: x has dtype float32 but weights has "
                                        r"float64"):
        ops.conv_forward(np.zeros((1, 2, 4, 4), np.float32), g, ops.DenseWeights(np.ones((3, 8))))
