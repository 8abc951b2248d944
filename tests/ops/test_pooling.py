"""ops.max_pool_* (Caffe's MAX pooling with an int32 argmax mask) and ops.ave_pool_*, on both
paths (NumPy twins and compiled kernels) and against one-window-at-a-time references."""
import numpy as np
import pytest

from minicaffe import ops
from minicaffe.errors import KernelError
from minicaffe.catalog.pooling import pooled_shape
from minicaffe.ops import native
from minicaffe.ops import pooling as pool_ops


def reference(x, k, p, s, out_size):
    """Caffe's MaxPool forward (first maximum wins, window clipped to the image); an empty
    window gives -FLT_MAX (Caffe's starting value) and mask -1."""
    N, C, H, W = x.shape
    y = np.full((N, C) + out_size, -np.finfo(np.float32).max, dtype=x.dtype)
    mask = np.full((N, C) + out_size, -1, dtype=np.int32)
    for a in range(out_size[0]):
        for b in range(out_size[1]):
            h0, w0 = max(a * s[0] - p[0], 0), max(b * s[1] - p[1], 0)
            h1, w1 = min(a * s[0] - p[0] + k[0], H), min(b * s[1] - p[1] + k[1], W)
            if h0 >= h1 or w0 >= w1:
                continue
            win = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)
            first = win.argmax(axis=2)                 # numpy: first maximum (NaN-free input)
            hh, ww = np.divmod(first, w1 - w0)
            y[:, :, a, b] = win.max(axis=2)
            mask[:, :, a, b] = (h0 + hh) * W + w0 + ww
    return y, mask


def backward_reference(dy, mask, H, W):
    N, C = dy.shape[:2]
    dx = np.zeros((N, C, H * W), dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for t, m in enumerate(mask[n, c].ravel()):
                if m >= 0:
                    dx[n, c, m] += dy[n, c].ravel()[t]
    return dx.reshape(N, C, H, W)


def ave_reference(x, k, p, s, out_size):
    """Caffe's AvePool: window sum clipped to the image / size clipped to the padded image;
    0 for a window with no image pixel."""
    N, C, H, W = x.shape
    y = np.zeros((N, C) + out_size)
    for a in range(out_size[0]):
        for b in range(out_size[1]):
            hs, ws = a * s[0] - p[0], b * s[1] - p[1]
            he, we = min(hs + k[0], H + p[0]), min(ws + k[1], W + p[1])
            if hs >= H or ws >= W:
                continue
            win = x[:, :, max(hs, 0):min(he, H), max(ws, 0):min(we, W)]
            y[:, :, a, b] = win.sum(axis=(2, 3)) / ((he - hs) * (we - ws))
    return y


def ave_backward_reference(dy, k, p, s, H, W):
    N, C, oh, ow = dy.shape
    dx = np.zeros((N, C, H, W))
    for a in range(oh):
        for b in range(ow):
            hs, ws = a * s[0] - p[0], b * s[1] - p[1]
            he, we = min(hs + k[0], H + p[0]), min(ws + k[1], W + p[1])
            if hs >= H or ws >= W:
                continue
            dx[:, :, max(hs, 0):min(he, H), max(ws, 0):min(we, W)] += \
                (dy[:, :, a, b] / ((he - hs) * (we - ws)))[:, :, None, None]
    return dx


# (shape, kernel, pad, stride): the geometries the Pooling layer produces.
CASES = [
    ((2, 3, 32, 32), (3, 3), (0, 0), (2, 2)),          # CIFAR-10 quick pool1
    ((2, 2, 5, 7), (3, 2), (1, 1), (2, 3)),            # pad > 0, ceil clipping, rectangular
    ((1, 2, 6, 6), (3, 3), (2, 2), (3, 3)),            # pad 2: last window clipped by the rule
    ((2, 2, 7, 5), (1, 1), (0, 0), (3, 2)),            # stride > kernel: empty last windows
    ((2, 3, 5, 6), (5, 6), (0, 0), (1, 1)),            # kernel = whole plane (global)
    ((2, 3, 4, 4), (1, 1), (0, 0), (1, 1)),            # 1x1 identity
    ((1, 1, 1, 1), (1, 1), (0, 0), (1, 1)),
    ((3, 2, 9, 9), (2, 2), (1, 1), (1, 1)),            # stride 1, pad
    ((2, 2, 5, 9), (3, 2), (1, 0), (2, 3)),            # pad_h only: both axes clipped (3x3)
    ((2, 2, 7, 6), (2, 2), (1, 1), (3, 3)),            # stride > kernel with pad
    ((1, 2, 5, 7), (1, 2), (0, 0), (3, 4)),            # stride > kernel, no pad: empty windows
    # float32 MAX (values only) and AVE run the separable kernels for column strides 1 and 2
    # (kernels/pooling.cc): padding on both sides, rows longer than one or two vectors
    ((2, 2, 9, 10), (3, 3), (1, 1), (2, 2)),
    ((1, 2, 5, 40), (3, 3), (1, 1), (2, 1)),
    ((1, 2, 4, 70), (3, 3), (1, 2), (1, 2)),
    # ... and their flat form (no column padding, W = 2 * ow): whole planes as one run
    ((2, 3, 24, 24), (2, 2), (0, 0), (2, 2)),          # LeNet pool1: 12 outputs a row
    ((1, 2, 6, 10), (3, 3), (1, 0), (2, 2)),           # row padding, 5 outputs a row
]


def geometry(shape, k, p, s):
    H, W = shape[2:]
    return pooled_shape(H, W, k, p, s)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, k, p, s", CASES)
@pytest.mark.parametrize("values", ["random", "ties", "neginf"])
def test_matches_reference(engine, shape, k, p, s, dtype, values, rng):
    x = rng.standard_normal(shape).astype(dtype)
    if values == "ties":
        x = np.round(x).clip(-1, 1)                      # many equal maxima per window
    elif values == "neginf":
        x[rng.random(shape) < 0.7] = -np.inf             # whole windows of -inf included
        x[0, 0, : shape[2] // 2 + 1] = -np.inf
    out_size = geometry(shape, k, p, s)
    y, mask = ops.max_pool_forward(x, k, p, s, out_size)
    want_y, want_mask = reference(x, k, p, s, out_size)
    assert y.dtype == x.dtype and mask.dtype == np.int32
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(mask, want_mask)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.max_pool_backward(dy, mask, shape[2:], k, p, s)
    np.testing.assert_allclose(dx, backward_reference(dy, mask, *shape[2:]),
                               rtol=1e-5 if dtype == "float32" else 1e-12,
                               atol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, k, p, s", CASES)
def test_ave_matches_reference(engine, shape, k, p, s, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    out_size = geometry(shape, k, p, s)
    y = ops.ave_pool_forward(x, k, p, s, out_size)
    assert y.dtype == x.dtype
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y, ave_reference(x, k, p, s, out_size), rtol=rtol, atol=rtol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.ave_pool_backward(dy, shape[2:], k, p, s)
    np.testing.assert_allclose(dx, ave_backward_reference(dy, k, p, s, *shape[2:]), rtol=rtol,
                               atol=rtol)


@pytest.mark.native
@pytest.mark.parametrize("shape, k, p, s", CASES)
def test_ave_kernel_matches_numpy_twin(monkeypatch, isa, shape, k, p, s, rng):
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    x = rng.standard_normal(shape)
    out_size = geometry(shape, k, p, s)
    dy = rng.standard_normal((shape[0], shape[1]) + out_size)
    y = ops.ave_pool_forward(x, k, p, s, out_size)
    dx = ops.ave_pool_backward(dy, shape[2:], k, p, s)
    monkeypatch.setattr(native, "kernels", lambda: None)
    for block_bytes in (1, 3 * 8 * out_size[0] * 8 + 1):   # one plane, a few planes per block
        monkeypatch.setattr(pool_ops, "_BLOCK_BYTES", block_bytes)
        np.testing.assert_allclose(ops.ave_pool_forward(x, k, p, s, out_size), y, rtol=1e-12,
                                   atol=1e-12)
        np.testing.assert_allclose(ops.ave_pool_backward(dy, shape[2:], k, p, s), dx,
                                   rtol=1e-12, atol=1e-12)


def test_ave_bad_arguments(engine):
    with pytest.raises(TypeError, match=r"^ave_pool_forward: x has dtype int64; expected "
                                        r"float32 or float64$"):
        ops.ave_pool_forward(np.zeros((1, 1, 4, 4), np.int64), (2, 2), (0, 0), (2, 2), (2, 2))
    with pytest.raises(KernelError, match=r"^ave_pool_forward: out has shape \(1, 1, 3, 2\); "
                                          r"expected \(1, 1, 2, 2\)$"):
        ops.ave_pool_forward(np.zeros((1, 1, 4, 4)), (2, 2), (0, 0), (2, 2), (2, 2),
                             out=np.zeros((1, 1, 3, 2)))
    with pytest.raises(KernelError, match=r"^ave_pool_backward: dx must be C-contiguous"):
        ops.ave_pool_backward(np.zeros((1, 1, 2, 2)), (4, 4), (2, 2), (0, 0), (2, 2),
                              dx=np.zeros((1, 1, 4, 8))[..., ::2])
    with pytest.raises(KernelError, match=r"^ave_pool_backward: pad \(2, 0\) must be smaller "
                                          r"than the kernel \(2, 2\)$"):
        ops.ave_pool_backward(np.zeros((1, 1, 2, 2)), (4, 4), (2, 2), (2, 0), (2, 2))
    k = native.kernels()
    if k is not None:                                  # the kernel's own checks
        with pytest.raises(KernelError, match=r"^ave_pool_forward: out has shape "
                                              r"\(1, 1, 2, 3\); expected \(1, 1, 2, 2\)$"):
            k.ave_pool_forward(np.zeros((1, 1, 4, 4)), (4, 4, 2, 2, 0, 0, 2, 2, 2, 2),
                               np.zeros((1, 1, 2, 3)))
        with pytest.raises(TypeError, match=r"^ave_pool_backward: dx has dtype float32; "
                                            r"expected float64$"):
            k.ave_pool_backward(np.zeros((1, 1, 2, 2)), (4, 4, 2, 2, 0, 0, 2, 2, 2, 2),
                                np.zeros((1, 1, 4, 4), np.float32))


@pytest.mark.native
@pytest.mark.parametrize("shape, k, p, s", CASES)
def test_kernel_matches_numpy_twin(monkeypatch, isa, shape, k, p, s, rng):
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    x = np.round(rng.standard_normal(shape) * 2)
    out_size = geometry(shape, k, p, s)
    dy = rng.standard_normal((shape[0], shape[1]) + out_size)
    y, mask = ops.max_pool_forward(x, k, p, s, out_size)
    dx = ops.max_pool_backward(dy, mask, shape[2:], k, p, s)
    monkeypatch.setattr(native, "kernels", lambda: None)
    monkeypatch.setattr(pool_ops, "_BLOCK_BYTES", 1)     # NumPy twin one plane per block
    y2, mask2 = ops.max_pool_forward(x, k, p, s, out_size)
    dx2 = ops.max_pool_backward(dy, mask2, shape[2:], k, p, s)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(mask, mask2)
    np.testing.assert_allclose(dx, dx2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, k, p, s", CASES)
@pytest.mark.parametrize("values", ["random", "ties", "neginf", "nan"])
def test_values_only_equal_the_argmax_forward(engine, shape, k, p, s, dtype, values, rng):
    """argmax=False (an inference plan's MAX pooling) gives the same values bit for bit."""
    x = rng.standard_normal(shape).astype(dtype)
    if values == "ties":
        x = np.round(x).clip(-1, 1)
    elif values == "neginf":
        x[rng.random(shape) < 0.7] = -np.inf
    elif values == "nan":
        x[rng.random(shape) < 0.2] = np.nan
        x[:, :, 0, 0] = np.nan                          # a NaN first pixel: NaN is the result
    out_size = geometry(shape, k, p, s)
    y, mask = ops.max_pool_forward(x, k, p, s, out_size)
    values_only, none = ops.max_pool_forward(x, k, p, s, out_size, argmax=False)
    assert none is None
    np.testing.assert_array_equal(values_only, y)       # NaN positions included
    assert np.signbit(values_only).tolist() == np.signbit(y).tolist()


# Many small planes (blocks of planes side by side in the kernels, a partial last block) and
# one large plane per block, at one and two threads.
MANY_PLANES = [
    ((5, 13, 8, 8), (3, 3), (0, 0), (2, 2)),             # CIFAR-10 quick pool3 shape
    ((3, 7, 8, 8), (2, 2), (0, 0), (2, 2)),              # LeNet pool2
    ((2, 11, 6, 7), (3, 2), (1, 1), (2, 3)),             # pad, ceil clipping, rectangular
    ((3, 5, 7, 7), (1, 2), (0, 0), (3, 4)),              # stride > kernel: empty windows
    ((2, 9, 33, 31), (3, 3), (1, 0), (2, 2)),            # large planes
]


@pytest.mark.native
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, k, p, s", MANY_PLANES)
def test_blocks_of_planes_match_the_references(isa, threads, shape, k, p, s, dtype, rng):
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    x = np.round(rng.standard_normal(shape) * 3).astype(dtype)   # ties across windows
    out_size = geometry(shape, k, p, s)
    y, mask = ops.max_pool_forward(x, k, p, s, out_size)
    want_y, want_mask = reference(x, k, p, s, out_size)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(ops.max_pool_forward(x, k, p, s, out_size, argmax=False)[0],
                                  want_y)
    a = ops.ave_pool_forward(x, k, p, s, out_size)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(a, ave_reference(x, k, p, s, out_size), rtol=rtol, atol=rtol)


def test_values_only_takes_no_mask(engine, rng):
    x = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    with pytest.raises(KernelError, match="argmax=False writes no mask"):
        ops.max_pool_forward(x, (2, 2), (0, 0), (2, 2), (2, 2),
                             mask=np.empty((1, 1, 2, 2), np.int32), argmax=False)


def nan_reference(x, k, p, s, out_size):
    """The compiled kernel's rule spelled out: start from the first pixel of the clipped window,
    then a pixel replaces the running maximum only when strictly larger. A NaN first pixel is
    the result (nothing compares larger); a later NaN never wins."""
    N, C, H, W = x.shape
    y = np.full((N, C) + out_size, -np.finfo(np.float32).max, dtype=x.dtype)
    mask = np.full((N, C) + out_size, -1, dtype=np.int32)
    for n in range(N):
        for c in range(C):
            for a in range(out_size[0]):
                for b in range(out_size[1]):
                    h0, w0 = max(a * s[0] - p[0], 0), max(b * s[1] - p[1], 0)
                    h1, w1 = min(a * s[0] - p[0] + k[0], H), min(b * s[1] - p[1] + k[1], W)
                    if h0 >= h1 or w0 >= w1:
                        continue
                    best, arg = x[n, c, h0, w0], h0 * W + w0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            if x[n, c, h, w] > best:
                                best, arg = x[n, c, h, w], h * W + w
                    y[n, c, a, b], mask[n, c, a, b] = best, arg
    return y, mask


def _window_of(index, out_size, k, p, s, H, W):
    a, b = divmod(index, out_size[1])
    h0, w0 = max(a * s[0] - p[0], 0), max(b * s[1] - p[1], 0)
    return h0, min(a * s[0] - p[0] + k[0], H), w0, min(b * s[1] - p[1] + k[1], W)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, k, p, s", CASES)
@pytest.mark.parametrize("where", ["some", "first", "all"])
def test_nan_windows_keep_the_argmax_inside_the_window(engine, shape, k, p, s, dtype, where, rng):
    """The NumPy twin used to return mask indices outside the window (h*W + w of tap -1) when
    the window held a NaN; both paths now follow the kernel's rule (nan_reference)."""
    x = rng.standard_normal(shape).astype(dtype)
    if where == "some":
        x[rng.random(shape) < 0.2] = np.nan
    elif where == "first":
        x[:, :, ::2, ::2] = np.nan
    else:
        x[...] = np.nan
    out_size = geometry(shape, k, p, s)
    y, mask = ops.max_pool_forward(x, k, p, s, out_size)
    y_ref, mask_ref = nan_reference(x, k, p, s, out_size)
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(y, y_ref)         # NaN == NaN here
    H, W = shape[2:]
    for (n, c, a, b), m in np.ndenumerate(mask):
        if m < 0:
            continue
        h0, h1, w0, w1 = _window_of(a * out_size[1] + b, out_size, k, p, s, H, W)
        assert h0 <= m // W < h1 and w0 <= m % W < w1, (n, c, a, b, m)
    dx = ops.max_pool_backward(np.ones_like(y), mask, shape[2:], k, p, s)
    assert dx.sum() == (mask >= 0).sum()


def test_outputs_are_written_in_place(engine, rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = np.empty((2, 3, 4, 4), np.float32)
    mask = np.empty((2, 3, 4, 4), np.int32)
    assert ops.max_pool_forward(x, (2, 2), (0, 0), (2, 2), (4, 4), out=out, mask=mask) == \
        (out, mask)
    dx = np.full(x.shape, 7.0, np.float32)
    assert ops.max_pool_backward(out, mask, (8, 8), (2, 2), (0, 0), (2, 2), dx=dx) is dx
    assert (dx != 7.0).all() or (dx == 0).any()
    np.testing.assert_array_equal(dx.reshape(6, 64)[np.arange(6)[:, None], mask.reshape(6, 16)],
                                  out.reshape(6, 16))


def test_non_contiguous_input_is_accepted(engine, rng):
    x = rng.standard_normal((2, 3, 6, 12))[..., ::2]
    y, mask = ops.max_pool_forward(x, (2, 2), (0, 0), (2, 2), (3, 3))
    np.testing.assert_array_equal(y, reference(np.ascontiguousarray(x), (2, 2), (0, 0), (2, 2),
                                               (3, 3))[0])


GOOD = dict(kernel=(2, 2), pad=(0, 0), stride=(2, 2), out_size=(2, 2))


def forward(x, **kw):
    args = {**GOOD, **kw}
    return ops.max_pool_forward(x, args.pop("kernel"), args.pop("pad"), args.pop("stride"),
                                args.pop("out_size"), **args)


def test_integer_input_is_a_type_error(engine):
    with pytest.raises(TypeError, match=r"^max_pool_forward: x has dtype int64; expected "
                                        r"float32 or float64$"):
        forward(np.zeros((1, 1, 4, 4), np.int64))
    with pytest.raises(TypeError, match=r"^max_pool_backward: dy has dtype int32; expected "
                                        r"float32 or float64$"):
        ops.max_pool_backward(np.zeros((1, 1, 2, 2), np.int32), np.zeros((1, 1, 2, 2), np.int32),
                              (4, 4), (2, 2), (0, 0), (2, 2))


def test_mask_must_be_int32(engine):
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(TypeError, match=r"^max_pool_forward: mask has dtype int64; expected "
                                        r"int32$"):
        forward(x, mask=np.zeros((1, 1, 2, 2), np.int64))
    with pytest.raises(TypeError, match=r"^max_pool_backward: mask has dtype float64; expected "
                                        r"int32$"):
        ops.max_pool_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), (4, 4), (2, 2),
                              (0, 0), (2, 2))
    with pytest.raises(TypeError, match=r"^max_pool_forward: out has dtype float32; expected "
                                        r"float64$"):
        forward(x, out=np.zeros((1, 1, 2, 2), np.float32))


@pytest.mark.parametrize("kw, message", [
    (dict(out=np.zeros((1, 1, 3, 2))), r"out has shape \(1, 1, 3, 2\); expected \(1, 1, 2, 2\)"),
    (dict(out=np.zeros((1, 1, 2, 4))[..., ::2]), r"out must be C-contiguous \(strides \(64, 64, "
                                                  r"32, 16\)\)"),
    (dict(mask=np.zeros((1, 1, 2, 3), np.int32)), r"mask has shape \(1, 1, 2, 3\); expected "
                                                   r"\(1, 1, 2, 2\)"),
    (dict(mask=np.zeros((1, 1, 2, 4), np.int32)[..., ::2]), r"mask must be C-contiguous "
                                                            r"\(strides \(32, 32, 16, 8\)\)"),
    (dict(kernel=(0, 2)), r"kernel = \(0, 2\); expected values >= 1"),
    (dict(stride=(2, 0)), r"stride = \(2, 0\); expected values >= 1"),
    (dict(pad=(-1, 0)), r"pad = \(-1, 0\); expected values >= 0"),
    (dict(out_size=(0, 2)), r"out_size = \(0, 2\); expected values >= 1"),
    (dict(kernel=3), r"kernel = 3; expected a pair of integers"),
    (dict(pad=(2, 0)), r"pad \(2, 0\) must be smaller than the kernel \(2, 2\)"),
])
def test_bad_arguments(engine, kw, message):
    with pytest.raises(KernelError, match="^max_pool_forward: " + message + "$"):
        forward(np.zeros((1, 1, 4, 4)), **kw)


def test_bad_shapes(engine):
    with pytest.raises(KernelError, match=r"^max_pool_forward: x has shape \(4, 4\); expected 4 "
                                          r"dimensions \(N, C, H, W\)$"):
        forward(np.zeros((4, 4)))
    args = ((4, 4), (2, 2), (0, 0), (2, 2))
    with pytest.raises(KernelError, match=r"^max_pool_backward: mask has shape \(1, 1, 2, 1\); "
                                          r"expected \(1, 1, 2, 2\)$"):
        ops.max_pool_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 1), np.int32), *args)
    with pytest.raises(KernelError, match=r"^max_pool_backward: dx has shape \(1, 1, 4, 5\); "
                                          r"expected \(1, 1, 4, 4\)$"):
        ops.max_pool_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int32), *args,
                              dx=np.zeros((1, 1, 4, 5)))


@pytest.mark.parametrize("bad", [-2, 16])
def test_mask_entries_out_of_range(engine, bad):
    mask = np.zeros((1, 1, 2, 2), np.int32)
    mask[0, 0, 1, 0] = bad
    with pytest.raises(KernelError, match=rf"^max_pool_backward: mask entry 2 = {bad}; expected "
                                          r"-1 or an index in \[0, 16\)$"):
        ops.max_pool_backward(np.zeros((1, 1, 2, 2)), mask, (4, 4), (2, 2), (0, 0), (2, 2))


def test_kernel_checks_match_facade():
    """The compiled entry points check for themselves (called directly, not via ops)."""
    k = native.kernels()
    if k is None:
        pytest.skip("minicaffe._kernels not built")
    x = np.zeros((1, 1, 4, 4))
    y, m = np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int32)
    with pytest.raises(KernelError, match=r"^max_pool_forward: pad \(2, 0\) must be smaller "
                                          r"than the kernel \(2, 2\)$"):
        k.max_pool_forward(x, (4, 4, 2, 2, 2, 0, 2, 2, 2, 2), y, m)
    with pytest.raises(KernelError, match=r"^max_pool_forward: geom.sh = 0; expected >= 1$"):
        k.max_pool_forward(x, (4, 4, 2, 2, 0, 0, 0, 2, 2, 2), y, m)
    with pytest.raises(KernelError, match=r"^max_pool_forward: mask must be C-contiguous$"):
        k.max_pool_forward(x, (4, 4, 2, 2, 0, 0, 2, 2, 2, 2), y,
                           np.zeros((1, 1, 2, 4), np.int32)[..., ::2])
    with pytest.raises(TypeError, match=r"^max_pool_forward: mask has dtype int64; expected "
                                        r"int32$"):
        k.max_pool_forward(x, (4, 4, 2, 2, 0, 0, 2, 2, 2, 2), y, m.astype(np.int64))


# Found by tests/prototxt/test_fuzz.py (a deploy net with `stride: 2147483647`): the compiled
# kernel sized its per-thread phase scratch as sh*sw planes inside an OpenMP region, and the
# std::length_error / bad_alloc that followed aborted the process.
@pytest.mark.parametrize("stride", [(2**31 - 1, 2**31 - 1), (65536, 65536), (1, 2**31 - 1)])
@pytest.mark.parametrize("ave", [False, True])
def test_a_huge_stride_with_one_window_per_axis_is_answered(engine, stride, ave, rng):
    """With one output row (column) the stride along it does not matter: same answer as 1."""
    x = rng.standard_normal((2, 3, 8, 8))
    out_size = (1 if stride[0] > 8 else 6, 1 if stride[1] > 8 else 6)
    same = (1 if stride[0] > 8 else stride[0], 1 if stride[1] > 8 else stride[1])
    if ave:
        got = ops.ave_pool_forward(x, (3, 3), (0, 0), stride, out_size)
        np.testing.assert_allclose(got, ave_reference(x, (3, 3), (0, 0), same, out_size))
        dx = ops.ave_pool_backward(np.ones_like(got), (8, 8), (3, 3), (0, 0), stride)
        np.testing.assert_allclose(dx, ops.ave_pool_backward(np.ones_like(got), (8, 8), (3, 3),
                                                             (0, 0), same))
    else:
        y, mask = ops.max_pool_forward(x, (3, 3), (0, 0), stride, out_size)
        y_ref, mask_ref = reference(x, (3, 3), (0, 0), same, out_size)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(mask, mask_ref)


@pytest.mark.parametrize("ave", [False, True])
def test_a_huge_stride_with_windows_past_the_image_is_a_kernel_error(engine, ave):
    x = np.ones((1, 1, 8, 8))
    with pytest.raises(KernelError, match=r"pool_forward: stride \(2147483647, 2147483647\) "
                                          r"with output \(2, 2\) needs \d+ elements of phase "
                                          r"scratch per thread"):
        if ave:
            ops.ave_pool_forward(x, (3, 3), (0, 0), (2**31 - 1, 2**31 - 1), (2, 2))
        else:
            ops.max_pool_forward(x, (3, 3), (0, 0), (2**31 - 1, 2**31 - 1), (2, 2))


@pytest.mark.native
def test_the_kernel_itself_refuses_a_scratch_it_cannot_hold():
    k = native.kernels()
    if k is None:
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    x, out = np.ones((1, 1, 8, 8)), np.zeros((1, 1, 2, 2))
    for geom in ((8, 8, 3, 3, 0, 0, 2**31 - 1, 2**31 - 1, 2, 2),
                 (8, 8, 3, 3, 0, 0, 2**62, 2**62, 2, 2)):
        with pytest.raises(ValueError, match=r"ave_pool_forward: .*phase scratch"):
            k.ave_pool_forward(x, geom, out)
        with pytest.raises(ValueError, match=r"max_pool_forward: .*phase scratch"):
            k.max_pool_forward(x, geom, out, np.zeros((1, 1, 2, 2), np.int32))


# Found by tests/ops/test_fuzz_ops.py (MINICAFFE_FUZZ_SCALE=10): the NumPy twin accepted an
# empty plane (H = W = 0) and returned mask 0, outside [0, H*W); the kernel refuses it.
@pytest.mark.parametrize("shape", [(1, 1, 0, 0), (2, 3, 0, 4), (1, 1, 5, 0)])
def test_an_empty_plane_is_refused_on_both_paths(engine, shape):
    x = np.zeros(shape)
    with pytest.raises(KernelError, match=r"^max_pool_forward: geom\.[HW] = 0; expected >= 1$"):
        ops.max_pool_forward(x, (2, 2), (1, 1), (1, 1), (1, 1))
    with pytest.raises(KernelError, match=r"^ave_pool_forward: geom\.[HW] = 0; expected >= 1$"):
        ops.ave_pool_forward(x, (2, 2), (1, 1), (1, 1), (1, 1))
