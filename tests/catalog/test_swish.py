"""Swish: x * sigmoid(beta x); beta 1 is torch's SiLU, other betas are silu(beta x) / beta."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase


def _swish(x, beta):
    return x / (1.0 + np.exp(-beta * x))


class TestSwish(LayerCase):
    type, bottom_shapes = "Swish", [(2, 3, 4, 5)]
    in_place = True

    def reference(self, x):
        return _swish(x, 1.0)


class TestSwishBeta(LayerCase):
    type, params, bottom_shapes = "Swish", {"beta": 2.5}, [(3, 4, 5)]
    in_place = True

    def reference(self, x):
        return _swish(x, 2.5)


class TestSwishNegativeBeta(LayerCase):
    type, params, bottom_shapes = "Swish", {"beta": -0.6}, [(3, 8)]
    in_place = True

    def reference(self, x):
        return _swish(x, -0.6)


def test_large_inputs_stay_finite():
    case = TestSwish()
    x = np.array([[-800.0, -40.0, 0.0, 40.0, 800.0]])
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    assert np.all(np.isfinite(top[0].data))
    np.testing.assert_allclose(top[0].data[0, 3:], [40.0, 800.0])


@pytest.mark.parametrize("beta", [1.0, 0.5, 3.0])
def test_matches_torch_silu(torch, beta):
    case = TestSwish()
    case.params = {"beta": beta}
    x = np.random.default_rng(0).standard_normal((4, 3, 5)) * 4
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.silu(beta * tx) / beta        # x * sigmoid(beta x)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-11, atol=1e-15)
