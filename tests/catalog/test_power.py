import numpy as np

from minicaffe.testing.layer_case import LayerCase


class TestPowerSquare(LayerCase):
    type, params, bottom_shapes = "Power", {"power": 2.0, "scale": 0.5, "shift": 1.0}, [(2, 3, 4)]

    def reference(self, x):
        return (1.0 + 0.5 * x) * (1.0 + 0.5 * x)


class TestPowerFractional(LayerCase):
    type, params, bottom_shapes = "Power", {"power": 0.37, "scale": 2.0, "shift": 0.5}, [(3, 5)]

    def make_bottoms(self, rng):
        return [rng.uniform(0.1, 3.0, (3, 5))]           # positive base for a real power

    def reference(self, x):
        return np.exp(0.37 * np.log(0.5 + 2.0 * x))


class TestPowerNegative(LayerCase):
    type, params, bottom_shapes = "Power", {"power": -1.5, "scale": -1.0, "shift": 4.0}, [(3, 5)]

    def make_bottoms(self, rng):
        return [rng.uniform(-2.0, 2.0, (3, 5))]

    def reference(self, x):
        return (4.0 - x) ** -1.5


class TestPowerLinear(LayerCase):
    type, params, bottom_shapes = "Power", {"scale": 3.0, "shift": -2.0}, [(4, 5)]

    def reference(self, x):
        return 3.0 * x - 2.0


class TestPowerZero(LayerCase):
    type, params, bottom_shapes = "Power", {"power": 0.0, "scale": 3.0}, [(4, 5)]

    def reference(self, x):
        return np.ones_like(x)


class TestPowerZeroScale(LayerCase):
    type, params, bottom_shapes = "Power", {"power": 3.0, "scale": 0.0, "shift": 2.0}, [(4, 5)]

    def reference(self, x):
        return np.full_like(x, 8.0)
