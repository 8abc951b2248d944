"""HingeLoss: one-versus-all hinge with L1 / L2 norms; torch composite and multi-margin."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _hinge(x, label, power):
    n = x.shape[0]
    x2 = x.reshape(n, -1)
    total = 0.0
    for i in range(n):
        for k in range(x2.shape[1]):
            t = 1.0 if k == int(label.reshape(-1)[i]) else -1.0
            total += max(0.0, 1.0 - t * x2[i, k]) ** power
    return total / n


class _HingeCase(LayerCase):
    type = "HingeLoss"
    gradient_bottoms = [0]
    kinks = [-1.0, 1.0]

    def make_bottoms(self, rng):
        x_shape, label_shape = self.bottom_shapes
        x = rng.standard_normal(x_shape) * 1.5
        k = int(np.prod(x_shape[1:]))
        label = rng.integers(0, k, label_shape).astype(np.float64)
        for _ in range(100):                    # keep away from both kinks (at x = +-1)
            near = np.abs(np.abs(x) - 1.0) < 1e-2
            if not near.any():
                break
            x[near] = rng.standard_normal(int(near.sum()))
        return [x, label]


class TestHingeLossL1(_HingeCase):
    bottom_shapes = [(6, 5), (6,)]

    def reference(self, x, label):
        return _hinge(x, label, 1)


class TestHingeLossL2(_HingeCase):
    params = "hinge_loss_param { norm: L2 }"
    bottom_shapes = [(4, 3, 2, 1), (4, 1, 1, 1)]

    def reference(self, x, label):
        return _hinge(x, label, 2)


class TestHingeLossWeighted(_HingeCase):
    layer_fields = {"loss_weight": [0.3]}
    bottom_shapes = [(5, 4), (5,)]

    def reference(self, x, label):
        return _hinge(x, label, 1)


@pytest.mark.parametrize("norm, power", [("L1", 1), ("L2", 2)])
def test_matches_torch_composite(torch, norm, power):
    case = TestHingeLossL1()
    case.params = f"hinge_loss_param {{ norm: {norm} }}"
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    x = torch.tensor(np.array(bottom[0].data), requires_grad=True)
    label = torch.tensor(np.array(bottom[1].data)).long()
    t = 2 * torch.nn.functional.one_hot(label, 5).double() - 1
    loss = torch.clamp(1 - t * x, min=0).pow(power).sum() / 6
    loss.backward()
    assert float(top[0].data) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(bottom[0].diff, x.grad.numpy(), rtol=1e-13)


def test_one_class_equals_torch_multi_margin_per_pair(torch):
    """With two classes and x_label = -x_other, each sample's hinge terms are the same one
    torch.multi_margin_loss(p=1, margin=2) counts (times 2 classes), a second, independent op."""
    rng = np.random.default_rng(5)
    s = rng.standard_normal(7) * 2
    x = np.stack([s, -s], axis=1)
    label = np.zeros(7)
    case = TestHingeLossL1()
    layer, bottom, top = case.build(bottom_values=[x, label])
    case.run_forward(layer, bottom, top)
    mm = torch.nn.functional.multi_margin_loss(torch.tensor(x), torch.tensor(label).long(),
                                               p=1, margin=2.0, reduction="sum")
    # Caffe: 2 * max(0, 1 - s); torch: max(0, 2 - s - s) / 2 = max(0, 1 - s) per sample.
    assert float(top[0].data) == pytest.approx(2 * mm.item() / 7, rel=1e-13)


def test_label_count_and_range():
    expect_setup_error(TestHingeLossL1, [(6, 5), (5,)], "6 samples, 5 labels")
    case = TestHingeLossL1()
    layer, bottom, top = case.build(bottom_values=[np.zeros((2, 3)), np.array([0.0, 3.0])])
    with pytest.raises(ValueError, match=r"label 3 out of range \[0, 3\)"):
        case.run_forward(layer, bottom, top)


def test_refuses_backward_to_labels():
    case = TestHingeLossL1()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    with pytest.raises(ValueError, match="labels"):
        layer.backward(top, [True, True], bottom)
