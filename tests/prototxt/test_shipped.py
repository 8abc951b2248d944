"""Every file in prototxt/ parses, round-trips, and describes a well-formed net.

Shapes are propagated here with Caffe's formulas (no engine code), so a typo in a shipped
net (a wrong bottom, a kernel that does not fit, mismatched Eltwise inputs) fails this test.
"""
import math
from pathlib import Path

import pytest

from minicaffe.prototxt import (filter_net, parse_net, parse_solver, read_net, read_solver,
                                solver_nets, to_text)

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "prototxt").glob("*/*.prototxt"))
NETS = [f for f in FILES if "solver" not in f.name]
SOLVERS = [f for f in FILES if "solver" in f.name]
# (channels, height, width) each Data source produces
DATA_SHAPES = {"IDX": (1, 28, 28), "CIFAR10": (3, 32, 32), "LMDB": (3, 256, 256)}


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_every_net_has_its_solvers():
    folders = {p.parent.name for p in FILES}
    assert folders == {"lenet", "mlp", "cifar10", "resnet20", "alexnet"}
    for folder in folders:
        names = [p.name for p in FILES if p.parent.name == folder]
        for kind in ("_solver.prototxt", "_ssl_solver.prototxt", "_finetune_solver.prototxt"):
            assert any(n.endswith(kind) for n in names), (folder, kind)
        assert any("deploy" in n for n in names), folder


@pytest.mark.parametrize("path", NETS, ids=ids(NETS))
def test_net_parses_without_warnings_and_round_trips(path, recwarn):
    net = read_net(path)
    assert not recwarn.list
    assert net.layer and not net.layers
    text = to_text(net)
    assert parse_net(text) == net
    assert to_text(parse_net(text)) == text


@pytest.mark.parametrize("path", SOLVERS, ids=ids(SOLVERS))
def test_solver_parses_round_trips_and_finds_its_nets(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    solver = read_solver(path)
    assert parse_solver(to_text(solver)) == solver
    assert solver.snapshot_prefix.startswith("snapshots/")
    nets = solver_nets(solver)
    assert len(nets.tests) == len(solver.test_iter) == 1
    assert solver.test_interval > 0 and solver.max_iter > 0 and solver.base_lr > 0
    if "_ssl" in path.name:
        # at least one group term is active, on params that carry its multiplier
        specs = [s for layer in nets.train.layer for s in layer.param]
        assert (solver.breadth_decay > 0 and any(s.breadth_decay_mult > 0 for s in specs)) or \
            (solver.kernel_shape_decay > 0 and any(s.kernel_shape_decay_mult > 0 for s in specs))
    else:
        assert solver.breadth_decay == 0 and solver.kernel_shape_decay == 0
    if "finetune" in path.name:
        convs = [l for l in nets.train.layer if l.type in ("Convolution", "InnerProduct")]
        assert any(l.connectivity_mode == "DISCONNECTED_GRPWISE" for l in convs)


def test_shipped_net_paths_are_relative_to_the_project_root():
    # Caffe's convention (paths from the directory the tool runs in), so that the data
    # sources, which are relative to the working directory too, resolve the same way.
    for path in SOLVERS:
        solver = read_solver(path)
        net = solver.net
        assert net.startswith(f"prototxt/{path.parent.name}/") and (ROOT / net).exists()


# --- shape propagation ------------------------------------------------------------------
def _conv_out(size, k, p, s, d=1):
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def _pool_out(size, k, p, s):
    out = int(math.ceil((size + 2 * p - k) / s)) + 1
    if p > 0 and (out - 1) * s >= size + p:
        out -= 1
    return out


def _one(values, default):
    return values[0] if values else default


def propagate(net):
    """{blob: shape} after running Caffe's shape rules over the layers in order."""
    blobs = {}
    for layer in net.layer:
        for b in layer.bottom:
            assert b in blobs, f"layer {layer.name}: bottom '{b}' is not produced before it"
        ins = [blobs[b] for b in layer.bottom]
        t = layer.type
        if t == "Data":
            dp, tp = layer.data_param, layer.transform_param
            c, h, w = DATA_SHAPES[dp.backend]
            if tp.crop_size:
                h = w = tp.crop_size
            outs = [(dp.batch_size, c, h, w), (dp.batch_size,)]
        elif t == "Input":
            outs = [tuple(s.dim) for s in layer.input_param.shape]
        elif t == "Convolution":
            cp = layer.convolution_param
            n, c, h, w = ins[0]
            k, p, s = _one(cp.kernel_size, 0), _one(cp.pad, 0), _one(cp.stride, 1)
            assert c % cp.group == 0 and cp.num_output % cp.group == 0, layer.name
            outs = [(n, cp.num_output, _conv_out(h, k, p, s), _conv_out(w, k, p, s))]
        elif t == "Pooling":
            pp = layer.pooling_param
            n, c, h, w = ins[0]
            if pp.global_pooling:
                outs = [(n, c, 1, 1)]
            else:
                outs = [(n, c, _pool_out(h, pp.kernel_size, pp.pad, pp.stride),
                         _pool_out(w, pp.kernel_size, pp.pad, pp.stride))]
        elif t == "InnerProduct":
            outs = [(ins[0][0], layer.inner_product_param.num_output)]
        elif t in ("ReLU", "LRN", "Dropout", "BatchNorm", "Scale", "Softmax"):
            outs = [ins[0]]
        elif t == "Eltwise":
            assert all(s == ins[0] for s in ins), f"{layer.name}: Eltwise inputs {ins}"
            outs = [ins[0]]
        elif t in ("SoftmaxWithLoss", "Accuracy"):
            assert ins[1] == (ins[0][0],), layer.name
            outs = [()]
        else:
            raise AssertionError(f"shape rule missing for {t}")
        assert all(all(d > 0 for d in s) for s in outs), f"{layer.name}: shape {outs}"
        assert len(outs) == len(layer.top), layer.name
        blobs.update(zip(layer.top, outs))
    return blobs


@pytest.mark.parametrize("path", NETS, ids=ids(NETS))
@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_net_shapes_are_consistent(path, phase):
    propagate(filter_net(read_net(path), phase))


def test_known_shapes():
    lenet = propagate(filter_net(read_net(ROOT / "prototxt/lenet/lenet_train_test.prototxt"),
                                 "TRAIN"))
    assert lenet["pool2"] == (64, 50, 4, 4) and lenet["ip2"] == (64, 10)
    alex = propagate(read_net(ROOT / "prototxt/alexnet/alexnet_deploy.prototxt"))
    assert alex["conv1"] == (10, 96, 55, 55) and alex["pool5"] == (10, 256, 6, 6)
    assert alex["prob"] == (10, 1000)
    cifar = propagate(read_net(ROOT / "prototxt/cifar10/cifar10_full_deploy.prototxt"))
    assert cifar["pool3"] == (100, 64, 4, 4)
    resnet = propagate(read_net(ROOT / "prototxt/resnet20/resnet20_deploy.prototxt"))
    assert resnet["res3_3"] == (100, 64, 8, 8) and resnet["pool"] == (100, 64, 1, 1)
    convs = [l for l in read_net(ROOT / "prototxt/resnet20/resnet20_deploy.prototxt").layer
             if l.type == "Convolution"]
    assert len(convs) == 21  # 19 + 2 projection shortcuts


def test_deploy_nets_match_their_train_nets():
    """Same learnable layers with the same sizes, so trained weights load into deploy."""
    pairs = [("lenet/lenet_train_test", "lenet/lenet_deploy"),
             ("mlp/mlp_train_test", "mlp/mlp_deploy"),
             ("cifar10/cifar10_full_train_test", "cifar10/cifar10_full_deploy"),
             ("cifar10/cifar10_quick_train_test", "cifar10/cifar10_quick_deploy"),
             ("resnet20/resnet20_train_test", "resnet20/resnet20_deploy"),
             ("alexnet/alexnet_train_val", "alexnet/alexnet_deploy")]

    def learnable(path):
        net = read_net(ROOT / "prototxt" / f"{path}.prototxt")
        out = {}
        for l in net.layer:
            if l.type == "Convolution":
                cp = l.convolution_param
                out[l.name] = (cp.num_output, tuple(cp.kernel_size), cp.group, cp.bias_term)
            elif l.type == "InnerProduct":
                out[l.name] = (l.inner_product_param.num_output,)
            elif l.type in ("BatchNorm", "Scale"):
                out[l.name] = (l.type,)
        return out

    for train, deploy in pairs:
        assert learnable(train) == learnable(deploy), train
