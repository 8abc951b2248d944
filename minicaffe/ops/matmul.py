"""GEMM entry points: plain `gemm`, and `lower` / `matmul` / `linear` that dispatch on the
weight format (dense GEMM, compacted GEMM, CSR x dense).

The convolution forward of one group is `matmul(weights, lower(x, geom, weights))`:
for CompactWeights only the kept columns of W are lowered, the GEMM is (m_kept, k_kept) x
(k_kept, N*oh*ow) and the rows of removed filters come out as exact zeros.
"""
import numpy as np

from minicaffe.errors import KernelError
from minicaffe.ops import _checks, native
from minicaffe.ops.formats import CompactWeights, CSRWeights, DenseWeights
from minicaffe.ops.im2col import _check_input, im2col_batch, im2col_rows


def gemm(a, b, out=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """out = alpha * op(a) @ op(b) + beta * out, op = transpose when trans_* (BLAS ?gemm).

    op(a): (M, K), op(b): (K, N) -> out (M, N). With beta != 0, `out` must be given (it is C).
    Raises TypeError for mixed or non-float dtypes, KernelError for mismatched shapes.
    """
    a = _checks.float_array("gemm", "a", a)
    b = _checks.float_array("gemm", "b", b)
    dtype = _checks.same_dtype("gemm", a=a, b=b)
    _checks.check_ndim("gemm", "a", a, 2, "(M, K)")
    _checks.check_ndim("gemm", "b", b, 2, "(K, N)")
    m, ka = a.shape[::-1] if trans_a else a.shape
    kb, n = b.shape[::-1] if trans_b else b.shape
    if ka != kb:
        raise KernelError(f"gemm: op(a) is ({m}, {ka}) but op(b) is ({kb}, {n}); inner "
                          f"dimensions must agree (trans_a={bool(trans_a)}, "
                          f"trans_b={bool(trans_b)})")
    if beta != 0 and out is None:
        raise KernelError(f"gemm: beta = {beta} scales out, but out was not given")
    out = _checks.output("gemm", out, (m, n), dtype)
    k = native.kernels()
    if k is not None:
        k.gemm(a, b, out, float(alpha), float(beta), bool(trans_a), bool(trans_b))
        return out
    product = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if beta == 0:
        np.multiply(product, alpha, out=out) if alpha != 1 else np.copyto(out, product)
    else:
        out *= beta
        out += alpha * product
    return out


def _check_format(op, weights):
    if not isinstance(weights, (DenseWeights, CompactWeights, CSRWeights)):
        raise TypeError(f"{op}: weights must be DenseWeights, CompactWeights or CSRWeights "
                        f"(see ops.make_weights), got {type(weights).__name__}")


def lower(x, geom, weights, out=None):
    """Lower a batch x (N, C, H, W) for `matmul(weights, ...)`.

    CompactWeights: only the kept columns, (k_kept, N*oh*ow); otherwise the full
    im2col_batch (C*kh*kw, N*oh*ow). Pass a reused `out` (a layer's column buffer, as Caffe's
    col_buffer_) to avoid fresh page faults on large batches. Raises KernelError when
    geom.rows != K of the weights.
    """
    _check_format("lower", weights)
    if geom.rows != weights.shape[1]:
        raise KernelError(f"lower: geom lowers to {geom.rows} rows (C*kh*kw) but the weights "
                          f"have K = {weights.shape[1]} (shape {weights.shape})")
    if isinstance(weights, CompactWeights):
        return im2col_rows(x, geom, weights.cols, out=out)
    return im2col_batch(x, geom, out=out)


def matmul(weights, cols, out=None):
    """out (M, ncols) = W @ cols, by format.

    DenseWeights / CSRWeights: cols (K, ncols). CompactWeights: cols is either the kept rows
    only (k_kept, ncols), as `lower` returns them, or the full (K, ncols); rows of `out` whose
    filter was removed are set to 0.
    """
    _check_format("matmul", weights)
    cols = _checks.float_array("matmul", "cols", cols)
    _checks.check_ndim("matmul", "cols", cols, 2, "(K, ncols)")
    dtype = _checks.same_dtype("matmul", weights=weights, cols=cols)
    M, K = weights.shape
    ncols = cols.shape[1]
    k = native.kernels()
    if isinstance(weights, CompactWeights):
        k_kept = len(weights.cols)
        if cols.shape[0] not in (k_kept, K):
            raise KernelError(f"matmul: cols has {cols.shape[0]} rows; compact weights "
                              f"{weights.shape} expect k_kept = {k_kept} (lowered kept columns) "
                              f"or K = {K}")
        out = _checks.output("matmul", out, (M, ncols), dtype)
        gathered = cols.shape[0] == k_kept
        if k is not None:
            k.gemm_compact(weights._padded, weights.rows, None if gathered else weights.cols,
                           cols, out)
            return out
        kept = cols if gathered else cols[weights.cols]
        removed = np.ones(M, dtype=bool)
        removed[weights.rows] = False
        out[removed] = 0
        out[weights.rows] = weights.packed @ kept
        return out
    if cols.shape[0] != K:
        raise KernelError(f"matmul: cols has shape {cols.shape}; weights {weights.shape} "
                          f"expect ({K}, ncols)")
    out = _checks.output("matmul", out, (M, ncols), dtype)
    if isinstance(weights, DenseWeights):
        if k is not None:
            k.gemm(weights.w, cols, out, 1.0, 0.0, False, False)
            return out
        return np.matmul(weights.w, cols, out=out)
    if k is not None:
        k.csrmm(weights.indptr, weights.indices, weights.data, K, cols, out)
        return out
    out[...] = weights.scipy() @ cols
    return out


def linear(x, weights, out=None):
    """Fully connected forward: out (N, M) = x (N, K) @ W.T, by format.

    CompactWeights read only the kept inputs of x and write 0 to the removed outputs.
    """
    _check_format("linear", weights)
    x = _checks.float_array("linear", "x", x)
    _checks.check_ndim("linear", "x", x, 2, "(N, K)")
    dtype = _checks.same_dtype("linear", weights=weights, x=x)
    M, K = weights.shape
    if x.shape[1] != K:
        raise KernelError(f"linear: x has shape {x.shape}; weights {weights.shape} expect "
                          f"(N, {K})")
    out = _checks.output("linear", out, (x.shape[0], M), dtype)
    k = native.kernels()
    if isinstance(weights, DenseWeights):
        if k is not None:
            k.gemm(x, weights.w, out, 1.0, 0.0, False, True)
            return out
        return np.matmul(x, weights.w.T, out=out)
    if isinstance(weights, CompactWeights):
        if k is not None:
            k.linear_compact(x, weights.packed, weights.rows, weights.cols, out)
            return out
        out[...] = 0
        out[:, weights.rows] = x[:, weights.cols] @ weights.packed.T
        return out
    if k is not None:
        k.csrmm_t(weights.indptr, weights.indices, weights.data, K, x, out)
        return out
    out[...] = (weights.scipy() @ x.T).T
    return out


def conv_forward(x, geom, weights, out=None):
    """One convolution group's forward: out (M, N*oh*ow) = W @ lowered x, by format.

    The same result as `matmul(weights, lower(x, geom, weights))`, but the compiled path lowers
    a few images at a time into a cache-sized buffer and runs the GEMM on each block, so the
    lowered batch is never written to (and read back from) main memory. CompactWeights lower
    only their kept columns and write 0 to removed filters' rows. x: (N, C, H, W).
    """
    _check_format("conv_forward", weights)
    if geom.rows != weights.shape[1]:
        raise KernelError(f"conv_forward: geom lowers to {geom.rows} rows (C*kh*kw) but the "
                          f"weights have K = {weights.shape[1]} (shape {weights.shape})")
    x = _check_input("conv_forward", x, geom, batched=True)
    _checks.same_dtype("conv_forward", weights=weights, x=x)
    out = _checks.output("conv_forward", out, (weights.shape[0], x.shape[0] * geom.cols),
                         x.dtype)
    k = native.kernels()
    if k is None or isinstance(weights, CSRWeights):
        return matmul(weights, lower(x, geom, weights), out=out)
    if isinstance(weights, DenseWeights):
        k.conv_forward(x, geom.native, weights.w, None, None, out)
    else:
        k.conv_forward(x, geom.native, weights._padded, weights.rows, weights.cols, out)
    return out
