import numpy as np

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestInput(LayerCase):
    type, bottom_shapes, num_tops = "Input", [], 2
    params = "input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } }"
    check_gradient = False

    def reference(self):
        return np.zeros((2, 3)), np.zeros(4)


class TestInputOneShapeForAll(LayerCase):
    type, bottom_shapes, num_tops = "Input", [], 2
    params = "input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } }"
    check_gradient = False

    def reference(self):
        return np.zeros((1, 2, 5, 5)), np.zeros((1, 2, 5, 5))


def test_input_keeps_written_values():
    case = TestInput()
    layer, bottom, top = case.build()
    top[0].data[...] = 3.0
    case.run_forward(layer, bottom, top)
    assert (top[0].data == 3.0).all()


def test_input_shape_count_mismatch():
    class ThreeTops(TestInput):
        num_tops = 3
    expect_setup_error(ThreeTops, [], "gives 2 shapes for 3 tops")
