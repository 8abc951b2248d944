"""Pooling: loop reference with Caffe's window rules, gradients, errors, PyTorch."""
import math

import numpy as np
import pytest

from minicaffe.catalog.pooling import pooled_size
from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


def pool_reference(x, method, k, s=(1, 1), p=(0, 0), rounding=math.ceil):
    """Caffe's pooling, one output at a time."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    oh = int(rounding((H + 2 * ph - kh) / sh)) + 1
    ow = int(rounding((W + 2 * pw - kw) / sw)) + 1
    if ph and (oh - 1) * sh >= H + ph:
        oh -= 1
    if pw and (ow - 1) * sw >= W + pw:
        ow -= 1
    y = np.zeros((N, C, oh, ow))
    for a in range(oh):
        for b in range(ow):
            h0, w0 = a * sh - ph, b * sw - pw
            h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)
            size = (h1 - h0) * (w1 - w0)
            h0c, w0c, h1c, w1c = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            window = x[:, :, h0c:h1c, w0c:w1c]
            if method == "MAX":
                y[:, :, a, b] = window.max(axis=(2, 3))
            else:
                y[:, :, a, b] = window.sum(axis=(2, 3)) / size
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


def test_pooled_size_rules():
    assert pooled_size(32, 3, 0, 2) == 16          # ceil(29/2)+1; floor would give 15
    assert pooled_size(28, 2, 0, 2) == 14
    assert pooled_size(5, 3, 1, 2) == 3            # ceil(4/2)+1 = 3, last start 4 < 5+1
    assert pooled_size(4, 2, 1, 4) == 2            # ceil(4/4)+1 = 2, last start 4 < 4+1
    assert pooled_size(1, 2, 1, 2) == 1            # ceil(1/2)+1 = 2, last start 2 >= 1+1: clipped
    assert pooled_size(32, 3, 0, 2, "FLOOR") == 15


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
])
def test_invalid_pooling(params, frags):
    harness.expect_setup_error(TestAvePool, [(2, 3, 6, 6)], *frags, params=params)


@pytest.mark.torch
@pytest.mark.parametrize("method, k, s, p, hw", [
    ("MAX", 2, 2, 0, (12, 12)), ("MAX", 3, 2, 0, (15, 15)), ("MAX", 3, 2, 1, (16, 16)),
    ("MAX", 3, 2, 0, (16, 16)),
    ("AVE", 3, 2, 0, (15, 15)), ("AVE", 3, 2, 1, (16, 16)), ("AVE", 2, 2, 0, (8, 8)),
])
def test_matches_torch(torch, method, k, s, p, hw):
    """Caffe = torch with ceil_mode=True (torch also drops a last window starting in the right
    padding) and, for AVE, count_include_pad=True: torch then divides by the window clipped to
    the padded plane, exactly Caffe's rule. Where they differ: torch's default ceil_mode=False
    gives one fewer output for e.g. 3x3/2 on 16x16 (7 vs Caffe's 8), and
    count_include_pad=False divides by the in-image count only."""
    rng = np.random.default_rng(1)
    x = distinct(rng, (2, 3) + hw)
    case = TestAvePool()
    case.params = {"pool": method, "kernel_size": k, "stride": s, "pad": p}
    layer, bottom, top, dy = case.run_forward_backward(x, rng)
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
    assert pooled_size(16, 3, 0, 2) == 8


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
