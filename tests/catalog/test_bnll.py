"""BNLL: softplus, stable for large |x|, gradient from y; cross-checked with torch's softplus."""
import numpy as np

from minicaffe.testing.layer_case import LayerCase


def _bnll(x):
    """Caffe's definition, split at 0 so that exp never overflows."""
    out = np.empty_like(x)
    for i, v in np.ndenumerate(x):
        out[i] = v + np.log(1.0 + np.exp(-v)) if v > 0 else np.log(1.0 + np.exp(v))
    return out


class TestBNLL(LayerCase):
    type, bottom_shapes = "BNLL", [(2, 3, 4, 5)]
    in_place = True

    def reference(self, x):
        return _bnll(x)


class TestBNLLWideRange(LayerCase):
    type, bottom_shapes = "BNLL", [(4, 25)]
    in_place = True

    def make_bottoms(self, rng):
        return [rng.uniform(-40.0, 40.0, (4, 25))]

    def reference(self, x):
        return _bnll(x)


def test_extreme_inputs_stay_finite():
    case = TestBNLL()
    x = np.array([[-1000.0, -60.0, 0.0, 60.0, 1000.0]])
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    np.testing.assert_allclose(top[0].data, [[0.0, np.exp(-60.0), np.log(2.0), 60.0, 1000.0]],
                               rtol=1e-14, atol=1e-300)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, [[0.0, np.exp(-60.0), 0.5, 1.0, 1.0]],
                               rtol=1e-12, atol=1e-300)


def test_matches_torch_softplus(torch):
    case = TestBNLLWideRange()
    x = np.random.default_rng(3).uniform(-30, 30, (4, 25))
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(4))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.softplus(tx, beta=1.0, threshold=1e6)   # no linear switch-over
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-11, atol=1e-300)
