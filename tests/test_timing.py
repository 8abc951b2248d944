"""timing: FLOPs per mode, GEMM-only calls, interleaved comparisons; Net(conv_mode=...)."""
import numpy as np
import pytest

import minicaffe as caffe
from minicaffe import ops, timing
from minicaffe.net import Net
from minicaffe.prototxt import parse_net
from tests.compact_nets import grouped, lenet, make, random_inputs


def sparse_lenet(dtype=np.float32, conv_mode=None):
    net = make(lenet(), dtype=dtype, seed=0)
    w1 = net.params["conv1"][0].data
    w1[[0, 2]] = 0
    w2 = net.params["conv2"][0].data
    w2[:, 1] = 0
    w2[3] = 0
    w2[0, 0, 0, 0] = 0
    if conv_mode is None:
        return net
    text = lenet()
    other = Net(parse_net(text), caffe.TEST, dtype=dtype, conv_mode=conv_mode)
    other.copy_from([(l.name, l.type, [b.data for b in l.blobs]) for l in net.layers])
    return other


def test_layer_flops_per_mode():
    net = sparse_lenet()
    conv2 = net.layer_dict["conv2"]
    P = conv2.geom.cols
    w = conv2.blobs[0].data.reshape(8, -1)
    assert timing.layer_flops(conv2, "dense") == 2 * 8 * 54 * P
    rows = int((w != 0).any(axis=1).sum())
    cols = int((w != 0).any(axis=0).sum())
    assert (rows, cols) == (7, 45)
    assert timing.layer_flops(conv2, "LOWERED_CCNMM") == 2 * rows * cols * P
    assert timing.layer_flops(conv2, "csr") == 2 * int(np.count_nonzero(w)) * P
    assert timing.layer_flops(net.layer_dict["ip1"]) == 2 * 10 * 32
    assert timing.layer_flops(net.layer_dict["relu1"]) == 0


@pytest.mark.parametrize("mode", ["dense", "ccnmm", "csr"])
def test_gemm_call_computes_the_layers_product(mode):
    net = sparse_lenet(np.float64, conv_mode=mode)
    net.forward(**random_inputs(net))
    i = net._layer_names.index("conv2")
    (out,) = timing.gemm_call(net, i)()
    layer = net.layers[i]
    x = net._bottom_vecs[i][0].data
    cols = ops.im2col_batch(x, layer.geom)
    np.testing.assert_allclose(out, layer.blobs[0].data.reshape(8, -1) @ cols, atol=1e-12)
    j = net._layer_names.index("ip1")
    y = timing.gemm_call(net, j)()
    x2d = net._bottom_vecs[j][0].data.reshape(3, -1)
    np.testing.assert_allclose(y, x2d @ net.params["ip1"][0].data.T, atol=1e-12)
    assert timing.gemm_call(net, 0) is None


def test_gemm_call_grouped():
    net = make(grouped(), dtype=np.float64)
    net.forward(**random_inputs(net))
    i = net._layer_names.index("conv2")
    outs = timing.gemm_call(net, i)()
    assert len(outs) == 4 and outs[0].shape == (2, 2 * 36)


def test_compare_nets_is_interleaved_and_complete():
    nets = {"a": sparse_lenet(), "b": sparse_lenet(conv_mode="ccnmm")}
    res = timing.compare_nets(nets, rounds=3, warmup=1)
    for label in nets:
        r = res[label]
        assert set(r["layers"]) == set(nets[label]._layer_names)
        assert r["forward_ms"] > 0 and r["gemm_ms"] > 0
        assert r["layers"]["conv1"]["gemm_ms"] > 0 and r["layers"]["pool1"]["gemm_ms"] is None


def test_net_conv_mode_override_keeps_outputs():
    dense = sparse_lenet()
    feed = random_inputs(dense)
    ref = np.array(dense.forward(**feed)["ip2"])
    for mode, caffe_name in (("ccnmm", "LOWERED_CCNMM"), ("LOWERED_CSRMM", "LOWERED_CSRMM"),
                             ("dense", "LOWERED_GEMM")):
        net = sparse_lenet(conv_mode=mode)
        assert net.conv_modes == {"conv1": caffe_name, "conv2": caffe_name}
        assert net.layer_dict["conv2"].layer_param.convolution_param.conv_mode == caffe_name
        np.testing.assert_allclose(net.forward(**feed)["ip2"], ref, rtol=1e-5, atol=1e-6)


def test_net_conv_mode_auto_records_its_choice():
    net = sparse_lenet(conv_mode="auto")
    assert set(net.conv_modes) == {"conv1", "conv2"}
    for name, mode in net.conv_modes.items():
        assert mode in ("LOWERED_GEMM", "LOWERED_CCNMM", "LOWERED_CSRMM")
        assert net.layer_dict[name].conv_mode == mode
        assert net.layer_dict[name].layer_param.convolution_param.conv_mode == mode
    ref = sparse_lenet()
    feed = random_inputs(ref)
    np.testing.assert_allclose(net.forward(**feed)["ip2"], ref.forward(**feed)["ip2"],
                               rtol=1e-5, atol=1e-6)


def test_auto_at_train_is_dense():
    net = Net(parse_net(lenet()), caffe.TRAIN, conv_mode="auto")
    assert set(net.conv_modes.values()) == {"LOWERED_GEMM"}


@pytest.mark.parametrize("mode, hint", [("bogus", "expected one of dense, ccnmm, csr, auto"),
                                        ("compact", "compact_net")])
def test_bad_conv_mode_is_a_clear_error(mode, hint):
    with pytest.raises(ValueError, match=hint):
        Net(parse_net(lenet()), caffe.TEST, conv_mode=mode)
