"""Exp: base^(shift + scale x) with base -1 meaning e; cross-checked with torch.pow / torch.exp."""
import math

import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestExp(LayerCase):
    type, bottom_shapes = "Exp", [(2, 3, 4, 5)]
    in_place = True

    def reference(self, x):
        return np.exp(x)


class TestExpScaleShift(LayerCase):
    type, params, bottom_shapes = "Exp", {"scale": 0.5, "shift": -1.5}, [(3, 4, 5)]
    in_place = True

    def reference(self, x):
        return np.exp(-1.5 + 0.5 * x)


class TestExpBase(LayerCase):
    type, params, bottom_shapes = "Exp", {"base": 2.0, "scale": -1.2, "shift": 0.7}, [(4, 6)]
    in_place = True

    def reference(self, x):
        return 2.0 ** (0.7 - 1.2 * x)


class TestExpBaseOne(LayerCase):
    type, params, bottom_shapes = "Exp", {"base": 1.0, "scale": 3.0}, [(4, 6)]

    def reference(self, x):
        return np.ones_like(x)


@pytest.mark.parametrize("params", [{}, {"base": 3.0, "scale": 0.4, "shift": -0.2},
                                    {"base": 0.5, "scale": 2.0, "shift": 1.0}])
def test_matches_torch(torch, params):
    case = TestExp()
    case.params = params
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    base, scale, shift = params.get("base", math.e), params.get("scale", 1.0), params.get("shift", 0.0)
    ty = torch.exp(tx) if not params else torch.pow(torch.tensor(base, dtype=torch.float64),
                                                    shift + scale * tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("base", [0.0, -2.0])
def test_bad_base_is_named(base):
    expect_setup_error(TestExp, [(2, 3)], f"exp_param.base = {base:g} must be strictly positive",
                       params={"base": base})
