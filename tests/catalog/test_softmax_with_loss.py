import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error

FLT_MIN = np.finfo(np.float32).tiny


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _loss_reference(scores, labels, ignore=None, normalization="VALID"):
    """Loops over every position, as the definition reads."""
    N, C = scores.shape[:2]
    inner = int(np.prod(scores.shape[2:]))
    prob = _softmax(scores.reshape(N, C, inner), 1)
    lab = labels.reshape(N, inner)
    total, valid = 0.0, 0
    for n in range(N):
        for i in range(inner):
            if ignore is not None and lab[n, i] == ignore:
                continue
            total -= np.log(max(prob[n, int(lab[n, i]), i], FLT_MIN))
            valid += 1
    norm = {"VALID": valid, "FULL": N * inner, "BATCH_SIZE": N, "NONE": 1}[normalization]
    return total / max(1, norm), prob.reshape(scores.shape)


class _LossCase(LayerCase):
    type = "SoftmaxWithLoss"
    gradient_bottoms = [0]
    num_classes = 4

    def make_bottoms(self, rng):
        scores = rng.standard_normal(self.bottom_shapes[0])
        labels = [rng.integers(0, self.num_classes, s).astype(np.float64) for s in self.bottom_shapes[1:]]
        return [scores, *labels]


class TestSoftmaxWithLoss(_LossCase):
    bottom_shapes = [(5, 4), (5,)]

    def reference(self, scores, labels):
        return _loss_reference(scores, labels)[0]


class TestSoftmaxWithLossSpatialIgnoreFull(_LossCase):
    bottom_shapes = [(2, 4, 3, 2), (2, 1, 3, 2)]
    params = "loss_param { ignore_label: 2 normalization: FULL }"

    def reference(self, scores, labels):
        return _loss_reference(scores, labels, ignore=2, normalization="FULL")[0]


class TestSoftmaxWithLossIgnoreValid(_LossCase):
    bottom_shapes = [(6, 4), (6,)]
    params = "loss_param { ignore_label: 1 }"

    def reference(self, scores, labels):
        return _loss_reference(scores, labels, ignore=1)[0]


class TestSoftmaxWithLossLegacyNormalizeFalse(_LossCase):
    bottom_shapes = [(3, 4, 2), (3, 2)]
    params = "loss_param { normalize: false }"

    def reference(self, scores, labels):
        return _loss_reference(scores, labels, normalization="BATCH_SIZE")[0]


class TestSoftmaxWithLossNoneTwoTops(_LossCase):
    bottom_shapes = [(3, 4), (3,)]
    params = "loss_param { normalization: NONE }"
    num_tops = 2
    layer_fields = {"loss_weight": [2.0, 0.0]}

    def reference(self, scores, labels):
        loss, prob = _loss_reference(scores, labels, normalization="NONE")
        return loss, prob

    def _top_weights(self, top):
        # As in Caffe, the probability top is an output only: backward ignores its diff.
        weights = super()._top_weights(top)
        weights[1][...] = 0.0
        return weights


class TestSoftmaxWithLossAxis(_LossCase):
    # classes on the last axis: (N, T, C)
    bottom_shapes = [(2, 3, 4), (2, 3)]
    params = "softmax_param { axis: 2 }"

    def reference(self, scores, labels):
        return _loss_reference(np.moveaxis(scores, 2, 1), labels)[0]


def test_matches_torch_cross_entropy(torch):
    case = TestSoftmaxWithLoss()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    x = torch.tensor(bottom[0].data, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(x, torch.tensor(bottom[1].data).long())
    loss.backward()
    np.testing.assert_allclose(float(top[0].data), loss.item(), rtol=1e-12)
    np.testing.assert_allclose(bottom[0].diff, x.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_all_ignored_gives_zero_loss_and_zero_gradient():
    case = TestSoftmaxWithLossIgnoreValid()
    scores = np.random.default_rng(0).standard_normal((6, 4))
    layer, bottom, top = case.build(bottom_values=[scores, np.ones(6)])
    case.run_forward(layer, bottom, top)
    assert float(top[0].data) == 0.0
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False], bottom)
    assert not bottom[0].diff.any()


def test_label_count_mismatch_is_named():
    expect_setup_error(TestSoftmaxWithLoss, [(5, 4), (4,)], "expected 5 labels, got 4")


def test_label_out_of_range_is_named():
    case = TestSoftmaxWithLoss()
    with pytest.raises(ValueError, match="label 7 out of range"):
        layer, bottom, top = case.build(bottom_values=[np.zeros((5, 4)), np.full(5, 7.0)])
        case.run_forward(layer, bottom, top)


def test_loss_without_label():
    expect_setup_error(TestSoftmaxWithLoss, [(5, 4)], "loss layer without label")


def test_refuses_backward_to_labels():
    case = TestSoftmaxWithLoss()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    with pytest.raises(ValueError, match="labels"):
        layer.backward(top, [True, True], bottom)
