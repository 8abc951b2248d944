"""caffe.draw: the pydot graph of a net (nodes, edges, labels, phases) and a rendered PNG."""
import pathlib

import pytest

pydot = pytest.importorskip("pydot", reason="pydot not installed (pip install 'minicaffe[draw]')")
pytest.importorskip("google.protobuf", reason="protobuf not installed (pip install 'minicaffe[pycaffe]')")

import minicaffe as caffe  # noqa: E402
import minicaffe.draw  # noqa: E402,F401
from minicaffe import prototxt  # noqa: E402
from minicaffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
LENET = ROOT / "prototxt" / "lenet" / "lenet_train_test.prototxt"


def _net(path=LENET):
    return text_format.Merge(path.read_text(), caffe_pb2.NetParameter())


def _labels(graph):
    return {n.get_name().strip('"'): n for n in graph.get_nodes()}


def test_graph_has_layer_and_blob_nodes_and_edges():
    net = _net()
    graph = caffe.draw.get_pydot_graph(net, "LR")
    nodes = _labels(graph)
    conv = next(k for k in nodes if k.startswith("conv1\\n(Convolution)"))
    assert "kernel size: 5\\nstride: 1\\npad: 0" in conv
    assert nodes[conv].get("fillcolor") == "#FF5050"
    pool = next(k for k in nodes if k.startswith("pool1\\n(Pooling MAX)"))
    assert nodes[pool].get("fillcolor") == "#FF9900"
    # a blob node takes the style of its last mention: octagon when read, plain when only written
    assert nodes["data"].get("shape") == "octagon" and nodes["loss"].get("shape") is None
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"'), e.get("label"))
             for e in graph.get_edges()}
    assert (conv, "conv1", "20") in edges
    relu = next(k for k in nodes if k.startswith("relu1"))
    assert nodes[relu].get("fillcolor") == "#90EE90"          # in place
    # without a phase every layer is drawn; with one, only that phase's
    assert any(k.startswith("accuracy\\n(Accuracy)") for k in nodes)
    train = _labels(caffe.draw.get_pydot_graph(net, "TB", phase=caffe.TRAIN))
    assert not any(k.startswith("accuracy") for k in train)
    assert any(k.startswith("conv1 (Convolution) kernel size: 5 stride: 1") for k in train)


def test_lr_multipliers_and_our_own_netparameter():
    ours = prototxt.read_net(LENET)
    graph = caffe.draw.get_pydot_graph(ours, "LR", display_lrm=True)
    assert any("lr mult: 1.0, 2.0" in k for k in _labels(graph))
    layer = caffe_pb2.LayerParameter(name="p", type="Pooling")
    with pytest.raises(ValueError, match="Pooling layers do not have a learning rate multiplier"):
        caffe.draw.get_layer_lr_mult(layer)


def test_draw_net_to_file_renders_png(tmp_path):
    try:
        caffe.draw.dot_program()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "lenet.png"
    caffe.draw.draw_net_to_file(_net(), str(out), "LR", phase=caffe.TEST)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = caffe.draw.draw_net(_net(), "TB", ext="svg")
    assert b"<svg" in svg and b"conv1" in svg
    caffe.draw.main([str(LENET), str(tmp_path / "cli.png"), "--phase", "TRAIN"])
    assert (tmp_path / "cli.png").stat().st_size > 1000
