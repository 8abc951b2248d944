"""ELU: alpha (default 1), in place for alpha >= 0 and < 0; cross-checked with torch's elu."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * (np.exp(x) - 1.0))


class TestELU(LayerCase):
    type, bottom_shapes = "ELU", [(2, 3, 4, 5)]
    kinks = [0.0]
    in_place = True

    def reference(self, x):
        return _elu(x, 1.0)


class TestELUAlpha(LayerCase):
    type, params, bottom_shapes = "ELU", {"alpha": 0.3}, [(3, 4, 5)]
    kinks = [0.0]
    in_place = True

    def reference(self, x):
        return _elu(x, 0.3)


class TestELUNegativeAlpha(LayerCase):
    # alpha < 0 makes y > 0 for x < 0 too: backward must not read the sign of y.
    type, params, bottom_shapes = "ELU", {"alpha": -0.7}, [(3, 10)]
    kinks = [0.0]
    in_place = True

    def reference(self, x):
        return _elu(x, -0.7)


def test_gradient_at_zero_is_alpha():
    case = TestELUAlpha()
    layer, bottom, top = case.build(bottom_values=[np.zeros((1, 2))])
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, [[0.3, 0.3]])


@pytest.mark.parametrize("alpha", [1.0, 0.3, 2.5])
def test_matches_torch_elu(torch, alpha):
    case = TestELU()
    case.params = {"alpha": alpha}
    x = np.random.default_rng(0).standard_normal((4, 3, 5)) * 3
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.elu(tx, alpha=alpha)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-12, atol=1e-15)
