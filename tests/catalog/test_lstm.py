"""LSTM: a plain-NumPy reference loop, gradients of every bottom and param blob, Caffe's blob
layout and gate order, state carried between batches, and torch.nn.LSTM."""
import numpy as np
import pytest

from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_reference(x, cont, w_xc, b_c, w_hc, xs=None, w_s=None, h0=None, c0=None):
    """Caffe's LSTM by the formulas in lstm_layer.cpp / lstm_unit_layer.cpp (gates i, f, o, g).
    Returns (h (T, N, H), h_T, c_T)."""
    T, N = cont.shape
    H = w_hc.shape[1]
    x2 = x.reshape(T, N, -1)
    h = np.zeros((N, H)) if h0 is None else h0.reshape(N, H)
    c = np.zeros((N, H)) if c0 is None else c0.reshape(N, H)
    out = np.zeros((T, N, H))
    for t in range(T):
        k = cont[t][:, None]
        a = x2[t] @ w_xc.T + b_c + (k * h) @ w_hc.T
        if xs is not None:
            a = a + xs.reshape(N, -1) @ w_s.T
        i, f, o, g = _sig(a[:, :H]), k * _sig(a[:, H:2 * H]), _sig(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        out[t] = h
    return out, h[None], c[None]


class TestLSTM(LayerCase):
    """Carried state: cont_0 = 0 for every stream, so the previous batch does not matter;
    stream 1 starts a new sequence at t = 2. cont gets no gradient check here (a carried
    state changes between the forwards of a finite difference)."""
    type, bottom_shapes = "LSTM", [(4, 2, 3), (4, 2)]
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

    def reference(self, x, cont):
        w_xc, b_c, w_hc = self.param_data
        return lstm_reference(x, cont, w_xc, b_c, w_hc)[0]


class TestLSTMStaticExposed(LayerCase):
    """x with two feature axes, x_static, exposed h_0 / c_0 and h_T / c_T, fractional cont:
    every bottom (cont too) and every param blob is gradient-checked."""
    type, bottom_shapes = "LSTM", [(3, 2, 2, 2), (3, 2), (2, 3), (1, 2, 4), (1, 2, 4)]
    params = {"num_output": 4, "expose_hidden": True}
    param_field = "recurrent_param"
    num_tops = 3

    def make_bottoms(self, rng):
        x, _, xs, h0, c0 = (rng.standard_normal(s) for s in self.bottom_shapes)
        cont = np.array([[1.0, 0.3], [0.0, 1.0], [0.7, 1.0]])
        return [x, cont, xs, h0, c0]

    def reference(self, x, cont, xs, h0, c0):
        w_xc, b_c, w_s, w_hc = self.param_data
        return lstm_reference(x, cont, w_xc, b_c, w_hc, xs, w_s, h0, c0)


class TestLSTMStatic(LayerCase):
    type, bottom_shapes = "LSTM", [(2, 3, 5), (2, 3), (3, 2, 1)]
    params = {"num_output": 2}
    param_field = "recurrent_param"
    gradient_bottoms = [0, 2]

    def make_bottoms(self, rng):
        return [rng.standard_normal(self.bottom_shapes[0]), np.array([[0.0] * 3, [1.0, 0.0, 1.0]]),
                rng.standard_normal(self.bottom_shapes[2])]

    def reference(self, x, cont, xs):
        w_xc, b_c, w_s, w_hc = self.param_data
        return lstm_reference(x, cont, w_xc, b_c, w_hc, xs, w_s)[0]


def test_blobs_are_caffes_order_and_shapes():
    case = TestLSTMStaticExposed()
    layer = case.build()[0]
    assert [b.shape for b in layer.blobs] == [(16, 4), (16,), (16, 3), (16, 4)]
    assert [b.name for b in layer.blobs] == ["W_xc", "b_c", "W_xc_static", "W_hc"]
    layer = TestLSTM().build()[0]
    assert [b.shape for b in layer.blobs] == [(12, 3), (12,), (12, 3)]


def test_fillers_weight_and_bias():
    case = TestLSTMStatic()
    case.params = {"num_output": 2, "weight_filler": {"type": "constant", "value": 0.5},
                   "bias_filler": {"type": "constant", "value": -1.0}}
    layer = case.build(init_params=False)[0]
    w_xc, b_c, w_s, w_hc = (b.data for b in layer.blobs)
    assert np.all(w_xc == 0.5) and np.all(w_s == 0.5) and np.all(w_hc == 0.5)
    assert np.all(b_c == -1.0)


def test_recurrent_param_defaults_are_caffes():
    from minicaffe import prototxt

    p = prototxt.LayerParameter().recurrent_param
    assert (p.num_output, p.debug_info, p.expose_hidden) == (0, False, False)
    assert p.weight_filler.type == "constant" and p.bias_filler.type == "constant"


def test_state_carries_over_between_batches():
    """Two batches of T steps with cont = 1 at the second batch's start equal one batch of 2T."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 2, 3))
    cont = np.ones((6, 2))
    cont[0] = 0
    whole = TestLSTM()
    whole.bottom_shapes = [(6, 2, 3), (6, 2)]
    layer, bottom, top = whole.build(bottom_values=[x, cont])
    whole.run_forward(layer, bottom, top)
    want = top[0].data.copy()

    case = TestLSTM()
    layer, bottom, top = case.build(bottom_values=[x[:4], cont[:4]])
    params = [b.data.copy() for b in layer.blobs]
    case.run_forward(layer, bottom, top)
    np.testing.assert_allclose(top[0].data, want[:4], rtol=1e-12)
    bottom[0].reshape(2, 2, 3)
    bottom[1].reshape(2, 2)
    bottom[0].data[...] = x[4:]
    bottom[1].data[...] = cont[4:]
    case.run_forward(layer, bottom, top)
    assert all(np.array_equal(b.data, p) for b, p in zip(layer.blobs, params))
    np.testing.assert_allclose(top[0].data, want[4:], rtol=1e-10, atol=1e-12)


def test_state_resets_when_the_batch_size_changes():
    rng = np.random.default_rng(3)
    case = TestLSTM()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    x = rng.standard_normal((4, 3, 3))
    bottom[0].reshape(x.shape)
    bottom[1].reshape(4, 3)
    bottom[0].data[...] = x
    bottom[1].data[...] = 1.0                     # continue: the carried state is used
    case.run_forward(layer, bottom, top)
    w_xc, b_c, w_hc = (b.data for b in layer.blobs)
    np.testing.assert_allclose(top[0].data, lstm_reference(x, np.ones((4, 3)), w_xc, b_c, w_hc)[0],
                               rtol=1e-10, atol=1e-12)


def test_cont_zero_resets_both_states():
    """At cont_t = 0 the step ignores h_{t-1} and c_{t-1} entirely (also in backward)."""
    case = TestLSTMStaticExposed()
    rng = np.random.default_rng(4)
    x, _, xs, h0, c0 = (rng.standard_normal(s) for s in case.bottom_shapes)
    cont = np.zeros((3, 2))
    layer, bottom, top = case.build(bottom_values=[x, cont, xs, h0, c0])
    case.run_forward(layer, bottom, top)
    first = top[0].data.copy()
    bottom[3].data[...] = 100.0
    bottom[4].data[...] = -100.0
    case.run_forward(layer, bottom, top)
    np.testing.assert_array_equal(top[0].data, first)
    for t in top:
        t.diff[...] = 1.0
    layer.backward(top, [True, False, True, True, True], bottom)
    assert np.all(bottom[3].diff == 0) and np.all(bottom[4].diff == 0)


def test_propagate_down_honoured():
    case = TestLSTMStaticExposed()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    for t in top:
        t.diff[...] = 1.0
    for b in bottom:
        b.diff[...] = 9.0
    layer.param_propagate_down = [True, False, True, False]
    for b in layer.blobs:
        b.diff[...] = 0.0
    layer.backward(top, [False, False, True, False, True], bottom)
    assert [bool(np.all(b.diff == 9.0)) for b in bottom] == [True, True, False, True, False]
    assert [bool(np.any(b.diff != 0)) for b in layer.blobs] == [True, False, True, False]
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)


def test_blob_counts_follow_expose_hidden():
    from minicaffe.errors import LayerSetupError

    case = TestLSTM()
    case.bottom_shapes = [(4, 2, 3), (4, 2), (2, 3), (1, 2, 3)]
    with pytest.raises(LayerSetupError, match="at most 3 bottom"):
        case.build(bottom_values=[np.zeros(s) for s in case.bottom_shapes])
    case = TestLSTMStaticExposed()
    case.num_tops = 1
    with pytest.raises(LayerSetupError, match="exactly 3 top"):
        case.build()


def test_bad_shapes_and_params():
    harness.expect_setup_error(TestLSTM, [(4, 2, 3), (4, 3)], "bottom 1 (cont)", "(4, 2)")
    harness.expect_setup_error(TestLSTM, [(4,), (4, 2)], "at least 2 axes")
    harness.expect_setup_error(TestLSTM, [(4, 2, 3), (4, 2)], "num_output must be given",
                               params={"num_output": 0})
    harness.expect_setup_error(TestLSTMStatic, [(2, 3, 5), (2, 3), (4, 2)], "x_static", "N = 3")
    harness.expect_setup_error(TestLSTMStaticExposed, [(3, 2, 2, 2), (3, 2), (2, 3), (1, 2, 4),
                                                       (1, 2, 5)], "bottom 4 (initial c)",
                               "(1, 2, 4)")


def test_input_width_change_is_refused():
    case = TestLSTM()
    layer, bottom, top = case.build()
    bottom[0].reshape(4, 2, 5)
    with pytest.raises(ValueError, match=r"gives 5 inputs per step.*expect 3"):
        layer.reshape(bottom, top)


def test_loads_caffe_weights_in_caffe_order(tmp_path):
    """A .caffemodel with Caffe's LSTM blobs (W_xc, b_c, W_hc) loads into the layer."""
    from minicaffe import Net, prototxt, weights

    text = """
    input: "x" input_shape { dim: 3 dim: 2 dim: 5 }
    input: "cont" input_shape { dim: 3 dim: 2 }
    layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
            recurrent_param { num_output: 4 } }
    """
    rng = np.random.default_rng(0)
    blobs = [rng.standard_normal((16, 5)).astype(np.float32), rng.standard_normal(16).astype(np.float32),
             rng.standard_normal((16, 4)).astype(np.float32)]
    path = tmp_path / "lstm.caffemodel"
    path.write_bytes(weights.encode_caffemodel([("lstm", "LSTM", blobs)]))
    net = Net(prototxt.parse_net(text), phase="TEST")
    net.copy_from(str(path))
    for blob, want in zip(net.params["lstm"], blobs):
        np.testing.assert_array_equal(blob.data, want)
    x = rng.standard_normal((3, 2, 5))
    cont = np.array([[0, 0], [1, 1], [1, 1]], dtype=float)
    out = net.forward(x=x, cont=cont)["h"]
    want = lstm_reference(x, cont, *(b.astype(np.float64) for b in blobs))[0]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def _torch_lstm(torch, w_xc, b_c, w_hc):
    """torch.nn.LSTM holding Caffe's weights: torch orders gates i, f, g, o (Caffe i, f, o, g)."""
    H = w_hc.shape[1]
    perm = np.concatenate([np.arange(0, H), np.arange(H, 2 * H), np.arange(3 * H, 4 * H),
                           np.arange(2 * H, 3 * H)])
    lstm = torch.nn.LSTM(w_xc.shape[1], H).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(w_xc[perm]))
        lstm.weight_hh_l0.copy_(torch.tensor(w_hc[perm]))
        lstm.bias_ih_l0.copy_(torch.tensor(b_c[perm]))
        lstm.bias_hh_l0.zero_()
    return lstm, perm


@pytest.mark.torch
def test_matches_torch_lstm_forward_backward(torch):
    """cont = 1 everywhere with exposed h_0 / c_0: torch.nn.LSTM's sequence, final states and
    the gradients of x, h_0, c_0 and every weight (torch's two biases get the same gradient)."""
    rng = np.random.default_rng(5)
    T, N, I, H = 5, 3, 4, 6
    x, h0, c0 = rng.standard_normal((T, N, I)), rng.standard_normal((1, N, H)), rng.standard_normal((1, N, H))
    case = TestLSTMStaticExposed()
    case.params = {"num_output": H, "expose_hidden": True}
    case.bottom_shapes = [(T, N, I), (T, N), (1, N, H), (1, N, H)]
    layer, bottom, top = case.build(bottom_values=[x, np.ones((T, N)), h0, c0])
    case.run_forward(layer, bottom, top)
    dys = [rng.standard_normal(t.shape) for t in top]
    for t, d in zip(top, dys):
        t.diff[...] = d
    for b in layer.blobs:
        b.diff[...] = 0
    layer.backward(top, [True, False, True, True], bottom)

    w_xc, b_c, w_hc = (b.data.copy() for b in layer.blobs)
    lstm, perm = _torch_lstm(torch, w_xc, b_c, w_hc)
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    ty, (thT, tcT) = lstm(tx, (th0, tc0))
    (ty * torch.tensor(dys[0])).sum().add((thT * torch.tensor(dys[1])).sum()) \
        .add((tcT * torch.tensor(dys[2])).sum()).backward()
    for mine, theirs in zip(top, (ty, thT, tcT)):
        np.testing.assert_allclose(mine.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    for mine, theirs in zip((bottom[0], bottom[2], bottom[3]), (tx, th0, tc0)):
        np.testing.assert_allclose(mine.diff, theirs.grad.numpy(), rtol=1e-9, atol=1e-11)
    inv = np.argsort(perm)
    np.testing.assert_allclose(layer.blobs[0].diff, lstm.weight_ih_l0.grad.numpy()[inv], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(layer.blobs[1].diff, lstm.bias_ih_l0.grad.numpy()[inv], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(layer.blobs[1].diff, lstm.bias_hh_l0.grad.numpy()[inv], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(layer.blobs[2].diff, lstm.weight_hh_l0.grad.numpy()[inv], rtol=1e-9, atol=1e-11)


@pytest.mark.torch
def test_cont_restarts_like_a_new_torch_sequence(torch):
    """A stream with cont_k = 0 equals torch.nn.LSTM run on [0, k) and, from zero states,
    on [k, T) (the carried state of a fresh layer is zero, so cont_0 does not matter)."""
    rng = np.random.default_rng(6)
    T, N, I, H, k = 6, 2, 3, 4, 4
    x = rng.standard_normal((T, N, I))
    cont = np.ones((T, N))
    cont[k, 1] = 0
    case = TestLSTM()
    case.params = {"num_output": H}
    case.bottom_shapes = [(T, N, I), (T, N)]
    layer, bottom, top = case.build(bottom_values=[x, cont])
    case.run_forward(layer, bottom, top)
    lstm, _ = _torch_lstm(torch, *(b.data.copy() for b in layer.blobs))
    with torch.no_grad():
        whole = lstm(torch.tensor(x))[0].numpy()
        first = lstm(torch.tensor(x[:k, 1:]))[0].numpy()
        second = lstm(torch.tensor(x[k:, 1:]))[0].numpy()
    np.testing.assert_allclose(top[0].data[:, 0], whole[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(top[0].data[:k, 1], first[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(top[0].data[k:, 1], second[:, 0], rtol=1e-10, atol=1e-12)


def test_trains_inside_a_net():
    """x and cont from Input layers (no backward into them), LSTM -> InnerProduct(axis 2) ->
    EuclideanLoss: the loss falls under plain gradient steps on every learnable blob."""
    from minicaffe import Net, prototxt

    text = """
    input: "x" input_shape { dim: 5 dim: 4 dim: 2 }
    input: "cont" input_shape { dim: 5 dim: 4 }
    input: "target" input_shape { dim: 5 dim: 4 dim: 1 }
    layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
            recurrent_param { num_output: 6 weight_filler { type: "uniform" min: -0.3 max: 0.3 } } }
    layer { name: "out" type: "InnerProduct" bottom: "h" top: "y"
            inner_product_param { num_output: 1 axis: 2 weight_filler { type: "gaussian" std: 0.3 } } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "target" top: "loss" }
    """
    np.random.seed(0)
    net = Net(prototxt.parse_net(text), phase="TRAIN")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4, 2))
    cont = np.ones((5, 4))
    cont[0] = 0
    target = np.cumsum(x[:, :, :1], axis=0) * 0.3          # needs memory across steps
    losses = []
    for _ in range(60):
        net.blobs["x"].data[...] = x
        net.blobs["cont"].data[...] = cont
        net.blobs["target"].data[...] = target
        net.clear_param_diffs()
        losses.append(net.forward_backward())
        for blob in net.learnable_params:
            blob.data[...] -= 0.1 * blob.diff
    assert [b.shape for b in net.params["lstm"]] == [(24, 2), (24,), (24, 6)]
    assert losses[-1] < 0.5 * losses[0], losses[::10]
