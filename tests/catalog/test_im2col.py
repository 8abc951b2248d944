"""Im2col: the convolution lowering as a layer (2-D compiled path, N-D NumPy path, channel
axis, dilation, _h/_w fields); cross-checked with torch's unfold / fold."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _im2col(x, axis, kernel, pad, stride, dil):
    """Naive N-D lowering: one output value at a time."""
    lead, C, spatial = x.shape[:axis], x.shape[axis], x.shape[axis + 1:]
    out_sp = tuple((s + 2 * p - (d * (k - 1) + 1)) // st + 1
                   for s, k, p, st, d in zip(spatial, kernel, pad, stride, dil))
    offsets = list(np.ndindex(*kernel))
    res = np.zeros(lead + (C * len(offsets),) + out_sp)
    for li in np.ndindex(*lead):
        for c in range(C):
            for oi, off in enumerate(offsets):
                for o in np.ndindex(*out_sp):
                    pos = [oo * st - p + of * d for oo, st, p, of, d in
                           zip(o, stride, pad, off, dil)]
                    if all(0 <= q < s for q, s in zip(pos, spatial)):
                        res[li + (c * len(offsets) + oi,) + o] = x[li + (c,) + tuple(pos)]
    return res


class TestIm2col(LayerCase):
    type, bottom_shapes = "Im2col", [(2, 3, 5, 6)]
    params = {"kernel_size": [3], "stride": [2], "pad": [1]}

    def reference(self, x):
        return _im2col(x, 1, (3, 3), (1, 1), (2, 2), (1, 1))


class TestIm2colHW(LayerCase):
    type, bottom_shapes = "Im2col", [(1, 2, 7, 6)]
    params = {"kernel_h": 3, "kernel_w": 2, "stride_h": 2, "stride_w": 1, "pad_h": 0, "pad_w": 1,
              "dilation": [2, 1]}

    def reference(self, x):
        return _im2col(x, 1, (3, 2), (0, 1), (2, 1), (2, 1))


class TestIm2colForceND(LayerCase):
    type, bottom_shapes = "Im2col", [(2, 3, 5, 6)]
    params = {"kernel_size": [3], "stride": [2], "pad": [1], "force_nd_im2col": True}

    def reference(self, x):
        return _im2col(x, 1, (3, 3), (1, 1), (2, 2), (1, 1))


class TestIm2col1D(LayerCase):
    type, bottom_shapes = "Im2col", [(2, 3, 10)]
    params = {"kernel_size": [3], "stride": [2], "pad": [1], "dilation": [2]}

    def reference(self, x):
        return _im2col(x, 1, (3,), (1,), (2,), (2,))


class TestIm2col3D(LayerCase):
    type, bottom_shapes = "Im2col", [(1, 2, 4, 3, 5)]
    params = {"kernel_size": [2, 2, 3], "stride": [1, 2, 1], "pad": [0, 1, 1]}

    def reference(self, x):
        return _im2col(x, 1, (2, 2, 3), (0, 1, 1), (1, 2, 1), (1, 1, 1))


class TestIm2colAxis2(LayerCase):
    type, bottom_shapes = "Im2col", [(2, 2, 3, 4, 4)]
    params = {"kernel_size": [2], "axis": 2}

    def reference(self, x):
        return _im2col(x, 2, (2, 2), (0, 0), (1, 1), (1, 1))


@pytest.mark.parametrize("k, s, p, d", [(3, 2, 1, 1), (2, 1, 0, 2), (3, 1, 2, 1)])
def test_matches_torch_unfold(torch, k, s, p, d):
    case = TestIm2col()
    case.params = {"kernel_size": [k], "stride": [s], "pad": [p], "dilation": [d]}
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8))
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.unfold(tx, k, dilation=d, padding=p, stride=s)
    ty.backward(torch.tensor(dy.reshape(ty.shape)))
    np.testing.assert_array_equal(top[0].data.reshape(ty.shape), ty.detach().numpy())
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-13)


def test_nd_path_equals_2d_path():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6))
    case2d, casend = TestIm2col(), TestIm2colForceND()
    outs = []
    for case in (case2d, casend):
        layer, bottom, top = case.build(bottom_values=[x])
        case.run_forward(layer, bottom, top)
        top[0].diff[...] = np.arange(top[0].count).reshape(top[0].shape)
        layer.backward(top, [True], bottom)
        outs.append((np.array(top[0].data), np.array(bottom[0].diff)))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-14)


def test_kernel_required():
    expect_setup_error(TestIm2col, [(1, 1, 4, 4)], "kernel_size (or kernel_h / kernel_w) must be",
                       params={"stride": [1]})


def test_kernel_list_length_checked():
    expect_setup_error(TestIm2col, [(1, 1, 4, 4)], "kernel_size has 3 values",
                       params={"kernel_size": [1, 2, 3]})


def test_hw_form_needs_2_spatial_axes():
    expect_setup_error(TestIm2col, [(1, 1, 4)], "kernel_h / kernel_w need 2 spatial axes",
                       params={"kernel_h": 2, "kernel_w": 2})


def test_kernel_larger_than_input():
    expect_setup_error(TestIm2col, [(1, 1, 3, 3)], "does not fit the spatial size",
                       params={"kernel_size": [5]})
