"""Threshold: y = [x > t] (strictly greater), zero gradient."""
import numpy as np

from minicaffe.testing.layer_case import LayerCase


class TestThreshold(LayerCase):
    type, bottom_shapes = "Threshold", [(2, 3, 4, 5)]
    kinks = [0.0]
    in_place = True

    def reference(self, x):
        return (x > 0).astype(np.float64)


class TestThresholdValue(LayerCase):
    type, params, bottom_shapes = "Threshold", {"threshold": 0.4}, [(3, 10)]
    kinks = [0.4]
    in_place = True

    def reference(self, x):
        return (x > 0.4).astype(np.float64)


def test_equal_to_threshold_gives_zero():
    case = TestThresholdValue()
    t = 0.4
    x = np.array([[np.nextafter(t, -1), t, np.nextafter(t, 2)]])
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    np.testing.assert_array_equal(top[0].data, [[0.0, 0.0, 1.0]])


def test_matches_torch_gt(torch):
    case = TestThresholdValue()
    x = np.random.default_rng(0).standard_normal((5, 7))
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    want = torch.gt(torch.tensor(x), 0.4).double().numpy()
    np.testing.assert_array_equal(top[0].data, want)
