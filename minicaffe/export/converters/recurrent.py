"""Caffe's recurrent layers, exactly: RNN and LSTM as an ONNX Scan over time, LSTMUnit as
its one step written out.

ONNX's own LSTM / RNN operators cannot express Caffe's: the sequence-continuation input cont_t
multiplies the carried state at every step (a reset inside the batch), RNN's output is a
second tanh layer o_t = tanh(W_ho h_t + b_o), and the gate order differs. So the input
projection (W_x x_t + b [+ W_static x_static], all steps at once) is one MatMul before a Scan
whose body runs Caffe's step on (state, a_t, cont_t):

  LSTM:  a = a_t + W_hc (cont_t h_{t-1});  [i, f, o, g] = [sig, sig, sig, tanh](a in 4)
         c_t = cont_t f c_{t-1} + i g;  h_t = o tanh(c_t)
  RNN:   h_t = tanh(a_t + W_hh (cont_t h_{t-1}));  o_t = tanh(W_ho h_t + b_o) after the Scan.

The initial state is the exposed h_0 / c_0 bottoms, or zeros: an ONNX graph has no state,
so a model starts every run from zero where minicaffe (as Caffe) carries the last state of one
forward into the next; the report says so.
"""
import numpy as np

from minicaffe.export.converters import converter


def _squeeze0(ctx, value, what):
    return ctx.node("Squeeze", [value, ctx.ints([0], "axis0")], what=what)


def _zeros_state(ctx, cont, H, what):
    """Zeros (N, H) with N read from cont (T, N) at run time."""
    n = ctx.graph.slice(ctx.node("Shape", [cont], what=f"{what}/shape"), [1], [2], [0],
                        name=ctx.hint(f"{what}/N"))
    dims = ctx.node("Concat", [n, ctx.ints([H], "H")], axis=0, what=f"{what}/dims")
    zero = ctx.graph.onnx.numpy_helper.from_array(np.zeros(1, np.float32), "value")
    return ctx.node("ConstantOfShape", [dims], what=what, value=zero)


def _projection(ctx, layer):
    """a (T, N, G) = x W_x^T + b [+ x_static W_s^T], for every step at once."""
    x = ctx.bottoms[0]
    src = ctx.bottom_shapes[0]
    if src.ndim != 3:
        x = ctx.graph.reshape(x, [0, 0, -1], name=ctx.hint("x_flat"))
    w_x = ctx.weight(0)                                    # (G, I)
    a = ctx.node("MatMul", [x, ctx.const(np.ascontiguousarray(w_x.T), "W_x_T")], what="W_x")
    a = ctx.node("Add", [a, ctx.const(ctx.weight(1), "b")], what="b")
    if layer.static_input:
        xs = ctx.bottoms[2]
        if ctx.bottom_shapes[2].ndim != 2:
            xs = ctx.node("Flatten", [xs], axis=1, what="x_static_flat")
        w_s = ctx.weight(2)
        s = ctx.node("MatMul", [xs, ctx.const(np.ascontiguousarray(w_s.T), "W_static_T")],
                     what="W_static")
        a = ctx.node("Add", [a, s], what="static")          # (N, G) broadcasts over T
    return a


def _initial_states(ctx, layer, names, H):
    if layer.expose_hidden:
        first = 2 + int(layer.static_input)
        return [_squeeze0(ctx, ctx.bottoms[first + j], f"{name}0") for j, name in enumerate(names)]
    ctx.note("the graph starts every run from a zero state; minicaffe (as Caffe) carries the "
             "last state of a forward into the next (use expose_hidden to pass it)")
    return [_zeros_state(ctx, ctx.bottoms[1], H, f"{name}0") for name in names]


def _body(ctx, step, names, H, G):
    """The Scan body: inputs (states..., a_t (N, G), cont_t (N, 1)); outputs (new states...,
    the step's h)."""
    sub = ctx.graph.child()
    prefix = ctx.hint("step")
    ins = [sub.fresh(f"{prefix}/{n}_prev") for n in names]
    a_t, cont_t = sub.fresh(f"{prefix}/a_t"), sub.fresh(f"{prefix}/cont_t")
    new_states = step(sub, prefix, ins, a_t, cont_t)
    h_out = sub.node("Identity", [new_states[0]], name=f"{prefix}/h_out", hint=f"{prefix}/h_out")
    dims = ["N", H]
    graph = sub.make_graph(f"{ctx.name}_step",
                           [(n, dims) for n in ins] + [(a_t, ["N", G]), (cont_t, ["N", 1])],
                           [(n, dims) for n in new_states] + [(h_out, dims)])
    return graph


@converter("LSTM")
def lstm(ctx):
    layer = ctx.layer
    H = layer.num_output
    G = 4 * H
    w_hc_t = ctx.const(np.ascontiguousarray(ctx.weight(len(layer.blobs) - 1).T), "W_hc_T")
    a = _projection(ctx, layer)
    cont3 = ctx.graph.unsqueeze(ctx.bottoms[1], [2], name=ctx.hint("cont"))
    states = _initial_states(ctx, layer, ("h", "c"), H)

    def step(g, p, ins, a_t, cont_t):
        h_prev, c_prev = ins
        hc = g.node("Mul", [cont_t, h_prev], name=f"{p}/cont_h")
        gates = g.node("Add", [a_t, g.node("MatMul", [hc, w_hc_t], name=f"{p}/W_hc")],
                       name=f"{p}/gates")
        i, f, o, gg = g.split(gates, [H] * 4, 1, 4, name=f"{p}/split")
        i = g.node("Sigmoid", [i], name=f"{p}/i")
        f = g.node("Sigmoid", [f], name=f"{p}/f")
        o = g.node("Sigmoid", [o], name=f"{p}/o")
        gg = g.node("Tanh", [gg], name=f"{p}/g")
        keep = g.node("Mul", [g.node("Mul", [cont_t, f], name=f"{p}/cont_f"), c_prev],
                      name=f"{p}/keep")
        c = g.node("Add", [keep, g.node("Mul", [i, gg], name=f"{p}/ig")], name=f"{p}/c")
        h = g.node("Mul", [o, g.node("Tanh", [c], name=f"{p}/tanh_c")], name=f"{p}/h")
        return [h, c]

    body = _body(ctx, step, ("h", "c"), H, G)
    h_T, c_T, h_all = ctx.node("Scan", states + [a, cont3], out=3, body=body, num_scan_inputs=2)
    outs = [ctx.node("Identity", [h_all], out=ctx.top(0), what="h")]
    if layer.expose_hidden:
        outs.append(ctx.graph.unsqueeze(h_T, [0], out=ctx.top(1), name=ctx.hint("h_T")))
        outs.append(ctx.graph.unsqueeze(c_T, [0], out=ctx.top(2), name=ctx.hint("c_T")))
    return outs


@converter("RNN")
def rnn(ctx):
    layer = ctx.layer
    H = layer.num_output
    w_hh, w_ho, b_o = (ctx.weight(j) for j in range(len(layer.blobs) - 3, len(layer.blobs)))
    w_hh_t = ctx.const(np.ascontiguousarray(w_hh.T), "W_hh_T")
    a = _projection(ctx, layer)
    cont3 = ctx.graph.unsqueeze(ctx.bottoms[1], [2], name=ctx.hint("cont"))
    states = _initial_states(ctx, layer, ("h",), H)

    def step(g, p, ins, a_t, cont_t):
        hc = g.node("Mul", [cont_t, ins[0]], name=f"{p}/cont_h")
        z = g.node("Add", [a_t, g.node("MatMul", [hc, w_hh_t], name=f"{p}/W_hh")],
                   name=f"{p}/z")
        return [g.node("Tanh", [z], name=f"{p}/h")]

    body = _body(ctx, step, ("h",), H, H)
    h_T, h_all = ctx.node("Scan", states + [a, cont3], out=2, body=body, num_scan_inputs=2)
    o = ctx.node("Add", [ctx.node("MatMul", [h_all, ctx.const(np.ascontiguousarray(w_ho.T),
                                                              "W_ho_T")], what="W_ho"),
                         ctx.const(b_o, "b_o")], what="b_o")
    outs = [ctx.node("Tanh", [o], out=ctx.top(0), what="o")]
    if layer.expose_hidden:
        outs.append(ctx.graph.unsqueeze(h_T, [0], out=ctx.top(1), name=ctx.hint("h_T")))
    return outs


@converter("LSTMUnit")
def lstm_unit(ctx):
    """One step: c_prev (1, N, H), gate inputs (1, N, 4H) ordered i, f, o, g, cont (1, N)."""
    H = ctx.bottom_shapes[0][2]
    c_prev, gates, cont = ctx.bottoms
    cont3 = ctx.graph.unsqueeze(cont, [2], name=ctx.hint("cont"))
    i, f, o, g = ctx.graph.split(gates, [H] * 4, 2, 4, name=ctx.hint("split"))
    i = ctx.node("Sigmoid", [i], what="i")
    f = ctx.node("Sigmoid", [f], what="f")
    o = ctx.node("Sigmoid", [o], what="o")
    g = ctx.node("Tanh", [g], what="g")
    keep = ctx.node("Mul", [ctx.node("Mul", [cont3, f], what="cont_f"), c_prev], what="keep")
    c = ctx.node("Add", [keep, ctx.node("Mul", [i, g], what="ig")], out=ctx.top(0), what="c")
    h = ctx.node("Mul", [o, ctx.node("Tanh", [c], what="tanh_c")], out=ctx.top(1), what="h")
    return [c, h]
