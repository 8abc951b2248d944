"""compact_net, rule by rule: what goes, what stays and why, on hand-planted weights."""
import json
import warnings

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe.catalog.base import LAYERS, Layer
from minicaffe.compact import CompactionWarning, compact_net, format_markdown, report_json
from minicaffe.net import Net
from minicaffe.prototxt import parse_net
from tests.compact_nets import (_input, assert_same_outputs, compact_and_build, conv,
                                grouped, ip, lenet, lrn_net, make, mlp, resnet)


def written(result):
    return {lp.name: lp for lp in result.net_param.layer}


def weights_of(result, name):
    return {n: a for n, _, a in result.weights}[name]


def test_result_unpacks_as_a_pair_and_carries_the_report():
    net = make(lenet(), seed=1)
    result = compact_net(net)
    param, weights = result
    assert param is result.net_param and weights is result.weights
    assert [r["layer"] for r in result.report.rows] == ["conv1", "conv2", "ip1", "ip2"]
    data = json.loads(report_json(result.report))
    assert data["rows"][0]["filters"] == [6, 6]
    assert "| conv1 |" in format_markdown(result.report)


def test_dead_in_both_directions():
    """A conv1 filter nobody reads goes although its weights are not zero; a conv2 filter
    whose weights are zero goes although ip1 reads it (its constant bias is folded)."""
    net = make(lenet(), seed=2)
    w2 = net.params["conv2"][0].data
    w2[:, 2] = 0                                # conv1 filter 2: no live weight reads it
    w2[5] = 0                                   # conv2 filter 5: zero, bias 0.7
    net.params["conv2"][1].data[5] = 0.7
    result, small = compact_and_build(net)
    layers = written(result)
    assert layers["conv1"].convolution_param.num_output == 5
    assert layers["conv2"].convolution_param.num_output == 7
    assert weights_of(result, "conv2")[0].shape == (7, 5, 3, 3)
    assert weights_of(result, "ip1")[0].shape == (10, 7 * 2 * 2)
    assert any("ip1: the constant outputs of 1 removed" in n for n in result.report.notes)
    assert_same_outputs(net, small)


def test_constant_channel_before_a_padded_convolution_stays_with_the_reason():
    net = make(lenet(pad=1), seed=3)
    net.params["conv1"][0].data[[1, 4]] = 0
    net.params["conv1"][1].data[1] = 0.3        # ReLU(0.3) = 0.3 everywhere: not zero
    net.params["conv1"][1].data[4] = -0.3       # ReLU(-0.3) = 0: goes
    result, small = compact_and_build(net)
    assert written(result)["conv1"].convolution_param.num_output == 5
    row = result.report.rows[0]
    assert row["filters"] == [6, 5]
    note = next(n for n in result.report.notes if n.startswith("conv1:"))
    assert "'conv2' pads its input by 1x1" in note and "(1)" in note
    assert_same_outputs(net, small)


def test_constant_channel_before_an_unpadded_convolution_is_folded():
    net = make(lenet(pad=0), seed=3)
    net.params["conv1"][0].data[1] = 0
    net.params["conv1"][1].data[1] = 0.3
    result, small = compact_and_build(net)
    assert written(result)["conv1"].convolution_param.num_output == 5
    assert any(n.startswith("conv2: the constant outputs of 1") for n in result.report.notes)
    assert_same_outputs(net, small)


def test_zero_shape_fibres_stay_under_ccnmm():
    net = make(lenet(), seed=4)
    w2 = net.params["conv2"][0].data
    w2[:, :, 0, 0] = 0                          # one shape fibre per channel: 6 of 54 columns
    result, small = compact_and_build(net)
    lp = written(result)["conv2"]
    assert lp.convolution_param.conv_mode == "LOWERED_CCNMM"
    assert weights_of(result, "conv2")[0].shape == (8, 6, 3, 3)
    row = result.report.rows[1]
    assert row["filter_size"] == [54, [48]]
    assert row["column_sparsity"] == pytest.approx(6 / 54)
    assert_same_outputs(net, small)


def test_first_layer_unconnected_inputs_are_reported():
    net = make(mlp(), seed=5)
    net.params["ip1"][0].data[:, [0, 1, 5, 24]] = 0
    result, small = compact_and_build(net)
    (first,) = result.report.first_layer
    assert first["layer"] == "ip1" and first["unconnected"] == 4 and first["count"] == 25
    assert first["connections"][0] == 0 and first["connections"][2] == 12
    assert "4 of 25 inputs have no connection" in format_markdown(result.report)
    assert_same_outputs(net, small)


def test_dead_neurons_of_an_mlp_go_in_both_directions():
    net = make(mlp(), seed=6)
    w1 = net.params["ip1"][0].data
    w1[3] = 0                                   # neuron 3: no inputs (bias only)
    w2t = net.params["ip2"][0].data             # transpose: (12, 9)
    w2t[7] = 0                                  # ip1 neuron 7: no outputs
    result, small = compact_and_build(net)
    assert written(result)["ip1"].inner_product_param.num_output == 10
    assert weights_of(result, "ip2")[0].shape == (10, 9)
    assert_same_outputs(net, small)


def _zero_branch(net, convs):
    for name in convs:
        net.params[name][0].data[...] = 0


def test_residual_block_with_a_zero_branch_leaves_the_shortcut():
    net = make(resnet(), seed=7)
    _zero_branch(net, ["a1", "b1"])
    result, small = compact_and_build(net)
    layers = written(result)
    for gone in ("a1", "a1_bn", "a1_sc", "a1_relu", "b1", "b1_bn", "b1_sc"):
        assert gone not in layers
    # b1's BatchNorm + Scale shift is a constant per channel: the sum becomes a Bias
    assert layers["sum1"].type == "Bias" and layers["sum1"].bottom == ["conv0"]
    assert weights_of(result, "sum1")[0].shape == (4,)
    assert_same_outputs(net, small)


def test_residual_zero_branch_with_zero_shift_is_passed_through():
    net = make(resnet(), seed=8)
    _zero_branch(net, ["a1", "b1"])
    net.params["b1_bn"][0].data[...] = 0        # mean 0 and Scale bias 0: the branch adds 0
    net.params["b1_sc"][1].data[...] = 0
    result, small = compact_and_build(net)
    layers = written(result)
    assert "sum1" not in layers
    assert layers["relu1"].bottom == ["conv0"] and layers["relu1"].top == ["conv0"]
    assert layers["a2"].bottom == ["conv0"]
    assert_same_outputs(net, small)


def test_projection_block_with_a_zero_branch_keeps_the_coefficient():
    net = make(resnet(), seed=9)
    _zero_branch(net, ["a2", "b2"])
    result, small = compact_and_build(net)
    layers = written(result)
    assert "b2" not in layers and "a2" not in layers
    assert layers["sum2"].type == "Scale" and layers["sum2"].bottom == ["p2"]
    scale = weights_of(result, "sum2")[0]
    np.testing.assert_array_equal(scale, np.full(6, 0.5, dtype=np.float32))
    assert_same_outputs(net, small)


def test_a_branch_after_a_zero_first_conv_becomes_a_constant_map():
    """a1 zero, b1 not: b1 convolves a constant with padding, so the branch is an
    input-independent map that is not constant at the border; it still goes, as a full map."""
    net = make(resnet(), seed=10)
    net.params["a1"][0].data[...] = 0
    net.params["a1_sc"][1].data[...] = 1.0      # ReLU(shift) > 0: a non-zero constant
    net.params["a1_bn"][0].data[...] = 0
    result, small = compact_and_build(net)
    layers = written(result)
    assert "b1" not in layers and layers["sum1"].type == "Bias"
    assert weights_of(result, "sum1")[0].shape == (4, 8, 8)
    assert_same_outputs(net, small)


def test_eltwise_channel_dead_in_one_input_only_stays():
    net = make(resnet(), seed=11)
    net.params["b2"][0].data[2] = 0             # dead in the branch, live in the projection
    result, small = compact_and_build(net)
    assert written(result)["b2"].convolution_param.num_output == 6
    net.params["p2"][0].data[2] = 0             # dead in both: still a BN/Scale constant, and
    result, small = compact_and_build(net)      # the pooled constant folds into fc
    assert written(result)["b2"].convolution_param.num_output == 5
    assert written(result)["p2"].convolution_param.num_output == 5
    assert_same_outputs(net, small)


def test_concat_offsets_shift():
    from tests.compact_nets import concat_net

    net = make(concat_net(), seed=12)
    net.params["b2"][0].data[...] = 0
    net.params["b2"][1].data[...] = 0           # b2's 5 channels are zero: they go
    net.params["conv3"][0].data[:, 2] = 0       # and b1's channel 2, which conv3 ignores
    result, small = compact_and_build(net)
    layers = written(result)
    assert "b2" not in layers and layers["cat"].bottom == ["b1", "b3"]
    assert weights_of(result, "conv3")[0].shape == (7, 3 + 6, 3, 3)
    assert written(result)["b1"].convolution_param.num_output == 3
    assert_same_outputs(net, small)


def test_slice_points_move():
    from tests.compact_nets import concat_net

    net = make(concat_net(), seed=13)
    net.params["conv3"][0].data[[0, 4, 5]] = 0
    net.params["conv3"][1].data[[0, 4, 5]] = 0
    result, small = compact_and_build(net)
    lp = written(result)["slice"]
    assert list(lp.slice_param.slice_point) == [2]
    assert_same_outputs(net, small)


def test_grouped_convolution_loses_a_whole_group():
    text = ('name: "g"\n' + _input((2, 4, 6, 6)) + conv("ca", "data", 8, 3)
            + conv("cb", "ca", 8, 1, group=4) + ip("fc", "cb", 3))
    net = make(text, seed=14)
    net.params["cb"][0].data[[0, 1]] = 0        # group 0 of cb: no filter left
    net.params["cb"][1].data[[0, 1]] = 0
    result, small = compact_and_build(net)
    layers = written(result)
    assert layers["cb"].convolution_param.group == 3
    assert layers["cb"].convolution_param.num_output == 6
    assert layers["ca"].convolution_param.num_output == 6
    assert any("group 4 -> 3" in n for n in result.report.notes)
    assert_same_outputs(net, small)


def test_grouped_convolution_keeps_groups_equal():
    net = make(grouped(), seed=15)
    net.params["conv2"][0].data[0] = 0          # group 0 of conv2 would keep 1 filter of 2
    net.params["conv2"][1].data[0] = -5.0
    result, small = compact_and_build(net)
    assert written(result)["conv2"].convolution_param.num_output == 8
    assert any("conv2: 1 filter(s) with an input-independent output kept (0): kept so that "
               "the 2 groups of 'conv3' keep equal numbers" in n for n in result.report.notes)
    assert_same_outputs(net, small)


def test_lrn_across_channels_keeps_a_zero_spacer():
    net = make(lrn_net(), seed=16)
    zero = [0, 1, 4, 5, 6, 7]
    net.params["conv1"][0].data[zero] = 0
    net.params["conv1"][1].data[zero] = -1.0    # ReLU: exactly zero channels
    result, small = compact_and_build(net)
    # leading zeros go; of the interior run 4..7 (local_size 3) one stays between 3 and 8
    assert written(result)["conv1"].convolution_param.num_output == 5
    assert any("zero spacer" in n for n in result.report.notes)
    assert_same_outputs(net, small)


def test_lrn_across_channels_keeps_a_nonzero_constant_channel():
    net = make(lrn_net(), seed=17)
    net.params["conv1"][0].data[3] = 0
    net.params["conv1"][1].data[3] = 1.0        # constant 1 feeds its neighbours' scale
    net.params["conv2"][0].data[:, 3] = 0       # and nothing reads its own output
    result, small = compact_and_build(net)
    assert written(result)["conv1"].convolution_param.num_output == 10
    assert any("normalises its neighbours" in n for n in result.report.notes)
    assert_same_outputs(net, small)


class _Opaque(Layer):
    """y = x: a layer compaction has no rule for (registered only inside the test)."""

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data


@pytest.fixture
def opaque_layer(monkeypatch):
    monkeypatch.setitem(LAYERS._items, "TestOpaque", _Opaque)
    return "TestOpaque"


def test_unknown_layer_stops_compaction_with_a_warning(opaque_layer):
    text = lenet().replace(
        'bottom: "pool1" top: "conv2"', 'bottom: "mid" top: "conv2"').replace(
        'layer { name: "conv2"',
        f'layer {{ name: "mystery" type: "{opaque_layer}" bottom: "pool1" top: "mid" }}\n'
        'layer { name: "conv2"')
    net = make(text, seed=18)
    net.params["conv1"][0].data[2] = 0          # a pruned producer before the unknown layer
    net.params["conv2"][0].data[:, 4] = 0       # a pruned consumer after it
    with pytest.warns(CompactionWarning, match="layer 'mystery' \\(TestOpaque\\)") as caught:
        result, small = compact_and_build(net)
    text = str(caught[0].message)
    assert "'pool1' has input-independent" in text and "feeds 'conv2'" in text
    assert written(result)["conv1"].convolution_param.num_output == 6
    assert result.warnings and "mystery" in format_markdown(result.report)
    assert_same_outputs(net, small)


def test_no_warning_without_pruned_neighbours(opaque_layer):
    text = lenet().replace('bottom: "ip1" top: "ip2"', 'bottom: "mid" top: "ip2"').replace(
        'layer { name: "ip2"',
        f'layer {{ name: "mystery" type: "{opaque_layer}" bottom: "ip1" top: "mid" }}\n'
        'layer { name: "ip2"')
    net = make(text, seed=19)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompactionWarning)
        result, small = compact_and_build(net)
    assert not result.warnings
    assert_same_outputs(net, small)


def test_data_layers_become_input_layers():
    text = ('name: "m"\nlayer { name: "data" type: "MemoryData" top: "data" top: "label" '
            'memory_data_param { batch_size: 2 channels: 1 height: 5 width: 5 } }\n'
            + ip("ip1", "data", 6) + ip("ip2", "ip1", 3))
    net = Net(parse_net(text), caffe.TEST)
    rng = np.random.default_rng(0)
    for blobs in net.params.values():
        for b in blobs:
            b.data[...] = rng.normal(0, 0.5, b.shape)
    net.params["ip1"][0].data[2] = 0
    result = compact_net(net)
    lp = written(result)["data"]
    assert lp.type == "Input" and list(lp.top) == ["data", "label"]
    assert [list(s.dim) for s in lp.input_param.shape] == [[2, 1, 5, 5], [2]]
    assert written(result)["ip1"].inner_product_param.num_output == 5
    assert "compact_silence" not in written(result) or written(result)["compact_silence"].bottom == ["label"]


def test_float64_nets_keep_their_dtype():
    net = make(lenet(), dtype=np.float64, seed=20)
    net.params["conv1"][0].data[0] = 0
    result, small = compact_and_build(net)
    assert all(a.dtype == np.float64 for _, _, arrays in result.weights for a in arrays)
    assert_same_outputs(net, small)


def test_shared_parameters_are_unshared_when_their_shapes_change():
    text = ('name: "s"\n' + _input((2, 1, 4, 4)) + ip("ip1", "data", 6)
            + 'layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" '
              'param { name: "w" } inner_product_param { num_output: 6 } }\n'
            + 'layer { name: "ip3" type: "InnerProduct" bottom: "ip2" top: "ip3" '
              'param { name: "w" } inner_product_param { num_output: 6 } }\n'
            + ip("ip4", "ip3", 2))
    net = make(text, seed=21)
    net.params["ip2"][0].data[:, 1] = 0         # shared: ip3 ignores ip2's neuron 1 too
    net.params["ip1"][0].data[3] = 0            # ip1 neuron 3: bias only, folded into ip2
    result, small = compact_and_build(net)
    layers = written(result)
    assert layers["ip1"].inner_product_param.num_output == 4
    assert weights_of(result, "ip2")[0].shape == (5, 4)
    assert weights_of(result, "ip3")[0].shape == (6, 5)
    assert not layers["ip2"].param[0].has("name") and not layers["ip3"].param[0].has("name")
    assert_same_outputs(net, small)
