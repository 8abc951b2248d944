"""MVN: mean / variance normalization with eps added to the std, per channel or across channels,
the exact gradient; cross-checked with torch's instance_norm / layer_norm and a torch composite."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


def _mvn(x, across=False, variance=True, eps=1e-9):
    x4 = x.reshape(x.shape + (1,) * (4 - x.ndim))
    out = np.empty_like(x4)
    groups = [(n,) for n in range(x4.shape[0])] if across else \
        [(n, c) for n in range(x4.shape[0]) for c in range(x4.shape[1])]
    for g in groups:
        v = x4[g]
        z = v - v.mean()
        out[g] = z / (np.sqrt((z * z).mean()) + eps) if variance else z
    return out


class TestMVN(LayerCase):
    type, bottom_shapes = "MVN", [(2, 3, 4, 5)]
    in_place = True

    def reference(self, x):
        return _mvn(x)


class TestMVNAcrossChannels(LayerCase):
    type, params, bottom_shapes = "MVN", {"across_channels": True}, [(3, 2, 3, 2)]
    in_place = True

    def reference(self, x):
        return _mvn(x, across=True)


class TestMVNMeanOnly(LayerCase):
    type, params, bottom_shapes = "MVN", {"normalize_variance": False}, [(2, 3, 2, 5)]
    in_place = True

    def reference(self, x):
        return _mvn(x, variance=False)


class TestMVNLargeEps(LayerCase):
    # eps large enough that adding it to the std (not the variance) and the exact gradient show.
    type, params, bottom_shapes = "MVN", {"eps": 0.5}, [(2, 2, 3, 3)]
    in_place = True

    def reference(self, x):
        return _mvn(x, eps=0.5)


class TestMVN2D(LayerCase):
    type, params, bottom_shapes = "MVN", {"across_channels": True}, [(4, 6)]

    def reference(self, x):
        return _mvn(x, across=True)          # top is (N, C, 1, 1), as Caffe reshapes it


def test_top_takes_the_legacy_4d_shape():
    layer, bottom, top = TestMVN2D().build()
    assert top[0].shape == (4, 6, 1, 1)


def test_constant_plane_gives_zero_and_a_finite_gradient():
    case = TestMVN()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    x[1, 2] = 3.0
    layer, bottom, top = case.build(bottom_values=[x])
    case.run_forward(layer, bottom, top)
    assert not top[0].data[1, 2].any()
    top[0].diff[...] = np.random.default_rng(1).standard_normal(top[0].shape)
    layer.backward(top, [True], bottom)
    assert np.all(np.isfinite(bottom[0].diff))


@pytest.mark.parametrize("across", [False, True])
def test_matches_torch_norms_at_eps_0(torch, across):
    case = TestMVN()
    case.params = {"across_channels": across, "eps": 0.0}
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    if across:
        ty = torch.nn.functional.layer_norm(tx, (3, 4, 5), eps=0.0)
    else:
        ty = torch.nn.functional.instance_norm(tx, eps=0.0)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_matches_torch_composite_with_eps_on_the_std(torch):
    case = TestMVNLargeEps()
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 3))
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    z = tx - tx.mean(dim=(2, 3), keepdim=True)
    ty = z / (z.pow(2).mean(dim=(2, 3), keepdim=True).sqrt() + 0.5)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_five_axes_are_refused():
    expect_setup_error(TestMVN, [(1, 2, 3, 4, 5)], "at most 4 axes")
