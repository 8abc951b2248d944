"""Crop: NumPy slicing reference, gradients (bottom 1 gets 0), Caffe's offset rules, errors,
PyTorch slicing, and an FCN-style Deconvolution + Crop net."""
import numpy as np
import pytest

from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


class TestCropDefaultAxisOneOffset(LayerCase):
    type, bottom_shapes = "Crop", [(2, 3, 7, 8), (1, 1, 4, 5)]
    params = {"offset": [2]}

    def reference(self, x, ref):
        return x[:, :, 2:6, 2:7]


class TestCropPerAxisOffsets(LayerCase):
    type, bottom_shapes = "Crop", [(2, 5, 6, 7), (9, 3, 2, 4)]
    params = {"axis": 1, "offset": [1, 3, 2]}

    def reference(self, x, ref):
        return x[:, 1:4, 3:5, 2:6]


class TestCropNegativeAxisNoOffset(LayerCase):
    type, bottom_shapes = "Crop", [(3, 4, 6), (1, 1, 2)]
    params = {"axis": -1}

    def reference(self, x, ref):
        return x[:, :, 0:2]


class TestCropAxisZero(LayerCase):
    type, bottom_shapes = "Crop", [(4, 3, 5), (2, 3, 3)]
    params = {"axis": 0, "offset": [1, 0, 2]}

    def reference(self, x, ref):
        return x[1:3, 0:3, 2:5]


def test_default_axis_is_two_and_offsets_zero():
    from minicaffe import prototxt

    p = prototxt.LayerParameter().crop_param
    assert p.axis == 2 and list(p.offset) == []
    case = TestCropDefaultAxisOneOffset()
    case.params = None
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    np.testing.assert_array_equal(top[0].data, bottom[0].data[:, :, :4, :5])


def test_reference_may_have_more_axes_and_other_leading_sizes():
    case = TestCropDefaultAxisOneOffset()
    case.bottom_shapes = [(2, 3, 7, 8), (5, 9, 4, 5, 6)]
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    assert top[0].shape == (2, 3, 4, 5)


def test_reshape_follows_new_shapes():
    case = TestCropPerAxisOffsets()
    layer, bottom, top = case.build()
    bottom[1].reshape(1, 2, 1, 1)
    case.run_forward(layer, bottom, top)
    np.testing.assert_array_equal(top[0].data, bottom[0].data[:, 1:3, 3:4, 2:3])


def test_axis_out_of_range():
    harness.expect_setup_error(TestCropPerAxisOffsets, [(2, 3), (2, 3)], "axis=2",
                               "out of range", "-2 <= axis < 2", params={"axis": 2})


def test_wrong_number_of_offsets():
    harness.expect_setup_error(TestCropPerAxisOffsets, [(2, 5, 6, 7), (2, 3, 2, 4)],
                               "offset has 2 values", "3 values", params={"axis": 1, "offset": [1, 2]})


def test_window_out_of_bounds():
    msg = harness.expect_setup_error(TestCropPerAxisOffsets, [(2, 5, 6, 7), (2, 3, 5, 4)],
                                     "axis 2", "size 5 at offset 3", "bottom 0 has 6")
    assert "'b1' (2, 3, 5, 4)" in msg


def test_reference_with_fewer_axes():
    harness.expect_setup_error(TestCropDefaultAxisOneOffset, [(2, 3, 7, 8), (4, 5)],
                               "reference bottom 1 has 2 axes", params={})


def test_propagate_down_honoured():
    case = TestCropPerAxisOffsets()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    for b in bottom:
        b.diff[...] = 5.0
    layer.backward(top, [False, False], bottom)
    assert np.all(bottom[0].diff == 5.0) and np.all(bottom[1].diff == 5.0)
    layer.backward(top, [True, False], bottom)
    assert bottom[0].diff.sum() == top[0].count and np.all(bottom[1].diff == 5.0)


@pytest.mark.torch
@pytest.mark.parametrize("axis,offset", [(2, [3]), (1, [0, 2, 1]), (-2, [1, 0]), (3, [])])
def test_matches_torch_slicing(torch, axis, offset):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 7, 6))
    ref_shape = (1, 2, 4, 3)
    case = TestCropPerAxisOffsets()
    case.params = {"axis": axis, "offset": offset}
    layer, bottom, top = case.build(bottom_values=[x, np.zeros(ref_shape)])
    case.run_forward(layer, bottom, top)
    dy = rng.standard_normal(top[0].shape)
    top[0].diff[...] = dy
    layer.backward(top, [True, False], bottom)

    a = axis % 4
    offs = [0] * 4
    for i in range(a, 4):
        offs[i] = offset[0] if len(offset) == 1 else (offset[i - a] if offset else 0)
    index = tuple(slice(None) if i < a else slice(offs[i], offs[i] + ref_shape[i]) for i in range(4))
    tx = torch.tensor(x, requires_grad=True)
    ty = tx[index]
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(top[0].data, ty.detach().numpy())
    np.testing.assert_array_equal(bottom[0].diff, tx.grad.numpy())


def test_fcn_style_upsample_and_crop_net():
    """conv (stride 2) -> Deconvolution (x2) -> Crop to the data with offset 1, as FCN does."""
    from minicaffe import Net, prototxt

    text = """
    input: "data" input_shape { dim: 2 dim: 3 dim: 11 dim: 11 }
    layer { name: "score" type: "Convolution" bottom: "data" top: "score"
            convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1
                                weight_filler { type: "gaussian" std: 0.1 } } }
    layer { name: "up" type: "Deconvolution" bottom: "score" top: "up"
            convolution_param { num_output: 4 kernel_size: 4 stride: 2 bias_term: false
                                weight_filler { type: "gaussian" std: 0.1 } } }
    layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "crop"
            crop_param { axis: 2 offset: 1 } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "crop" bottom: "target" top: "loss" }
    input: "target" input_shape { dim: 2 dim: 4 dim: 11 dim: 11 }
    """
    net = Net(prototxt.parse_net(text), phase="TRAIN")
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal((2, 3, 11, 11))
    net.blobs["target"].data[...] = rng.standard_normal((2, 4, 11, 11))
    net.forward()
    assert net.blobs["up"].shape == (2, 4, 14, 14)       # 2*(6-1) + 4 = 14
    np.testing.assert_array_equal(net.blobs["crop"].data, net.blobs["up"].data[:, :, 1:12, 1:12])
    net.backward()
    dup = net.blobs["up"].diff
    assert np.all(dup[:, :, 0] == 0) and np.all(dup[:, :, 12:] == 0)
    np.testing.assert_array_equal(dup[:, :, 1:12, 1:12], net.blobs["crop"].diff)
    assert np.any(net.params["up"][0].diff != 0) and np.any(net.params["score"][0].diff != 0)


def test_parameter_errors_point_at_the_field(tmp_path):
    from minicaffe import Net, prototxt
    from minicaffe.errors import LayerSetupError

    path = tmp_path / "crop.prototxt"
    path.write_text('input: "a" input_shape { dim: 1 dim: 2 dim: 5 dim: 5 }\n'
                    'input: "b" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
                    'layer { name: "c" type: "Crop" bottom: "a" bottom: "b" top: "c"\n'
                    '        crop_param { offset: 1 offset: 1 offset: 1 } }\n')
    with pytest.raises(LayerSetupError, match=rf"^{path}:4:22: layer 'c' \(Crop\).*offset has 3 values"):
        Net(prototxt.read_net(str(path)), phase="TEST")
