"""ArgMax: top_k indices / values, with and without axis, ties, shapes; torch.topk cross-check."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _ranked(row, k):
    """Indices of the k largest entries of a 1-D row, ties to the larger index (loops)."""
    pairs = sorted(((float(v), j) for j, v in enumerate(row)), reverse=True)
    return [j for _, j in pairs[:k]]


class _ArgMaxCase(LayerCase):
    type = "ArgMax"
    check_gradient = False


class TestArgMax(_ArgMaxCase):
    bottom_shapes = [(4, 10)]

    def reference(self, x):
        out = np.zeros((4, 1, 1))
        for n in range(4):
            out[n, 0, 0] = _ranked(x[n], 1)[0]
        return out


class TestArgMaxTopKWithValues(_ArgMaxCase):
    params, bottom_shapes = {"top_k": 3, "out_max_val": True}, [(2, 3, 2, 2)]

    def reference(self, x):
        out = np.zeros((2, 2, 3, 1))
        for n in range(2):
            flat = x[n].reshape(-1)
            idx = _ranked(flat, 3)
            out[n, 0, :, 0] = idx
            out[n, 1, :, 0] = flat[idx]
        return out


class TestArgMaxAxis(_ArgMaxCase):
    params, bottom_shapes = {"axis": 1, "top_k": 2}, [(2, 5, 3)]

    def reference(self, x):
        out = np.zeros((2, 2, 3))
        for n in range(2):
            for w in range(3):
                out[n, :, w] = _ranked(x[n, :, w], 2)
        return out


class TestArgMaxNegativeAxisValues(_ArgMaxCase):
    params, bottom_shapes = {"axis": -1, "top_k": 2, "out_max_val": True}, [(3, 2, 6)]

    def reference(self, x):
        out = np.zeros((3, 2, 2))
        for i in np.ndindex(3, 2):
            out[i] = x[i][_ranked(x[i], 2)]
        return out


def test_ties_rank_the_larger_index_first():
    case = TestArgMaxTopKWithValues()
    x = np.array([[1.0, 5.0, 2.0, 5.0, 5.0, 0.0]]).reshape(1, 6, 1, 1)
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    np.testing.assert_array_equal(top[0].data[0, :, :, 0], [[4, 3, 1], [5, 5, 5]])


def test_backward_is_refused():
    case = TestArgMax()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    with pytest.raises(ValueError, match="has no gradient"):
        layer.backward(top, [True], bottom)
    layer.backward(top, [False], bottom)


def test_top_k_too_large_is_named():
    expect_setup_error(TestArgMax, [(2, 3)], "argmax_param.top_k = 4 exceeds the 3 entries",
                       params={"top_k": 4})
    expect_setup_error(TestArgMax, [(2, 3, 5)], "exceeds the 3 entries of axis 1",
                       params={"top_k": 4, "axis": 1})


def test_top_k_zero_is_named():
    expect_setup_error(TestArgMax, [(2, 3)], "top_k = 0 must be at least 1", params={"top_k": 0})


def test_matches_torch_topk(torch):
    x = np.random.default_rng(0).standard_normal((3, 7, 4))
    case = TestArgMaxAxis()
    case.params = {"axis": 1, "top_k": 3, "out_max_val": True}
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    values, indices = torch.topk(torch.tensor(x), 3, dim=1)
    np.testing.assert_array_equal(top[0].data, values.numpy())
    case.params = {"axis": 1, "top_k": 3}
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    np.testing.assert_array_equal(top[0].data, indices.numpy())
