import numpy as np

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestEltwiseSum(LayerCase):
    type, bottom_shapes = "Eltwise", [(2, 3, 4)] * 3

    def reference(self, a, b, c):
        return a + b + c


class TestEltwiseSumCoeff(LayerCase):
    type, params, bottom_shapes = "Eltwise", {"operation": "SUM", "coeff": [1.0, -0.5]}, [(2, 3, 4)] * 2

    def reference(self, a, b):
        return a - 0.5 * b


class TestEltwiseProd(LayerCase):
    type, params, bottom_shapes = "Eltwise", {"operation": "PROD"}, [(2, 3, 4)] * 3

    def reference(self, a, b, c):
        return a * b * c


class TestEltwiseProdUnstable(LayerCase):
    type, params, bottom_shapes = "Eltwise", {"operation": "PROD", "stable_prod_grad": False}, [(2, 3)] * 2
    kinks = [0.0]          # the top / bottom gradient divides by the bottom

    def reference(self, a, b):
        return a * b


class TestEltwiseMax(LayerCase):
    type, params, bottom_shapes = "Eltwise", {"operation": "MAX"}, [(2, 3, 4)] * 3

    def reference(self, a, b, c):
        return np.maximum(np.maximum(a, b), c)


def test_eltwise_max_tie_rule_routes_gradient_like_caffe():
    # ties between bottoms 0 and 1 go to 1; a later tie with bottom 2 keeps the earlier one
    case = TestEltwiseMax()
    ones = np.ones((1, 2))
    layer, bottom, top = case.build(bottom_values=[ones, ones, ones])
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True] * 3, bottom)
    assert bottom[0].diff.sum() == 0 and bottom[1].diff.sum() == 2 and bottom[2].diff.sum() == 0


def test_eltwise_shape_mismatch():
    expect_setup_error(TestEltwiseSum, [(2, 3), (2, 4), (2, 3)], "bottom 1 has shape (2, 4)")


def test_eltwise_coeff_count():
    expect_setup_error(TestEltwiseSumCoeff, [(2, 3)] * 3, "coeff gives 2 values for 3 bottoms")
