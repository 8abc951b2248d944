"""Scale and Bias: axis / num_axes / second-bottom forms, bias_term, fillers, errors."""
import numpy as np

from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


class TestScaleChannel(LayerCase):
    type, bottom_shapes, params = "Scale", [(2, 3, 4, 2)], {}
    in_place = True

    def reference(self, x):
        (s,) = self.param_data
        return x * s.reshape(1, 3, 1, 1)


class TestScaleWithBias(LayerCase):
    type, bottom_shapes, params = "Scale", [(2, 3, 4, 2)], {"bias_term": True}
    in_place = True

    def reference(self, x):
        s, b = self.param_data
        return x * s.reshape(1, 3, 1, 1) + b.reshape(1, 3, 1, 1)


class TestScaleAxis2AllAxes(LayerCase):
    type, bottom_shapes, params = "Scale", [(2, 3, 4, 2)], {"axis": 2, "num_axes": -1}

    def reference(self, x):
        (s,) = self.param_data
        assert s.shape == (4, 2)
        return x * s[None, None]


class TestScaleScalar(LayerCase):
    type, bottom_shapes, params = "Scale", [(2, 3, 2)], {"num_axes": 0, "bias_term": True}

    def reference(self, x):
        s, b = self.param_data
        assert s.shape == ()
        return x * s + b


class TestScaleTwoBottoms(LayerCase):
    type, bottom_shapes, params = "Scale", [(2, 3, 4, 5), (3, 4)], {"axis": 1, "bias_term": True}

    def reference(self, x, s):
        (b,) = self.param_data
        return x * s[None, :, :, None] + b[None, :, :, None]


class TestScaleTwoBottomsNegativeAxis(LayerCase):
    type, bottom_shapes, params = "Scale", [(2, 3, 4, 5), (5,)], {"axis": -1}

    def reference(self, x, s):
        return x * s


class TestBiasChannel(LayerCase):
    type, bottom_shapes, params = "Bias", [(2, 3, 4, 2)], {}
    in_place = True

    def reference(self, x):
        (b,) = self.param_data
        return x + b.reshape(1, 3, 1, 1)


class TestBiasTwoBottoms(LayerCase):
    type, bottom_shapes, params = "Bias", [(2, 3, 4), (2, 3)], {"axis": 0}

    def reference(self, x, b):
        return x + b[:, :, None]


class TestBiasNumAxes2(LayerCase):
    type, bottom_shapes, params = "Bias", [(2, 3, 4)], {"axis": 1, "num_axes": 2}

    def reference(self, x):
        (b,) = self.param_data
        return x + b[None]


def test_scale_defaults_to_identity_and_fillers_apply():
    layer = TestScaleWithBias().build(init_params=False)[0]
    assert np.all(layer.blobs[0].data == 1) and np.all(layer.blobs[1].data == 0)
    case = TestScaleWithBias()
    case.params = {"bias_term": True, "filler": {"type": "constant", "value": 3.0},
                   "bias_filler": {"type": "constant", "value": -2.0}}
    layer = case.build(init_params=False)[0]
    assert np.all(layer.blobs[0].data == 3) and np.all(layer.blobs[1].data == -2)


def test_bias_filler_applies():
    case = TestBiasChannel()
    case.params = {"filler": {"type": "constant", "value": 0.25}}
    layer = case.build(init_params=False)[0]
    assert np.all(layer.blobs[0].data == 0.25)


def test_scale_second_bottom_shape_mismatch():
    msg = harness.expect_setup_error(TestScaleTwoBottoms, [(2, 3, 4, 5), (4, 4)],
                                     "(4, 4) must match bottom axes 1..2", "'b1' (4, 4)")
    assert "(2, 3, 4, 5)" in msg


def test_bias_axes_past_end():
    harness.expect_setup_error(TestBiasNumAxes2, [(2, 3)], "runs past the 2 axes")
