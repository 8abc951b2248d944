"""Embed: lookup W[x] (+ b), index checks, param gradients; torch's embedding."""
import numpy as np
import pytest

from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestEmbed(LayerCase):
    type, params = "Embed", {"num_output": 4, "input_dim": 5}
    bottom_shapes = [(2, 3)]
    gradient_bottoms = []

    def make_bottoms(self, rng):
        return [np.array([[0.0, 4.0, 2.0], [2.0, 2.0, 1.0]])]

    def reference(self, x):
        w, b = self.param_data
        out = np.zeros(x.shape + (4,))
        for i in np.ndindex(x.shape):
            out[i] = w[int(x[i])] + b
        return out


class TestEmbedNoBias(LayerCase):
    type, params = "Embed", {"num_output": 3, "input_dim": 6, "bias_term": False}
    bottom_shapes = [(7,)]
    gradient_bottoms = []

    def make_bottoms(self, rng):
        return [rng.integers(0, 6, 7).astype(np.float64)]

    def reference(self, x):
        (w,) = self.param_data
        return np.stack([w[int(i)] for i in x])


def test_blob_shapes_and_fillers():
    case = TestEmbed()
    case.params = {"num_output": 4, "input_dim": 5,
                   "weight_filler": {"type": "constant", "value": 2.0}}
    layer, _, top = case.build(init_params=False)
    assert [b.shape for b in layer.blobs] == [(5, 4), (4,)]
    assert np.all(layer.blobs[0].data == 2.0) and not layer.blobs[1].data.any()
    assert top[0].shape == (2, 3, 4)


def test_matches_torch_embedding(torch):
    case = TestEmbed()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    dy = np.random.default_rng(1).standard_normal(top[0].shape)
    top[0].diff[...] = dy
    for b in layer.blobs:
        b.diff[...] = 0
    layer.backward(top, [False], bottom)
    idx = torch.tensor(np.array(bottom[0].data)).long()
    tw = torch.tensor(np.array(layer.blobs[0].data), requires_grad=True)
    tb = torch.tensor(np.array(layer.blobs[1].data), requires_grad=True)
    ty = torch.nn.functional.embedding(idx, tw) + tb
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(top[0].data, ty.detach().numpy())
    np.testing.assert_allclose(layer.blobs[0].diff, tw.grad.numpy(), rtol=1e-14)
    np.testing.assert_allclose(layer.blobs[1].diff, tb.grad.numpy(), rtol=1e-14)


@pytest.mark.parametrize("bad, shown", [(5.0, "input 5"), (-1.0, "input -1"), (1.25, "input 1.25")])
def test_bad_index_is_named(bad, shown):
    case = TestEmbed()
    x = np.array([[0.0, bad, 2.0], [2.0, 2.0, 1.0]])
    layer, bottom, top = case.build(bottom_values=[x])
    with pytest.raises(ValueError, match=shown + r" at flat position 1 is not a whole number in "
                                                 r"\[0, 5\)"):
        case.run_forward(layer, bottom, top)


@pytest.mark.parametrize("missing", ["num_output", "input_dim"])
def test_sizes_required(missing):
    params = {"num_output": 4, "input_dim": 5}
    del params[missing]
    expect_setup_error(TestEmbed, [(2, 3)], f"embed_param.{missing} must be given and positive",
                       params=params)


def test_refuses_backward_to_indices():
    case = TestEmbed()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    with pytest.raises(ValueError, match="cannot backpropagate to the indices"):
        layer.backward(top, [True], bottom)
