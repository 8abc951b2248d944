"""Tile: copies along an axis (NumPy's tile), backward sums; torch's repeat."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestTile(LayerCase):
    type, params, bottom_shapes = "Tile", {"tiles": 3}, [(2, 3, 4)]

    def reference(self, x):
        out = np.zeros((2, 9, 4))
        for t in range(3):
            out[:, t * 3:(t + 1) * 3] = x
        return out


class TestTileAxis0(LayerCase):
    type, params, bottom_shapes = "Tile", {"tiles": 2, "axis": 0}, [(3, 2)]

    def reference(self, x):
        return np.tile(x, (2, 1))


class TestTileLastAxis(LayerCase):
    type, params, bottom_shapes = "Tile", {"tiles": 4, "axis": -1}, [(2, 3, 2)]

    def reference(self, x):
        return np.tile(x, (1, 1, 4))


@pytest.mark.parametrize("axis, tiles", [(0, 2), (1, 3), (2, 1), (-1, 5)])
def test_matches_torch_repeat(torch, axis, tiles):
    case = TestTile()
    case.params = {"axis": axis, "tiles": tiles}
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    reps = [1, 1, 1]
    reps[axis] = tiles
    tx = torch.tensor(x, requires_grad=True)
    ty = tx.repeat(*reps)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(top[0].data, ty.detach().numpy())
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-14)


def test_tiles_required():
    expect_setup_error(TestTile, [(2, 3)], "tile_param.tiles (the number of copies) must be given",
                       params={"axis": 1})


def test_tiles_positive():
    expect_setup_error(TestTile, [(2, 3)], "tile_param.tiles = 0 must be positive",
                       params={"tiles": 0})


def test_axis_out_of_range():
    expect_setup_error(TestTile, [(2, 3)], "axis 2 out of range", params={"tiles": 2, "axis": 2})
