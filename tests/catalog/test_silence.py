from minicaffe.testing.layer_case import LayerCase


class TestSilence(LayerCase):
    type, bottom_shapes, num_tops = "Silence", [(2, 3), (4,)], 0

    def reference(self, a, b):
        return ()


def test_silence_writes_zero_diffs():
    layer, bottom, top = TestSilence().build()
    bottom[0].diff[...] = 5
    bottom[1].diff[...] = 5
    layer.backward(top, [True, False], bottom)
    assert not bottom[0].diff.any() and (bottom[1].diff == 5).all()
