"""Every shipped deploy net exports, passes onnx.checker's full check (to_onnx runs it) and
runs in ONNX Runtime with minicaffe's outputs within 1e-4 (random weights, every blob
compared), at the net's batch and at batch 1; plus what an export leaves out and why."""
import pathlib

import numpy as np
import pytest

from tests.export.helpers import all_tops, compare, make_net, normal

import minicaffe
from minicaffe.errors import ExportError
from minicaffe.export import export_onnx, to_onnx
from minicaffe.export.verify import session
from minicaffe.testing.weights import randomize_weights

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = sorted(ROOT.glob("prototxt/*/*_deploy*.prototxt"))


def test_deploy_nets_are_found():
    names = {p.name for p in DEPLOY}
    assert {"lenet_deploy.prototxt", "cifar10_quick_deploy.prototxt",
            "resnet20_deploy.prototxt", "alexnet_deploy.prototxt"} <= names


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.slow) if "alexnet" in p.name else p for p in DEPLOY],
    ids=[p.stem for p in DEPLOY])
def test_deploy_net(path):
    net = randomize_weights(minicaffe.Net(str(path), minicaffe.TEST), seed=3)
    shape = net.blobs[net.inputs[0]].shape
    model = to_onnx(net, outputs=all_tops(net))          # every blob: a wrong layer shows
    sess = session(model)
    big = "alexnet" in path.name                          # 240 MB of weights: one pass
    for batch in (1,) if big else (shape[0], 1):
        x = normal((batch,) + tuple(shape[1:]), seed=batch)
        compare(net, model, {net.inputs[0]: x}, sess=sess)
    if big:
        return
    deploy = to_onnx(net)                                 # the default outputs: the net's
    assert [o.name for o in deploy.graph.output] == net.outputs
    compare(net, deploy, {net.inputs[0]: normal((2,) + tuple(shape[1:]))})


def test_resnet_folds_batchnorm_and_scale():
    net = randomize_weights(minicaffe.Net(str(ROOT / "prototxt/resnet20/resnet20_deploy.prototxt"),
                                          minicaffe.TEST))
    model = to_onnx(net)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("BatchNormalization") == 21 and "Mul" not in ops


TRAIN_TEST = """
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 4 dim: 3 dim: 8 dim: 8 } shape { dim: 4 }
                           data_filler { type: "gaussian" }
                           data_filler { type: "constant" value: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 5 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc"
        include { phase: TEST } }
"""


def _train_test_net():
    from minicaffe.prototxt import parse_net
    net = minicaffe.Net(parse_net(TRAIN_TEST), minicaffe.TEST)
    return randomize_weights(net)


def test_training_layers_are_left_out_with_a_note(tmp_path):
    net = _train_test_net()
    report = export_onnx(net, tmp_path / "net.onnx")
    assert [n for n, _ in report.inputs] == ["data"]
    assert [n for n, _ in report.outputs] == ["ip"]            # what the loss and Accuracy read
    dropped = {name: reason for name, _, reason in report.dropped}
    assert set(dropped) == {"data", "loss", "acc"}
    assert "data source" in dropped["data"] and "loss" in dropped["loss"]
    text = str(report)
    assert "left out:" in text and "loss (SoftmaxWithLoss)" in text
    net.forward()                       # DummyData fills its tops: feed what the net read
    got = session(report.model).run(["ip"], {"data": net.blobs["data"].data})[0]
    np.testing.assert_allclose(got, net.blobs["ip"].data, rtol=1e-4, atol=1e-4)
    assert (tmp_path / "net.onnx").stat().st_size > 0


def test_in_place_versions_get_their_own_names():
    net = _train_test_net()
    model = to_onnx(net)
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers["conv"] == "Relu"                 # the last version keeps the blob's name
    assert producers["conv/conv"] == "Conv"
    assert not any(n.op_type in ("Dropout", "Identity") for n in model.graph.node)


def test_unknown_and_python_layers_are_named():
    net = make_net('layer { name: "w" type: "Python" bottom: "x" top: "y" python_param { '
                   'module: "minicaffe.testing.python_layers" layer: "AffineLayer" } }',
                   {"x": (2, 3)})
    with pytest.raises(ExportError, match="layer 'w' \\(Python\\)"):
        to_onnx(net)


def test_unknown_output_and_dropped_output():
    net = _train_test_net()
    with pytest.raises(ExportError, match="output 'nope' is not a blob"):
        to_onnx(net, outputs=["nope"])
    with pytest.raises(ExportError, match="'loss' .*SoftmaxWithLoss.*leaves out"):
        to_onnx(net, outputs=["loss"])


def test_opset_out_of_range():
    net = _train_test_net()
    with pytest.raises(ExportError, match="opset 7 is not supported"):
        to_onnx(net, opset=7)


def test_float64_net_exports_float32():
    from minicaffe.prototxt import parse_net
    net = minicaffe.Net(parse_net(TRAIN_TEST), minicaffe.TEST, dtype=np.float64)
    randomize_weights(net)
    model, report = __import__("minicaffe.export.onnx_export", fromlist=["convert"]).convert(net)
    assert any("float64" in n for n in report.notes)
    assert model.graph.initializer[0].data_type == 1


def test_export_leaves_the_net_as_it_was():
    """The batch probe reshapes the net and puts everything back: shapes, data, buffers."""
    net = _train_test_net()
    net.forward()
    before = {k: (b.shape, b.data.copy()) for k, b in net.blobs.items()}
    to_onnx(net)
    for k, b in net.blobs.items():
        assert b.shape == before[k][0]
        np.testing.assert_array_equal(b.data, before[k][1])


def test_an_input_can_be_an_output():
    net = make_net('layer { name: "r" type: "ReLU" bottom: "x" top: "y" }', {"x": (2, 3)})
    model = to_onnx(net, outputs=["x", "y"])
    assert [o.name for o in model.graph.output] == ["x_out", "y"]
    x = normal((2, 3))
    got = session(model).run(None, {"x": x})
    np.testing.assert_array_equal(got[0], x)


def test_a_python_layer_no_output_needs_is_no_obstacle():
    net = make_net('layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n'
                   'layer { name: "w" type: "Python" bottom: "y" top: "z" python_param { '
                   'module: "minicaffe.testing.python_layers" layer: "AffineLayer" } }',
                   {"x": (2, 3)})
    with pytest.raises(ExportError, match="layer 'w' \\(Python\\): runs user Python code.*"
                                          "--output can stop before it"):
        to_onnx(net)
    model = to_onnx(net, outputs=["y"])
    assert [n.op_type for n in model.graph.node] == ["Relu"]
