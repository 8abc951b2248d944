"""BatchReindex: gather along axis 0 with repeats; backward accumulates; torch index_select."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error

_IDX = np.array([3.0, 0.0, 3.0, 1.0, 3.0])


class TestBatchReindex(LayerCase):
    type, bottom_shapes = "BatchReindex", [(4, 2, 3), (5,)]
    gradient_bottoms = [0]

    def make_bottoms(self, rng):
        x_shape, idx_shape = self.bottom_shapes
        idx = _IDX.copy() if idx_shape == (5,) else np.zeros(idx_shape)
        return [rng.standard_normal(x_shape), idx]

    def reference(self, x, idx):
        return np.stack([x[int(i)] for i in idx])


class TestBatchReindexEmpty(LayerCase):
    type, bottom_shapes = "BatchReindex", [(3, 4), (0,)]
    gradient_bottoms = [0]

    def make_bottoms(self, rng):
        return [rng.standard_normal((3, 4)), np.zeros(0)]

    def reference(self, x, idx):
        return np.zeros((0, 4))


def test_backward_accumulates_repeats_and_zeroes_the_rest():
    case = TestBatchReindex()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    dy = np.arange(30, dtype=np.float64).reshape(5, 2, 3)
    top[0].diff[...] = dy
    bottom[0].diff[...] = np.nan
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff[3], dy[0] + dy[2] + dy[4])
    np.testing.assert_array_equal(bottom[0].diff[0], dy[1])
    np.testing.assert_array_equal(bottom[0].diff[1], dy[3])
    np.testing.assert_array_equal(bottom[0].diff[2], 0.0)


def test_matches_torch_index_select(torch):
    case = TestBatchReindex()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    dy = np.random.default_rng(2).standard_normal(top[0].shape)
    top[0].diff[...] = dy
    layer.backward(top, [True, False], bottom)
    tx = torch.tensor(np.array(bottom[0].data), requires_grad=True)
    ty = torch.index_select(tx, 0, torch.tensor(_IDX).long())
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(top[0].data, ty.detach().numpy())
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-15)


@pytest.mark.parametrize("bad, what", [(4.0, "index 4 at position 1"),
                                       (-1.0, "index -1 at position 1"),
                                       (1.5, "index 1.5 at position 1")])
def test_bad_index_is_named(bad, what):
    case = TestBatchReindex()
    idx = _IDX.copy()
    idx[1] = bad
    layer, bottom, top = case.build(bottom_values=[np.zeros((4, 2, 3)), idx])
    with pytest.raises(ValueError, match=what + r" is not a whole number in \[0, 4\)"):
        case.run_forward(layer, bottom, top)


def test_index_blob_must_be_1d():
    expect_setup_error(TestBatchReindex, [(4, 2), (2, 1)], "the index bottom must be 1-D")


def test_refuses_backward_to_indices():
    case = TestBatchReindex()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    with pytest.raises(ValueError, match="cannot backpropagate to the indices"):
        layer.backward(top, [True, True], bottom)
