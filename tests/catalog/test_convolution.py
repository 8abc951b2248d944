"""Convolution: NumPy reference (explicit loops over taps), gradients, errors, PyTorch."""
import numpy as np
import pytest

from minicaffe.testing import layer_case as harness
from minicaffe.testing.layer_case import LayerCase


def conv_reference(x, w, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Direct cross-correlation: y[n,m,y,x] = b[m] + sum_{c,i,j} w[m,c,i,j] xpad[n,gc+c,...]."""
    N, C, H, W = x.shape
    M, Cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    oh = (H + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (W + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    y = np.zeros((N, M, oh, ow))
    mg = M // group
    for m in range(M):
        c0 = (m // mg) * Cg
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, c0:c0 + Cg, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                           j * dw:j * dw + sw * (ow - 1) + 1:sw]
                y[:, m] += np.einsum("ncyx,c->nyx", patch, w[m, :, i, j])
        if b is not None:
            y[:, m] += b[m]
    return y


class TestConvolution(LayerCase):
    type, bottom_shapes = "Convolution", [(2, 3, 6, 5)]
    params = {"num_output": 4, "kernel_size": [3], "weight_filler": {"type": "gaussian"}}

    def reference(self, x):
        w, b = self.param_data
        return conv_reference(x, w, b)


class TestConvolutionStridePadGroup(LayerCase):
    type, bottom_shapes = "Convolution", [(2, 4, 7, 6)]
    params = {"num_output": 6, "kernel_h": 3, "kernel_w": 2, "stride_h": 2, "stride_w": 1,
              "pad_h": 1, "pad_w": 2, "group": 2}

    def reference(self, x):
        w, b = self.param_data
        return conv_reference(x, w, b, stride=(2, 1), pad=(1, 2), group=2)


class TestConvolutionDilationNoBias(LayerCase):
    type, bottom_shapes = "Convolution", [(2, 2, 8, 7)]
    params = {"num_output": 3, "kernel_size": [3, 2], "dilation": [2, 3], "pad": [1],
              "stride": [2], "bias_term": False}

    def reference(self, x):
        (w,) = self.param_data
        return conv_reference(x, w, None, stride=(2, 2), pad=(1, 1), dilation=(2, 3))


class TestConvolutionDepthwise(LayerCase):
    type, bottom_shapes = "Convolution", [(2, 3, 5, 5)]
    params = {"num_output": 6, "kernel_size": [3], "pad": [1], "group": 3}

    def reference(self, x):
        w, b = self.param_data
        return conv_reference(x, w, b, pad=(1, 1), group=3)


class _SparseTest(LayerCase):
    """TEST phase with SSL-sparse weights: zero rows (filters) and columns (shape fibres)."""
    bottom_shapes, phase = [(2, 4, 6, 6)], "TEST"

    def init_params(self, blobs, rng):
        w = rng.standard_normal(blobs[0].shape)
        w[1] = 0                                         # a removed filter (row)
        w2d = w.reshape(w.shape[0], -1)
        w2d[:, ::3] = 0                                  # removed shape fibres (columns)
        blobs[0].data[...] = w
        blobs[1].data[...] = rng.standard_normal(blobs[1].shape)

    def reference(self, x):
        w, b = self.param_data
        g = self.params.get("group", 1)
        return conv_reference(x, w, b, pad=(1, 1), group=g)


class TestConvolutionCompactTest(_SparseTest):
    type = "Convolution"
    params = {"num_output": 4, "kernel_size": [3], "pad": [1], "conv_mode": "LOWERED_CCNMM", "group": 2}


class TestConvolutionCSRTest(_SparseTest):
    type = "Convolution"
    params = {"num_output": 4, "kernel_size": [3], "pad": [1], "conv_mode": "LOWERED_CSRMM"}


def test_compact_mode_sees_new_weights_after_refresh():
    case = TestConvolutionCompactTest()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    layer.blobs[0].data[...] *= 2
    layer.blobs[1].data[...] = 0
    layer.refresh_weights()
    case.run_forward(layer, bottom, top)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    np.testing.assert_allclose(top[0].data, conv_reference(bottom[0].data, w, b, pad=(1, 1), group=2),
                               rtol=1e-10, atol=1e-10)


def test_fillers_are_applied():
    case = TestConvolution()
    case.params = {"num_output": 8, "kernel_size": [3], "weight_filler": {"type": "constant", "value": 0.5},
                   "bias_filler": {"type": "constant", "value": -1.0}}
    layer = case.build(init_params=False)[0]
    assert np.all(layer.blobs[0].data == 0.5) and np.all(layer.blobs[1].data == -1.0)


@pytest.mark.parametrize("threads", [1, 2])
def test_training_pass_repeatable_and_thread_count_agrees(threads):
    """A batch split over threads by images gives the one-thread gradients (up to rounding),
    and the same thread count gives the same bits every time (fixed order of partial sums)."""
    from minicaffe import ops

    def run(n_threads):
        before = ops.get_num_threads()
        ops.set_num_threads(n_threads)
        try:
            case = TestConvolution()
            case.bottom_shapes = [(9, 3, 6, 5)]
            layer, bottom, top = case.build(dtype=np.float32)
            case.run_forward(layer, bottom, top)
            top[0].diff[...] = np.random.default_rng(1).standard_normal(top[0].shape)
            layer.backward(top, [True], bottom)
            return [top[0].data.copy(), bottom[0].diff.copy()] + \
                [b.diff.copy() for b in layer.blobs]
        finally:
            ops.set_num_threads(before)

    first, again, single = run(threads), run(threads), run(1)
    for a, b, c in zip(first, again, single):
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)


def test_group_not_dividing_channels():
    msg = harness.expect_setup_error(TestConvolution, [(2, 3, 6, 6)], "group=2", "3 input channels",
                                     "(2, 3, 6, 6)", params={"num_output": 4, "kernel_size": [3], "group": 2})
    assert "'b0'" in msg


def test_group_not_dividing_num_output():
    harness.expect_setup_error(TestConvolution, [(2, 4, 6, 6)], "num_output=3",
                               params={"num_output": 3, "kernel_size": [3], "group": 2})


def test_missing_kernel_and_num_output():
    harness.expect_setup_error(TestConvolution, [(2, 4, 6, 6)], "kernel", params={"num_output": 3})
    harness.expect_setup_error(TestConvolution, [(2, 4, 6, 6)], "num_output", params={"kernel_size": [3]})


def test_kernel_larger_than_input():
    harness.expect_setup_error(TestConvolution, [(1, 1, 2, 2)], "larger than the 2x2 input",
                               params={"num_output": 1, "kernel_size": [5]})


def test_both_kernel_forms_rejected():
    harness.expect_setup_error(TestConvolution, [(1, 1, 6, 6)], "kernel_size and kernel_h/kernel_w",
                               params={"num_output": 1, "kernel_size": [3], "kernel_h": 3, "kernel_w": 3})


def test_channels_changed_after_setup():
    case = TestConvolution()
    layer, bottom, top = case.build()
    bottom[0].reshape(2, 5, 6, 5)
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\)"):
        layer.reshape(bottom, top)


@pytest.mark.torch
@pytest.mark.parametrize("cfg", [
    dict(C=3, M=8, k=(5, 5), s=(1, 1), p=(0, 0), d=(1, 1), g=1),
    dict(C=4, M=6, k=(3, 3), s=(2, 2), p=(1, 1), d=(1, 1), g=2),
    dict(C=4, M=4, k=(3, 2), s=(1, 2), p=(2, 1), d=(2, 1), g=4),
])
def test_matches_torch_forward_backward(torch, cfg):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, cfg["C"], 9, 8))
    case = TestConvolution()
    case.params = {"num_output": cfg["M"], "kernel_h": cfg["k"][0], "kernel_w": cfg["k"][1],
                   "stride_h": cfg["s"][0], "stride_w": cfg["s"][1], "pad_h": cfg["p"][0],
                   "pad_w": cfg["p"][1], "dilation": list(cfg["d"]), "group": cfg["g"]}
    case.bottom_shapes = [x.shape]
    layer, bottom, top, dy = case.run_forward_backward(x, rng)

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(layer.blobs[0].data.copy(), requires_grad=True)
    tb = torch.tensor(layer.blobs[1].data.copy(), requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=cfg["s"], padding=cfg["p"],
                                    dilation=cfg["d"], groups=cfg["g"])
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.blobs[0].diff, tw.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.blobs[1].diff, tb.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case_cls", ["TestConvolutionStridePadGroup", "TestConvolution"])
@pytest.mark.parametrize("chunk_images", [1, 2])
def test_chunked_matches_whole_batch(monkeypatch, chunk_images, case_cls):
    """Forward (group > 1) and both gradients run a few images at a time (last chunk
    partial) and equal the whole batch in one chunk."""
    from minicaffe.catalog import convolution

    def run():
        case = globals()[case_cls]()
        case.bottom_shapes = [(5,) + tuple(case.bottom_shapes[0][1:])]
        layer, bottom, top = case.build()
        case.run_forward(layer, bottom, top)
        top[0].diff[...] = np.random.default_rng(1).standard_normal(top[0].shape)
        layer.backward(top, [True], bottom)
        return layer, top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy()

    whole_layer, y, dx, dw = run()
    per_image = whole_layer.geom.rows * whole_layer.geom.cols * 8
    monkeypatch.setattr(convolution, "_CHUNK_BYTES", per_image * chunk_images)
    layer, y_c, dx_c, dw_c = run()
    np.testing.assert_allclose(y_c, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx_c, dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw_c, dw, rtol=1e-12, atol=1e-12)


def test_compact_mode_follows_shared_weight_updates_without_refresh():
    """A TEST net shares weights with the training net; the solver never calls refresh."""
    case = TestConvolutionCompactTest()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    layer.blobs[0].data[0] = 0                      # e.g. SSL just removed filter 0
    case.run_forward(layer, bottom, top)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    np.testing.assert_allclose(top[0].data, conv_reference(bottom[0].data, w, b, pad=(1, 1), group=2),
                               rtol=1e-10, atol=1e-10)
    assert 0 not in layer._weight_formats()[0].rows


def test_lowered_weights_are_views_per_group():
    case = TestConvolutionStridePadGroup()
    layer = case.build()[0]
    views = layer.lowered_weights()
    assert [v.shape for v in views] == [(3, 2 * 3 * 2)] * 2
    views[1][0, 0] = 42.0
    assert layer.blobs[0].data[3, 0, 0, 0] == 42.0
