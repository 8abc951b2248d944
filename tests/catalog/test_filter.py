"""Filter: keep the selected samples of every bottom; backward zeroes the dropped ones."""
import numpy as np
import pytest

from minicaffe.net import Net
from minicaffe.prototxt import parse_net
from minicaffe.testing.layer_case import LayerCase, expect_setup_error

_SELECT = np.array([1.0, 0.0, 0.0, 2.5, 1.0, 0.0])


class _FilterCase(LayerCase):
    type = "Filter"

    def make_bottoms(self, rng):
        *data, selector = self.bottom_shapes
        return [rng.standard_normal(s) for s in data] + [
            np.resize(_SELECT, int(np.prod(selector))).reshape(selector)]

    def _top_weights(self, top):
        # The first reshape sizes the tops for the whole batch (Caffe's quirk); the loss
        # weights follow the selection that forward makes.
        rng = np.random.default_rng(99)
        kept = int((np.resize(_SELECT, self.bottom_shapes[-1][0]) != 0).sum())
        return [rng.standard_normal((kept,) + tuple(t.shape[1:])) for t in top]


class TestFilter(_FilterCase):
    bottom_shapes = [(6, 3, 2), (6, 1)]
    gradient_bottoms = [0]

    def reference(self, x, s):
        return x[s.reshape(-1) != 0]


class TestFilterTwoBlobs(_FilterCase):
    bottom_shapes, num_tops = [(6, 4), (6,), (6, 1, 1)], 2
    gradient_bottoms = [0, 1]

    def reference(self, x, labels, s):
        keep = s.reshape(-1) != 0
        return x[keep], labels[keep]


def test_backward_zeroes_the_dropped_samples():
    case = TestFilter()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    assert top[0].shape == (3, 3, 2)
    dy = np.random.default_rng(0).standard_normal(top[0].shape)
    top[0].diff[...] = dy
    bottom[0].diff[...] = np.nan
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff[[0, 3, 4]], dy)
    np.testing.assert_array_equal(bottom[0].diff[[1, 2, 5]], 0.0)


def test_nothing_selected_gives_empty_tops():
    case = TestFilter()
    x = np.random.default_rng(0).standard_normal((6, 3, 2))
    layer, bottom, top = case.build(bottom_values=[x, np.zeros((6, 1))])
    case.run_forward(layer, bottom, top)
    assert top[0].shape == (0, 3, 2)
    layer.backward(top, [True, False], bottom)
    assert not bottom[0].diff.any()


def test_matches_torch_boolean_indexing(torch):
    case = TestFilter()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    dy = np.random.default_rng(1).standard_normal(top[0].shape)
    top[0].diff[...] = dy
    layer.backward(top, [True, False], bottom)
    tx = torch.tensor(np.array(bottom[0].data), requires_grad=True)
    ty = tx[torch.tensor(_SELECT != 0)]
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(top[0].data, ty.detach().numpy())
    np.testing.assert_array_equal(bottom[0].diff, tx.grad.numpy())


def test_top_count_must_match():
    case = TestFilter()
    case.num_tops = 2
    with pytest.raises(ValueError, match="one top per filtered bottom"):
        case.build()


def test_selector_must_be_singleton_after_axis_0():
    expect_setup_error(TestFilter, [(6, 2), (6, 2)], "the selector (last bottom) must be")


def test_batch_sizes_must_match():
    expect_setup_error(TestFilter, [(5, 2), (6, 1)], "selector's 6 samples")


def test_refuses_backward_to_selector():
    case = TestFilter()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    with pytest.raises(ValueError, match="cannot backpropagate to the selector"):
        layer.backward(top, [True, True], bottom)


def test_in_a_net_the_top_follows_the_selection():
    text = ('input: "x" input_shape { dim: 4 dim: 3 }\n'
            'input: "s" input_shape { dim: 4 }\n'
            'layer { name: "f" type: "Filter" bottom: "x" bottom: "s" top: "y" }\n')
    net = Net(parse_net(text), "TEST")
    assert net.blobs["y"].shape == (4, 3)          # sized for the whole batch before any data
    net.blobs["x"].data[...] = np.arange(12).reshape(4, 3)
    net.blobs["s"].data[...] = [0, 1, 0, 1]
    net.forward()
    np.testing.assert_array_equal(net.blobs["y"].data, [[3, 4, 5], [9, 10, 11]])
