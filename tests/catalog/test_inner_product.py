"""InnerProduct: reference, axis, transpose, no bias, errors, PyTorch."""
import numpy as np
import pytest

from minicaffe.blob import Blob
from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


class TestInnerProduct(LayerCase):
    type, bottom_shapes = "InnerProduct", [(3, 2, 3, 2)]
    params = {"num_output": 5, "weight_filler": {"type": "xavier"}}

    def reference(self, x):
        w, b = self.param_data
        return x.reshape(3, -1) @ w.T + b


class TestInnerProductAxis2Transpose(LayerCase):
    type, bottom_shapes = "InnerProduct", [(2, 3, 4, 2)]
    params = {"num_output": 4, "axis": 2, "transpose": True}

    def reference(self, x):
        w, b = self.param_data                   # (K, num_output)
        assert w.shape == (8, 4)
        return (x.reshape(6, 8) @ w + b).reshape(2, 3, 4)


class TestInnerProductNoBiasNegativeAxis(LayerCase):
    type, bottom_shapes = "InnerProduct", [(4, 6)]
    params = {"num_output": 3, "bias_term": False, "axis": -1}

    def reference(self, x):
        (w,) = self.param_data
        return x @ w.T


def test_input_size_mismatch_names_bottom_and_weights():
    case = TestInnerProduct()
    layer, bottom, top = case.build()
    bottom[0].reshape(3, 2, 3, 3)
    with pytest.raises(ValueError) as info:
        layer.reshape(bottom, top)
    msg = str(info.value)
    for frag in ("layer_under_test", "InnerProduct", "'b0' gives 18 inputs", "expect 12", "(5, 12)"):
        assert frag in msg, msg


def test_shared_weights_of_wrong_size_are_reported():
    case = TestInnerProduct()
    layer, bottom, top = case.build()
    layer.blobs[0] = Blob((5, 7))                 # what a Net does when sharing by param name
    with pytest.raises(ValueError, match="gives 12 inputs per sample; weights expect 7"):
        layer.reshape(bottom, top)


def test_missing_num_output():
    harness.expect_setup_error(TestInnerProduct, [(2, 3)], "num_output", params={"bias_term": True})


def test_axis_out_of_range():
    harness.expect_setup_error(TestInnerProduct, [(2, 3)], "axis=3",
                               params={"num_output": 2, "axis": 3})


@pytest.mark.torch
def test_matches_torch(torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3, 4, 4))
    case = TestInnerProduct()
    layer, bottom, top, dy = case.run_forward_backward(x, rng)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(layer.blobs[0].data.copy(), requires_grad=True)
    tb = torch.tensor(layer.blobs[1].data.copy(), requires_grad=True)
    ty = torch.nn.functional.linear(tx.flatten(1), tw, tb)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.blobs[0].diff, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.blobs[1].diff, tb.grad.numpy(), rtol=1e-12, atol=1e-12)
