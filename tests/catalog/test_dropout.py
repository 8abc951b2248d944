import numpy as np
from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


class TestDropoutTrain(LayerCase):
    type, params, bottom_shapes = "Dropout", {"dropout_ratio": 0.3}, [(4, 5, 6)]
    in_place = True

    def reference(self, x):
        # Contract: keep where a uniform draw from the global generator is >= ratio.
        np.random.seed(harness.SEED)
        keep = np.random.random_sample(x.shape) >= 0.3
        return x * keep / 0.7


class TestDropoutTest(LayerCase):
    type, params, bottom_shapes, phase = "Dropout", {"dropout_ratio": 0.3}, [(4, 5, 6)], "TEST"
    in_place = True

    def reference(self, x):
        return x.copy()


def test_dropout_keeps_one_minus_ratio_with_scale():
    case = TestDropoutTrain()
    case.bottom_shapes = [(200, 500)]
    layer, bottom, top = case.build(bottom_values=[np.ones((200, 500))])
    case.run_forward(layer, bottom, top)
    y = top[0].data
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7])
    assert abs(np.mean(y != 0) - 0.7) < 0.005
    assert abs(y.mean() - 1.0) < 0.01                 # the 1/(1-r) scaling keeps the expectation


def test_dropout_masks_differ_between_iterations():
    case = TestDropoutTrain()
    layer, bottom, top = case.build(bottom_values=[np.ones((4, 5, 6))])
    layer.forward(bottom, top)
    first = top[0].data.copy()
    layer.forward(bottom, top)
    assert not np.array_equal(first, top[0].data)


def test_dropout_ratio_out_of_range():
    harness.expect_setup_error(TestDropoutTrain, [(2, 3)], "dropout_ratio", "[0, 1)",
                               params={"dropout_ratio": 1.0})
