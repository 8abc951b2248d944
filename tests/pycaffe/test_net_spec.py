"""caffe.NetSpec / caffe.layers (L) / caffe.params (P) / caffe.to_proto, as pycaffe notebooks use them."""
import numpy as np
import pytest

pytest.importorskip("google.protobuf", reason="protobuf not installed (pip install 'minicaffe[pycaffe]')")

import minicaffe as caffe  # noqa: E402
from minicaffe import layers as L  # noqa: E402
from minicaffe import params as P  # noqa: E402
from minicaffe import prototxt  # noqa: E402
from minicaffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

MODULE = "minicaffe.testing.python_layers"


def lenet(batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                         dict(dim=[batch_size, 1, 1, 1])],
                                  transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def anon_lenet(batch_size):
    data, label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                     dict(dim=[batch_size, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool1, num_output=500, weight_filler=dict(type="xavier"))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type="xavier"))
    loss = L.SoftmaxWithLoss(ip2, label)
    return loss.to_proto()


def _load(tmp_path, net_proto, phase=caffe.TEST):
    path = tmp_path / "net.prototxt"
    path.write_text(str(net_proto))
    return caffe.Net(str(path), phase)


def test_lenet_names_in_place_and_loads(tmp_path):
    net_proto = lenet(50)
    assert isinstance(net_proto, caffe_pb2.NetParameter)
    assert [l.name for l in net_proto.layer] == ["data", "conv1", "pool1", "conv2", "pool2", "ip1",
                                                 "relu1", "ip2", "loss"]
    assert net_proto.layer[6].bottom == net_proto.layer[6].top == ["ip1"]
    assert net_proto.layer[7].bottom == ["ip1"]
    assert net_proto.layer[1].convolution_param.kernel_size == [5]
    assert net_proto.layer[2].pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert net_proto.layer[0].transform_param.scale == pytest.approx(1 / 255)
    net = _load(tmp_path, net_proto)
    assert len(net.layers) == 9
    assert net.blobs["ip2"].data.shape == (50, 10) and net.params["conv2"][0].data.shape == (50, 20, 5, 5)
    # caffe.Net takes the message itself too
    assert len(caffe.Net(net_proto, caffe.TEST).layers) == 9


def test_anonymous_lenet_gets_pycaffes_automatic_names(tmp_path):
    net_proto = anon_lenet(8)
    assert [l.name for l in net_proto.layer] == [
        "DummyData1", "Convolution1", "Pooling1", "InnerProduct1", "ReLU1", "InnerProduct2",
        "SoftmaxWithLoss1"]
    assert list(net_proto.layer[0].top) == ["DummyData1", "DummyData2"]
    assert net_proto.layer[4].bottom == net_proto.layer[4].top == ["InnerProduct1"]
    assert len(_load(tmp_path, net_proto).layers) == 7


def test_zero_tops_and_type_error(tmp_path):
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    net = _load(tmp_path, n.to_proto())
    assert len(net.forward()) == 0
    data = L.DummyData(ntop=2)
    with pytest.raises(TypeError, match=r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"):
        L.Silence(data, ntop=0)
    L.Silence(*data, ntop=0)


def _at_float32(msg):
    """A copy of `msg` with every caffe.proto `float` field rounded to float32: protobuf prints
    floats with 9 digits (0.00392156886), its parser keeps float32 (0.003921569), so the two
    spellings are the same caffe.proto value."""
    msg = msg.copy()
    for name in msg.set_fields():
        f = msg._spec.fields[name]
        values = getattr(msg, name) if f.repeated else [getattr(msg, name)]
        if f.is_message:
            values = [_at_float32(v) for v in values]
        elif f.kind == "float":
            values = [float(np.float32(v)) for v in values]
        setattr(msg, name, values if f.repeated else values[0])
    return msg


def test_text_of_to_proto_reads_in_both_readers_alike():
    text = str(lenet(4))
    ours = prototxt.parse_net(text)
    theirs = prototxt.upgrade_net(prototxt.from_protobuf(text_format.Merge(text, caffe_pb2.NetParameter())))
    assert _at_float32(ours) == _at_float32(theirs)
    assert ours.layer[0].transform_param.scale == pytest.approx(1 / 255, rel=1e-7)
    assert ours.layer[3].convolution_param.weight_filler.type == "xavier"


def test_layer_fields_params_phases_and_loss_weights(tmp_path):
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=64, backend=P.Data.LMDB, source="train_lmdb",
                             transform_param=dict(scale=1. / 255), ntop=2,
                             include=dict(phase=caffe.TRAIN))
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=8, stride=[2], pad=1,
                            param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)],
                            weight_filler=dict(type="gaussian", std=0.01), bias_filler=dict(type="constant"))
    n.loss = L.SoftmaxWithLoss(n.conv1, n.label, loss_weight=0.5, propagate_down=[True, False],
                               loss_param=dict(ignore_label=255, normalization=P.Loss.VALID))
    net = n.to_proto()
    data, conv, loss = net.layer
    assert data.data_param.backend == caffe_pb2.DataParameter.LMDB and data.data_param.batch_size == 64
    assert data.include[0].phase == caffe_pb2.TRAIN
    assert [p.lr_mult for p in conv.param] == [1, 2] and conv.param[1].decay_mult == 0
    assert conv.convolution_param.stride == [2] and conv.convolution_param.pad == [1]
    assert conv.convolution_param.bias_filler.type == "constant"
    assert list(loss.loss_weight) == [0.5] and list(loss.propagate_down) == [True, False]
    assert loss.loss_param.ignore_label == 255
    ours = prototxt.from_protobuf(net)
    assert ours.layer[1].param[1].lr_mult == 2 and ours.layer[0].data_param.backend == "LMDB"
    assert ours.layer[2].loss_weight == [0.5]


def test_python_layers_in_netspec(tmp_path):
    n = caffe.NetSpec()
    n.x, n.y = L.DummyData(shape=[dict(dim=[4, 3]), dict(dim=[4, 3])],
                           data_filler=[dict(type="gaussian"), dict(type="constant", value=1)], ntop=2)
    n.ax = L.Python(n.x, module=MODULE, layer="AffineLayer", param_str="{'shift': 1.0}")
    n.loss = L.Python(n.ax, n.y, python_param=dict(module=MODULE, layer="EuclideanLossLayer"),
                      loss_weight=1)
    proto = n.to_proto()
    assert proto.layer[1].python_param.module == MODULE and proto.layer[1].python_param.param_str
    net = caffe.Net(proto, caffe.TRAIN)
    out = net.forward()
    x, y = net.blobs["x"].data, net.blobs["y"].data
    assert out["loss"][0] == pytest.approx(((x + 1 - y) ** 2).sum() / 8, rel=1e-5)
    net.backward()
    np.testing.assert_allclose(net.params["ax"][0].diff, ((x + 1 - y) * x).sum(0) / 4, rtol=1e-5)


def test_deconvolution_arguments_go_to_convolution_param():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2, 4, 4]))
    n.up = L.Deconvolution(n.data, num_output=3, kernel_size=2, stride=2, bias_term=False)
    layer = n.to_proto().layer[1]
    assert layer.convolution_param.num_output == 3 and layer.convolution_param.stride == [2]


def test_bad_keywords_and_params_say_what_is_wrong():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    n.ip = L.InnerProduct(n.data, num_outptu=3)
    with pytest.raises(AttributeError, match=r"L\.InnerProduct\(num_outptu=\.\.\.\): neither "
                       r"InnerProductParameter nor LayerParameter has a field 'num_outptu'; "
                       r"did you mean 'num_output'\?"):
        n.to_proto()
    with pytest.raises(AttributeError, match="no top named 'nope'"):
        n.nope  # noqa: B018
    with pytest.raises(AttributeError, match=r"P\.Pooling\.MAXX"):
        P.Pooling.MAXX  # noqa: B018
    assert (P.Pooling.AVE, P.Data.LEVELDB, P.Convolution.LOWERED_CCNMM) == (1, 0, 2)
    assert caffe.to_proto is caffe.net_spec.to_proto and caffe.layers is L and caffe.params is P
