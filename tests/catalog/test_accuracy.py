import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _ranked_accuracy(scores, labels, top_k, ignore=None, per_class=False):
    """Rank classes per sample by (score, index) descending, as Caffe's partial sort of
    (score, index) pairs does: a tie goes to the larger index."""
    N, C = scores.shape[:2]
    inner = int(np.prod(scores.shape[2:]))
    s = scores.reshape(N, C, inner)
    lab = labels.reshape(N, inner).astype(int)
    hits, count = 0, 0
    seen, good = np.zeros(C), np.zeros(C)
    for n in range(N):
        for i in range(inner):
            if ignore is not None and lab[n, i] == ignore:
                continue
            order = sorted(range(C), key=lambda c: (s[n, c, i], c), reverse=True)
            ok = lab[n, i] in order[:top_k]
            hits += ok
            count += 1
            seen[lab[n, i]] += 1
            good[lab[n, i]] += ok
    acc = hits / count if count else 0.0
    if per_class:
        return acc, np.where(seen > 0, good / np.maximum(seen, 1), 0.0)
    return acc


class _AccuracyCase(LayerCase):
    type = "Accuracy"
    check_gradient = False
    num_classes = 5

    def make_bottoms(self, rng):
        # few distinct values, so ties are common and the tie rule is exercised
        scores = rng.integers(0, 3, self.bottom_shapes[0]).astype(np.float64)
        labels = rng.integers(0, self.num_classes, self.bottom_shapes[1]).astype(np.float64)
        return [scores, labels]


class TestAccuracyTop1(_AccuracyCase):
    bottom_shapes = [(40, 5), (40,)]

    def reference(self, scores, labels):
        return _ranked_accuracy(scores, labels, 1)


class TestAccuracyTop3IgnoreSpatial(_AccuracyCase):
    bottom_shapes = [(6, 5, 2, 3), (6, 2, 3)]
    params = {"top_k": 3, "ignore_label": 4}

    def reference(self, scores, labels):
        return _ranked_accuracy(scores, labels, 3, ignore=4)


class TestAccuracyPerClass(_AccuracyCase):
    bottom_shapes = [(30, 5), (30,)]
    num_tops = 2
    params = {"top_k": 2}

    def reference(self, scores, labels):
        return _ranked_accuracy(scores, labels, 2, per_class=True)


def test_tie_goes_to_larger_class_index():
    case = TestAccuracyTop1()
    scores = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    labels = np.array([0.0, 1.0])
    layer, bottom, top = case.build(bottom_values=[scores, labels])
    case.run_forward(layer, bottom, top)
    assert float(top[0].data) == 0.5          # sample 0 loses the tie to class 1


def test_top_k_larger_than_classes():
    expect_setup_error(TestAccuracyTop1, [(4, 3), (4,)], "top_k 5 must not exceed", params={"top_k": 5})


def test_label_out_of_range():
    case = TestAccuracyTop1()
    with pytest.raises(ValueError, match=r"label 5 out of range \[0, 5\)"):
        layer, bottom, top = case.build(bottom_values=[np.zeros((2, 5)), np.array([0.0, 5.0])])
        case.run_forward(layer, bottom, top)
