"""The shipped deploy nets build and run in minicaffe's engine (integration with net/layers)."""
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ["lenet/lenet_deploy", "mlp/mlp_deploy", "cifar10/cifar10_full_deploy",
          "cifar10/cifar10_quick_deploy", "resnet20/resnet20_deploy"]


@pytest.mark.parametrize("name", DEPLOY)
def test_deploy_net_forward_gives_probabilities(name, rng):
    import minicaffe as caffe

    net = caffe.Net(str(ROOT / "prototxt" / f"{name}.prototxt"), caffe.TEST)
    shape = net.blobs["data"].data.shape
    net.blobs["data"].reshape(2, *shape[1:])
    net.blobs["data"].data[...] = rng.random((2, *shape[1:]))
    prob = net.forward()["prob"]
    assert prob.shape == (2, 10)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["lenet/lenet_train_test", "lenet/lenet_finetune",
                                  "mlp/mlp_train_test"])
def test_fashion_mnist_train_nets_build(name, tmp_path, monkeypatch, fashion_mnist):
    import minicaffe as caffe

    (tmp_path / "data").mkdir()                  # the nets read data/fashion-mnist/ (relative)
    (tmp_path / "data" / "fashion-mnist").symlink_to(fashion_mnist)
    monkeypatch.chdir(tmp_path)
    net = caffe.Net(str(ROOT / "prototxt" / f"{name}.prototxt"), caffe.TRAIN)
    assert net.blobs["data"].data.shape == (64, 1, 28, 28)
    assert np.isfinite(net.forward()["loss"])
