import numpy as np

from minicaffe.testing.layer_case import LayerCase


class TestSigmoid(LayerCase):
    type, bottom_shapes = "Sigmoid", [(2, 3, 4, 5)]
    in_place = True

    def reference(self, x):
        return 1.0 / (1.0 + np.exp(-x))


class TestSigmoidSaturates(LayerCase):
    """Large |x| must give 0 and 1 without overflow warnings or NaN."""
    type, bottom_shapes = "Sigmoid", [(40,)]

    def make_bottoms(self, rng):
        return [np.linspace(-800, 800, 40)]

    def reference(self, x):
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-x))
