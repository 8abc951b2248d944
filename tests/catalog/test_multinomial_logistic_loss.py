"""MultinomialLogisticLoss: -mean log p[label] with the 1e-20 clamp; torch's nll_loss."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _loss(prob, label):
    n = prob.shape[0]
    p2 = prob.reshape(n, -1)
    return -sum(np.log(max(p2[i, int(label.reshape(-1)[i])], 1e-20)) for i in range(n)) / n


class _MLLCase(LayerCase):
    type = "MultinomialLogisticLoss"
    gradient_bottoms = [0]

    def make_bottoms(self, rng):
        p_shape, l_shape = self.bottom_shapes
        k = int(np.prod(p_shape[1:]))
        return [rng.uniform(0.05, 1.0, p_shape), rng.integers(0, k, l_shape).astype(np.float64)]

    def reference(self, prob, label):
        return _loss(prob, label)


class TestMultinomialLogisticLoss(_MLLCase):
    bottom_shapes = [(6, 4), (6,)]


class TestMultinomialLogisticLoss4D(_MLLCase):
    bottom_shapes = [(3, 2, 2, 1), (3, 1, 1, 1)]
    layer_fields = {"loss_weight": [2.5]}


def test_clamps_zero_probability():
    case = TestMultinomialLogisticLoss()
    prob = np.full((2, 4), 0.25)
    prob[1, 3] = 0.0
    layer, bottom, top = case.build(bottom_values=[prob, np.array([0.0, 3.0])])
    case.run_forward(layer, bottom, top)
    assert float(top[0].data) == pytest.approx((-np.log(0.25) - np.log(1e-20)) / 2)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    assert bottom[0].diff[1, 3] == pytest.approx(-0.5 / 1e-20)
    assert np.count_nonzero(bottom[0].diff) == 2


def test_matches_torch_nll(torch):
    case = TestMultinomialLogisticLoss()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    p = torch.tensor(np.array(bottom[0].data), requires_grad=True)
    loss = torch.nn.functional.nll_loss(torch.log(p), torch.tensor(bottom[1].data).long())
    loss.backward()
    assert float(top[0].data) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(bottom[0].diff, p.grad.numpy(), rtol=1e-13)


def test_label_shape_is_checked():
    expect_setup_error(TestMultinomialLogisticLoss, [(6, 4), (6, 2)], "labels of shape (N,)")


def test_label_out_of_range():
    case = TestMultinomialLogisticLoss()
    layer, bottom, top = case.build(bottom_values=[np.full((2, 4), 0.25), np.array([0.0, 4.0])])
    with pytest.raises(ValueError, match=r"label 4 out of range \[0, 4\)"):
        case.run_forward(layer, bottom, top)
