"""V1 `layers { type: ENUM }` of the catalog's simple layers and losses upgrade to their current
type strings with their parameters, and the upgraded nets build and run."""
import warnings

import numpy as np
import pytest

from minicaffe.net import Net
from minicaffe.prototxt import UnmodeledFieldWarning, parse_net

# (V1 enum, current type, extra V1 fields, bottoms, check of the upgraded layer)
_CASES = [
    ("ARGMAX", "ArgMax", "argmax_param { top_k: 2 out_max_val: true }", ["x"],
     lambda l: l.argmax_param.top_k == 2 and l.argmax_param.out_max_val),
    ("BNLL", "BNLL", "", ["x"], lambda l: True),
    ("EXP", "Exp", "exp_param { base: 2 scale: 0.5 }", ["x"],
     lambda l: (l.exp_param.base, l.exp_param.scale) == (2.0, 0.5)),
    ("THRESHOLD", "Threshold", "threshold_param { threshold: 0.3 }", ["x"],
     lambda l: l.threshold_param.threshold == 0.3),
    ("CONTRASTIVE_LOSS", "ContrastiveLoss",
     "contrastive_loss_param { margin: 2 legacy_version: true }", ["x", "x2", "sim"],
     lambda l: l.contrastive_loss_param.margin == 2.0 and l.contrastive_loss_param.legacy_version),
    ("HINGE_LOSS", "HingeLoss", "hinge_loss_param { norm: L2 }", ["x", "label"],
     lambda l: l.hinge_loss_param.norm == "L2"),
    ("INFOGAIN_LOSS", "InfogainLoss", "infogain_loss_param { axis: 1 }", ["x", "label", "H"],
     lambda l: l.infogain_loss_param.axis == 1),
    ("MULTINOMIAL_LOGISTIC_LOSS", "MultinomialLogisticLoss", "", ["p", "label"],
     lambda l: True),
    ("SIGMOID_CROSS_ENTROPY_LOSS", "SigmoidCrossEntropyLoss", "loss_param { ignore_label: 3 }",
     ["x", "target"], lambda l: l.loss_param.ignore_label == 3),
    ("MVN", "MVN", "mvn_param { across_channels: true eps: 0.001 }", ["x"],
     lambda l: l.mvn_param.across_channels and abs(l.mvn_param.eps - 0.001) < 1e-12),
    ("IM2COL", "Im2col", "convolution_param { kernel_size: 2 stride: 1 }", ["img"],
     lambda l: l.convolution_param.kernel_size == [2]),
]

_INPUTS = '''
input: "x" input_shape { dim: 4 dim: 3 }
input: "x2" input_shape { dim: 4 dim: 3 }
input: "sim" input_shape { dim: 4 }
input: "label" input_shape { dim: 4 }
input: "H" input_shape { dim: 3 dim: 3 }
input: "p" input_shape { dim: 4 dim: 3 }
input: "target" input_shape { dim: 4 dim: 3 }
input: "img" input_shape { dim: 2 dim: 1 dim: 3 dim: 3 }
'''


@pytest.mark.parametrize("v1, current, fields, bottoms, check", _CASES, ids=[c[0] for c in _CASES])
def test_v1_type_upgrades_and_runs(v1, current, fields, bottoms, check):
    body = " ".join(f'bottom: "{b}"' for b in bottoms)
    text = _INPUTS + f'layers {{ name: "l" type: {v1} {body} top: "out" {fields} }}\n'
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnmodeledFieldWarning)
        net_param = parse_net(text)
    layer = net_param.layer[-1]
    assert layer.type == current
    assert check(layer)
    net = Net(net_param, "TEST")
    rng = np.random.default_rng(0)
    net.blobs["x"].data[...] = rng.standard_normal((4, 3))
    net.blobs["x2"].data[...] = rng.standard_normal((4, 3))
    net.blobs["sim"].data[...] = [0, 1, 0, 1]
    net.blobs["label"].data[...] = [0, 2, 1, 1]
    net.blobs["H"].data[...] = np.eye(3)
    net.blobs["p"].data[...] = 1 / 3
    net.blobs["target"].data[...] = rng.uniform(0, 1, (4, 3))
    net.blobs["img"].data[...] = rng.standard_normal((2, 1, 3, 3))
    net.forward()
    assert np.all(np.isfinite(net.blobs["out"].data))


@pytest.mark.parametrize("form", ["v1", "v0"])
def test_hdf5_output_upgrades_and_writes(tmp_path, form):
    import h5py

    path = tmp_path / f"{form}.h5"
    if form == "v1":
        layer = (f'layers {{ name: "out" type: HDF5_OUTPUT bottom: "x" bottom: "label" '
                 f'hdf5_output_param {{ file_name: "{path}" }} }}')
    else:
        layer = (f'layers {{ bottom: "x" bottom: "label" layer {{ name: "out" type: '
                 f'"hdf5_output" hdf5_output_param {{ file_name: "{path}" }} }} }}')
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnmodeledFieldWarning)
        net_param = parse_net(_INPUTS + layer)
    assert net_param.layer[-1].type == "HDF5Output"
    assert net_param.layer[-1].hdf5_output_param.file_name == str(path)
    net = Net(net_param, "TEST")
    net.blobs["x"].data[...] = 2.0
    net.forward()
    net.layers[-1].close()
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (4, 3, 1, 1) and f["label"].shape == (4, 1, 1, 1)
        assert np.all(np.array(f["data"]) == 2.0)
