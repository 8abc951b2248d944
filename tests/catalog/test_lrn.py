"""LRN: loop reference of Caffe's formula (both regions), gradients, errors, PyTorch."""
import numpy as np
import pytest

from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


def lrn_across(x, n, alpha, beta, k):
    N, C, H, W = x.shape
    y = np.empty_like(x)
    half = (n - 1) // 2
    for c in range(C):
        lo, hi = max(0, c - half), min(C, c + half + 1)
        s = k + alpha / n * np.sum(x[:, lo:hi] ** 2, axis=1)
        y[:, c] = x[:, c] * s ** -beta
    return y


def lrn_within(x, n, alpha, beta):
    N, C, H, W = x.shape
    half = (n - 1) // 2
    y = np.empty_like(x)
    for i in range(H):
        for j in range(W):
            win = x[:, :, max(0, i - half):i + half + 1, max(0, j - half):j + half + 1]
            s = 1 + alpha / (n * n) * np.sum(win ** 2, axis=(2, 3))
            y[:, :, i, j] = x[:, :, i, j] * s ** -beta
    return y


class TestLRNAcross(LayerCase):
    type, bottom_shapes = "LRN", [(2, 7, 3, 3)]
    params = {"local_size": 5, "alpha": 0.9, "beta": 0.75, "k": 2.0}

    def reference(self, x):
        return lrn_across(x, 5, 0.9, 0.75, 2.0)


class TestLRNAcrossDefaults(LayerCase):
    type, bottom_shapes, params = "LRN", [(2, 3, 2, 4)], {}     # n=5 wider than C=3

    def reference(self, x):
        return lrn_across(x, 5, 1.0, 0.75, 1.0)


class TestLRNWithin(LayerCase):
    type, bottom_shapes = "LRN", [(2, 2, 5, 4)]
    params = {"local_size": 3, "alpha": 2.0, "beta": 0.6, "norm_region": "WITHIN_CHANNEL", "k": 7.0}

    def reference(self, x):
        return lrn_within(x, 3, 2.0, 0.6)            # k is ignored WITHIN_CHANNEL


def test_even_local_size_rejected():
    harness.expect_setup_error(TestLRNAcross, [(1, 4, 2, 2)], "local_size must be odd",
                               params={"local_size": 4})


@pytest.mark.torch
def test_matches_torch_across_channels(torch):
    """torch's local_response_norm divides alpha by n and pads channels the same way."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 5, 5))
    case = TestLRNAcross()
    case.params = {"local_size": 5, "alpha": 1e-2, "beta": 0.75, "k": 1.0}
    layer, bottom, top, dy = case.run_forward_backward(x, rng)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.local_response_norm(tx, 5, alpha=1e-2, beta=0.75, k=1.0)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
