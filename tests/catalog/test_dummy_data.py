import numpy as np

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestDummyData(LayerCase):
    type, bottom_shapes, num_tops = "DummyData", [], 2
    params = ("dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 4 } "
              "data_filler { type: 'constant' value: 1.5 } data_filler { } }")
    check_gradient = False

    def reference(self):
        return np.full((2, 3), 1.5), np.zeros(4)


class TestDummyDataLegacy(LayerCase):
    type, bottom_shapes, num_tops = "DummyData", [], 1
    params = "dummy_data_param { num: 2 channels: 1 height: 3 width: 4 }"
    check_gradient = False

    def reference(self):
        return np.zeros((2, 1, 3, 4))


def test_random_filler_refills_every_forward():
    class Gaussian(TestDummyDataLegacy):
        params = ("dummy_data_param { num: 200 channels: 1 height: 1 width: 50 "
                  "data_filler { type: 'gaussian' std: 2.0 } }")
    layer, bottom, top = Gaussian().build()
    layer.forward(bottom, top)
    first = np.array(top[0].data)
    layer.forward(bottom, top)
    assert not np.array_equal(first, top[0].data)
    assert abs(first.std() - 2.0) < 0.1 and abs(first.mean()) < 0.1


def test_filler_count_mismatch():
    class Bad(TestDummyDataLegacy):
        num_tops = 3
        params = ("dummy_data_param { shape { dim: 2 } data_filler { } data_filler { } }")
    expect_setup_error(Bad, [], "data_filler must be given 0, 1 or 3 times")
