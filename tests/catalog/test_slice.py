from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestSlicePoints(LayerCase):
    type, params, bottom_shapes, num_tops = "Slice", {"slice_point": [1, 3]}, [(2, 5, 3)], 3

    def reference(self, x):
        return x[:, :1], x[:, 1:3], x[:, 3:]


class TestSliceEven(LayerCase):
    type, params, bottom_shapes, num_tops = "Slice", {"axis": 0}, [(4, 3)], 2

    def reference(self, x):
        return x[:2], x[2:]


def test_slice_uneven_without_points_fails():
    case = TestSliceEven
    expect_setup_error(case, [(5, 3)], "does not divide into 2")


def test_slice_bad_points_fail():
    expect_setup_error(TestSlicePoints, [(2, 3, 3)], "must increase strictly")
