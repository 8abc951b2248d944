import numpy as np

from minicaffe.testing.layer_case import LayerCase


class TestSplit(LayerCase):
    type, bottom_shapes, num_tops = "Split", [(2, 3, 4)], 3

    def reference(self, x):
        return x, x, x


def test_split_tops_share_the_bottom_values_and_sum_diffs():
    case = TestSplit()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    bottom[0].data[0, 0, 0] = 7.0
    assert all(t.data[0, 0, 0] == 7.0 for t in top)
    for k, t in enumerate(top):
        t.diff[...] = k + 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, np.full((2, 3, 4), 6.0))
