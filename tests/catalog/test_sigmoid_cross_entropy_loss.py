"""SigmoidCrossEntropyLoss: stable form, ignore_label, normalization (BATCH_SIZE default);
cross-checked with torch's binary_cross_entropy_with_logits."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _loss(x, t, ignore=None, normalization="BATCH_SIZE"):
    total, valid = 0.0, 0
    for xi, ti in zip(x.reshape(-1), t.reshape(-1)):
        if ignore is not None and int(ti) == ignore:
            continue
        s = 1.0 / (1.0 + np.exp(-xi))
        total -= ti * np.log(s) + (1 - ti) * np.log(1 - s)
        valid += 1
    n = x.shape[0]
    norm = {"BATCH_SIZE": n, "VALID": valid, "FULL": x.size, "NONE": 1}[normalization]
    return total / max(norm, 1)


class _SCECase(LayerCase):
    type = "SigmoidCrossEntropyLoss"
    gradient_bottoms = [0]

    def make_bottoms(self, rng):
        shape = self.bottom_shapes[0]
        return [rng.standard_normal(shape) * 2, rng.uniform(0, 1, self.bottom_shapes[1])]


class TestSigmoidCrossEntropyLoss(_SCECase):
    bottom_shapes = [(4, 5), (4, 5)]

    def reference(self, x, t):
        return _loss(x, t)


class TestSigmoidCrossEntropyLossIgnoreValid(_SCECase):
    bottom_shapes = [(3, 2, 4), (3, 8)]
    params = "loss_param { ignore_label: -1 normalization: VALID }"

    def make_bottoms(self, rng):
        x = rng.standard_normal((3, 2, 4)) * 2
        t = rng.integers(-1, 2, (3, 8)).astype(np.float64)
        return [x, t]

    def reference(self, x, t):
        return _loss(x, t, ignore=-1, normalization="VALID")


class TestSigmoidCrossEntropyLossFull(_SCECase):
    bottom_shapes = [(2, 6), (2, 6)]
    params = "loss_param { normalization: FULL }"

    def reference(self, x, t):
        return _loss(x, t, normalization="FULL")


class TestSigmoidCrossEntropyLossLegacyNormalize(_SCECase):
    bottom_shapes = [(3, 4), (3, 4)]
    params = "loss_param { normalize: true }"
    layer_fields = {"loss_weight": [0.5]}

    def reference(self, x, t):
        return _loss(x, t, normalization="VALID")


def test_extreme_scores_stay_finite():
    case = TestSigmoidCrossEntropyLoss()
    x = np.array([[-800.0, 800.0, -40.0, 40.0, 0.0]])
    t = np.array([[1.0, 0.0, 0.0, 1.0, 0.5]])
    layer, bottom, top = case.build(bottom_values=[x, t])
    case.run_forward(layer, bottom, top)
    assert float(top[0].data) == pytest.approx(800 + 800 + np.log1p(np.exp(-40)) * 2 + np.log(2))


@pytest.mark.parametrize("normalization", ["BATCH_SIZE", "FULL", "NONE"])
def test_matches_torch_bce_with_logits(torch, normalization):
    case = TestSigmoidCrossEntropyLoss()
    case.params = f"loss_param {{ normalization: {normalization} }}"
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    x = torch.tensor(np.array(bottom[0].data), requires_grad=True)
    t = torch.tensor(np.array(bottom[1].data))
    norm = {"BATCH_SIZE": 4, "FULL": 20, "NONE": 1}[normalization]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="sum") / norm
    loss.backward()
    assert float(top[0].data) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(bottom[0].diff, x.grad.numpy(), rtol=1e-12, atol=1e-16)


def test_ignored_entries_match_torch_weights(torch):
    case = TestSigmoidCrossEntropyLossIgnoreValid()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    x = torch.tensor(np.array(bottom[0].data).reshape(3, 8), requires_grad=True)
    t = torch.tensor(np.array(bottom[1].data))
    keep = (t != -1).double()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        x, t.clamp(min=0), weight=keep, reduction="sum") / keep.sum()
    loss.backward()
    assert float(top[0].data) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(bottom[0].diff.reshape(3, 8), x.grad.numpy(), rtol=1e-12,
                               atol=1e-16)


def test_counts_must_match():
    expect_setup_error(TestSigmoidCrossEntropyLoss, [(4, 5), (4, 4)], "same count")


def test_refuses_backward_to_targets():
    case = TestSigmoidCrossEntropyLoss()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    with pytest.raises(ValueError, match="targets"):
        layer.backward(top, [True, True], bottom)
