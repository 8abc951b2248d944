import numpy as np

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestConcat(LayerCase):
    type, bottom_shapes = "Concat", [(2, 3, 4), (2, 1, 4), (2, 2, 4)]

    def reference(self, a, b, c):
        return np.concatenate([a, b, c], axis=1)


class TestConcatLastAxis(LayerCase):
    type, params, bottom_shapes = "Concat", {"axis": -1}, [(2, 3, 1), (2, 3, 2)]

    def reference(self, a, b):
        return np.concatenate([a, b], axis=2)


class TestConcatLegacyDim(LayerCase):
    type, params, bottom_shapes = "Concat", {"concat_dim": 0}, [(1, 3), (2, 3)]

    def reference(self, a, b):
        return np.concatenate([a, b], axis=0)


def test_concat_shape_mismatch_is_reported():
    expect_setup_error(TestConcat, [(2, 3, 4), (2, 3, 5)], "bottom 1 shape (2, 3, 5)",
                       "outside the concat axis 1")
