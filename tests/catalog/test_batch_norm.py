"""BatchNorm: batch and global statistics, Caffe's moving sums, gradients, PyTorch."""
import numpy as np
import pytest

from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


def bn_reference(x, mean, var, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)


def batch_stats(x):
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes)


class TestBatchNormTrain(LayerCase):
    type, bottom_shapes = "BatchNorm", [(4, 3, 2, 3)]
    params = {"eps": 1e-3}
    gradient_params = []                   # statistics, never learned
    in_place = True

    def init_params(self, blobs, rng):     # leftover sums from earlier iterations
        blobs[0].data[...] = rng.standard_normal(3)
        blobs[1].data[...] = rng.uniform(0.5, 2.0, 3)
        blobs[2].data[...] = 2.5

    def reference(self, x):
        mean, var = batch_stats(x)
        return bn_reference(x, mean, var, 1e-3)


class TestBatchNormTrain2D(TestBatchNormTrain):
    bottom_shapes = [(6, 4)]

    def init_params(self, blobs, rng):
        for b in blobs:
            b.data[...] = 0


class TestBatchNormGlobal(LayerCase):
    """TEST phase default: use_global_stats, mean = sum/s, var = sum/s."""
    type, bottom_shapes, phase, params = "BatchNorm", [(3, 4, 2, 2)], "TEST", {}
    gradient_params = []
    in_place = True

    def init_params(self, blobs, rng):
        blobs[0].data[...] = rng.standard_normal(4) * 3
        blobs[1].data[...] = rng.uniform(1.0, 5.0, 4) * 3
        blobs[2].data[...] = 3.0

    def reference(self, x):
        mean, var, s = self.param_data
        return bn_reference(x, mean / s[0], var / s[0], 1e-5)


class TestBatchNormGlobalAtTrain(TestBatchNormGlobal):
    phase, params = "TRAIN", {"use_global_stats": True}


class TestBatchNormZeroScaleFactor(TestBatchNormGlobal):
    def init_params(self, blobs, rng):
        blobs[0].data[...] = 5.0
        blobs[1].data[...] = 5.0
        blobs[2].data[...] = 0.0

    def reference(self, x):
        return x / np.sqrt(1e-5)                 # s == 0: mean = var = 0


def test_moving_sums_follow_caffe():
    case = TestBatchNormTrain()
    case.params = {"moving_average_fraction": 0.9}
    layer, bottom, top = case.build()
    m0, v0 = layer.blobs[0].data.copy(), layer.blobs[1].data.copy()
    x = bottom[0].data.copy()
    case.run_forward(layer, bottom, top)
    mean, var = batch_stats(x)
    m = 4 * 2 * 3
    np.testing.assert_allclose(layer.blobs[2].data, [2.5 * 0.9 + 1])
    np.testing.assert_allclose(layer.blobs[0].data, mean + 0.9 * m0, rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[1].data, m / (m - 1) * var + 0.9 * v0, rtol=1e-12)


def test_statistics_are_frozen_in_param_specs():
    case = TestBatchNormTrain()
    layer = case.build()[0]
    assert [spec.lr_mult for spec in layer.layer_param.param] == [0.0, 0.0, 0.0]


def test_learning_statistics_is_an_error():
    from minicaffe.prototxt import ParamSpec

    class Learned(TestBatchNormTrain):
        layer_fields = {"param": [ParamSpec(lr_mult=1.0)]}
    harness.expect_setup_error(Learned, [(2, 3)], "cannot be learned")


def test_train_then_global_matches_running_average():
    """After many TRAIN batches from one distribution the TEST output normalises with it."""
    rng = np.random.default_rng(0)
    case = TestBatchNormTrain()
    case.params = {}
    case.bottom_shapes = [(50, 2, 2, 2)]
    layer, bottom, top = case.build(init_params=False)
    for _ in range(30):
        bottom[0].data[...] = rng.normal([[[[3.0]], [[-1.0]]]], [[[[2.0]], [[0.5]]]], (50, 2, 2, 2))
        case.run_forward(layer, bottom, top)
    s = layer.blobs[2].data[0]
    np.testing.assert_allclose(layer.blobs[0].data / s, [3.0, -1.0], atol=0.15)
    np.testing.assert_allclose(layer.blobs[1].data / s, [4.0, 0.25], rtol=0.15)


@pytest.mark.torch
def test_matches_torch_training_forward_backward(torch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 3, 4, 4)) * 2 + 1
    case = TestBatchNormTrain()
    layer, bottom, top, dy = case.run_forward_backward(x, rng)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.batch_norm(tx, None, None, training=True, eps=1e-3)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.torch
def test_matches_torch_global_stats(torch):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 4, 3, 3))
    case = TestBatchNormGlobal()
    layer, bottom, top, dy = case.run_forward_backward(x, rng)
    s = layer.blobs[2].data[0]
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.batch_norm(tx, torch.tensor(layer.blobs[0].data / s),
                                        torch.tensor(layer.blobs[1].data / s), training=False, eps=1e-5)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
