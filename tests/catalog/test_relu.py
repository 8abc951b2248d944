import numpy as np

from minicaffe.testing.layer_case import LayerCase


class TestReLU(LayerCase):
    type, bottom_shapes = "ReLU", [(2, 3, 4, 5)]
    kinks = [0.0]
    in_place = True

    def reference(self, x):
        return np.maximum(x, 0)


class TestLeakyReLU(LayerCase):
    type, params, bottom_shapes = "ReLU", {"negative_slope": 0.1}, [(2, 3, 4, 5)]
    kinks = [0.0]
    in_place = True

    def reference(self, x):
        return np.where(x > 0, x, 0.1 * x)
