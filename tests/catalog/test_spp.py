"""SPP: pyramid levels with Caffe's kernel / pad per level, MAX and AVE, flattening and
concatenation; cross-checked with torch's max_pool2d / avg_pool2d (ceil_mode)."""
import math

import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _pool_plane(plane, k, p, method):
    """Caffe's pooling of one (H, W) plane with stride = kernel (loops)."""
    H, W = plane.shape
    sizes = []
    for size, kk, pp in ((H, k[0], p[0]), (W, k[1], p[1])):
        out = -(-(size + 2 * pp - kk) // kk) + 1
        # Caffe: once either axis is padded, a last window starting at or past size + pad goes
        if (p[0] or p[1]) and (out - 1) * kk >= size + pp:
            out -= 1
        sizes.append(out)
    res = np.zeros(sizes)
    for i in range(sizes[0]):
        for j in range(sizes[1]):
            h0, w0 = i * k[0] - p[0], j * k[1] - p[1]
            h1, w1 = min(h0 + k[0], H + p[0]), min(w0 + k[1], W + p[1])
            area = (h1 - h0) * (w1 - w0)
            win = plane[max(h0, 0):min(h1, H), max(w0, 0):min(w1, W)]
            res[i, j] = win.max() if method == "MAX" else win.sum() / area
    return res


def _spp(x, height, method):
    N, C, H, W = x.shape
    levels = []
    for level in range(height):
        bins = 2 ** level
        k = (math.ceil(H / bins), math.ceil(W / bins))
        p = ((k[0] * bins - H + 1) // 2, (k[1] * bins - W + 1) // 2)
        pooled = np.stack([np.stack([_pool_plane(x[n, c], k, p, method) for c in range(C)])
                           for n in range(N)])
        levels.append(pooled)
    if height == 1:
        return levels[0]
    return np.concatenate([lv.reshape(N, -1) for lv in levels], axis=1)


class TestSPPMax(LayerCase):
    type, params, bottom_shapes = "SPP", {"pyramid_height": 3}, [(2, 3, 13, 11)]

    def reference(self, x):
        out = _spp(x, 3, "MAX")
        assert out.shape == (2, 3 * (1 + 4 + 16))
        return out


class TestSPPAve(LayerCase):
    type, params, bottom_shapes = "SPP", {"pyramid_height": 2, "pool": "AVE"}, [(2, 2, 7, 6)]

    def reference(self, x):
        return _spp(x, 2, "AVE")


class TestSPPOneLevel(LayerCase):
    type, params, bottom_shapes = "SPP", {"pyramid_height": 1}, [(2, 3, 5, 4)]

    def reference(self, x):
        out = _spp(x, 1, "MAX")
        assert out.shape == (2, 3, 1, 1)
        return out


def test_reshape_follows_a_new_input_size():
    case = TestSPPMax()
    layer, bottom, top = case.build()
    bottom[0].reshape(2, 3, 17, 20)
    bottom[0].data[...] = np.random.default_rng(3).standard_normal((2, 3, 17, 20))
    case.run_forward(layer, bottom, top)
    np.testing.assert_allclose(top[0].data, _spp(np.array(bottom[0].data), 3, "MAX"))


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_matches_torch_pooling(torch, method):
    case = TestSPPMax()
    case.params = {"pyramid_height": 3, "pool": method}
    x = np.random.default_rng(0).standard_normal((2, 3, 13, 11))
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    outs = []
    for level in range(3):
        bins = 2 ** level
        k = (math.ceil(13 / bins), math.ceil(11 / bins))
        p = ((k[0] * bins - 13 + 1) // 2, (k[1] * bins - 11 + 1) // 2)
        if method == "MAX":
            o = torch.nn.functional.max_pool2d(tx, k, k, p, ceil_mode=True)
        else:
            o = torch.nn.functional.avg_pool2d(tx, k, k, p, ceil_mode=True,
                                               count_include_pad=True)
        outs.append(o.reshape(2, -1))
    ty = torch.cat(outs, dim=1)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_too_many_levels_for_the_input_are_named():
    expect_setup_error(TestSPPMax, [(1, 1, 3, 3)], "pyramid level 2 (4 bins) on a 3x3 input")


def test_pyramid_height_required():
    expect_setup_error(TestSPPMax, [(1, 1, 8, 8)], "pyramid_height = 0 must be at least 1",
                       params={"pool": "AVE"})


def test_stochastic_refused():
    expect_setup_error(TestSPPMax, [(1, 1, 8, 8)], "STOCHASTIC is not supported",
                       params={"pyramid_height": 2, "pool": "STOCHASTIC"})
