"""Old nets and solvers load in the current form; include/exclude filtering."""
from pathlib import Path

import pytest

from minicaffe.errors import ParseError
from minicaffe.prototxt import (BlobShape, ConvolutionParameter, FillerParameter,
                                LayerParameter, NetStateRule, ParamSpec, PoolingParameter,
                                TransformationParameter, filter_net, parse_net, parse_solver,
                                read_net, read_solver, to_text)

FIXTURES = Path(__file__).parent / "fixtures"


def test_v1_layers_become_current_layers():
    with _no_warning():
        net = read_net(FIXTURES / "v1_lenet.prototxt")
    assert not net.layers
    assert [(l.name, l.type) for l in net.layer] == [
        ("mnist", "Data"), ("conv1", "Convolution"), ("pool1", "Pooling"),
        ("ip1", "InnerProduct"), ("relu1", "ReLU"), ("loss", "SoftmaxWithLoss"),
        ("accuracy", "Accuracy")]
    conv = net.layer[1]
    assert conv.param == [ParamSpec(name="conv1_w", lr_mult=1, decay_mult=1),
                          ParamSpec(name="conv1_b", lr_mult=2, decay_mult=0)]
    assert conv.convolution_param.num_output == 20
    assert conv.convolution_param.weight_filler.type == "xavier"
    assert net.layer[3].param == [ParamSpec(lr_mult=1), ParamSpec(lr_mult=2)]
    assert not net.layer[3].param[0].has("decay_mult")
    assert net.layer[0].include == [NetStateRule(phase="TRAIN")]
    # positions survive the upgrade
    assert conv.position[1:] == (17, 1)
    assert conv.position_of("param")[1:] == (22, 3)


def test_v1_data_layer_scale_moves_to_transform_param():
    data = read_net(FIXTURES / "v1_lenet.prototxt").layer[0]
    assert data.transform_param.scale == 0.00390625
    assert not data.data_param.has("scale")
    assert data.data_param.backend == "LMDB" and data.data_param.batch_size == 64


def test_upgraded_v1_net_writes_current_form():
    text = to_text(read_net(FIXTURES / "v1_lenet.prototxt"))
    assert "layers" not in text and "blobs_lr" not in text
    assert 'type: "Convolution"' in text and "lr_mult: 2" in text


def test_input_dim_becomes_input_layer():
    net = read_net(FIXTURES / "input_dim_deploy.prototxt")
    first = net.layer[0]
    assert (first.name, first.type, first.top) == ("input", "Input", ["data"])
    assert first.input_param.shape == [BlobShape(dim=[10, 3, 32, 32])]
    assert not net.input and not net.input_dim
    assert [l.type for l in net.layer] == ["Input", "Convolution", "Softmax"]


def test_input_shape_becomes_input_layer_with_one_shape_per_top():
    net = read_net(FIXTURES / "input_shape_deploy.prototxt")
    first = net.layer[0]
    assert first.top == ["data", "label"]
    assert [s.dim for s in first.input_param.shape] == [[1, 3, 8, 8], [1]]
    assert net.layer[1].name == "flat"


def test_input_dim_count_mismatch_is_an_error():
    with pytest.raises(ParseError, match=r"n.prototxt:2:1: net declares 1 input\(s\) but 3 "
                       r"input_dim values; give 4 per input"):
        parse_net('input: "data"\ninput_dim: 1\ninput_dim: 2\ninput_dim: 3\n', "n.prototxt")
    with pytest.raises(ParseError, match="net declares 2 input"):
        parse_net('input: "a" input: "b" input_shape { dim: 1 }')


def test_input_without_shape_gives_shapeless_input_layer():
    layer = parse_net('input: "data"').layer[0]
    assert layer.type == "Input" and layer.input_param.shape == []


def test_batchnorm_three_params_get_zero_lr_and_decay():
    net = read_net(FIXTURES / "current_resnet_block.prototxt")
    bn = net.layer[2]
    assert [(p.lr_mult, p.decay_mult) for p in bn.param] == [(0, 0)] * 3
    assert net.layer[1].param[0].lr_mult == 1  # other layers untouched


def test_mixing_layer_and_layers_is_an_error():
    with pytest.raises(ParseError, match=r"<string>:2:1: net mixes V1 'layers' and current "
                       r"'layer' fields; use one form"):
        parse_net('layer { name: "a" }\nlayers { name: "b" type: RELU }')


def test_v0_net_is_upgraded_field_by_field():
    with pytest.warns(UserWarning, match=r"v0_net.prototxt:56:5: V0 field 'det_fg_threshold' "
                      "of a 'window_data' layer has no minicaffe equivalent; it is dropped"):
        net = read_net(FIXTURES / "v0_net.prototxt")
    names = [(l.name, l.type) for l in net.layer]
    assert names == [("input", "Input"), ("data", "Data"), ("conv1", "Convolution"),
                     ("pool1", "Pooling"), ("norm1", "LRN"), ("fc", "InnerProduct"),
                     ("drop", "Dropout"), ("loss", "SoftmaxWithLoss"),
                     ("images", "ImageData"), ("windows", "WindowData")]
    data, conv, pool, norm, fc, drop = net.layer[1:7]
    assert (data.data_param.source, data.data_param.batch_size) == ("train-leveldb", 32)
    assert data.transform_param == TransformationParameter(
        scale=0.5, mean_file="mean.binaryproto", crop_size=27, mirror=True)
    # the padding layer is folded into conv1, which now reads "data" directly
    assert conv.bottom == ["data"] and conv.convolution_param.pad == [2]
    assert conv.convolution_param == ConvolutionParameter(
        num_output=8, bias_term=False, pad=[2], kernel_size=[5], stride=[2], group=2,
        weight_filler=FillerParameter(type="gaussian", std=0.01))
    assert conv.param == [ParamSpec(lr_mult=1, decay_mult=1), ParamSpec(lr_mult=2, decay_mult=0)]
    assert pool.pooling_param == PoolingParameter(pool="AVE", kernel_size=3, stride=2)
    assert norm.lrn_param.local_size == 3 and norm.lrn_param.alpha == 5e-05
    assert fc.inner_product_param.num_output == 10
    assert drop.dropout_param.dropout_ratio == 0.4
    images = net.layer[8]
    assert (images.image_data_param.shuffle, images.image_data_param.new_height) == (True, 64)
    assert images.transform_param.crop_size == 56


def test_v0_unknown_type():
    with pytest.raises(ParseError, match=r"<string>:1:28: unknown V0 layer type 'convolution' "
                       r"\(known: accuracy, bnll"):
        parse_net('layers { layer { name: "c" type: "convolution" } }')


def test_v0_padding_must_feed_a_convolution():
    with pytest.raises(ParseError, match="a V0 padding layer must feed a convolution"):
        parse_net('layers { layer { name: "p" type: "padding" pad: 1 } bottom: "a" top: "b" }'
                  'layers { layer { name: "r" type: "relu" } bottom: "b" top: "c" }')


def test_solver_type_enum_becomes_type_string_and_inline_net_parses():
    solver = read_solver(FIXTURES / "ssl_fork_solver.prototxt")
    assert solver.type == "Nesterov" and not solver.has("solver_type")
    assert (solver.breadth_decay, solver.kernel_shape_decay, solver.block_group_decay) == \
        (0.0002, 0.0003, 0.0004)
    conv = solver.net_param.layer[0]
    assert conv.connectivity_mode == "DISCONNECTED_ELTWISE"
    spec = conv.param[0]
    assert (spec.breadth_decay_mult, spec.kernel_shape_decay_mult, spec.regularization_type) \
        == (1.0, 0.5, "L2")
    assert [(b.xdimen, b.ydimen, b.block_decay_mult) for b in spec.block_group_lasso] == \
        [(25, 5, 1.0), (5, 5, 1.0)]
    assert conv.convolution_param.conv_mode == "LOWERED_CCNMM"


@pytest.mark.parametrize("old,new", [("SGD", "SGD"), ("NESTEROV", "Nesterov"),
                                     ("ADAGRAD", "AdaGrad"), ("RMSPROP", "RMSProp"),
                                     ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")])
def test_every_legacy_solver_type(old, new):
    assert parse_solver(f"solver_type: {old}").type == new


def test_solver_type_conflicting_with_type_is_an_error():
    with pytest.raises(ParseError, match='s.prototxt:1:1: solver sets both solver_type: ADAM '
                       r'\(deprecated\) and type: "SGD"; keep only type'):
        parse_solver('solver_type: ADAM\ntype: "SGD"\n', "s.prototxt")
    assert parse_solver('solver_type: ADAM type: "Adam"').type == "Adam"


# --- filter_net ---------------------------------------------------------------------------
def _names(net):
    return [l.name for l in net.layer]


def test_filter_by_phase():
    net = read_net(FIXTURES / "v1_lenet.prototxt")
    assert _names(filter_net(net, "TRAIN")) == ["mnist", "conv1", "pool1", "ip1", "relu1",
                                                "loss"]
    test = filter_net(net, 1)
    assert _names(test) == ["conv1", "pool1", "ip1", "relu1", "loss", "accuracy"]
    assert test.state.phase == "TEST"
    assert len(net.layer) == 7  # the input is not modified


def rule_net():
    return parse_net('''
        layer { name: "always" }
        layer { name: "train_only" include { phase: TRAIN } }
        layer { name: "not_test" exclude { phase: TEST } }
        layer { name: "deep_stage" include { stage: "deep" } }
        layer { name: "deep_and_wide" include { stage: "deep" stage: "wide" } }
        layer { name: "deep_or_wide" include { stage: "deep" } include { stage: "wide" } }
        layer { name: "not_deep" include { not_stage: "deep" } }
        layer { name: "level_1_to_2" include { min_level: 1 max_level: 2 } }
        layer { name: "test_level_ge_2" include { phase: TEST min_level: 2 } }
        layer { name: "exclude_deep" exclude { stage: "deep" } }
    ''')


@pytest.mark.parametrize("phase,level,stages,expected", [
    ("TRAIN", 0, (), ["always", "train_only", "not_test", "not_deep", "exclude_deep"]),
    ("TEST", 0, (), ["always", "not_deep", "exclude_deep"]),
    ("TEST", 0, ("deep",), ["always", "deep_stage", "deep_or_wide"]),
    ("TEST", 0, ("deep", "wide"), ["always", "deep_stage", "deep_and_wide", "deep_or_wide"]),
    ("TEST", 0, ("wide",), ["always", "deep_or_wide", "not_deep", "exclude_deep"]),
    ("TEST", 1, (), ["always", "not_deep", "level_1_to_2", "exclude_deep"]),
    ("TEST", 2, (), ["always", "not_deep", "level_1_to_2", "test_level_ge_2", "exclude_deep"]),
    ("TEST", 3, (), ["always", "not_deep", "test_level_ge_2", "exclude_deep"]),
    ("TRAIN", 3, (), ["always", "train_only", "not_test", "not_deep", "exclude_deep"]),
])
def test_filter_rules(phase, level, stages, expected):
    filtered = filter_net(rule_net(), phase, level, stages)
    assert _names(filtered) == expected
    assert (filtered.state.level, filtered.state.stage) == (level, list(stages))


def test_include_and_exclude_together_is_an_error():
    net = parse_net('layer {\n  name: "x"\n  include { phase: TRAIN }\n'
                    '  exclude { phase: TEST }\n}\n', "n.prototxt")
    with pytest.raises(ParseError, match=r"n.prototxt:4:3: layer 'x' has both include and "
                       "exclude rules"):
        filter_net(net, "TRAIN")


def test_filter_rejects_bad_phase():
    with pytest.raises(ValueError, match="phase must be TRAIN/TEST"):
        filter_net(rule_net(), "VAL")


class _no_warning:
    """Context manager failing the test if a warning is emitted inside."""

    def __enter__(self):
        import warnings
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_layer_parameter_keyword_constructor_matches_parse():
    built = LayerParameter(name="r", type="ReLU", bottom=["x"], top=["x"],
                           relu_param={"negative_slope": 0.1})
    parsed = parse_net('layer { name: "r" type: "ReLU" bottom: "x" top: "x" '
                       'relu_param { negative_slope: 0.1 } }').layer[0]
    assert built == parsed


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.prototxt")), ids=lambda p: p.name)
def test_every_vintage_fixture_round_trips_after_upgrade(path, recwarn):
    read, parse = (read_solver, parse_solver) if "solver" in path.name else (read_net, parse_net)
    spec = read(path)
    text = to_text(spec)
    assert parse(text) == spec and to_text(parse(text)) == text
    if "solver" not in path.name:
        assert spec.layer and not spec.layers and not spec.input
