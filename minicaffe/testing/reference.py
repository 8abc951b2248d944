"""Naive twins of the kernels in minicaffe.ops, written as plain loops for tests only.

They share no code with minicaffe.ops and compute in float64; compare with a tolerance that
suits the dtype under test.
"""
import numpy as np


def _taps(C, H, W, kh, kw, ph, pw, sh, sw, dh, dw):
    """oh, ow and every in-image tap (c, yy, xx, row, col) of Caffe's im2col loop nest:
    input pixel (c, yy, xx) lands in lowered row `row`, column `col`."""
    oh = (H + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (W + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1

    def gen():
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for y in range(oh):
                        for xo in range(ow):
                            yy = y * sh - ph + i * dh
                            xx = xo * sw - pw + j * dw
                            if 0 <= yy < H and 0 <= xx < W:
                                yield c, yy, xx, row, y * ow + xo
    return oh, ow, gen()


def im2col(x, C, H, W, kh, kw, ph=0, pw=0, sh=1, sw=1, dh=1, dw=1):
    """Caffe's im2col_cpu, one element at a time: x (C, H, W) -> (C*kh*kw, oh*ow)."""
    oh, ow, taps = _taps(C, H, W, kh, kw, ph, pw, sh, sw, dh, dw)
    cols = np.zeros((C * kh * kw, oh * ow), dtype=np.float64)
    for c, yy, xx, row, col in taps:
        cols[row, col] = x[c, yy, xx]
    return cols


def im2col_batch(x, *geometry):
    """x (N, C, H, W) -> (C*kh*kw, N*oh*ow), image n in columns n*oh*ow ... (n+1)*oh*ow - 1."""
    return np.concatenate([im2col(img, *geometry) for img in x], axis=1)


def col2im(cols, C, H, W, kh, kw, ph=0, pw=0, sh=1, sw=1, dh=1, dw=1):
    """Caffe's col2im_cpu: scatter-add (C*kh*kw, oh*ow) back to (C, H, W)."""
    oh, ow, taps = _taps(C, H, W, kh, kw, ph, pw, sh, sw, dh, dw)
    x = np.zeros((C, H, W), dtype=np.float64)
    for c, yy, xx, row, col in taps:
        x[c, yy, xx] += cols[row, col]
    return x


def col2im_batch(cols, N, C, H, W, *geometry):
    """(C*kh*kw, N*oh*ow) -> (N, C, H, W)."""
    per_image = cols.shape[1] // N
    return np.stack([col2im(cols[:, n * per_image:(n + 1) * per_image], C, H, W, *geometry)
                     for n in range(N)])


def gemm(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """alpha * op(a) @ op(b) + beta * c, accumulated one rank-1 update at a time in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    out = np.zeros((a.shape[0], b.shape[1]))
    for k in range(a.shape[1]):
        out += np.outer(a[:, k], b[k])
    out *= alpha
    if beta != 0:
        out += beta * np.asarray(c, dtype=np.float64)
    return out


def compact_matmul(w, cols):
    """W @ cols using only W's nonzero rows and columns; removed rows come out 0."""
    w = np.asarray(w, dtype=np.float64)
    out = np.zeros((w.shape[0], cols.shape[1]))
    for m in range(w.shape[0]):
        for k in range(w.shape[1]):
            if w[m, k] != 0:
                out[m] += w[m, k] * cols[k]
    return out


def csr_from_dense(w):
    """(indptr, indices, data) of w's nonzeros, row by row."""
    indptr, indices, data = [0], [], []
    for row in w:
        for k, v in enumerate(row):
            if v != 0:
                indices.append(k)
                data.append(v)
        indptr.append(len(indices))
    return (np.array(indptr, dtype=np.int64), np.array(indices, dtype=np.int64),
            np.array(data, dtype=w.dtype))


def csrmm(indptr, indices, data, b):
    """CSR (M, K) x dense b (K, N), one nonzero at a time in float64."""
    M = len(indptr) - 1
    out = np.zeros((M, b.shape[1]))
    for m in range(M):
        for t in range(indptr[m], indptr[m + 1]):
            out[m] += float(data[t]) * np.asarray(b[indices[t]], dtype=np.float64)
    return out


def relu(x, negative_slope=0.0):
    """Caffe's ReLU one value at a time: x where x > 0 (NaN stays NaN), else negative_slope * x
    (0 when the slope is 0, -inf included: max(x, 0))."""
    flat = np.asarray(x).reshape(-1)
    out = np.empty_like(flat)
    for i, v in enumerate(flat):
        if v > 0 or v != v:
            out[i] = v
        else:
            out[i] = 0 if negative_slope == 0 else v * negative_slope
    return out.reshape(np.shape(x))


def softmax(x, axis):
    """exp(x - max) / sum exp(x - max) along `axis`, in float64, one fibre at a time."""
    x = np.asarray(x)
    moved = np.moveaxis(x.astype(np.float64), axis, -1)
    out = np.empty_like(moved)
    for idx in np.ndindex(moved.shape[:-1]):
        with np.errstate(invalid="ignore"):            # inf - inf: NaN, as the kernels give
            e = np.exp(moved[idx] - np.max(moved[idx]))
        out[idx] = e / e.sum()
    return np.moveaxis(out, -1, axis).astype(x.dtype)
