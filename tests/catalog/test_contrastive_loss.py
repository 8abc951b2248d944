"""ContrastiveLoss: margin, legacy_version, Caffe's 1e-4 in the dissimilar gradient."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _loss(a, b, y, margin, legacy):
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        d2 = float(np.sum((a[i] - b[i]) ** 2))
        if int(y.reshape(-1)[i]) != 0:
            total += d2
        elif legacy:
            total += max(margin - d2, 0.0)
        else:
            total += max(margin - np.sqrt(d2), 0.0) ** 2
    return total / n / 2


class _ContrastiveCase(LayerCase):
    type = "ContrastiveLoss"
    bottom_shapes = [(8, 4), (8, 4), (8,)]
    gradient_bottoms = [0, 1]
    margin, legacy = 1.0, False

    def make_bottoms(self, rng):
        a_shape, b_shape, y_shape = self.bottom_shapes
        y = (np.arange(int(np.prod(y_shape))) % 2).astype(np.float64).reshape(y_shape)
        return [rng.standard_normal(a_shape), rng.standard_normal(b_shape), y]

    def reference(self, a, b, y):
        return _loss(a, b, y, self.margin, self.legacy)


class TestContrastiveLoss(_ContrastiveCase):
    params, margin = {"margin": 3.0}, 3.0
    # Caffe divides by d + 1e-4 instead of d in the dissimilar pairs' gradient, so the
    # analytic gradient is the exact one times d / (d + 1e-4): allow that relative error.
    grad_rtol = 2e-4


class TestContrastiveLossLegacy(_ContrastiveCase):
    params, margin, legacy = {"margin": 6.0, "legacy_version": True}, 6.0, True
    bottom_shapes = [(6, 3, 1, 1), (6, 3, 1, 1), (6, 1, 1, 1)]


class TestContrastiveLossDefaultMargin(_ContrastiveCase):
    bottom_shapes = [(10, 2), (10, 2), (10, 1)]
    grad_rtol = 1e-3           # as above; with margin 1 some dissimilar distances are small


def test_backward_matches_caffes_closed_form():
    case = TestContrastiveLoss()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.5
    layer.backward(top, [True, True, False], bottom)
    a, b, y = (np.array(x.data) for x in bottom)
    want = np.zeros_like(a)
    for i in range(8):
        diff = a[i] - b[i]
        d = np.sqrt(np.sum(diff ** 2))
        if y[i]:
            want[i] = 1.5 / 8 * diff
        elif 3.0 - d > 0:
            want[i] = -1.5 / 8 * (3.0 - d) / (d + 1e-4) * diff
    np.testing.assert_allclose(bottom[0].diff, want, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(bottom[1].diff, -want, rtol=1e-13, atol=1e-16)


def test_label_is_truncated_like_caffe():
    case = TestContrastiveLoss()
    a = np.zeros((2, 4))
    b = np.ones((2, 4))
    layer, bottom, top = case.build(bottom_values=[a, b, np.array([0.7, 1.2])])
    case.run_forward(layer, bottom, top)
    # 0.7 -> 0 (dissimilar, d = 2 < margin 3), 1.2 -> 1 (similar, d^2 = 4)
    assert float(top[0].data) == pytest.approx(((3.0 - 2.0) ** 2 + 4.0) / 2 / 2)


def test_matches_torch_composite(torch):
    case = TestContrastiveLossLegacy()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, True, False], bottom)
    ta = torch.tensor(np.array(bottom[0].data).reshape(6, 3), requires_grad=True)
    tb = torch.tensor(np.array(bottom[1].data).reshape(6, 3), requires_grad=True)
    y = torch.tensor(np.array(bottom[2].data).reshape(6))
    d2 = ((ta - tb) ** 2).sum(dim=1)
    loss = (y * d2 + (1 - y) * torch.clamp(6.0 - d2, min=0)).sum() / 6 / 2
    loss.backward()
    assert float(top[0].data) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(bottom[0].diff.reshape(6, 3), ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bottom[1].diff.reshape(6, 3), tb.grad.numpy(), rtol=1e-12)


def test_shapes_are_checked():
    expect_setup_error(TestContrastiveLoss, [(8, 4, 2), (8, 4, 2), (8,)], "must be (N, C)")
    expect_setup_error(TestContrastiveLoss, [(8, 4), (8, 3), (8,)], "same (N, C)")
    expect_setup_error(TestContrastiveLoss, [(8, 4), (8, 4), (8, 2)], "one per pair")


def test_refuses_backward_to_labels():
    case = TestContrastiveLoss()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    with pytest.raises(ValueError, match="similarity labels"):
        layer.backward(top, [True, True, True], bottom)
