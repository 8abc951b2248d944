"""`python -m minicaffe.export onnx`, run as a subprocess: the file, the report, --verify,
--json, errors with exit status 1."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.export.helpers import make_net, normal

from minicaffe.export.verify import session

ROOT = Path(__file__).resolve().parents[2]

NET = """
layer { name: "conv" type: "Convolution" bottom: "x" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 conv_mode: LOWERED_CCNMM } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def run(tmp_path, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "minicaffe.export", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)


def _files(tmp_path):
    net = make_net(NET, {"x": (2, 3, 9, 9)})
    w = net.params["conv"][0].data
    w[1] = 0                                          # a removed filter
    w[:, :, 0, :] = 0                                 # removed shape fibres
    net.save(str(tmp_path / "w.caffemodel"))
    from tests.export.helpers import input_layer
    (tmp_path / "net.prototxt").write_text('name: "cli"\n' + input_layer({"x": (2, 3, 9, 9)})
                                           + NET)
    return net


def test_export_writes_a_model_that_matches(tmp_path):
    net = _files(tmp_path)
    r = run(tmp_path, "onnx", "--model", "net.prototxt", "--weights", "w.caffemodel",
            "--out", "net.onnx", "--verify", "--json", "report.json")
    assert r.returncode == 0, r.stderr
    rows = {}
    for line in r.stdout.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line.split()[1:])      # the first table's rows
    assert rows["conv"][:2] == ["Convolution", "Conv"] and rows["pool"][1] == "AveragePool"
    assert "verify" in r.stdout and "batch 2" in r.stdout
    assert "ONNX has no structured-sparse convolution: conv (LOWERED_CCNMM)" in r.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    conv = next(f for f in report["flops"] if f["layer"] == "conv")
    assert conv["dense"] == 2 * 4 * 27 * 49
    assert conv["minicaffe"] == 2 * 3 * 18 * 49          # 3 kept filters x 18 kept fibres
    x = normal((5, 3, 9, 9))
    got = session(str(tmp_path / "net.onnx")).run(["prob"], {"x": x})[0]
    net.blobs["x"].reshape(x.shape)
    net.reshape()
    np.testing.assert_allclose(got, net.forward(x=x)["prob"], rtol=1e-4, atol=1e-4)


def test_static_batch_and_opset(tmp_path):
    _files(tmp_path)
    r = run(tmp_path, "onnx", "--model", "net.prototxt", "--out", "net.onnx", "--opset", "13",
            "--static-batch", "--output", "pool")
    assert r.returncode == 0, r.stderr
    import onnx
    model = onnx.load(str(tmp_path / "net.onnx"))
    assert model.opset_import[0].version == 13
    assert [o.name for o in model.graph.output] == ["pool"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


def test_errors_exit_1_with_the_reason(tmp_path):
    _files(tmp_path)
    r = run(tmp_path, "onnx", "--model", "net.prototxt", "--out", "net.onnx", "--opset", "5")
    assert r.returncode == 1 and "opset 5 is not supported" in r.stderr
    r = run(tmp_path, "onnx", "--model", "missing.prototxt", "--out", "net.onnx")
    assert r.returncode == 1 and "missing.prototxt" in r.stderr
    r = run(tmp_path, "onnx", "--model", "net.prototxt", "--out", "net.onnx", "--output", "zz")
    assert r.returncode == 1 and "output 'zz' is not a blob" in r.stderr
