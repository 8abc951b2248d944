from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestFlatten(LayerCase):
    type, bottom_shapes = "Flatten", [(2, 3, 4, 5)]

    def reference(self, x):
        return x.reshape(2, 60)


class TestFlattenAxes(LayerCase):
    type, params, bottom_shapes = "Flatten", {"axis": 1, "end_axis": 2}, [(2, 3, 4, 5)]

    def reference(self, x):
        return x.reshape(2, 12, 5)


class TestFlattenNegativeAxis(LayerCase):
    type, params, bottom_shapes = "Flatten", {"axis": -2}, [(2, 3, 4, 5)]

    def reference(self, x):
        return x.reshape(2, 3, 20)


def test_flatten_shares_storage():
    layer, bottom, top = TestFlatten().build()
    bottom[0].data[1, 2, 3, 4] = 9.0
    assert top[0].data[1, 59] == 9.0


def test_flatten_bad_axis_names_layer():
    expect_setup_error(TestFlatten, [(2, 3)], "axis 5 out of range", params={"axis": 5})
