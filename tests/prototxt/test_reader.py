"""The text-format reader: syntax forms, value kinds, defaults, has(), positions."""
import math

import pytest

from minicaffe.prototxt import (ConvolutionParameter, LayerParameter, NetParameter, ParseError,
                                PoolingParameter, parse_message, parse_net, parse_solver)


def layer_of(text):
    return parse_net(f"layer {{ {text} }}").layer[0]


def test_colon_before_brace_is_optional_and_angle_brackets_work():
    a = parse_net('layer { name: "a" convolution_param { num_output: 3 } }')
    b = parse_net('layer: { name: "a" convolution_param: < num_output: 3 > }')
    assert a == b
    assert a.layer[0].convolution_param.num_output == 3


def test_repeated_lines_and_lists_accumulate_in_order():
    conv = layer_of("convolution_param { kernel_size: 3 kernel_size: [4, 5] pad: [] }"
                    ).convolution_param
    assert conv.kernel_size == [3, 4, 5]
    assert conv.pad == [] and not conv.has("pad")


def test_list_of_messages():
    net = parse_net('layer: [{ name: "a" }, { name: "b" }]')
    assert [l.name for l in net.layer] == ["a", "b"]


def test_separators_comments_and_whitespace():
    net = parse_net('name: "n";  # a comment with "quotes" and { braces\n'
                    'layer { name: "a", top: "x"; }  # trailing\n\t\n')
    assert net.name == "n" and net.layer[0].top == ["x"]


def test_strings_both_quotes_escapes_and_concatenation():
    layer = layer_of(r'''name: 'it\'s' "a\tb\n" 'c\"d' type: "\x41\101\u00e9\\"''')
    assert layer.name == "it's" + "a\tb\n" + 'c"d'
    assert layer.type == "AA\u00e9\\"


def test_integers_decimal_hex_octal_negative():
    msg = parse_message("ConcatParameter", "axis: -0x10 concat_dim: 010")
    assert msg.axis == -16 and msg.concat_dim == 8  # a leading 0 is octal, as in protobuf


@pytest.mark.parametrize("text,value", [
    ("1e-4", 1e-4), (".5", 0.5), ("-.5", -0.5), ("5.", 5.0), ("2", 2.0), ("1.5f", 1.5),
    ("3F", 3.0), ("-2.5E+3", -2500.0), ("inf", math.inf), ("-inf", -math.inf),
    ("Infinity", math.inf), ("0x10", 16.0),
])
def test_float_forms(text, value):
    assert parse_message("FillerParameter", f"std: {text}").std == value


def test_nan():
    assert math.isnan(parse_message("FillerParameter", "std: nan").std)
    assert math.isnan(parse_message("FillerParameter", "std: -NaN").std)


@pytest.mark.parametrize("text,value", [
    ("true", True), ("True", True), ("t", True), ("1", True),
    ("false", False), ("False", False), ("f", False), ("0", False),
])
def test_boolean_spellings(text, value):
    assert parse_message("ConvolutionParameter", f"bias_term: {text}").bias_term is value


def test_enums_by_name_and_by_number():
    assert layer_of("pooling_param { pool: AVE }").pooling_param.pool == "AVE"
    assert layer_of("pooling_param { pool: 2 }").pooling_param.pool == "STOCHASTIC"
    assert parse_message("V1LayerParameter", "type: 4").type == "CONVOLUTION"


def test_defaults_are_caffe_proto_defaults_and_has_is_false():
    layer = layer_of('name: "c"')
    conv = layer.convolution_param
    assert (conv.bias_term, conv.group, conv.axis, conv.engine, conv.conv_mode) == \
        (True, 1, 1, "DEFAULT", "LOWERED_GEMM")
    assert conv.kernel_size == [] and conv.num_output == 0
    assert not conv.has("bias_term") and not layer.has("convolution_param")
    assert layer.convolution_param.weight_filler.type == "constant"
    assert layer.convolution_param.weight_filler.std == 1.0
    pool = layer.pooling_param
    assert (pool.pool, pool.stride, pool.pad, pool.round_mode) == ("MAX", 1, 0, "CEIL")
    assert layer.lrn_param.beta == 0.75 and layer.lrn_param.k == 1.0
    assert layer.dropout_param.dropout_ratio == 0.5
    assert layer.batch_norm_param.moving_average_fraction == pytest.approx(0.999)
    assert layer.batch_norm_param.eps == 1e-5
    assert layer.data_param.backend == "LEVELDB" and layer.data_param.prefetch == 4
    assert layer.loss_param.normalization == "VALID"
    assert layer.connectivity_mode == "CONNECTED"


def test_ssl_param_spec_defaults():
    spec = layer_of("param { }").param[0]
    assert (spec.lr_mult, spec.decay_mult) == (1.0, 1.0)
    assert (spec.breadth_decay_mult, spec.kernel_shape_decay_mult) == (0.0, 0.0)
    assert spec.block_group_lasso == [] and spec.regularization_type == ""
    block = parse_message("BlockGroupLassoSpec", "")
    assert (block.xdimen, block.ydimen, block.block_decay_mult) == (1, 1, 1.0)


def test_solver_defaults_include_extensions():
    s = parse_solver("")
    assert (s.type, s.regularization_type, s.solver_mode, s.snapshot_format) == \
        ("SGD", "L2", "GPU", "BINARYPROTO")
    assert (s.average_loss, s.iter_size, s.clip_gradients, s.random_seed) == (1, 1, -1.0, -1)
    assert s.delta == 1e-8 and s.momentum2 == 0.999 and s.rms_decay == 0.99
    assert s.test_initialization is True and s.snapshot_after_train is True
    assert (s.breadth_decay, s.kernel_shape_decay, s.block_group_decay) == (0.0, 0.0, 0.0)
    assert s.group_lasso_update == "SUBGRADIENT" and s.sparsity_report is True
    assert not s.has("zero_threshold")


def test_has_is_true_for_explicit_default_values():
    conv = layer_of("convolution_param { bias_term: true }").convolution_param
    assert conv.has("bias_term")
    assert layer_of("convolution_param { }").has("convolution_param")


def test_positions_of_messages_and_fields():
    net = parse_net('name: "n"\nlayer {\n  name: "a"\n  pooling_param {\n'
                    '    kernel_size: 2\n  }\n}\n', path="net.prototxt")
    layer = net.layer[0]
    assert net.position == ("net.prototxt", 1, 1)
    assert layer.position == ("net.prototxt", 2, 1)
    assert layer.position_of("name") == ("net.prototxt", 3, 3)
    assert layer.pooling_param.position_of("kernel_size") == ("net.prototxt", 5, 5)
    # an unset field reports where its message is
    assert layer.position_of("top") == layer.position


def test_unmodeled_caffe_field_warns_and_is_kept():
    with pytest.warns(UserWarning, match=r"net.prototxt:1:19: field 'window_data_param' in "
                      r"layer is a Caffe field minicaffe does not implement"):
        net = parse_net('layer { name: "w" window_data_param { source: "x" fg_threshold: 0.5 } }',
                        path="net.prototxt")
    layer = net.layer[0]
    assert layer.name == "w"
    assert layer.unmodeled == [("window_data_param",
                               'window_data_param {\n  source: "x"\n  fg_threshold: 0.5\n}\n')]


def test_message_classes_match_parsed_types():
    net = parse_net('layer { convolution_param { kernel_size: 1 } pooling_param { } }')
    assert isinstance(net, NetParameter)
    assert isinstance(net.layer[0], LayerParameter)
    assert isinstance(net.layer[0].convolution_param, ConvolutionParameter)
    assert isinstance(net.layer[0].pooling_param, PoolingParameter)


def test_bytes_field_keeps_raw_bytes():
    datum = parse_message("Datum", r'data: "\000\377ab" label: 3')
    assert datum.data == b"\x00\xffab" and datum.label == 3


def test_parse_accepts_bytes_and_rejects_non_utf8():
    assert parse_net(b'name: "x"').name == "x"
    with pytest.raises(ParseError, match=r"n.prototxt:2:7: not UTF-8 text \(byte 0xff\)"):
        parse_net(b'name: "x"\nname: \xff', path="n.prototxt")
