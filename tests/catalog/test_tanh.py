import numpy as np

from minicaffe.testing.layer_case import LayerCase


class TestTanH(LayerCase):
    type, bottom_shapes = "TanH", [(2, 3, 4, 5)]
    in_place = True

    def reference(self, x):
        return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))
