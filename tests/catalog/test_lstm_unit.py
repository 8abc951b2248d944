"""LSTMUnit: a plain-NumPy reference of one step, gradients (cont too, fractional), errors."""
import numpy as np
import pytest

from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


def lstm_unit_reference(c_prev, gates, cont):
    """Caffe's LSTMUnit (gates i, f, o, g): returns (c_t, h_t), each (1, N, H)."""
    H = c_prev.shape[2]
    a, c0, k = gates[0], c_prev[0], cont[0][:, None]
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    i, f, o, g = sig(a[:, :H]), k * sig(a[:, H:2 * H]), sig(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
    c = f * c0 + i * g
    return c[None], (o * np.tanh(c))[None]


class TestLSTMUnit(LayerCase):
    type, bottom_shapes = "LSTMUnit", [(1, 3, 4), (1, 3, 16), (1, 3)]
    num_tops = 2

    def make_bottoms(self, rng):
        c_prev, gates = rng.standard_normal(self.bottom_shapes[0]), rng.standard_normal(self.bottom_shapes[1])
        return [c_prev, 2 * gates, np.array([[1.0, 0.0, 0.6]])]

    def reference(self, c_prev, gates, cont):
        return lstm_unit_reference(c_prev, gates, cont)


class TestLSTMUnitBinaryCont(TestLSTMUnit):
    """The usual case; here Caffe's own backward formula is exact too."""
    bottom_shapes = [(1, 5, 2), (1, 5, 8), (1, 5)]

    def make_bottoms(self, rng):
        c_prev, gates = rng.standard_normal(self.bottom_shapes[0]), rng.standard_normal(self.bottom_shapes[1])
        return [c_prev, gates, np.array([[1.0, 0.0, 1.0, 1.0, 0.0]])]


def test_matches_caffes_backward_formula_for_binary_cont():
    """lstm_unit_layer.cpp's gradient formulas, written out, for cont in {0, 1}."""
    case = TestLSTMUnitBinaryCont()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    rng = np.random.default_rng(8)
    dc, dh = rng.standard_normal(top[0].shape), rng.standard_normal(top[1].shape)
    top[0].diff[...], top[1].diff[...] = dc, dh
    layer.backward(top, [True, True, False], bottom)
    H = bottom[0].shape[2]
    a, c0, k = bottom[1].data[0], bottom[0].data[0], bottom[2].data[0][:, None]
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    i, f, o, g = sig(a[:, :H]), k * sig(a[:, H:2 * H]), sig(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
    tc = np.tanh(top[0].data[0])
    ct = dc[0] + dh[0] * o * (1 - tc * tc)
    np.testing.assert_allclose(bottom[0].diff[0], ct * f, rtol=1e-12, atol=1e-14)
    want = np.concatenate([ct * g * i * (1 - i), ct * c0 * f * (1 - f), dh[0] * tc * o * (1 - o),
                           ct * i * (1 - g * g)], axis=1)
    np.testing.assert_allclose(bottom[1].diff[0], want, rtol=1e-12, atol=1e-14)


def test_propagate_down_honoured_and_cont_not_forced():
    case = TestLSTMUnit()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    for t in top:
        t.diff[...] = 1.0
    for b in bottom:
        b.diff[...] = 4.0
    layer.backward(top, [False, True, False], bottom)
    assert np.all(bottom[0].diff == 4.0) and np.all(bottom[2].diff == 4.0)
    assert not np.all(bottom[1].diff == 4.0)
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(2)


def test_large_gate_inputs_stay_finite():
    case = TestLSTMUnit()
    values = [np.zeros((1, 3, 4)), np.full((1, 3, 16), 1e4), np.ones((1, 3))]
    values[1][0, 0] = -1e4
    layer, bottom, top = case.build(dtype=np.float32, bottom_values=values)
    with np.errstate(all="raise"):
        case.run_forward(layer, bottom, top)
    assert np.all(np.isfinite(top[0].data)) and np.all(np.isfinite(top[1].data))


@pytest.mark.parametrize("shapes,fragments", [
    ([(2, 3, 4), (1, 3, 16), (1, 3)], ["bottom 0 (c_prev)", "(1, N, H)"]),
    ([(1, 3, 4), (1, 3, 12), (1, 3)], ["bottom 1 (gate inputs)", "(1, 3, 16)", "(1, 3, 12)"]),
    ([(1, 3, 4), (1, 3, 16), (3,)], ["bottom 2 (cont)", "(1, 3)"]),
])
def test_bad_shapes(shapes, fragments):
    class Plain(TestLSTMUnit):
        def make_bottoms(self, rng):
            return [rng.standard_normal(s) for s in self.bottom_shapes]

    harness.expect_setup_error(Plain, shapes, *fragments)
