import numpy as np

from minicaffe.testing.layer_case import LayerCase


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class TestSoftmax(LayerCase):
    type, bottom_shapes = "Softmax", [(2, 5, 3)]
    in_place = True

    def reference(self, x):
        return _softmax(x, 1)


class TestSoftmaxAxis(LayerCase):
    type, params, bottom_shapes = "Softmax", {"axis": -1}, [(2, 3, 4)]

    def reference(self, x):
        return _softmax(x, 2)


def test_softmax_large_inputs_stay_finite(torch):
    case = TestSoftmax()
    x = np.random.default_rng(0).standard_normal((4, 10, 2)) * 300
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    want = torch.softmax(torch.from_numpy(x), dim=1).numpy()
    np.testing.assert_allclose(top[0].data, want, rtol=1e-10, atol=1e-300)


def test_softmax_backward_matches_torch(torch):
    case = TestSoftmaxAxis()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    g = np.random.default_rng(1).standard_normal(top[0].shape)
    top[0].diff[...] = g
    layer.backward(top, [True], bottom)
    x = torch.tensor(np.array(bottom[0].data), requires_grad=True)
    y = torch.softmax(x, dim=-1)
    y.backward(torch.from_numpy(g))
    np.testing.assert_allclose(top[0].data, y.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(bottom[0].diff, x.grad.numpy(), rtol=1e-10, atol=1e-14)
