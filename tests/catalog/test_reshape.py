import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestReshapeCopyAndInfer(LayerCase):
    type, params, bottom_shapes = "Reshape", {"shape": {"dim": [0, -1, 4]}}, [(2, 3, 4, 2)]

    def reference(self, x):
        return x.reshape(2, 6, 4)


class TestReshapeAxisRange(LayerCase):
    # replace axes 1..2 only: (2, 3, 4, 5) -> (2, 12, 5)
    type, params, bottom_shapes = "Reshape", {"shape": {"dim": [-1]}, "axis": 1, "num_axes": 2}, [(2, 3, 4, 5)]

    def reference(self, x):
        return x.reshape(2, 12, 5)


class TestReshapeAppendAxes(LayerCase):
    # Caffe: axis -1 means after the last axis, num_axes 0 inserts
    type, params, bottom_shapes = "Reshape", {"shape": {"dim": [1, 1]}, "axis": -1, "num_axes": 0}, [(2, 3)]

    def reference(self, x):
        return x.reshape(2, 3, 1, 1)


class TestReshapeZeroCopiesWithinRange(LayerCase):
    # with axis 1, a 0 copies bottom axis 1 (3), not axis 0
    type, params, bottom_shapes = "Reshape", {"shape": {"dim": [0, 2, 2]}, "axis": 1}, [(5, 3, 4)]

    def reference(self, x):
        return x.reshape(5, 3, 2, 2)


@pytest.mark.parametrize("dims, fragment", [
    ([-1, -1], "more than one -1"),
    ([7, -1], "cannot infer"),
    ([5, 5], "the bottom has 24"),
])
def test_reshape_errors_name_layer_and_shapes(dims, fragment):
    expect_setup_error(TestReshapeCopyAndInfer, [(2, 3, 4)], fragment, "(2, 3, 4)",
                       params={"shape": {"dim": dims}})
