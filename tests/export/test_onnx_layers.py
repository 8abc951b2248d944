"""Every exportable layer type in small random nets: ONNX Runtime equals the net within 1e-4,
at the net's batch and at another one (the batch axis is symbolic), for several opsets."""
import numpy as np
import pytest

from tests.export.helpers import check, make_net, normal

import minicaffe
from minicaffe.export import CONVERTERS, DROPPED, to_onnx
from minicaffe.export.graph import MIN_OPSET, max_opset


def conv(name, bottom, params, top=None):
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" '
            f'top: "{top or name}" convolution_param {{ {params} }} }}\n')


def layer(name, type_, bottoms, tops=None, params=""):
    bottoms = [bottoms] if isinstance(bottoms, str) else bottoms
    tops = [tops or name] if tops is None or isinstance(tops, str) else tops
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{type_}" {b} {t} {params} }}\n'


X = {"x": (2, 6, 7, 9)}

# (id, layer types covered, body, input shapes, input maker or None)
CASES = [
    ("conv", ["Convolution"], conv("c", "x", "num_output: 4 kernel_size: 3"), X, None),
    ("conv_groups_dilation_pads", ["Convolution"],
     conv("c", "x", "num_output: 4 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 0 stride_h: 2 "
          "stride_w: 1 dilation: 2 group: 2"), X, None),
    ("conv_no_bias_ccnmm", ["Convolution"],
     conv("c", "x", "num_output: 5 kernel_size: 2 bias_term: false conv_mode: LOWERED_CCNMM"),
     X, None),
    ("deconv", ["Deconvolution"],
     layer("d", "Deconvolution", "x", params="convolution_param { num_output: 4 kernel_size: 4 "
           "stride: 2 pad: 1 group: 2 }"), X, None),
    ("deconv_dilated", ["Deconvolution"],
     layer("d", "Deconvolution", "x", params="convolution_param { num_output: 3 kernel_h: 3 "
           "kernel_w: 2 stride_h: 3 stride_w: 1 pad_h: 1 dilation: 2 bias_term: false }"),
     X, None),
    ("im2col", ["Im2col"],
     layer("i", "Im2col", "x", params="convolution_param { kernel_h: 3 kernel_w: 2 pad: 1 "
           "stride: 2 }"), X, None),
    ("ip", ["InnerProduct"], layer("ip", "InnerProduct", "x",
                                   params="inner_product_param { num_output: 5 }"), X, None),
    ("ip_axis2_transpose", ["InnerProduct"],
     layer("ip", "InnerProduct", "x", params="inner_product_param { num_output: 5 axis: 2 "
           "transpose: true }"), X, None),
    ("ip_axis3_no_bias", ["InnerProduct"],
     layer("ip", "InnerProduct", "x", params="inner_product_param { num_output: 3 axis: -1 "
           "bias_term: false }"), X, None),
    ("embed", ["Embed"], layer("e", "Embed", "x", params="embed_param { num_output: 4 "
                               "input_dim: 7 }"),
     {"x": (3, 5)}, lambda s: {"x": np.random.default_rng(1).integers(0, 7, s["x"]).astype(
         np.float32)}),
    ("pool_max_ceil", ["Pooling"],
     layer("p", "Pooling", "x", params="pooling_param { pool: MAX kernel_size: 3 stride: 2 }"),
     X, None),
    ("pool_ave_pad", ["Pooling"],
     layer("p", "Pooling", "x", params="pooling_param { pool: AVE kernel_size: 3 stride: 2 "
           "pad: 1 }"), X, None),
    ("pool_max_mask", ["Pooling"],
     layer("p", "Pooling", "x", ["p", "mask"], "pooling_param { pool: MAX kernel_size: 2 "
           "stride: 2 pad: 1 }"), X, None),
    ("pool_global", ["Pooling"],
     layer("p", "Pooling", "x", params="pooling_param { pool: AVE global_pooling: true }") +
     layer("q", "Pooling", "x", params="pooling_param { pool: MAX global_pooling: true }"),
     X, None),
    ("spp", ["SPP"], layer("s", "SPP", "x", params="spp_param { pyramid_height: 3 }") +
     layer("t", "SPP", "x", params="spp_param { pyramid_height: 2 pool: AVE }") +
     layer("u", "SPP", "x", params="spp_param { pyramid_height: 1 }"), {"x": (2, 3, 9, 7)},
     None),
    ("lrn_across", ["LRN"], layer("l", "LRN", "x", params="lrn_param { local_size: 5 alpha: 0.5 "
                                  "beta: 0.75 k: 2 }"), X, None),
    ("lrn_within", ["LRN"], layer("l", "LRN", "x", params="lrn_param { local_size: 3 "
                                  "alpha: 2 beta: 0.6 norm_region: WITHIN_CHANNEL }"), X, None),
    ("relu_leaky", ["ReLU"], layer("r", "ReLU", "x", "x1") +
     layer("s", "ReLU", "x", "x2", "relu_param { negative_slope: 0.1 }"), X, None),
    ("activations", ["Sigmoid", "TanH", "AbsVal", "BNLL", "ELU", "Swish", "Threshold", "Clip"],
     layer("a", "Sigmoid", "x") + layer("b", "TanH", "x") + layer("c", "AbsVal", "x") +
     layer("d", "BNLL", "x") + layer("e", "ELU", "x", params="elu_param { alpha: 0.7 }") +
     layer("f", "Swish", "x", params="swish_param { beta: 1.5 }") + layer("g", "Swish", "x") +
     layer("h", "Threshold", "x", params="threshold_param { threshold: 0.2 }") +
     layer("i", "Clip", "x", params="clip_param { min: -0.5 max: 0.7 }"), X,
     lambda s: {"x": normal(s["x"], scale=3.0)}),
    ("power", ["Power"],
     layer("a", "Power", "x", params="power_param { power: 2 scale: 0.5 shift: 1 }") +
     layer("b", "Power", "x", params="power_param { power: 1 scale: -2 shift: 0.5 }") +
     layer("c", "Power", "x", params="power_param { power: 0 scale: 3 }") +
     layer("d", "Power", "x", params="power_param { power: 3 scale: 0 shift: 2 }") +
     layer("e", "Power", "x") +
     layer("f", "Power", "x", params="power_param { power: 0.5 scale: 1 shift: 10 }"), X, None),
    ("exp_log", ["Exp", "Log"],
     layer("a", "Exp", "x") + layer("b", "Exp", "x", params="exp_param { base: 2 scale: 0.5 "
                                    "shift: 1 }") +
     layer("c", "Log", "x") + layer("d", "Log", "x", params="log_param { base: 10 scale: 2 "
                                    "shift: 0.5 }"), X,
     lambda s: {"x": np.random.default_rng(2).uniform(0.1, 3, s["x"]).astype(np.float32)}),
    ("prelu", ["PReLU"], layer("a", "PReLU", "x", "x1") +
     layer("b", "PReLU", "x", "x2", "prelu_param { channel_shared: true }"), X, None),
    ("prelu_2d", ["PReLU"], layer("a", "PReLU", "x"), {"x": (4, 3)}, None),
    ("batchnorm_scale_folded", ["BatchNorm", "Scale"],
     conv("c", "x", "num_output: 4 kernel_size: 1") +
     layer("bn", "BatchNorm", "c", "c") + layer("sc", "Scale", "c", "c",
                                                "scale_param { bias_term: true }"), X, None),
    ("batchnorm_alone_2d", ["BatchNorm"], layer("bn", "BatchNorm", "x"), {"x": (5, 3)}, None),
    ("batchnorm_batch_statistics", ["BatchNorm"],
     layer("bn", "BatchNorm", "x", params="batch_norm_param { use_global_stats: false }"),
     X, None),
    ("batchnorm_eps", ["BatchNorm"],
     layer("bn", "BatchNorm", "x", params="batch_norm_param { eps: 0.1 }"), X, None),
    ("scale_bias_axes", ["Scale", "Bias"],
     layer("a", "Scale", "x", params="scale_param { axis: 2 num_axes: 2 }") +
     layer("b", "Scale", "x", params="scale_param { num_axes: 0 bias_term: true }") +
     layer("c", "Bias", "x", params="bias_param { axis: 1 num_axes: -1 }") +
     layer("d", "Bias", "x", params="bias_param { num_axes: 0 }"), X, None),
    ("scale_bias_two_bottoms", ["Scale", "Bias"],
     layer("a", "Scale", ["x", "s"], params="scale_param { axis: 1 bias_term: true }") +
     layer("b", "Bias", ["x", "s"]), {"x": (2, 6, 7, 9), "s": (6, 7)}, None),
    ("scale_batch_axis", ["Scale"], layer("a", "Scale", ["x", "s"],
                                          params="scale_param { axis: 0 }"),
     {"x": (2, 6, 7, 9), "s": (2, 6)}, None),
    ("eltwise", ["Eltwise"],
     layer("a", "Eltwise", ["x", "y"]) +
     layer("b", "Eltwise", ["x", "y", "z"], params="eltwise_param { coeff: 0.5 coeff: -1 "
           "coeff: 2 }") +
     layer("c", "Eltwise", ["x", "y"], params="eltwise_param { coeff: 1 coeff: -1 }") +
     layer("d", "Eltwise", ["x", "y", "z"], params="eltwise_param { operation: PROD }") +
     layer("e", "Eltwise", ["x", "y", "z"], params="eltwise_param { operation: MAX }"),
     {"x": (2, 3, 4), "y": (2, 3, 4), "z": (2, 3, 4)}, None),
    ("concat_slice", ["Concat", "Slice"],
     layer("cat", "Concat", ["x", "y"], params="concat_param { axis: 2 }") +
     layer("one", "Concat", "x", "x1") +
     layer("sl", "Slice", "cat", ["s0", "s1", "s2"], "slice_param { axis: 2 slice_point: 1 "
           "slice_point: 5 }") +
     layer("even", "Slice", "y", ["e0", "e1"], "slice_param { slice_dim: 1 }") +
     layer("batch", "Concat", ["x", "x"], params="concat_param { axis: 0 }"),
     {"x": (2, 4, 3, 5), "y": (2, 4, 6, 5)}, None),
    ("flatten_reshape", ["Flatten", "Reshape"],
     layer("f", "Flatten", "x") +
     layer("g", "Flatten", "x", params="flatten_param { axis: 2 end_axis: 3 }") +
     layer("h", "Flatten", "x", params="flatten_param { axis: 0 end_axis: 1 }") +
     layer("r", "Reshape", "x", params="reshape_param { shape { dim: 0 dim: -1 dim: 3 } }") +
     layer("s", "Reshape", "x", params="reshape_param { shape { dim: 2 dim: 3 } axis: 1 "
           "num_axes: 1 }") +
     layer("t", "Reshape", "x", params="reshape_param { shape { dim: 1 dim: 1 } axis: 0 "
           "num_axes: 0 }") +
     layer("u", "Reshape", "x", params="reshape_param { shape { dim: -1 } axis: -3 }"),
     X, None),
    ("reshape_in_place", ["Reshape", "ReLU"], conv("c", "x", "num_output: 3 kernel_size: 1") +
     layer("r", "Reshape", "c", "c", "reshape_param { shape { dim: 0 dim: -1 } }") +
     layer("a", "ReLU", "c", "c"), X, None),
    ("split", ["Split"], layer("s", "Split", "x", ["x1", "x2"]) +
     layer("a", "ReLU", "x1") + layer("b", "TanH", "x2"), X, None),
    ("crop", ["Crop"], layer("c", "Crop", ["x", "y"]) +
     layer("d", "Crop", ["x", "y"], params="crop_param { axis: 1 offset: 1 offset: 2 "
           "offset: 3 }"), {"x": (2, 6, 7, 9), "y": (2, 4, 3, 5)}, None),
    ("tile", ["Tile"], layer("t", "Tile", "x", params="tile_param { axis: 2 tiles: 3 }") +
     layer("u", "Tile", "x", params="tile_param { axis: 0 tiles: 2 }"), X, None),
    ("softmax", ["Softmax"], layer("s", "Softmax", "x") +
     layer("t", "Softmax", "x", params="softmax_param { axis: 2 }"), X, None),
    ("dropout", ["Dropout"], conv("c", "x", "num_output: 3 kernel_size: 1") +
     layer("d", "Dropout", "c", "c"), X, None),
    ("reduction", ["Reduction"],
     layer("a", "Reduction", "x") +
     layer("b", "Reduction", "x", params="reduction_param { operation: ASUM axis: 1 "
           "coeff: 0.5 }") +
     layer("c", "Reduction", "x", params="reduction_param { operation: SUMSQ axis: 2 }") +
     layer("d", "Reduction", "x", params="reduction_param { operation: MEAN axis: -1 "
           "coeff: 3 }") +
     layer("e", "Reduction", "x", params="reduction_param { operation: MEAN axis: 0 }"),
     X, None),
    ("argmax", ["ArgMax"],
     layer("a", "ArgMax", "x") +
     layer("b", "ArgMax", "x", params="argmax_param { top_k: 3 out_max_val: true }") +
     layer("c", "ArgMax", "x", params="argmax_param { axis: 1 top_k: 2 }") +
     layer("d", "ArgMax", "x", params="argmax_param { axis: 3 out_max_val: true }"), X,
     lambda s: {"x": np.round(normal(s["x"], scale=2.0))}),          # ties: Caffe's order
    ("mvn", ["MVN"], layer("a", "MVN", "x") +
     layer("b", "MVN", "x", params="mvn_param { across_channels: true }") +
     layer("c", "MVN", "x", params="mvn_param { normalize_variance: false }"), X, None),
    ("mvn_2d", ["MVN"], layer("a", "MVN", "x", params="mvn_param { across_channels: true }"),
     {"x": (3, 8)}, None),
    ("batch_reindex", ["BatchReindex"], layer("r", "BatchReindex", ["x", "i"]),
     {"x": (4, 3, 2), "i": (6,)},
     lambda s: {"x": normal(s["x"]),
                "i": np.array([3, 0, 0, 2, 1, 3], np.float32) % s["x"][0]}),
    ("parameter", ["Parameter"],
     layer("p", "Parameter", [], "w", "parameter_param { shape { dim: 6 dim: 7 dim: 9 } }") +
     layer("s", "Bias", ["x", "w"]), {"x": (2, 6, 7, 9)}, None),
]


def _inputs(shapes, maker, batch=None):
    if batch is not None:
        first = next(iter(shapes.values()))[0]
        shapes = {k: (batch,) + tuple(v[1:]) if v[0] == first else v for k, v in shapes.items()}
    if maker is not None:
        return maker(shapes)
    return {k: normal(v, seed=i) for i, (k, v) in enumerate(shapes.items())}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_exports_and_matches(case):
    _, _, body, shapes, maker = case
    net = make_net(body, shapes)
    model = check(net, _inputs(shapes, maker))
    check(net, _inputs(shapes, maker, batch=3))          # another batch, same model
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


@pytest.mark.parametrize("opset", sorted({MIN_OPSET, 17, 18, max_opset()}))
@pytest.mark.parametrize("case", [c for c in CASES if c[0] in (
    "pool_ave_pad", "lrn_within", "mvn", "reduction", "concat_slice", "argmax", "power")],
    ids=lambda c: c[0])
def test_opsets(case, opset):
    _, _, body, shapes, maker = case
    net = make_net(body, shapes)
    model = check(net, _inputs(shapes, maker), opset=opset)
    assert model.opset_import[0].version == opset


def test_every_exportable_type_is_tested():
    tested = {t for case in CASES for t in case[1]} | set(_RECURRENT) | {"Filter"}
    untested = sorted(set(CONVERTERS.names()) - tested)
    assert not untested, f"add a case for {untested}"


def test_every_layer_type_is_exported_dropped_or_refused():
    """A type with neither a converter nor a reason to be left out must be a known refusal."""
    refused = {"Python", "Input"}
    missing = sorted(set(minicaffe.layer_type_list()) - set(CONVERTERS.names()) - set(DROPPED)
                     - refused)
    assert not missing, f"no ONNX converter or drop rule for {missing}"


def _sequence(shapes, static=None):
    """x normal, cont 0 at t = 0 and at a few random later steps (a new sequence), else 1."""
    rng = np.random.default_rng(5)
    out = {k: normal(v, seed=i) for i, (k, v) in enumerate(shapes.items())}
    cont = (rng.random(shapes["cont"]) > 0.3).astype(np.float32)
    cont[0] = 0
    out["cont"] = cont
    return out


def recurrent(type_, extra=""):
    return layer("r", type_, ["x", "cont"] + (["xs"] if "xs" in extra else []) +
                 (["h0", "c0"] if "c0" in extra else ["h0"] if "h0" in extra else []),
                 ["y"] + (["hT", "cT"] if "c0" in extra else ["hT"] if "h0" in extra else []),
                 "recurrent_param { num_output: 4 weight_filler { type: 'gaussian' std: 0.3 } "
                 + ("expose_hidden: true" if "h0" in extra else "") + " }")


SEQ = {"x": (5, 3, 2, 3), "cont": (5, 3)}
RECURRENT_CASES = [
    ("lstm", recurrent("LSTM"), SEQ),
    ("lstm_static_exposed", recurrent("LSTM", "xs h0 c0"),
     dict(SEQ, xs=(3, 4), h0=(1, 3, 4), c0=(1, 3, 4))),
    ("rnn", recurrent("RNN"), SEQ),
    ("rnn_static_exposed", recurrent("RNN", "xs h0"), dict(SEQ, xs=(3, 2, 2), h0=(1, 3, 4))),
    ("lstm_unit", layer("u", "LSTMUnit", ["c", "g", "cont"], ["c1", "h1"]),
     {"c": (1, 3, 4), "g": (1, 3, 16), "cont": (1, 3)}),
]
_RECURRENT = ["RNN", "LSTM", "LSTMUnit"]


@pytest.mark.parametrize("case", RECURRENT_CASES, ids=[c[0] for c in RECURRENT_CASES])
def test_recurrent(case):
    """Scan over time with Caffe's cont resets; the batch (axis 1 of x and cont) is free."""
    _, body, shapes = case
    net = make_net(body, shapes)
    model = check(net, _sequence(shapes))
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        axis = 0 if value.name == "xs" else 1
        assert dims[axis].dim_param == "N", (value.name, dims)
    other = {k: (v[0], 2) + tuple(v[2:]) if k != "xs" else (2,) + tuple(v[1:])
             for k, v in shapes.items()}
    net2 = make_net(body, shapes)                 # a fresh net: no state carried over
    check(net2, _sequence(other))


def test_static_batch():
    net = make_net(layer("f", "Flatten", "x") + layer("ip", "InnerProduct", "f",
                                                     params="inner_product_param { num_output: 3 }"),
                   X)
    model = check(net, _inputs(X, None), dynamic_batch=False)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 6, 7, 9]


def test_reshape_with_a_literal_first_axis_keeps_caffes_meaning():
    """(2, -1) stays (2, -1): at batch 3 the batch goes into the inferred axis, in Caffe too."""
    net = make_net(layer("r", "Reshape", "x", params="reshape_param { shape { dim: 2 dim: -1 } }"),
                   X)
    check(net, _inputs(X, None))
    check(net, _inputs(X, None, batch=4))


def test_reshape_that_fixes_the_batch_needs_a_static_export():
    net = make_net(layer("r", "Reshape", "x", params="reshape_param { shape { dim: 2 dim: 378 } }"),
                   X)
    with pytest.raises(minicaffe.errors.ExportError, match="fixed batch"):
        to_onnx(net)
    model = check(net, _inputs(X, None), dynamic_batch=False)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 6, 7, 9]


def test_filter_selects_rows():
    body = layer("f", "Filter", ["x", "y", "sel"], ["fx", "fy"])
    shapes = {"x": (5, 3, 2), "y": (5, 4), "sel": (5, 1)}
    net = make_net(body, shapes)
    inputs = {"x": normal(shapes["x"]), "y": normal(shapes["y"], 1),
              "sel": np.array([[1], [0], [2], [0], [-1]], np.float32)}
    for k, v in inputs.items():
        net.blobs[k].data[...] = v
    net.forward()                                  # Filter sizes its tops on real data
    check(net, inputs, dynamic_batch=False)


def test_slice_along_the_batch_needs_a_static_export():
    net = make_net(layer("s", "Slice", "x", ["a", "b"], "slice_param { axis: 0 slice_point: 1 }"),
                   X)
    with pytest.raises(minicaffe.errors.ExportError,
                       match="layer 's' \\(Slice\\): slices axis 0, which follows the batch"):
        to_onnx(net)
    check(net, _inputs(X, None), dynamic_batch=False)


def test_train_phase_dropout_is_the_identity_with_a_note():
    from minicaffe.export.onnx_export import convert
    net = make_net(layer("r", "ReLU", "x", "y") + layer("d", "Dropout", "y", "y"), X,
                   phase=minicaffe.TRAIN)
    model, report = convert(net)
    assert any("identity" in n for n in report.notes)
    assert [n.op_type for n in model.graph.node] == ["Relu"]
