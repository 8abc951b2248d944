"""The harness must fail on a wrong forward, a wrong gradient and an un-accumulated param diff."""
import numpy as np
import pytest

from minicaffe.blob import Blob
from minicaffe.catalog.base import Layer
from minicaffe.testing import layer_case as harness


class _Scaled(Layer):
    """y = w * x with one learnable scalar; `bug` picks a defect."""
    exact_bottoms = exact_tops = 1
    bug = None

    def setup(self, bottom, top):
        self.blobs = [Blob((1,), dtype=bottom[0].dtype)]

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data * (1.01 if self.bug == "forward" else 1)

    def backward(self, top, propagate_down, bottom):
        w = self.blobs[0].data[0]
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * w * (1.001 if self.bug == "bottom" else 1)
        dw = np.sum(top[0].diff * bottom[0].data)
        if self.bug == "overwrite":
            self.blobs[0].diff[0] = dw
        else:
            self.blobs[0].diff[0] += dw


class _Case(harness.LayerCase):
    bottom_shapes = [(3, 4)]

    def layer_param(self, bottoms=None, tops=None):
        return None

    def reference(self, x):
        return self.param_data[0][0] * x


def _run(monkeypatch, bug, test_name):
    class Buggy(_Scaled):
        pass
    Buggy.bug = bug
    monkeypatch.setattr(harness, "create_layer", lambda lp, phase: Buggy(_FakeParam(), phase))
    case = _Case()
    case.type = "Scaled"
    getattr(case, test_name)()


class _FakeParam:
    name, type, bottom, top = "layer_under_test", "Scaled", ["b0"], ["t0"]


@pytest.mark.parametrize("test_name", ["test_forward_matches_reference", "test_gradient_bottoms",
                                       "test_gradient_params"])
def test_correct_layer_passes(monkeypatch, test_name):
    _run(monkeypatch, None, test_name)


@pytest.mark.parametrize("bug, test_name", [("forward", "test_forward_matches_reference"),
                                            ("bottom", "test_gradient_bottoms"),
                                            ("overwrite", "test_gradient_params")])
def test_defect_is_caught(monkeypatch, bug, test_name):
    with pytest.raises(AssertionError):
        _run(monkeypatch, bug, test_name)


def test_params_may_be_prototxt_text_or_dict_with_sub_messages():
    lp = harness.layer_parameter("c", "Convolution", ["x"], ["y"],
                                 "convolution_param { num_output: 3 kernel_size: 2 "
                                 "weight_filler { type: 'xavier' } }")
    assert lp.convolution_param.num_output == 3 and lp.convolution_param.weight_filler.type == "xavier"
    lp = harness.layer_parameter("c", "Convolution", ["x"], ["y"],
                                 {"num_output": 3, "weight_filler": {"type": "msra"}})
    assert lp.convolution_param.weight_filler.type == "msra" and lp.bottom == ["x"]
    assert harness.param_field_of("InnerProduct") == "inner_product_param"
    assert harness.param_field_of("Pooling") == "pooling_param"
