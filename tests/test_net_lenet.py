"""LeNet end to end: forward against a plain NumPy reference, gradients against finite
differences, and the shipped deploy nets build and run."""
import pathlib

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe.net import Net
from minicaffe.prototxt import parse_net

LENET = """
name: "LeNet"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 3 dim: 1 dim: 28 dim: 28 } shape { dim: 3 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 50 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        inner_product_param { num_output: 500 weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def _conv(x, w, b):
    """Valid 2-D convolution, stride 1, by explicit loops over the kernel window."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    out = np.zeros((N, O, H - kh + 1, W - kw + 1))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + out.shape[2], j:j + out.shape[3]]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out + b[None, :, None, None]


def _maxpool2(x):
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))


def _lenet_reference(x, labels, p):
    h = _maxpool2(_conv(x, p["conv1"][0], p["conv1"][1]))
    h = _maxpool2(_conv(h, p["conv2"][0], p["conv2"][1]))
    h = np.maximum(h.reshape(len(x), -1) @ p["ip1"][0].T + p["ip1"][1], 0)
    scores = h @ p["ip2"][0].T + p["ip2"][1]
    z = scores - scores.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    loss = -logp[np.arange(len(x)), labels.astype(int)].mean()
    return scores, loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lenet_forward_matches_numpy(dtype, rng):
    net = Net(parse_net(LENET), caffe.TEST, dtype=dtype)
    x = rng.random((3, 1, 28, 28))
    labels = np.array([3.0, 0.0, 9.0])
    out = net.forward(data=x, label=labels)
    params = {k: [np.array(b.data, np.float64) for b in v] for k, v in net.params.items()}
    scores, loss = _lenet_reference(np.array(net.blobs["data"].data, np.float64), labels, params)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(net.blobs["ip2"].data, scores, **tol)
    np.testing.assert_allclose(out["loss"], loss, **tol)
    assert net.blobs["pool2"].data.shape == (3, 50, 4, 4)
    assert sorted(out) == ["accuracy", "loss"]


def test_lenet_gradients_match_finite_differences(rng):
    net = Net(parse_net(LENET), caffe.TRAIN, dtype=np.float64)
    net.blobs["data"].data[...] = rng.random((3, 1, 28, 28))
    net.blobs["label"].data[...] = [1, 2, 3]
    net.clear_param_diffs()
    net.forward_backward()
    h = 1e-6
    for info in net.param_infos:
        blob = info.blob
        v = rng.standard_normal(blob.shape)
        base = np.array(blob.data)
        blob.data[...] = base + h * v
        up = net.forward_all_loss()
        blob.data[...] = base - h * v
        down = net.forward_all_loss()
        blob.data[...] = base
        numeric = (up - down) / (2 * h)
        analytic = float((blob.diff * v).sum())
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (
            f"{info.layer_name}[{info.index}]: analytic {analytic}, numeric {numeric}")


def test_lenet_training_steps_lower_the_loss(rng):
    net = Net(parse_net(LENET), caffe.TRAIN)
    x = rng.random((3, 1, 28, 28)).astype(np.float32)
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = [1, 2, 3]
    losses = []
    for _ in range(8):
        net.clear_param_diffs()
        losses.append(net.forward_backward())
        for blob in net.learnable_params:
            blob.data[...] -= 0.05 * blob.diff
    assert losses[-1] < 0.5 * losses[0]


SHIPPED = sorted(pathlib.Path(__file__).resolve().parents[1].glob("prototxt/**/*deploy*.prototxt"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_deploy_nets_run(path, rng):
    net = caffe.Net(str(path), caffe.TEST)
    for name in net.inputs:
        blob = net.blobs[name]
        blob.reshape((min(blob.shape[0], 2),) + tuple(blob.shape[1:]))
        blob.data[...] = rng.random(blob.shape)
    out = net.forward()
    assert out and all(np.isfinite(v).all() for v in out.values())


TRAIN_TEST = sorted(pathlib.Path(__file__).resolve().parents[1].glob("prototxt/**/*train_test*.prototxt"))
ON_FASHION = [p for p in TRAIN_TEST if "data/fashion-mnist/" in p.read_text()]
ON_CIFAR10 = [p for p in TRAIN_TEST if "data/cifar10/" in p.read_text()]


def test_every_shipped_train_test_net_is_run_on_its_data():
    assert ON_FASHION and ON_CIFAR10 and sorted(ON_FASHION + ON_CIFAR10) == TRAIN_TEST


def _one_training_pass(path):
    train = caffe.Net(str(path), caffe.TRAIN)
    test = caffe.Net(str(path), caffe.TEST)
    test.share_with(train)
    train.clear_param_diffs()
    loss = train.forward_backward()
    assert np.isfinite(loss) and 0.5 < loss < 5.0            # about log(10) at initialisation
    assert all(np.isfinite(b.diff).all() for b in train.learnable_params)
    out = test.forward()
    assert 0.0 <= float(out["accuracy"]) <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("path", ON_FASHION, ids=[p.name for p in ON_FASHION])
def test_shipped_train_test_nets_run_on_fashion_mnist(path, tmp_path, monkeypatch, fashion_mnist):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fashion-mnist").symlink_to(fashion_mnist)
    monkeypatch.chdir(tmp_path)
    _one_training_pass(path)


@pytest.mark.slow
@pytest.mark.parametrize("path", ON_CIFAR10, ids=[p.name for p in ON_CIFAR10])
def test_shipped_train_test_nets_run_on_cifar10_batches(path, tmp_path, monkeypatch):
    """CIFAR-10's binary batch format (one label byte, then 3x32x32 bytes per record) written
    here with random pixels: the nets' data layers, shapes and one training pass."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name in ["data_batch_1.bin", "test_batch.bin"]:
        records = rng.integers(0, 256, size=(130, 1 + 3 * 32 * 32), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, size=130)
        (folder / name).write_bytes(records.tobytes())
    monkeypatch.chdir(tmp_path)
    _one_training_pass(path)
