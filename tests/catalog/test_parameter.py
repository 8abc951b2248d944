"""Parameter: a learnable blob as a top; its diff accumulates; loads from a caffemodel."""
import numpy as np

from minicaffe.net import Net
from minicaffe.prototxt import parse_net
from minicaffe.testing.layer_case import LayerCase


class TestParameter(LayerCase):
    type, params, bottom_shapes = "Parameter", {"shape": {"dim": [2, 3, 4]}}, []

    def reference(self):
        (w,) = self.param_data
        assert w.shape == (2, 3, 4)
        return w


class TestParameterScalar(LayerCase):
    type, params, bottom_shapes = "Parameter", {"shape": {"dim": []}}, []

    def reference(self):
        (w,) = self.param_data
        return w


def test_starts_at_zero():
    layer, _, top = TestParameter().build(init_params=False)
    assert not layer.blobs[0].data.any()
    assert top[0].shape == (2, 3, 4)


def test_top_is_a_copy():
    case = TestParameter()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].data[...] = 0                     # an in-place consumer writes into the top
    assert layer.blobs[0].data.any()


_NET = '''
layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 3 dim: 2 } } }
layer { name: "loss" type: "Reduction" bottom: "w" top: "loss" loss_weight: 1
        reduction_param { operation: SUMSQ } }
'''


def test_trains_in_a_net_and_round_trips(tmp_path):
    net = Net(parse_net(_NET), "TRAIN")
    w = net.params["w"][0]
    w.data[...] = np.arange(6).reshape(3, 2)
    net.clear_param_diffs()
    net.forward_backward()
    net.forward_backward()                   # diffs accumulate over two passes
    np.testing.assert_allclose(w.diff, 2 * 2 * np.arange(6).reshape(3, 2))
    path = tmp_path / "p.caffemodel"
    net.save(str(path))
    again = Net(parse_net(_NET), "TEST", weights=str(path))
    np.testing.assert_array_equal(again.params["w"][0].data, np.arange(6).reshape(3, 2))
