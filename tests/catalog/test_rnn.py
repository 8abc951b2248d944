"""RNN: a plain-NumPy reference loop, gradients of every bottom and param blob, Caffe's blob
layout, state carried between batches, and torch.nn.RNN (+ a tanh output layer)."""
import numpy as np
import pytest

from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


def rnn_reference(x, cont, w_xh, b_h, w_hh, w_ho, b_o, xs=None, w_s=None, h0=None):
    """Caffe's RNN by the formulas in rnn_layer.cpp: returns (o (T, N, H), h_T)."""
    T, N = cont.shape
    H = w_hh.shape[0]
    x2 = x.reshape(T, N, -1)
    h = np.zeros((N, H)) if h0 is None else h0.reshape(N, H)
    out = np.zeros((T, N, H))
    for t in range(T):
        z = (cont[t][:, None] * h) @ w_hh.T + x2[t] @ w_xh.T + b_h
        if xs is not None:
            z = z + xs.reshape(N, -1) @ w_s.T
        h = np.tanh(z)
        out[t] = np.tanh(h @ w_ho.T + b_o)
    return out, h[None]


class TestRNN(LayerCase):
    """Carried state with cont_0 = 0 (see TestLSTM); stream 1 restarts at t = 2."""
    type, bottom_shapes = "RNN", [(4, 2, 3), (4, 2)]
    params = {"num_output": 3}
    param_field = "recurrent_param"
    gradient_bottoms = [0]

    def make_bottoms(self, rng):
        x, cont = (rng.standard_normal(s) for s in self.bottom_shapes)
        if cont.ndim == 2 and cont.shape[0] > 2 and cont.shape[1] > 1:
            cont = np.ones(cont.shape)
            cont[0] = 0
            cont[2, 1] = 0
        return [x, cont]

    def init_params(self, blobs, rng):
        for b in blobs:          # N(0, 0.5): keeps the tanh units away from saturation
            b.data[...] = 0.5 * rng.standard_normal(b.shape)

    def reference(self, x, cont):
        return rnn_reference(x, cont, *self.param_data)[0]


class TestRNNStaticExposed(TestRNN):
    type, bottom_shapes = "RNN", [(3, 2, 2, 2), (3, 2), (2, 3), (1, 2, 4)]
    params = {"num_output": 4, "expose_hidden": True}
    num_tops = 2
    gradient_bottoms = None

    def make_bottoms(self, rng):
        x, _, xs, h0 = (rng.standard_normal(s) for s in self.bottom_shapes)
        return [x, np.array([[1.0, 0.3], [0.0, 1.0], [0.7, 1.0]]), xs, h0]

    def reference(self, x, cont, xs, h0):
        w_xh, b_h, w_s, w_hh, w_ho, b_o = self.param_data
        return rnn_reference(x, cont, w_xh, b_h, w_hh, w_ho, b_o, xs, w_s, h0)


def test_blobs_are_caffes_order_and_shapes():
    layer = TestRNNStaticExposed().build()[0]
    assert [b.name for b in layer.blobs] == ["W_xh", "b_h", "W_xh_static", "W_hh", "W_ho", "b_o"]
    assert [b.shape for b in layer.blobs] == [(4, 4), (4,), (4, 3), (4, 4), (4, 4), (4,)]
    layer = TestRNN().build()[0]
    assert [b.shape for b in layer.blobs] == [(3, 3), (3,), (3, 3), (3, 3), (3,)]


def test_fillers_weight_and_bias():
    case = TestRNN()
    case.params = {"num_output": 2, "weight_filler": {"type": "constant", "value": 0.5},
                   "bias_filler": {"type": "constant", "value": -1.0}}
    layer = case.build(init_params=False)[0]
    assert [float(b.data.flat[0]) for b in layer.blobs] == [0.5, -1.0, 0.5, 0.5, -1.0]
    assert all(np.all(b.data == b.data.flat[0]) for b in layer.blobs)


def test_state_carries_over_between_batches():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 2, 3))
    cont = np.ones((5, 2))
    cont[0] = 0
    case = TestRNN()
    layer, bottom, top = case.build(bottom_values=[x[:3], cont[:3]])
    case.run_forward(layer, bottom, top)
    bottom[0].reshape(2, 2, 3)
    bottom[1].reshape(2, 2)
    bottom[0].data[...] = x[3:]
    bottom[1].data[...] = 1.0
    case.run_forward(layer, bottom, top)
    want = rnn_reference(x, cont, *(b.data for b in layer.blobs))[0]
    np.testing.assert_allclose(top[0].data, want[3:], rtol=1e-10, atol=1e-12)


def test_propagate_down_honoured():
    case = TestRNNStaticExposed()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    for t in top:
        t.diff[...] = 1.0
    for b in bottom:
        b.diff[...] = 9.0
    layer.param_propagate_down = [False, True, False, True, False, True]
    for b in layer.blobs:
        b.diff[...] = 0.0
    layer.backward(top, [True, False, False, True], bottom)
    assert [bool(np.all(b.diff == 9.0)) for b in bottom] == [False, True, True, False]
    assert [bool(np.any(b.diff != 0)) for b in layer.blobs] == [False, True, False, True, False, True]


def test_bad_shapes():
    harness.expect_setup_error(TestRNN, [(4, 2, 3), (2, 4)], "bottom 1 (cont)", "(4, 2)")
    harness.expect_setup_error(TestRNNStaticExposed, [(3, 2, 2, 2), (3, 2), (2, 3), (2, 4)],
                               "bottom 3 (initial h)", "(1, 2, 4)")
    harness.expect_setup_error(TestRNN, [(4, 2, 3), (4, 2)], "num_output must be given",
                               params={})


@pytest.mark.torch
def test_matches_torch_rnn_plus_tanh_output(torch):
    """torch.nn.RNN (tanh, one bias zeroed) gives h_t; Caffe's top is tanh(W_ho h_t + b_o)."""
    rng = np.random.default_rng(5)
    T, N, I, H = 5, 3, 4, 6
    x, h0 = rng.standard_normal((T, N, I)), rng.standard_normal((1, N, H))
    case = TestRNNStaticExposed()
    case.params = {"num_output": H, "expose_hidden": True}
    case.bottom_shapes = [(T, N, I), (T, N), (1, N, H)]
    layer, bottom, top = case.build(bottom_values=[x, np.ones((T, N)), h0])
    case.run_forward(layer, bottom, top)
    dys = [rng.standard_normal(t.shape) for t in top]
    for t, d in zip(top, dys):
        t.diff[...] = d
    for b in layer.blobs:
        b.diff[...] = 0
    layer.backward(top, [True, False, True], bottom)

    w_xh, b_h, w_hh, w_ho, b_o = (torch.tensor(b.data.copy(), requires_grad=True) for b in layer.blobs)
    rnn = torch.nn.RNN(I, H, nonlinearity="tanh").double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(w_xh)
        rnn.weight_hh_l0.copy_(w_hh)
        rnn.bias_ih_l0.copy_(b_h)
        rnn.bias_hh_l0.zero_()
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    th, thT = rnn(tx, th0)
    to = torch.tanh(th @ w_ho.T + b_o)
    ((to * torch.tensor(dys[0])).sum() + (thT * torch.tensor(dys[1])).sum()).backward()
    np.testing.assert_allclose(top[0].data, to.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(top[1].data, thT.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(bottom[2].diff, th0.grad.numpy(), rtol=1e-9, atol=1e-11)
    for blob, grad in zip(layer.blobs, (rnn.weight_ih_l0.grad, rnn.bias_ih_l0.grad,
                                        rnn.weight_hh_l0.grad, w_ho.grad, b_o.grad)):
        np.testing.assert_allclose(blob.diff, grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("case_cls", ["TestRNNStaticExposed", "LSTM"])
def test_backward_ignores_in_place_changes_to_the_top(case_cls):
    """Caffe's LRCN nets run Dropout in place on the recurrent top; backward must use the
    values the layer computed, not what is left in the top after forward."""
    if case_cls == "LSTM":
        from tests.catalog.test_lstm import TestLSTMStaticExposed as cls
    else:
        cls = TestRNNStaticExposed
    case = cls()

    def grads(scale):
        layer, bottom, top = case.build()
        case.run_forward(layer, bottom, top)
        top[0].data[...] *= scale
        for i, t in enumerate(top):
            t.diff[...] = np.random.default_rng(i).standard_normal(t.shape)
        layer.backward(top, [True, True] + [True] * (len(bottom) - 2), bottom)
        return [b.diff.copy() for b in bottom] + [b.diff.copy() for b in layer.blobs]

    for a, b in zip(grads(1.0), grads(0.0)):
        np.testing.assert_array_equal(a, b)
