"""Shared by the ONNX export tests: build a small net around one layer, give it random
weights, export it, run ONNX Runtime and compare with the net."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install 'minicaffe[onnx]')")
ort = pytest.importorskip("onnxruntime",
                          reason="onnxruntime not installed (pip install 'minicaffe[onnx]')")

import minicaffe  # noqa: E402
from minicaffe.export import to_onnx  # noqa: E402
from minicaffe.export.verify import run_net, session  # noqa: E402
from minicaffe.prototxt import parse_net  # noqa: E402
from minicaffe.testing.weights import randomize_weights  # noqa: E402

TOL = 1e-4


def input_layer(shapes):
    """Prototxt of an Input layer with tops named by `shapes` ({name: shape})."""
    tops = " ".join(f'top: "{n}"' for n in shapes)
    dims = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for s in shapes.values())
    return f'layer {{ name: "input" type: "Input" {tops} input_param {{ {dims} }} }}\n'


def make_net(body, shapes, seed=0, phase=minicaffe.TEST):
    """A Net from an Input layer with `shapes` and the layers of `body`, random weights."""
    net = minicaffe.Net(parse_net('name: "case"\n' + input_layer(shapes) + body), phase)
    return randomize_weights(net, seed)


def all_tops(net):
    """Every blob an exported layer writes, in net order (its last version)."""
    names = []
    for layer, tops in zip(net.layers, net.top_names.values()):
        if layer.type in ("Input", "Split"):
            continue
        names.extend(t for t in tops if t not in names)
    return names


def check(net, inputs, outputs=None, opset=None, tol=TOL, **kwargs):
    """Export `net` (every top as an output unless `outputs` is given), check that ONNX
    Runtime's outputs equal the net's forward on `inputs` within `tol` (absolute, and relative
    to values above 1), and return the model."""
    outputs = all_tops(net) if outputs is None else outputs
    opts = {} if opset is None else {"opset": opset}
    model = to_onnx(net, outputs=outputs, **opts, **kwargs)
    compare(net, model, inputs, tol)
    return model


def compare(net, model, inputs, tol=TOL, sess=None):
    """ONNX Runtime (`sess`, or a new session of `model`) against the net's forward."""
    names = [o.name for o in model.graph.output]
    got = dict(zip(names, (sess or session(model)).run(names, inputs)))
    want = run_net(net, inputs, names)
    for name in names:
        ref, out = want[name], got[name]
        assert out.shape == ref.shape, f"{name}: ONNX Runtime shape {out.shape}, net {ref.shape}"
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol, err_msg=f"blob '{name}'")


def normal(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
