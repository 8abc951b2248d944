"""Weight formats of a lowered weight matrix W (M, K): dense, compact (SSL) and CSR.

Rows of W are filters / outputs, columns are shape fibres / inputs (the SSL paper's words).
The format a layer holds decides which kernel `ops.matmul` runs:
- DenseWeights:   the matrix itself (a reference, not a copy), plain GEMM.
- CompactWeights: all-zero rows and columns removed; `packed` (m_kept, k_kept) holds
                  W[rows][:, cols]. Only the kept columns are lowered and rows not kept are
                  written as 0 (the ideal speedup is M*K / (m_kept*k_kept)).
- CSRWeights:     compressed sparse rows of the nonzeros (indptr, indices, data).
"""
import numpy as np

from minicaffe.ops import _checks

MODES = ("dense", "compact", "csr")
CONV_MODES = {"LOWERED_GEMM": "dense", "LOWERED_CCNMM": "compact", "LOWERED_CSRMM": "csr"}


def _weights_2d(op, w2d):
    w2d = _checks.float_array(op, "w2d", w2d)
    _checks.check_ndim(op, "w2d", w2d, 2, "(M, K)")
    return w2d


class DenseWeights:
    """W (M, K) used as is. `w` is the caller's array (updates show through), C-contiguous."""

    format = "dense"

    def __init__(self, w2d):
        self.w = _weights_2d("DenseWeights", w2d)
        self.shape = tuple(self.w.shape)
        self.dtype = self.w.dtype

    @property
    def nnz(self):
        return int(np.count_nonzero(self.w))

    def dense(self):
        """The (M, K) matrix."""
        return self.w

    def __repr__(self):
        return f"DenseWeights(shape={self.shape}, dtype={self.dtype})"


class CompactWeights:
    """W (M, K) with its all-zero rows and columns removed.

    Attributes: `rows` (m_kept,) and `cols` (k_kept,) int64 strictly increasing kept indices,
    `packed` (m_kept, k_kept) C-contiguous = W[rows][:, cols], `shape` (M, K), `dtype`,
    `row_sparsity`, `col_sparsity` (fractions removed) and `ideal_speedup` = M*K/(m_kept*k_kept)
    (inf when everything is removed).
    """

    format = "compact"

    def __init__(self, w2d):
        w2d = _weights_2d("CompactWeights", w2d)
        nonzero = w2d != 0
        self.rows = np.flatnonzero(nonzero.any(axis=1)).astype(np.int64)
        self.cols = np.flatnonzero(nonzero.any(axis=0)).astype(np.int64)
        # `packed` is the top of a buffer padded with zero rows to a multiple of 4 (at most M):
        # OpenBLAS runs e.g. 88 rows faster than 87, and the compiled compacted GEMM uses the
        # padded block (the extra output rows are zeros it overwrites or clears anyway).
        m_kept = len(self.rows)
        m_pad = min(w2d.shape[0], -(-m_kept // 4) * 4)
        self._padded = np.zeros((m_pad, len(self.cols)), dtype=w2d.dtype)
        self._padded[:m_kept] = w2d[np.ix_(self.rows, self.cols)]
        self.packed = self._padded[:m_kept]
        self.shape = tuple(w2d.shape)
        self.dtype = w2d.dtype

    @property
    def row_sparsity(self):
        return 1.0 - len(self.rows) / self.shape[0] if self.shape[0] else 0.0

    @property
    def col_sparsity(self):
        return 1.0 - len(self.cols) / self.shape[1] if self.shape[1] else 0.0

    @property
    def ideal_speedup(self):
        kept = len(self.rows) * len(self.cols)
        return self.shape[0] * self.shape[1] / kept if kept else float("inf")

    @property
    def nnz(self):
        return int(np.count_nonzero(self.packed))

    def dense(self):
        """The (M, K) matrix rebuilt (zeros where removed)."""
        w = np.zeros(self.shape, dtype=self.dtype)
        w[np.ix_(self.rows, self.cols)] = self.packed
        return w

    def __repr__(self):
        return (f"CompactWeights(shape={self.shape}, kept={len(self.rows)}x{len(self.cols)}, "
                f"dtype={self.dtype})")


class CSRWeights:
    """W (M, K) as compressed sparse rows of its nonzeros.

    `indptr` (M+1,) int64, `indices` (nnz,) int64 (increasing within a row), `data` (nnz,).
    """

    format = "csr"

    def __init__(self, w2d):
        w2d = _weights_2d("CSRWeights", w2d)
        rows, cols = np.nonzero(w2d)
        self.shape = tuple(w2d.shape)
        self.dtype = w2d.dtype
        self.indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.shape[0]), out=self.indptr[1:])
        self.indices = cols.astype(np.int64)
        self.data = np.ascontiguousarray(w2d[rows, cols])

    @property
    def nnz(self):
        return int(self.data.size)

    @property
    def sparsity(self):
        size = self.shape[0] * self.shape[1]
        return 1.0 - self.nnz / size if size else 0.0

    def dense(self):
        """The (M, K) matrix rebuilt."""
        w = np.zeros(self.shape, dtype=self.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        w[rows, self.indices] = self.data
        return w

    def scipy(self):
        """The same matrix as scipy.sparse.csr_matrix (shares the arrays)."""
        import scipy.sparse  # noqa: PLC0415

        return scipy.sparse.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def __repr__(self):
        return f"CSRWeights(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype})"


_FORMATS = {"dense": DenseWeights, "compact": CompactWeights, "csr": CSRWeights}


def make_weights(w2d, mode="dense"):
    """Build the weight format for `mode`: "dense" | "compact" | "csr", or a Caffe conv_mode
    name (LOWERED_GEMM | LOWERED_CCNMM | LOWERED_CSRMM). Raises ValueError for other modes."""
    key = CONV_MODES.get(mode, mode)
    if key not in _FORMATS:
        raise ValueError(f"make_weights: mode = {mode!r}; expected one of "
                         f"{', '.join(MODES)} or {', '.join(CONV_MODES)}")
    return _FORMATS[key](w2d)
