"""PReLU: per-channel or shared (0-axis) slope, filler default 0.25, in place; torch's prelu."""
import numpy as np
import pytest

from minicaffe.net import Net
from minicaffe.prototxt import parse_net
from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _prelu(x, a):
    a = np.reshape(a, (1, -1) + (1,) * (x.ndim - 2)) if np.ndim(a) else a
    return np.where(x > 0, x, a * x)


class TestPReLU(LayerCase):
    type, bottom_shapes = "PReLU", [(2, 3, 4, 5)]
    kinks = [0.0]
    in_place = True

    def reference(self, x):
        (a,) = self.param_data
        assert a.shape == (3,)
        return _prelu(x, a)


class TestPReLUShared(LayerCase):
    type, params, bottom_shapes = "PReLU", {"channel_shared": True}, [(2, 3, 4)]
    kinks = [0.0]
    in_place = True

    def reference(self, x):
        (a,) = self.param_data
        assert a.shape == ()
        return _prelu(x, a)


class TestPReLU2D(LayerCase):
    type, bottom_shapes = "PReLU", [(5, 4)]
    kinks = [0.0]

    def reference(self, x):
        (a,) = self.param_data
        return _prelu(x, a)


def test_default_filler_is_a_quarter():
    layer, _, _ = TestPReLU().build(init_params=False)
    np.testing.assert_array_equal(layer.blobs[0].data, [0.25, 0.25, 0.25])
    layer, _, _ = TestPReLUShared().build(init_params=False)
    assert layer.blobs[0].shape == () and float(layer.blobs[0].data) == 0.25


def test_filler_is_used():
    case = TestPReLU()
    case.params = {"filler": {"type": "constant", "value": -0.1}}
    layer, _, _ = case.build(init_params=False)
    np.testing.assert_allclose(layer.blobs[0].data, [-0.1] * 3, rtol=1e-6)


@pytest.mark.parametrize("shared", [False, True])
def test_matches_torch_prelu(torch, shared):
    case = TestPReLUShared() if shared else TestPReLU()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    rng = np.random.default_rng(1)
    layer, bottom, top = case.build(bottom_values=[x])
    layer.blobs[0].data[...] = rng.uniform(-0.5, 0.5, layer.blobs[0].shape)
    case.run_forward(layer, bottom, top)
    dy = rng.standard_normal(top[0].shape)
    top[0].diff[...] = dy
    layer.blobs[0].diff[...] = 0
    layer.backward(top, [True], bottom)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(np.array(layer.blobs[0].data).reshape(-1), requires_grad=True)
    ty = torch.nn.functional.prelu(tx, tw)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(np.reshape(layer.blobs[0].diff, -1), tw.grad.numpy(), rtol=1e-12)


def test_param_diff_skipped_when_not_wanted():
    case = TestPReLU()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    layer.param_propagate_down = [False]
    layer.blobs[0].diff[...] = 7.0
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(layer.blobs[0].diff, 7.0)


def test_one_axis_bottom_is_refused():
    expect_setup_error(TestPReLU, [(6,)], "at least 2 axes")


def test_shared_slope_round_trips_through_a_caffemodel(tmp_path):
    text = ('input: "x" input_shape { dim: 2 dim: 3 dim: 2 }\n'
            'layer { name: "p" type: "PReLU" bottom: "x" top: "y" '
            'prelu_param { channel_shared: true } }\n')
    net = Net(parse_net(text), "TEST")
    net.params["p"][0].data[...] = -0.375
    path = tmp_path / "prelu.caffemodel"
    net.save(str(path))
    again = Net(parse_net(text), "TEST", weights=str(path))
    assert again.params["p"][0].data.shape == ()
    assert float(again.params["p"][0].data) == -0.375


def test_in_place_slope_gradient_reads_dy_before_it_is_overwritten():
    from minicaffe.blob import Blob
    case = TestPReLU()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    dy = np.random.default_rng(5).standard_normal(top[0].shape)
    top[0].diff[...] = dy
    layer.blobs[0].diff[...] = 0
    layer.backward(top, [True], bottom)
    want = np.array(layer.blobs[0].diff)
    x = Blob(bottom[0].shape, dtype=np.float64)
    x.data[...] = bottom[0].data
    case.run_forward(layer, [x], [x])
    x.diff[...] = dy
    layer.blobs[0].diff[...] = 0
    layer.backward([x], [True], [x])
    np.testing.assert_allclose(layer.blobs[0].diff, want, rtol=1e-13)
