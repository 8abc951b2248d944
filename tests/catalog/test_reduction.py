"""Reduction: SUM / ASUM / SUMSQ / MEAN over tail axes with coeff; torch cross-check."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase

_OPS = {
    "SUM": lambda r: r.sum(),
    "ASUM": lambda r: np.abs(r).sum(),
    "SUMSQ": lambda r: (r * r).sum(),
    "MEAN": lambda r: r.mean(),
}


def _reduce(x, op, axis, coeff):
    axis = axis % x.ndim
    out = np.zeros(x.shape[:axis])
    for i in np.ndindex(*x.shape[:axis]):
        out[i] = coeff * _OPS[op](x[i])
    return out


class TestReductionSumAll(LayerCase):
    type, bottom_shapes = "Reduction", [(2, 3, 4)]

    def reference(self, x):
        return _reduce(x, "SUM", 0, 1.0)


class TestReductionAsum(LayerCase):
    type, params, bottom_shapes = "Reduction", {"operation": "ASUM", "axis": 1}, [(3, 4, 2)]
    kinks = [0.0]

    def reference(self, x):
        return _reduce(x, "ASUM", 1, 1.0)


class TestReductionSumsqCoeff(LayerCase):
    type, params = "Reduction", {"operation": "SUMSQ", "axis": 2, "coeff": -0.5}
    bottom_shapes = [(2, 3, 4, 2)]

    def reference(self, x):
        return _reduce(x, "SUMSQ", 2, -0.5)


class TestReductionMeanNegativeAxis(LayerCase):
    type, params = "Reduction", {"operation": "MEAN", "axis": -1, "coeff": 3.0}
    bottom_shapes = [(2, 3, 5)]

    def reference(self, x):
        return _reduce(x, "MEAN", -1, 3.0)


def test_scalar_top_for_axis_0():
    layer, bottom, top = TestReductionSumAll().build()
    assert top[0].shape == ()


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
def test_matches_torch(torch, op):
    case = TestReductionSumAll()
    case.params = {"operation": op, "axis": 1, "coeff": 0.7}
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    f = {"SUM": lambda t: t, "ASUM": torch.abs, "SUMSQ": torch.square, "MEAN": lambda t: t}[op]
    red = torch.mean if op == "MEAN" else torch.sum
    ty = 0.7 * red(f(tx), dim=(1, 2))
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-13)
