"""Deconvolution: NumPy reference (explicit scatter over taps), gradients, errors, PyTorch."""
import numpy as np
import pytest

from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


def deconv_reference(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Scatter every input pixel through its filter taps:
    y[n, g*Mg+m, sh*y+dh*i-ph, sw*x+dw*j-pw] += x[n, g*Cg+c, y, x] * w[g*Cg+c, m, i, j]."""
    N, C, H, W = x.shape
    Cw, Mg, kh, kw = w.shape
    assert Cw == C
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    oh = sh * (H - 1) + dh * (kh - 1) + 1 - 2 * ph
    ow = sw * (W - 1) + dw * (kw - 1) + 1 - 2 * pw
    full = np.zeros((N, Mg * group, sh * (H - 1) + dh * (kh - 1) + 1,
                     sw * (W - 1) + dw * (kw - 1) + 1))
    Cg = C // group
    for c in range(C):
        g = c // Cg
        for m in range(Mg):
            for i in range(kh):
                for j in range(kw):
                    full[:, g * Mg + m, i * dh:i * dh + sh * (H - 1) + 1:sh,
                         j * dw:j * dw + sw * (W - 1) + 1:sw] += x[:, c] * w[c, m, i, j]
    y = full[:, :, ph:ph + oh, pw:pw + ow].copy()
    if b is not None:
        y += b[None, :, None, None]
    return y


class TestDeconvolution(LayerCase):
    type, bottom_shapes = "Deconvolution", [(2, 3, 4, 5)]
    param_field = "convolution_param"
    params = {"num_output": 4, "kernel_size": [3], "stride": [2],
              "weight_filler": {"type": "gaussian"}}

    def reference(self, x):
        w, b = self.param_data
        return deconv_reference(x, w, b, stride=(2, 2))


class TestDeconvolutionPadGroup(LayerCase):
    type, bottom_shapes = "Deconvolution", [(2, 4, 3, 4)]
    param_field = "convolution_param"
    params = {"num_output": 6, "kernel_h": 4, "kernel_w": 3, "stride_h": 2, "stride_w": 3,
              "pad_h": 1, "pad_w": 2, "group": 2}

    def reference(self, x):
        w, b = self.param_data
        return deconv_reference(x, w, b, stride=(2, 3), pad=(1, 2), group=2)


class TestDeconvolutionDilationNoBias(LayerCase):
    type, bottom_shapes = "Deconvolution", [(2, 2, 4, 3)]
    param_field = "convolution_param"
    params = {"num_output": 3, "kernel_size": [3, 2], "dilation": [2, 3], "pad": [1],
              "stride": [1, 2], "bias_term": False}

    def reference(self, x):
        (w,) = self.param_data
        return deconv_reference(x, w, None, stride=(1, 2), pad=(1, 1), dilation=(2, 3))


class TestDeconvolutionDepthwise(LayerCase):
    type, bottom_shapes = "Deconvolution", [(3, 3, 5, 5)]
    param_field = "convolution_param"
    params = {"num_output": 3, "kernel_size": [4], "stride": [2], "pad": [1], "group": 3}

    def reference(self, x):
        w, b = self.param_data
        return deconv_reference(x, w, b, stride=(2, 2), pad=(1, 1), group=3)


def test_weight_layout_and_output_size_are_caffes():
    case = TestDeconvolutionPadGroup()
    layer, bottom, top = case.build()
    assert layer.blobs[0].shape == (4, 3, 4, 3)          # (C, num_output/group, kh, kw)
    assert layer.blobs[1].shape == (6,)
    # oh = 2*(3-1) + (4-1)+1 - 2*1 = 6, ow = 3*(4-1) + (3-1)+1 - 2*2 = 8
    assert top[0].shape == (2, 6, 6, 8)


def test_fillers_are_applied():
    case = TestDeconvolution()
    case.params = {"num_output": 2, "kernel_size": [2],
                   "weight_filler": {"type": "constant", "value": 0.25},
                   "bias_filler": {"type": "constant", "value": -2.0}}
    layer = case.build(init_params=False)[0]
    assert np.all(layer.blobs[0].data == 0.25) and np.all(layer.blobs[1].data == -2.0)


def test_is_the_adjoint_of_convolution():
    """<deconv(x), z> = <x, conv(z)> for the same weights, no bias: the defining identity."""
    from tests.catalog.test_convolution import conv_reference

    case = TestDeconvolutionPadGroup()
    case.params = dict(case.params, bias_term=False)
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    z = np.random.default_rng(5).standard_normal(top[0].shape)
    w = layer.blobs[0].data
    conv_z = conv_reference(z, w, None, stride=(2, 3), pad=(1, 2), group=2)
    assert conv_z.shape == bottom[0].shape
    np.testing.assert_allclose(np.sum(top[0].data * z), np.sum(bottom[0].data * conv_z),
                               rtol=1e-10)


@pytest.mark.parametrize("chunk_images", [1, 2])
def test_chunked_matches_whole_batch(monkeypatch, chunk_images):
    from minicaffe.catalog import deconvolution

    def run():
        case = TestDeconvolutionPadGroup()
        case.bottom_shapes = [(5, 4, 3, 4)]
        layer, bottom, top = case.build()
        case.run_forward(layer, bottom, top)
        top[0].diff[...] = np.random.default_rng(1).standard_normal(top[0].shape)
        layer.backward(top, [True], bottom)
        return layer, top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy()

    whole, y, dx, dw = run()
    per_image = whole.geom.rows * whole.geom.cols * 8
    monkeypatch.setattr(deconvolution, "_CHUNK_BYTES", per_image * chunk_images)
    _, y_c, dx_c, dw_c = run()
    np.testing.assert_allclose(y_c, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx_c, dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw_c, dw, rtol=1e-12, atol=1e-12)


def test_propagate_down_and_param_propagate_down_are_honoured():
    case = TestDeconvolution()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    bottom[0].diff[...] = 7.0
    layer.param_propagate_down = [False, True]
    layer.blobs[0].diff[...] = 3.0
    layer.blobs[1].diff[...] = 0.0
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].diff == 7.0)                 # untouched without propagate_down
    assert np.all(layer.blobs[0].diff == 3.0)            # weights not asked for
    np.testing.assert_allclose(layer.blobs[1].diff, np.prod(top[0].shape) / top[0].shape[1])


def test_group_not_dividing_channels():
    harness.expect_setup_error(TestDeconvolution, [(2, 3, 4, 4)], "group=2", "3 input channels",
                               params={"num_output": 4, "kernel_size": [3], "group": 2})


def test_group_not_dividing_num_output():
    harness.expect_setup_error(TestDeconvolution, [(2, 4, 4, 4)], "num_output=3",
                               params={"num_output": 3, "kernel_size": [3], "group": 2})


def test_missing_kernel_and_num_output():
    harness.expect_setup_error(TestDeconvolution, [(2, 4, 4, 4)], "kernel",
                               params={"num_output": 3})
    harness.expect_setup_error(TestDeconvolution, [(2, 4, 4, 4)], "num_output",
                               params={"kernel_size": [3]})


def test_pad_too_large_for_output():
    harness.expect_setup_error(TestDeconvolution, [(1, 1, 1, 1)], "output size -2x-2", "not positive",
                               params={"num_output": 1, "kernel_size": [2], "pad": [2]})


def test_not_4d_and_channels_changed():
    harness.expect_setup_error(TestDeconvolution, [(2, 3, 4)], "4-D bottom")
    case = TestDeconvolution()
    layer, bottom, top = case.build()
    bottom[0].reshape(2, 5, 4, 5)
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\)"):
        layer.reshape(bottom, top)


def test_v1_deconvolution_upgrades_and_builds():
    from minicaffe import Net, prototxt

    text = """
    input: "data" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 3
    layers { name: "up" type: DECONVOLUTION bottom: "data" top: "up" blobs_lr: 1 blobs_lr: 2
             convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 } }
    """
    net_param = prototxt.parse_net(text)
    assert net_param.layer[1].type == "Deconvolution"
    assert [s.lr_mult for s in net_param.layer[1].param] == [1.0, 2.0]
    net = Net(net_param, phase="TEST")
    assert net.blobs["up"].shape == (1, 4, 6, 6)
    assert net.params["up"][0].shape == (2, 4, 4, 4)


@pytest.mark.torch
@pytest.mark.parametrize("cfg", [
    dict(C=3, M=5, k=(3, 3), s=(1, 1), p=(0, 0), d=(1, 1), g=1, bias=True),
    dict(C=4, M=6, k=(4, 4), s=(2, 2), p=(1, 1), d=(1, 1), g=2, bias=True),
    dict(C=4, M=4, k=(3, 2), s=(3, 2), p=(2, 1), d=(2, 1), g=4, bias=False),
    dict(C=6, M=3, k=(2, 5), s=(1, 3), p=(0, 2), d=(1, 2), g=3, bias=True),
])
def test_matches_torch_conv_transpose2d(torch, cfg):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, cfg["C"], 5, 4))
    case = TestDeconvolution()
    case.params = {"num_output": cfg["M"], "kernel_h": cfg["k"][0], "kernel_w": cfg["k"][1],
                   "stride_h": cfg["s"][0], "stride_w": cfg["s"][1], "pad_h": cfg["p"][0],
                   "pad_w": cfg["p"][1], "dilation": list(cfg["d"]), "group": cfg["g"],
                   "bias_term": cfg["bias"]}
    case.bottom_shapes = [x.shape]
    layer, bottom, top, dy = case.run_forward_backward(x, rng)

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(layer.blobs[0].data.copy(), requires_grad=True)
    tb = torch.tensor(layer.blobs[1].data.copy(), requires_grad=True) if cfg["bias"] else None
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, stride=cfg["s"], padding=cfg["p"],
                                              dilation=cfg["d"], groups=cfg["g"])
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.blobs[0].diff, tw.grad.numpy(), rtol=1e-10, atol=1e-10)
    if cfg["bias"]:
        np.testing.assert_allclose(layer.blobs[1].diff, tb.grad.numpy(), rtol=1e-10, atol=1e-10)
