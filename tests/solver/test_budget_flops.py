"""The budget's FLOP counter (solver/budget_flops.py) counts what compaction leaves: equal to
`minicaffe.compact`'s report, layer by layer, on nets with planted zero filters, channels and
shape fibres, dead paths in both directions included."""
import os
import warnings

import numpy as np
import pytest

from minicaffe.compact import compact_net
from minicaffe.net import Net
from minicaffe.phase import TEST
from minicaffe.prototxt import read_net
from minicaffe.solver.budget_flops import Structure, count

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "prototxt")


def _net(path, seed):
    net = Net(read_net(os.path.join(ROOT, path)), TEST)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for b in layer.blobs:
            b.data[...] = rng.standard_normal(b.shape).astype(b.data.dtype)
    return net


def _plant(net, seed):
    """Zero random filters, input channels and shape fibres of every Convolution."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.type != "Convolution":
            continue
        w = layer.blobs[0].data
        n, c = w.shape[:2]
        w[rng.random(n) < 0.3] = 0
        if c > 1:
            w[:, rng.random(c) < 0.3] = 0
        fibres = w.reshape(n, -1)
        fibres[:, rng.random(fibres.shape[1]) < 0.1] = 0


def _compact_flops(net):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = compact_net(net).report
    return {r["layer"]: r["flops"][1] for r in rep.rows}


@pytest.mark.parametrize("seed", range(4))
def test_lenet_counts_as_compaction_with_dead_paths(seed):
    net = _net("lenet/lenet_deploy.prototxt", seed)
    _plant(net, seed)
    w1 = net.params["conv1"][0].data
    w2 = net.params["conv2"][0].data
    # a dead path each way: conv2 reads nothing of conv1's filter 3; conv1's filter 7 is zero
    # (its bias is not: the constant map is folded into conv2's bias by compaction)
    w1[3] = 1.0
    w2[:, 3] = 0
    w1[7] = 0
    w2[:, 7] = 1.0
    ours = {r["layer"]: r["left"] for r in count(net, "ALL")}
    theirs = _compact_flops(net)
    assert ours == {k: v for k, v in theirs.items() if k in ours}
    conv = {r["layer"] for r in count(net, "CONV")}
    assert conv == {"conv1", "conv2"}
    live = Structure(net).live()
    assert not live["conv1"][0][0, 3] and not live["conv2"][1][0, 7 * 25:8 * 25].any()


@pytest.mark.parametrize("seed", range(3))
def test_cifar10_quick_with_padding_counts_as_compaction(seed):
    # padded convolutions: a zero producer filter with a non-zero bias is not foldable there,
    # so compaction keeps the consumer's columns for it; a zero bias lets them go
    net = _net("cifar10/cifar10_quick_deploy.prototxt", seed)
    _plant(net, seed + 10)
    b1 = net.params["conv1"][1].data
    b1[: len(b1) // 2] = 0
    ours = {r["layer"]: r["left"] for r in count(net, "ALL")}
    theirs = _compact_flops(net)
    assert ours == {k: v for k, v in theirs.items() if k in ours}


def test_dense_net_counts_dense():
    net = _net("lenet/lenet_deploy.prototxt", 0)
    rows = count(net, "ALL")
    assert all(r["left"] == r["dense"] for r in rows)
    assert [r["layer"] for r in rows] == ["conv1", "conv2", "ip1", "ip2"]
