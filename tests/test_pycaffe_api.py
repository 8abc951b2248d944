"""The pycaffe surface, used the way a pycaffe script uses it (`import minicaffe as caffe`)."""
import numpy as np
import pytest

import minicaffe as caffe

DEPLOY = """
name: "deploy"
input: "data"
input_shape { dim: 2 dim: 1 dim: 6 dim: 6 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

TRAIN = """
name: "mem"
layer { name: "data" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 1 height: 6 width: 6 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
"""


@pytest.fixture
def deploy_file(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY)
    return str(path)


def test_deploy_script(deploy_file, tmp_path, rng):
    net = caffe.Net(deploy_file, caffe.TEST)
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    assert list(net.blobs) == ["data", "conv", "ip", "prob"]
    assert list(net.params) == ["conv", "ip"]
    assert net._layer_names == ["input", "conv", "relu", "ip", "prob"]     # `input:` upgraded
    assert [l.type for l in net.layers] == ["Input", "Convolution", "ReLU", "InnerProduct", "Softmax"]
    assert net.blobs["conv"].data.shape == (2, 3, 4, 4)
    assert net.params["conv"][0].data.shape == (3, 1, 3, 3) and net.params["ip"][1].data.shape == (4,)

    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    net.blobs["data"].data[...] = x
    out = net.forward()
    np.testing.assert_allclose(out["prob"].sum(axis=1), 1.0, rtol=1e-6)
    again = net.forward(data=x)["prob"].copy()
    np.testing.assert_array_equal(again, out["prob"])
    # the NumPy reference of the whole net
    w, b = net.params["conv"][0].data, net.params["conv"][1].data
    conv = np.zeros((2, 3, 4, 4))
    for i in range(4):
        for j in range(4):
            conv[:, :, i, j] = np.einsum("nchw,ochw->no", x[:, :, i:i + 3, j:j + 3], w) + b
    ip = np.maximum(conv, 0).reshape(2, -1) @ net.params["ip"][0].data.T + net.params["ip"][1].data
    e = np.exp(ip - ip.max(1, keepdims=True))
    np.testing.assert_allclose(again, e / e.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)

    # save, reload three ways
    weights = str(tmp_path / "deploy.caffemodel")
    net.save(weights)
    for other in (caffe.Net(deploy_file, weights, caffe.TEST),
                  caffe.Net(deploy_file, caffe.TEST, weights=weights)):
        np.testing.assert_array_equal(other.forward(data=x)["prob"], again)
    blank = caffe.Net(deploy_file, caffe.TEST)
    blank.copy_from(weights)
    np.testing.assert_array_equal(blank.forward(data=x)["prob"], again)


def test_reshape_input_then_net_reshape(deploy_file, rng):
    net = caffe.Net(deploy_file, caffe.TEST)
    net.blobs["data"].reshape(5, 1, 6, 6)
    net.reshape()
    assert net.blobs["prob"].data.shape == (5, 4)
    net.blobs["data"].data[...] = rng.standard_normal((5, 1, 6, 6))
    assert net.forward()["prob"].shape == (5, 4)


def test_backward_with_diffs(deploy_file, rng):
    text = "force_backward: true\n" + open(deploy_file).read()
    net = caffe.Net(_parse(text), caffe.TEST)
    net.forward(data=rng.standard_normal((2, 1, 6, 6)))
    grads = net.backward(prob=np.ones((2, 4)))
    assert list(grads) == ["data"] and grads["data"].shape == (2, 1, 6, 6)
    # d(sum of softmax)/dx is zero
    np.testing.assert_allclose(grads["data"], 0.0, atol=1e-6)
    net.backward(prob=np.eye(4)[[0, 1]])
    assert np.abs(net.blobs["data"].diff).sum() > 0


def _parse(text):
    from minicaffe.prototxt import parse_net
    return parse_net(text)


def test_memory_data_training_step(rng):
    net = caffe.Net(_parse(TRAIN), caffe.TRAIN)
    data = rng.standard_normal((4, 1, 6, 6)).astype(np.float32)
    labels = np.array([0, 1, 2, 3], dtype=np.float32)
    net.set_input_arrays(data, labels)
    assert net.outputs == ["acc", "loss"]
    losses = []
    for _ in range(30):
        out = net.forward()
        losses.append(float(out["loss"]))
        for p in net.params["ip"]:
            p.diff[...] = 0
        net.backward()
        for p in net.params["ip"]:
            p.data[...] -= 0.1 * p.diff
    assert losses[-1] < 0.5 * losses[0]
    assert net.blob_loss_weights["loss"] == 1.0 and net.blob_loss_weights["acc"] == 0.0


def test_public_names():
    assert caffe.TRAIN == 0 and caffe.TEST == 1
    assert {"Input", "Split", "SoftmaxWithLoss", "Accuracy"} <= set(caffe.layer_type_list())
    assert caffe.Net is __import__("minicaffe.net", fromlist=["Net"]).Net


def test_forward_all_batches_and_trims(deploy_file, rng):
    net = caffe.Net(deploy_file, caffe.TEST)
    x = rng.standard_normal((5, 1, 6, 6)).astype(np.float32)       # batch 2: 3 forwards
    out = net.forward_all(data=x)
    assert out["prob"].shape == (5, 4)
    np.testing.assert_allclose(out["prob"][4:5], net.forward(data=np.concatenate([x[4:], x[:1]]))["prob"][:1],
                               rtol=1e-6)
