"""`python -m minicaffe.compact` and `python -m minicaffe.time --modes`, run as subprocesses:
the written net loads in a fresh process and matches; bad weights name the layer."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minicaffe import weights as weights_io
from tests.compact_nets import conv, lenet, make, random_inputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = REPO + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run(cwd, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def sparse_model(tmp_path):
    """lenet() on disk with sparse weights: conv1 filters 0 and 3 zero, conv2 reads channel 1
    with zero weights, conv2 filter 2 zero, one zero shape fibre in conv2."""
    net = make(lenet(), seed=5)
    net.params["conv1"][0].data[[0, 3]] = 0
    w2 = net.params["conv2"][0].data
    w2[:, 1] = 0
    w2[2] = 0
    w2[:, :, 1, 1] = 0
    (tmp_path / "lenet.prototxt").write_text(lenet())
    weights_io.save(tmp_path / "lenet.caffemodel", net)
    return net, tmp_path


def test_compact_cli_writes_a_net_that_loads_in_a_fresh_process(sparse_model):
    net, tmp = sparse_model
    try:
        import matplotlib  # noqa: F401  (in the test extra; the figure is optional)
        png = ["--png", "table.png"]
    except ImportError:
        png = []
    r = run(tmp, "minicaffe.compact", "--model", "lenet.prototxt", "--weights",
            "lenet.caffemodel", "--out", "out", "--report", "table.md", "--json", "table.json",
            *png, "--rounds", "2")
    assert r.returncode == 0, r.stderr
    assert "| conv1 | 6 → 3 | 1 → 1 | 9 → 9 |" in r.stdout
    assert "| conv2 (CCNMM) | 8 → 7 | 6 → 3 | 54 → 24 |" in r.stdout
    assert "check: the written net matches" in r.stderr
    assert (tmp / "table.md").read_text() == r.stdout
    if png:
        assert (tmp / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp / "table.json").read_text())
    assert data["rows"][1]["filters"] == [8, 7] and data["timing"]["rounds"] == 2
    assert all(t is not None for row in data["rows"] for t in row["time_ms"])
    feed = random_inputs(net)
    np.save(tmp / "x.npy", feed["data"])
    ref = np.array(net.forward(**feed)["ip2"])
    script = ("import numpy as np, minicaffe as caffe\n"
              "net = caffe.Net('out/lenet.prototxt', 'out/lenet.caffemodel', caffe.TEST)\n"
              "np.save('y.npy', net.forward(data=np.load('x.npy'))['ip2'])\n"
              "print(net.params['conv1'][0].data.shape)\n")
    r2 = subprocess.run([sys.executable, "-c", script], cwd=tmp, env=env(),
                        capture_output=True, text=True, timeout=120)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.strip() == "(3, 1, 3, 3)"
    np.testing.assert_allclose(np.load(tmp / "y.npy"), ref, rtol=1e-5, atol=1e-5)


def test_compact_cli_refuses_weights_of_another_net(sparse_model, tmp_path):
    _, tmp = sparse_model
    other = lenet().replace(conv("conv2", "pool1", 8, 3), conv("conv2", "pool1", 9, 3))
    (tmp / "other.prototxt").write_text(other)
    r = run(tmp, "minicaffe.compact", "--model", "other.prototxt", "--weights",
            "lenet.caffemodel", "--out", "out", "--rounds", "0")
    assert r.returncode == 1
    assert "layer 'conv2'" in r.stderr and "(9, 6, 3, 3)" in r.stderr
    assert not (tmp / "out" / "other.prototxt").exists()


def test_compact_cli_refuses_weights_missing_a_layer(sparse_model):
    _, tmp = sparse_model
    more = lenet() + 'layer { name: "ip3" type: "InnerProduct" bottom: "ip2" top: "ip3" ' \
                     'inner_product_param { num_output: 2 } }\n'
    (tmp / "more.prototxt").write_text(more)
    r = run(tmp, "minicaffe.compact", "--model", "more.prototxt", "--weights",
            "lenet.caffemodel", "--out", "out", "--rounds", "0")
    assert r.returncode == 1
    assert "layer 'ip3' (InnerProduct)" in r.stderr and "has no weights in the file" in r.stderr


def test_compact_cli_modes_and_time_modes(sparse_model):
    _, tmp = sparse_model
    r = run(tmp, "minicaffe.compact", "--model", "lenet.prototxt", "--weights",
            "lenet.caffemodel", "--out", "out", "--rounds", "2", "--modes")
    assert r.returncode == 0, r.stderr
    assert "## Execution modes" in r.stdout and "| layer | dense | ccnmm | csr | compact |" in r.stdout
    r = run(tmp, "minicaffe.time", "--model", "lenet.prototxt", "--weights", "lenet.caffemodel",
            "--modes", "dense,ccnmm,auto,compact", "--iterations", "2", "--json", "modes.json")
    assert r.returncode == 0, r.stderr
    assert "### GEMM only (input lowered beforehand)" in r.stdout
    assert "### Whole layers, lowering included" in r.stdout
    assert "auto chose: conv1 " in r.stdout and "**whole forward**" in r.stdout
    data = json.loads((tmp / "modes.json").read_text())
    assert data["modes"] == ["dense", "ccnmm", "auto", "compact"]
    conv2 = next(row for row in data["layers"] if row["layer"] == "conv2")
    assert conv2["compact"]["flops"] < conv2["ccnmm"]["flops"] <= conv2["dense"]["flops"]
    r = run(tmp, "minicaffe.time", "--model", "lenet.prototxt", "--modes", "dense,fast")
    assert r.returncode == 1 and "unknown mode(s) fast" in r.stderr
