"""Clip: clamp with the bounds' gradient passed through (inclusive), required min/max."""
import numpy as np
import pytest

from minicaffe.errors import LayerSetupError
from minicaffe.net import Net
from minicaffe.prototxt import parse_net
from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestClip(LayerCase):
    type, params, bottom_shapes = "Clip", {"min": -0.5, "max": 0.8}, [(2, 3, 4, 5)]
    kinks = [-0.5, 0.8]
    in_place = True

    def reference(self, x):
        return np.minimum(np.maximum(x, -0.5), 0.8)


class TestClipPointInterval(LayerCase):
    type, params, bottom_shapes = "Clip", {"min": 0.25, "max": 0.25}, [(3, 7)]
    kinks = [0.25]

    def reference(self, x):
        return np.full_like(x, 0.25)


def _at_bounds():
    return np.array([[-2.0, -0.5, 0.0, 0.8, 3.0]])


def test_gradient_passes_at_the_bounds():
    case = TestClip()
    layer, bottom, top = case.build(bottom_values=[_at_bounds()])
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 2.0
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [[0.0, 2.0, 2.0, 2.0, 0.0]])


def test_in_place_keeps_the_mask_at_the_bounds():
    from minicaffe.blob import Blob
    case = TestClip()
    layer, bottom, top = case.build(bottom_values=[_at_bounds()])
    x = Blob((1, 5), dtype=np.float64)
    x.data[...] = _at_bounds()
    case.run_forward(layer, [x], [x])
    np.testing.assert_array_equal(x.data, [[-0.5, -0.5, 0.0, 0.8, 0.8]])
    x.diff[...] = 1.0
    layer.backward([x], [True], [x])
    np.testing.assert_array_equal(x.diff, [[0.0, 1.0, 1.0, 1.0, 0.0]])


def test_matches_torch_clamp(torch):
    case = TestClip()
    x = np.concatenate([_at_bounds().ravel(), np.random.default_rng(0).standard_normal(40)])
    layer, bottom, top, dy = case.run_forward_backward(x, np.random.default_rng(1))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.clamp(tx, -0.5, 0.8)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(top[0].data, ty.detach().numpy())
    np.testing.assert_array_equal(bottom[0].diff, tx.grad.numpy())


def test_missing_bound_is_named():
    expect_setup_error(TestClip, [(2, 3)], "clip_param.max is required", params={"min": 0.0})


def test_min_above_max_is_named():
    expect_setup_error(TestClip, [(2, 3)], "clip_param.min = 2 must not exceed clip_param.max = 1",
                       params={"min": 2.0, "max": 1.0})


def test_error_points_at_the_field(tmp_path):
    path = tmp_path / "clip.prototxt"
    path.write_text('input: "x" input_shape { dim: 2 dim: 3 }\n'
                    'layer { name: "c" type: "Clip" bottom: "x" top: "y"\n'
                    '  clip_param {\n'
                    '    min: 3\n'
                    '    max: 1 } }\n')
    with pytest.raises(LayerSetupError, match=r"clip\.prototxt:4:5: layer 'c' \(Clip\)"):
        Net(str(path), "TEST")


def test_prototxt_round_trip():
    net = parse_net('layer { name: "c" type: "Clip" clip_param { min: -1 max: 2.5 } }')
    p = net.layer[0].clip_param
    assert (p.min, p.max) == (-1.0, 2.5)
