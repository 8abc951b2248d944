"""Pooling: loop reference with Caffe's window rules, gradients, errors, PyTorch."""
import math

import numpy as np
import pytest

from minicaffe.catalog.pooling import pooled_shape
from minicaffe.ops import native
from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


FLT_MAX = 3.4028234663852886e38        # <cfloat>'s FLT_MAX: Caffe's starting value of a MAX output


def caffe_pooled_shape(H, W, k, s, p, rounding=math.ceil):
    """Caffe's PoolingLayer::Reshape as documented (CAFFE_NOTES.md "Pooling output"): per axis
    ceil((size + 2 pad - kernel) / stride) + 1 in float arithmetic; then, if pad_h || pad_w,
    every axis whose last window starts at or beyond size + pad loses it."""
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    oh = int(rounding(float(H + 2 * ph - kh) / sh)) + 1
    ow = int(rounding(float(W + 2 * pw - kw) / sw)) + 1
    if ph != 0 or pw != 0:
        if (oh - 1) * sh >= H + ph:
            oh -= 1
        if (ow - 1) * sw >= W + pw:
            ow -= 1
    return oh, ow


def pool_reference(x, method, k, s=(1, 1), p=(0, 0), rounding=math.ceil):
    """Caffe's pooling, one output at a time: MAX starts from -FLT_MAX and takes strictly larger
    pixels of the window clipped to the image; AVE divides the clipped sum by the window size
    clipped to the padded plane (0 for a window wholly past the image)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    oh, ow = caffe_pooled_shape(H, W, k, s, p, rounding)
    y = np.zeros((N, C, oh, ow))
    for a in range(oh):
        for b in range(ow):
            h0, w0 = a * sh - ph, b * sw - pw
            h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)
            size = (h1 - h0) * (w1 - w0)
            h0c, w0c, h1c, w1c = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            for n in range(N):
                for c in range(C):
                    if method == "MAX":
                        best = -FLT_MAX
                        for h in range(h0c, min(h0 + kh, H)):
                            for w in range(w0c, min(w0 + kw, W)):
                                best = max(best, x[n, c, h, w])
                        y[n, c, a, b] = best
                    elif h0 < H and w0 < W:
                        y[n, c, a, b] = x[n, c, h0c:h1c, w0c:w1c].sum() / size
                    # else a window past the image (no pad): Caffe divides 0 by a size <= 0
                    # there (NaN or -0); minicaffe gives 0 on purpose.
    return y


def distinct(rng, shape):
    """Distinct values at least 0.01 apart, so no max is tied or near a tie."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * 0.01


class _MaxCase(LayerCase):
    def make_bottoms(self, rng):
        return [distinct(rng, s) for s in self.bottom_shapes]


class TestMaxPool2x2(_MaxCase):
    type, bottom_shapes = "Pooling", [(2, 3, 6, 8)]
    params = {"pool": "MAX", "kernel_size": 2, "stride": 2}

    def reference(self, x):
        return pool_reference(x, "MAX", (2, 2), (2, 2))


class TestMaxPoolOverlappingCeil(_MaxCase):
    """CIFAR-10 quick's pool1: 3x3 stride 2 on an odd/even plane, ceil overhang."""
    type, bottom_shapes = "Pooling", [(2, 2, 7, 8)]
    params = {"pool": "MAX", "kernel_size": 3, "stride": 2}

    def reference(self, x):
        return pool_reference(x, "MAX", (3, 3), (2, 2))


class TestMaxPoolPadRect(_MaxCase):
    type, bottom_shapes = "Pooling", [(2, 2, 5, 7)]
    params = {"pool": "MAX", "kernel_h": 3, "kernel_w": 2, "stride_h": 2, "stride_w": 3,
              "pad_h": 1, "pad_w": 1}

    def reference(self, x):
        return pool_reference(x, "MAX", (3, 2), (2, 3), (1, 1))


class TestMaxPoolAsymmetricPad(_MaxCase):
    """Caffe's example: 5x9, pad 1x0, kernel 3x2, stride 2x3 gives 3x3 (pad_h alone also drops
    the width axis' last window, which would start at 9 = W + pad_w)."""
    type, bottom_shapes = "Pooling", [(2, 2, 5, 9)]
    params = {"pool": "MAX", "kernel_h": 3, "kernel_w": 2, "stride_h": 2, "stride_w": 3,
              "pad_h": 1, "pad_w": 0}

    def reference(self, x):
        y = pool_reference(x, "MAX", (3, 2), (2, 3), (1, 0))
        assert y.shape[2:] == (3, 3)
        return y


class TestAvePoolAsymmetricPad(LayerCase):
    type, bottom_shapes = "Pooling", [(2, 2, 9, 5)]
    params = {"pool": "AVE", "kernel_h": 2, "kernel_w": 3, "stride_h": 3, "stride_w": 2,
              "pad_h": 0, "pad_w": 1}

    def reference(self, x):
        y = pool_reference(x, "AVE", (2, 3), (3, 2), (0, 1))
        assert y.shape[2:] == (3, 3)
        return y


class TestMaxPoolStrideAboveKernelPad(_MaxCase):
    """stride 3 > kernel 2 with pad 1: 7 rows give ceil(7/3)+1 = 4, the last starting at
    9 >= 7 + 1 is dropped."""
    type, bottom_shapes = "Pooling", [(2, 2, 7, 6)]
    params = {"pool": "MAX", "kernel_size": 2, "stride": 3, "pad": 1}

    def reference(self, x):
        y = pool_reference(x, "MAX", (2, 2), (3, 3), (1, 1))
        assert y.shape[2:] == (3, 3)
        return y


class TestAvePoolStrideAboveKernelNoPad(LayerCase):
    """No padding: Caffe keeps windows wholly past the image (rows start 0, 3, 6 of 5; columns
    0, 4, 8 of 7); AVE gives 0 there and no gradient."""
    type, bottom_shapes = "Pooling", [(2, 2, 5, 7)]
    params = {"pool": "AVE", "kernel_h": 1, "kernel_w": 2, "stride_h": 3, "stride_w": 4}

    def reference(self, x):
        y = pool_reference(x, "AVE", (1, 2), (3, 4))
        assert y.shape[2:] == (3, 3) and (y[:, :, 2, :] == 0).all() and (y[:, :, :, 2] == 0).all()
        return y


class TestMaxPoolStrideAboveKernelNoPad(_MaxCase):
    """The MAX twin: windows past the image give -FLT_MAX, Caffe's starting value (finite).
    The gradient check would difference a loss of order FLT_MAX, so backward is checked by
    test_max_empty_windows_get_no_gradient instead."""
    type, bottom_shapes = "Pooling", [(2, 2, 5, 7)]
    params = {"pool": "MAX", "kernel_h": 1, "kernel_w": 2, "stride_h": 3, "stride_w": 4}
    check_gradient = False

    def reference(self, x):
        y = pool_reference(x, "MAX", (1, 2), (3, 4))
        assert (y[:, :, 2, :] == -FLT_MAX).all() and (y[:, :, :, 2] == -FLT_MAX).all()
        return y


class TestMaxPoolWithMask(_MaxCase):
    type, bottom_shapes, num_tops = "Pooling", [(1, 2, 5, 5)], 2
    params = {"pool": "MAX", "kernel_size": 3, "stride": 2, "pad": 1}
    check_gradient = False            # top[1] holds indices, not a differentiable output

    def reference(self, x):
        y = pool_reference(x, "MAX", (3, 3), (2, 2), (1, 1))
        flat = x.reshape(1, 2, 25)
        mask = np.zeros_like(y)
        for c in range(2):
            for a in range(y.shape[2]):
                for b in range(y.shape[3]):
                    mask[0, c, a, b] = np.flatnonzero(flat[0, c] == y[0, c, a, b])[0]
        return y, mask


class TestMaxPoolFloorLeavesPixelsOut(_MaxCase):
    """round_mode FLOOR: the last row/column is in no window and gets no gradient."""
    type, bottom_shapes = "Pooling", [(2, 2, 7, 5)]
    params = {"pool": "MAX", "kernel_size": 2, "stride": 2, "round_mode": "FLOOR"}

    def reference(self, x):
        return pool_reference(x, "MAX", (2, 2), (2, 2), rounding=math.floor)


class TestMaxPoolStride1Pad(_MaxCase):
    type, bottom_shapes = "Pooling", [(2, 2, 5, 6)]
    params = {"pool": "MAX", "kernel_size": 3, "stride": 1, "pad": 1}

    def reference(self, x):
        return pool_reference(x, "MAX", (3, 3), (1, 1), (1, 1))


class TestAvePoolStride1Pad(LayerCase):
    type, bottom_shapes = "Pooling", [(2, 2, 5, 6)]
    params = {"pool": "AVE", "kernel_size": 3, "stride": 1, "pad": 1}

    def reference(self, x):
        return pool_reference(x, "AVE", (3, 3), (1, 1), (1, 1))


class TestAvePool(LayerCase):
    type, bottom_shapes = "Pooling", [(2, 3, 6, 6)]
    params = {"pool": "AVE", "kernel_size": 2, "stride": 2}

    def reference(self, x):
        return pool_reference(x, "AVE", (2, 2), (2, 2))


class TestAvePoolOverlappingCeil(LayerCase):
    """CIFAR-10 quick's pool2/3: AVE 3x3 stride 2."""
    type, bottom_shapes = "Pooling", [(2, 2, 8, 7)]
    params = {"pool": "AVE", "kernel_size": 3, "stride": 2}

    def reference(self, x):
        return pool_reference(x, "AVE", (3, 3), (2, 2))


class TestAvePoolPad(LayerCase):
    type, bottom_shapes = "Pooling", [(2, 2, 6, 5)]
    params = {"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 1}

    def reference(self, x):
        return pool_reference(x, "AVE", (3, 3), (2, 2), (1, 1))


class TestGlobalMax(_MaxCase):
    type, bottom_shapes = "Pooling", [(2, 3, 4, 5)]
    params = {"pool": "MAX", "global_pooling": True}

    def reference(self, x):
        return x.max(axis=(2, 3), keepdims=True)


class TestGlobalAve(LayerCase):
    type, bottom_shapes = "Pooling", [(2, 3, 4, 5)]
    params = {"pool": "AVE", "global_pooling": True}

    def reference(self, x):
        return x.mean(axis=(2, 3), keepdims=True)


def test_pooled_shape_rules():
    assert pooled_shape(32, 32, (3, 3), (0, 0), (2, 2)) == (16, 16)   # ceil(29/2)+1; floor: 15
    assert pooled_shape(28, 28, (2, 2), (0, 0), (2, 2)) == (14, 14)
    assert pooled_shape(5, 5, (3, 3), (1, 1), (2, 2)) == (3, 3)     # last start 4 < 5+1
    assert pooled_shape(4, 4, (2, 2), (1, 1), (4, 4)) == (2, 2)     # last start 4 < 4+1
    assert pooled_shape(1, 1, (2, 2), (1, 1), (2, 2)) == (1, 1)     # start 2 >= 1+1: clipped
    assert pooled_shape(32, 32, (3, 3), (0, 0), (2, 2), "FLOOR") == (15, 15)
    # pad_h || pad_w: the unpadded width axis loses its window starting at 9 >= 9 + 0 too.
    assert pooled_shape(5, 9, (3, 2), (1, 0), (2, 3)) == (3, 3)
    assert pooled_shape(9, 5, (2, 3), (0, 1), (3, 2)) == (3, 3)
    # No padding at all: Caffe keeps a window wholly past the image (7: starts 0, 3, 6 >= 5).
    assert pooled_shape(5, 7, (1, 2), (0, 0), (3, 4)) == (3, 3)


# (H, W, kernel, stride, pad) around every boundary of the rule: asymmetric padding, stride
# above the kernel with and without padding, last windows that start in the padding or past it.
SHAPE_CASES = [(H, W, k, s, p)
               for H in (1, 2, 5, 7) for W in (1, 3, 6, 9)
               for k in ((1, 1), (2, 2), (3, 2), (2, 3), (3, 3))
               for s in ((1, 1), (2, 3), (3, 2), (4, 4))
               for p in ((0, 0), (1, 0), (0, 1), (1, 1), (2, 1))
               if p[0] < k[0] and p[1] < k[1]]


def test_pooled_shape_matches_caffes_formula_everywhere():
    for H, W, k, s, p in SHAPE_CASES:
        want = caffe_pooled_shape(H, W, k, s, p)
        if min(want) < 1:
            continue
        assert pooled_shape(H, W, k, p, s) == want, (H, W, k, s, p)
        assert pooled_shape(H, W, k, p, s, "FLOOR") == caffe_pooled_shape(
            H, W, k, s, p, math.floor), (H, W, k, s, p)


@pytest.mark.parametrize("engine", ["numpy", pytest.param("native", marks=pytest.mark.native)])
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_layer_matches_caffe_on_every_boundary_case(method, engine, monkeypatch):
    """Shapes and values of the layer against the reference on all SHAPE_CASES (float64 and
    float32); no output is -inf or NaN for finite input, backward writes finite values.
    `engine` numpy forces the NumPy twins; native runs the compiled kernels."""
    if engine == "numpy":
        monkeypatch.setattr(native, "kernels", lambda: None)
    elif not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    rng = np.random.default_rng(3)
    case = TestAvePool()
    for H, W, k, s, p in SHAPE_CASES:
        if min(caffe_pooled_shape(H, W, k, s, p)) < 1:
            continue
        case.params = {"pool": method, "kernel_h": k[0], "kernel_w": k[1], "stride_h": s[0],
                       "stride_w": s[1], "pad_h": p[0], "pad_w": p[1]}
        x = distinct(rng, (1, 2, H, W))
        want = pool_reference(x, method, k, s, p)
        for dtype in (np.float64, np.float32):
            layer, bottom, top = case.build(dtype=dtype, bottom_values=[x])
            case.run_forward(layer, bottom, top)
            where = f"{method} {H}x{W} kernel {k} stride {s} pad {p} {dtype.__name__}"
            assert top[0].shape == want.shape, where
            assert np.isfinite(top[0].data).all(), where
            np.testing.assert_allclose(top[0].data, want.astype(dtype), rtol=1e-6, atol=1e-7,
                                       err_msg=where)
            top[0].diff[...] = 1.0
            layer.backward(top, [True], bottom)
            assert np.isfinite(bottom[0].diff).all(), where


def test_max_empty_windows_get_no_gradient():
    """Backward of TestMaxPoolStrideAboveKernelNoPad: each kept window sends dy to its maximum,
    windows past the image send nothing."""
    case = TestMaxPoolStrideAboveKernelNoPad()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    dy = np.random.default_rng(5).standard_normal(top[0].shape)
    top[0].diff[...] = dy
    bottom[0].diff[...] = np.nan
    layer.backward(top, [True], bottom)
    x, want = bottom[0].data, np.zeros(bottom[0].shape)
    for a in range(2):
        for b in range(2):
            win = x[:, :, 3 * a, 4 * b:4 * b + 2]               # kernel 1x2 at (3a, 4b)
            j = win.argmax(axis=2)
            for n in range(2):
                for c in range(2):
                    want[n, c, 3 * a, 4 * b + j[n, c]] += dy[n, c, a, b]
    np.testing.assert_array_equal(bottom[0].diff, want)


def test_max_gradient_goes_to_first_maximum_on_ties():
    case = TestMaxPool2x2()
    x = np.ones((1, 1, 2, 2))
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 3.0
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff[0, 0], [[3.0, 0.0], [0.0, 0.0]])


def test_overlapping_max_gradient_sums_over_windows():
    case = TestMaxPoolOverlappingCeil()
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 10.0                            # centre pixel is in all four 3x3 windows
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    assert bottom[0].diff[0, 0, 2, 2] == 4.0


@pytest.mark.parametrize("params, frags", [
    ({"pool": "MAX"}, ["kernel size must be positive"]),
    ({"pool": "MAX", "kernel_size": 2, "pad": 2}, ["pad (2, 2) must be smaller"]),
    ({"pool": "STOCHASTIC", "kernel_size": 2}, ["STOCHASTIC"]),
    ({"pool": "MAX", "global_pooling": True, "kernel_size": 2}, ["global_pooling"]),
    ({"pool": "MAX", "kernel_size": 9}, ["does not fit the 6x6 input"]),
    ({"pool": "MAX", "kernel_h": 7, "kernel_w": 2}, ["kernel (7, 2) does not fit the 6x6 input"]),
    ({"pool": "MAX", "kernel_h": 9, "kernel_w": 2}, ["kernel (9, 2) does not fit the 6x6 input"]),
    ({"pool": "MAX", "kernel_h": 2, "kernel_w": 7}, ["kernel (2, 7) does not fit the 6x6 input"]),
    ({"pool": "MAX", "kernel_h": 2, "kernel_w": 9}, ["kernel (2, 9) does not fit the 6x6 input"]),
    ({"pool": "MAX", "kernel_h": 2, "kernel_w": 0}, ["kernel size must be positive, got (2, 0)"]),
    ({"pool": "MAX", "kernel_h": 0, "kernel_w": 2}, ["kernel size must be positive, got (0, 2)"]),
    ({"pool": "MAX", "kernel_size": 2, "pad_h": 2, "pad_w": 0},
     ["pad (2, 0) must be smaller than the kernel (2, 2)"]),
    ({"pool": "MAX", "kernel_size": 2, "pad_h": 0, "pad_w": 2},
     ["pad (0, 2) must be smaller than the kernel (2, 2)"]),
    ({"pool": "MAX", "kernel_size": 2, "pad_h": 3, "pad_w": 0},
     ["pad (3, 0) must be smaller than the kernel (2, 2)"]),
    ({"pool": "MAX", "kernel_size": 2, "pad_h": 0, "pad_w": 3},
     ["pad (0, 3) must be smaller than the kernel (2, 2)"]),
    ({"pool": "MAX", "kernel_size": 2, "stride_h": 0, "stride_w": 1},
     ["stride must be positive, got (0, 1)"]),
    ({"pool": "MAX", "kernel_size": 2, "stride_h": 1, "stride_w": 0},
     ["stride must be positive, got (1, 0)"]),
    ({"pool": "MAX", "global_pooling": True, "kernel_h": 2, "kernel_w": 2}, ["whole plane"]),
    ({"pool": "MAX", "global_pooling": True, "kernel_h": 2}, ["whole plane"]),
    ({"pool": "MAX", "global_pooling": True, "kernel_w": 2}, ["whole plane"]),
    ({"pool": "MAX", "global_pooling": True, "pad": 1}, ["global_pooling needs pad 0 and stride 1"]),
    ({"pool": "MAX", "global_pooling": True, "stride": 2}, ["needs pad 0 and stride 1"]),
    ({"pool": "MAX", "global_pooling": True, "pad_h": 1, "pad_w": 0}, ["needs pad 0"]),
    ({"pool": "MAX", "global_pooling": True, "stride_h": 2, "stride_w": 1}, ["needs pad 0"]),
])
def test_invalid_pooling(params, frags):
    harness.expect_setup_error(TestAvePool, [(2, 3, 6, 6)], *frags, params=params)


def test_pooling_limits_that_are_allowed():
    """pad = kernel - 1 and stride 1 are fine; a kernel as large as the plane gives 1x1."""
    case = TestAvePool()
    for params, shape in [({"pool": "MAX", "kernel_size": 3, "pad": 2, "stride": 1}, (8, 8)),
                          ({"pool": "AVE", "kernel_h": 6, "kernel_w": 1}, (1, 6)),
                          ({"pool": "MAX", "kernel_size": 6}, (1, 1)),
                          ({"pool": "MAX", "global_pooling": True}, (1, 1))]:
        case.params = params
        layer, bottom, top = case.build()
        assert tuple(top[0].shape) == (2, 3) + shape, params


def test_pooling_needs_a_four_axis_bottom():
    harness.expect_setup_error(TestAvePool, [(2, 3, 6)], "expects a 4-D bottom (N, C, H, W)")
    case = TestAvePool()
    layer, bottom, top = case.build()
    bottom[0].reshape((2, 3, 6))
    with pytest.raises(Exception, match="expects a 4-D bottom"):
        layer.reshape(bottom, top)
    harness.expect_setup_error(TestAvePool, [(2, 3, 6, 6, 1)], "expects a 4-D bottom (N, C, H, W)")
    layer, bottom, top = case.build()
    bottom[0].reshape((2, 3, 6, 6, 1))
    with pytest.raises(Exception, match="expects a 4-D bottom"):
        layer.reshape(bottom, top)


def test_second_top_needs_max():
    case = TestAvePool()
    case.num_tops = 2
    with pytest.raises(Exception, match=r"a second top \(the argmax mask\) needs pool: MAX, got AVE"):
        case.build()


def test_pool_method_is_compared_by_value():
    """`pool` read from prototxt text is a string the parser built, not the literal in the
    layer's code: STOCHASTIC is refused, a mask top needs MAX and MAX gets it."""
    harness.expect_setup_error(TestAvePool, [(2, 3, 6, 6)], "STOCHASTIC pooling is not supported",
                               params="pooling_param { pool: STOCHASTIC kernel_size: 2 }")
    case = TestAvePool()
    case.num_tops = 2
    case.params = "pooling_param { pool: AVE kernel_size: 2 }"
    with pytest.raises(Exception, match="needs pool: MAX, got AVE"):
        case.build()
    case.params = "pooling_param { pool: MAX kernel_size: 2 }"
    layer, bottom, top = case.build()
    assert tuple(top[0].shape) == tuple(top[1].shape) == (2, 3, 5, 5)


def test_reshape_follows_a_new_input_size():
    """The output size is recomputed when the bottom changes (and not otherwise)."""
    case = TestMaxPoolAsymmetricPad()
    layer, bottom, top = case.build()
    assert tuple(top[0].shape[2:]) == (3, 3)
    for shape, want in [((1, 2, 7, 9), (4, 3)), ((1, 2, 5, 9), (3, 3)), ((1, 2, 5, 12), (3, 4))]:
        bottom[0].reshape(shape)
        layer.reshape(bottom, top)
        assert tuple(top[0].shape) == shape[:2] + want
    bottom[0].reshape((1, 2, 5, 12))
    bottom[0].data[...] = distinct(np.random.default_rng(0), (1, 2, 5, 12)).astype(np.float64)
    layer.reshape(bottom, top)
    case.run_forward(layer, bottom, top)
    np.testing.assert_array_equal(top[0].data, pool_reference(np.array(bottom[0].data), "MAX",
                                                              (3, 2), (2, 3), (1, 0)))


def test_global_pooling_takes_each_new_plane_whole():
    case = TestGlobalMax()
    layer, bottom, top = case.build()
    bottom[0].reshape((2, 3, 2, 7))
    layer.reshape(bottom, top)
    assert tuple(top[0].shape) == (2, 3, 1, 1)
    bottom[0].data[...] = np.arange(84.0).reshape(2, 3, 2, 7)
    case.run_forward(layer, bottom, top)
    np.testing.assert_array_equal(top[0].data[:, :, 0, 0], np.arange(84.0).reshape(6, 14).max(1)
                                  .reshape(2, 3))


@pytest.mark.torch
@pytest.mark.parametrize("method, k, s, p, hw", [
    ("MAX", 2, 2, 0, (12, 12)), ("MAX", 3, 2, 0, (15, 15)), ("MAX", 3, 2, 1, (16, 16)),
    ("MAX", 3, 2, 0, (16, 16)),
    ("AVE", 3, 2, 0, (15, 15)), ("AVE", 3, 2, 1, (16, 16)), ("AVE", 2, 2, 0, (8, 8)),
    # pad on one axis only: torch clips per axis, Caffe on both once either is padded; here
    # the unpadded width's last window starts at 9 = W + 0, so both drop it (3x3).
    ("MAX", (3, 2), (2, 3), (1, 0), (5, 9)), ("AVE", (3, 2), (2, 3), (1, 0), (5, 9)),
    ("MAX", (2, 3), (3, 2), (0, 1), (9, 5)), ("AVE", (2, 3), (3, 2), (0, 1), (9, 5)),
    ("MAX", 2, 3, 1, (7, 6)), ("AVE", 2, 3, 1, (7, 6)),          # stride > kernel, padded
])
def test_matches_torch(torch, method, k, s, p, hw):
    """Caffe = torch with ceil_mode=True (torch also drops a last window starting in the right
    padding) and, for AVE, count_include_pad=True: torch then divides by the window clipped to
    the padded plane, exactly Caffe's rule. Where they differ: torch's default ceil_mode=False
    gives one fewer output for e.g. 3x3/2 on 16x16 (7 vs Caffe's 8), count_include_pad=False
    divides by the in-image count only, and with no padding at all torch drops a window past
    the image that Caffe keeps (see TestMaxPoolStrideAboveKernelNoPad)."""
    k, s, p = ((v, v) if isinstance(v, int) else v for v in (k, s, p))
    rng = np.random.default_rng(1)
    x = distinct(rng, (2, 3) + hw)
    case = TestAvePool()
    case.params = {"pool": method, "kernel_h": k[0], "kernel_w": k[1], "stride_h": s[0],
                   "stride_w": s[1], "pad_h": p[0], "pad_w": p[1]}
    layer, bottom, top, dy = case.run_forward_backward(x, rng)
    assert tuple(top[0].shape) == (2, 3) + caffe_pooled_shape(*hw, k, s, p)
    tx = torch.tensor(x, requires_grad=True)
    if method == "MAX":
        ty = torch.nn.functional.max_pool2d(tx, k, s, p, ceil_mode=True)
    else:
        ty = torch.nn.functional.avg_pool2d(tx, k, s, p, ceil_mode=True, count_include_pad=True)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.torch
def test_torch_default_floor_mode_differs(torch):
    x = torch.zeros(1, 1, 16, 16)
    assert torch.nn.functional.max_pool2d(x, 3, 2).shape[-1] == 7
    assert pooled_shape(16, 16, (3, 3), (0, 0), (2, 2)) == (8, 8)


def test_max_mask_top_is_the_argmax_the_gradient_uses():
    """top[1] and backward share one argmax: the gradient lands where the mask points."""
    case = TestMaxPoolWithMask()
    x = np.zeros((1, 2, 5, 5))                      # all ties: the first pixel of each window
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    np.testing.assert_array_equal(top[1].data[0, 0], [[0, 1, 3], [5, 6, 8], [15, 16, 18]])
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    want = np.zeros(25)
    np.add.at(want, top[1].data[0, 0].astype(int).ravel(), 1.0)
    np.testing.assert_array_equal(bottom[0].diff[0, 0].ravel(), want)
