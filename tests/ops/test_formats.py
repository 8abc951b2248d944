"""ops.formats: every attribute of the three weight formats against loops over the matrix."""
import numpy as np
import pytest

from minicaffe.errors import KernelError
from minicaffe.ops import formats as F


def structured(rng, m, k, dead_rows=(), dead_cols=(), density=1.0):
    w = rng.standard_normal((m, k))
    w[rng.random((m, k)) >= density] = 0
    w[list(dead_rows)] = 0
    w[:, list(dead_cols)] = 0
    return w


# (M, K, dead rows, dead columns, element density): non-square both ways, all and nothing kept,
# 4 rows of 12 kept (the zero-padded block behind `packed` stays 4 rows: a multiple of 4)
SHAPES = [(5, 7, [1, 3], [0, 6], 1.0), (7, 5, [], [2], 0.6), (4, 4, [0, 1, 2, 3], [], 1.0),
          (3, 9, [], [], 0.3), (9, 3, [8], [0, 1, 2], 1.0), (1, 1, [], [], 1.0),
          (6, 2, [5], [], 0.5), (12, 3, [0, 1, 2, 3, 4, 5, 6, 7], [], 1.0)]


@pytest.mark.parametrize("m, k, dead_rows, dead_cols, density", SHAPES)
def test_compact_attributes_match_loops(rng, m, k, dead_rows, dead_cols, density):
    w = structured(rng, m, k, dead_rows, dead_cols, density)
    cw = F.CompactWeights(w)
    rows = [r for r in range(m) if any(w[r, c] != 0 for c in range(k))]
    cols = [c for c in range(k) if any(w[r, c] != 0 for r in range(m))]
    assert cw.rows.tolist() == rows and cw.cols.tolist() == cols
    assert cw.rows.dtype == cw.cols.dtype == np.int64
    assert cw.shape == (m, k) and cw.dtype == w.dtype and cw.format == "compact"
    np.testing.assert_array_equal(cw.packed, [[w[r, c] for c in cols] for r in rows]
                                  if rows and cols else np.zeros((len(rows), len(cols))))
    assert cw.packed.flags.c_contiguous
    assert cw.row_sparsity == pytest.approx(1 - len(rows) / m)
    assert cw.col_sparsity == pytest.approx(1 - len(cols) / k)
    kept = len(rows) * len(cols)
    assert cw.ideal_speedup == (pytest.approx(m * k / kept) if kept else float("inf"))
    assert cw.nnz == sum(w[r, c] != 0 for r in range(m) for c in range(k))
    np.testing.assert_array_equal(cw.dense(), w)
    # the padded block behind `packed`: rows to a multiple of 4, never more than M, zeros
    m_pad = cw._padded.shape[0]
    assert m_pad == min(m, -(-len(rows) // 4) * 4) and not cw._padded[len(rows):].any()
    assert repr(cw) == f"CompactWeights(shape=({m}, {k}), kept={len(rows)}x{len(cols)}, " \
                       f"dtype=float64)"


@pytest.mark.parametrize("m, k, dead_rows, dead_cols, density", SHAPES)
def test_csr_attributes_match_loops(rng, m, k, dead_rows, dead_cols, density):
    w = structured(rng, m, k, dead_rows, dead_cols, density)
    cw = F.CSRWeights(w)
    indptr, indices, data = [0], [], []
    for r in range(m):
        for c in range(k):
            if w[r, c] != 0:
                indices.append(c)
                data.append(w[r, c])
        indptr.append(len(indices))
    assert cw.indptr.tolist() == indptr and cw.indices.tolist() == indices
    assert cw.data.tolist() == data
    assert cw.indptr.dtype == cw.indices.dtype == np.int64 and cw.data.flags.c_contiguous
    assert cw.shape == (m, k) and cw.format == "csr" and cw.nnz == len(data)
    assert cw.sparsity == pytest.approx(1 - len(data) / (m * k))
    np.testing.assert_array_equal(cw.dense(), w)
    np.testing.assert_array_equal(cw.scipy().toarray(), w)
    assert repr(cw) == f"CSRWeights(shape=({m}, {k}), nnz={len(data)}, dtype=float64)"


def test_dense_is_the_callers_array(rng):
    w = rng.standard_normal((3, 4)).astype(np.float32)
    dw = F.DenseWeights(w)
    assert dw.dense() is w and dw.w is w and dw.shape == (3, 4) and dw.dtype == np.float32
    w[0, 0] = 0
    assert dw.nnz == 11 and dw.format == "dense"
    assert repr(dw) == "DenseWeights(shape=(3, 4), dtype=float32)"


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
def test_empty_matrices(shape):
    """No rows or no columns: nothing to remove is 0 sparsity; all-zero columns are removed."""
    w = np.zeros(shape)
    cw, csr = F.CompactWeights(w), F.CSRWeights(w)
    assert cw.row_sparsity == (1.0 if shape[0] else 0.0)
    assert cw.col_sparsity == (1.0 if shape[1] else 0.0)
    assert cw.ideal_speedup == float("inf")
    assert csr.sparsity == 0.0 and csr.nnz == 0
    assert csr.dense().shape == shape and cw.dense().shape == shape
    assert csr.indptr.tolist() == [0] * (shape[0] + 1)


def test_all_zero_and_full_matrices():
    z = F.CSRWeights(np.zeros((3, 5)))
    assert z.sparsity == 1.0 and z.nnz == 0
    full = F.CSRWeights(np.ones((3, 5)))
    assert full.sparsity == 0.0
    cz = F.CompactWeights(np.zeros((3, 5)))
    assert (cz.row_sparsity, cz.col_sparsity, cz.ideal_speedup) == (1.0, 1.0, float("inf"))


@pytest.mark.parametrize("mode, cls", [("dense", F.DenseWeights), ("compact", F.CompactWeights),
                                       ("csr", F.CSRWeights), ("LOWERED_GEMM", F.DenseWeights),
                                       ("LOWERED_CCNMM", F.CompactWeights),
                                       ("LOWERED_CSRMM", F.CSRWeights)])
def test_make_weights_modes(rng, mode, cls):
    w = rng.standard_normal((2, 3))
    assert type(F.make_weights(w, mode)) is cls
    assert type(F.make_weights(w)) is F.DenseWeights


def test_make_weights_refuses_other_modes():
    with pytest.raises(ValueError, match=r"^make_weights: mode = 'sparse'; expected one of dense, "
                                         r"compact, csr or LOWERED_GEMM, LOWERED_CCNMM, "
                                         r"LOWERED_CSRMM$"):
        F.make_weights(np.ones((2, 2)), "sparse")


@pytest.mark.parametrize("cls", [F.DenseWeights, F.CompactWeights, F.CSRWeights])
def test_bad_weights_are_named(cls):
    name = cls.__name__
    with pytest.raises(KernelError, match=rf"^{name}: w2d has shape \(2, 2, 2\); expected 2 "
                                          r"dimensions \(M, K\)$"):
        cls(np.ones((2, 2, 2)))
    with pytest.raises(TypeError, match=rf"^{name}: w2d has dtype int64"):
        cls(np.ones((2, 2), dtype=np.int64))
