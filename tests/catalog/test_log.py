"""Log: log_base(shift + scale x) with base -1 meaning e, in place included; torch cross-check."""
import math

import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class _PositiveCase(LayerCase):
    def make_bottoms(self, rng):
        return [rng.uniform(0.2, 3.0, s) for s in self.bottom_shapes]


class TestLog(_PositiveCase):
    type, bottom_shapes = "Log", [(2, 3, 4, 5)]
    in_place = True

    def reference(self, x):
        return np.log(x)


class TestLogBaseScaleShift(_PositiveCase):
    type, params, bottom_shapes = "Log", {"base": 2.0, "scale": 0.5, "shift": 0.25}, [(3, 4, 5)]
    in_place = True

    def reference(self, x):
        return np.log2(0.25 + 0.5 * x)


class TestLogNegativeScale(_PositiveCase):
    type, params, bottom_shapes = "Log", {"base": 10.0, "scale": -1.0, "shift": 4.0}, [(4, 6)]
    in_place = True

    def reference(self, x):
        return np.log10(4.0 - x)


@pytest.mark.parametrize("params", [{}, {"base": 10.0, "scale": 2.0, "shift": 1.0},
                                    {"base": 0.5, "scale": 1.5}])
def test_matches_torch(torch, params):
    case = TestLog()
    case.params = params
    x = np.random.default_rng(0).uniform(0.1, 5.0, (3, 4, 5))
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    base, scale, shift = params.get("base", math.e), params.get("scale", 1.0), params.get("shift", 0.0)
    ty = torch.log(shift + scale * tx) / math.log(base)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-12)


def test_base_one_is_refused():
    expect_setup_error(TestLog, [(2, 3)], "log_param.base = 1 has no logarithm",
                       params={"base": 1.0})


def test_negative_base_is_refused():
    expect_setup_error(TestLog, [(2, 3)], "log_param.base = -3 must be strictly positive",
                       params={"base": -3.0})
