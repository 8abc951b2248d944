"""The compacted SSL LeNet (LeNet with planted zero groups through minicaffe.compact) exports as
its smaller dense form, matches in ONNX Runtime, and its report says what ONNX Runtime loses on
the layers left with LOWERED_CCNMM (zero shape fibres exported as dense zeros)."""
import pathlib

import numpy as np
import pytest

from tests.export.helpers import compare, normal

import minicaffe
from minicaffe.compact import build_net, compact_net
from minicaffe.export import export_onnx, to_onnx
from minicaffe.export.verify import run_net

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "prototxt" / "lenet" / "lenet_deploy.prototxt"


def planted_lenet(seed=0):
    """LeNet (deploy, batch 64) with SSL-like zero groups: conv1 keeps 6 of 20 filters, conv2
    keeps 9 of 50 filters, reads only 5 of conv1's channels and, inside those, 12 of 25 shape
    fibres; ip1 reads only the kept conv2 channels and drops 100 of its 500 neurons."""
    rng = np.random.default_rng(seed)
    net = minicaffe.Net(str(DEPLOY), minicaffe.TEST)
    p = net.params
    keep1 = rng.choice(20, 6, replace=False)
    read = keep1[:5]
    keep2 = rng.choice(50, 9, replace=False)
    w1 = np.zeros((20, 1, 5, 5), np.float32)
    w1[keep1] = rng.normal(0, 0.3, (6, 1, 5, 5))
    w2 = np.zeros((50, 20, 5, 5), np.float32)
    fibres = rng.choice(25, 12, replace=False)
    for c in read:
        block = np.zeros((9, 25), np.float32)
        block[:, fibres] = rng.normal(0, 0.2, (9, 12))
        w2[keep2, c] = block.reshape(9, 5, 5)
    ip1 = np.zeros((500, 50, 16), np.float32)
    ip1[:, keep2] = rng.normal(0, 0.1, (500, 9, 16))
    ip1 = ip1.reshape(500, 800)
    ip1[rng.choice(500, 100, replace=False)] = 0
    p["conv1"][0].data[...] = w1
    p["conv2"][0].data[...] = w2
    p["ip1"][0].data[...] = ip1
    p["ip2"][0].data[...] = rng.normal(0, 0.1, (10, 500))
    for name in ("conv1", "conv2", "ip1", "ip2"):
        p[name][1].data[...] = rng.normal(0, 0.1, p[name][1].shape)
    p["conv1"][1].data[np.setdiff1d(np.arange(20), keep1)] = 0
    for layer in net.layers:
        if hasattr(layer, "refresh_weights"):
            layer.refresh_weights()
    return net


def test_compacted_lenet_exports_smaller_and_matches(tmp_path):
    dense = planted_lenet()
    param, weights = compact_net(dense)
    small = build_net(param, weights)
    x = normal(small.blobs["data"].shape, seed=7)
    want = run_net(dense, {"data": x}, ["prob"])["prob"]

    report = export_onnx(small, tmp_path / "lenet_compact.onnx")
    model = report.model
    compare(small, model, {"data": x})
    compare(small, model, {"data": x[:1]})                     # batch 1, same model
    got = run_net(small, {"data": x}, ["prob"])["prob"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)   # compaction kept the outputs

    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
    w1 = next(s for n, s in shapes.items() if n.startswith("conv1/weight"))
    w2 = next(s for n, s in shapes.items() if n.startswith("conv2/weight"))
    assert w1[0] < 20 and w2[0] < 50 and w2[1] < 20            # the smaller dense form

    flops = {f.layer: f for f in report.flops}
    ccnmm = [f for f in report.flops if f.mode == "LOWERED_CCNMM"]
    assert ccnmm, "conv2 keeps zero shape fibres: it runs LOWERED_CCNMM"
    for f in ccnmm:
        assert f.minicaffe < f.dense
    assert flops["conv2"].minicaffe == 2 * w2[0] * 12 * w2[1] * 64    # kept fibres x 8x8 outputs
    text = str(report)
    assert "ONNX has no structured-sparse convolution" in text
    assert report.dense_flops > report.minicaffe_flops
    assert "ONNX has no structured-sparse convolution" in model.doc_string


def test_full_and_compacted_exports_agree():
    """The dense export of the full net and the export of the compacted net give the same
    probabilities in ONNX Runtime."""
    from minicaffe.export.verify import session

    dense = planted_lenet(seed=3)
    small = build_net(*compact_net(dense))
    x = normal((2, 1, 28, 28), seed=2)
    a = session(to_onnx(dense)).run(["prob"], {"data": x})[0]
    b = session(to_onnx(small)).run(["prob"], {"data": x})[0]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow      # two subprocesses (~6 s)
def test_compact_cli_then_export_cli(tmp_path):
    """The user's path of the main job: `python -m minicaffe.compact` writes the compacted
    prototxt + caffemodel, `python -m minicaffe.export onnx ... --verify` exports and checks it
    in ONNX Runtime, and the model matches the full net's outputs."""
    import os           # noqa: PLC0415
    import subprocess   # noqa: PLC0415
    import sys          # noqa: PLC0415

    dense = planted_lenet(seed=4)
    dense.save(str(tmp_path / "lenet_ssl.caffemodel"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")

    def run(*args):
        r = subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r

    run("minicaffe.compact", "--model", str(DEPLOY), "--weights", "lenet_ssl.caffemodel",
        "--out", "small", "--rounds", "1")
    r = run("minicaffe.export", "onnx", "--model", "small/lenet_deploy.prototxt",
            "--weights", "small/lenet_deploy.caffemodel", "--out", "small.onnx", "--verify")
    assert "verify" in r.stdout
    assert "conv2 (LOWERED_CCNMM)" in r.stdout           # what ONNX Runtime computes extra
    from minicaffe.export.verify import session  # noqa: PLC0415

    x = normal((5, 1, 28, 28), seed=2)
    got = session(str(tmp_path / "small.onnx")).run(["prob"], {"data": x})[0]
    dense.blobs["data"].reshape(x.shape)
    dense.reshape()
    np.testing.assert_allclose(got, dense.forward(data=x)["prob"], rtol=1e-4, atol=1e-4)
