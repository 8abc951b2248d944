"""Pooling at the borders: Caffe's ceil rule with the pad_h || pad_w clip, its AVE divisor
(padding counts, overhang past the padding does not), windows wholly past the image. ONNX
Runtime on the export equals minicaffe exactly there (within 1e-4), over a sweep and random
geometries."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.export.helpers import check, make_net, normal

from minicaffe.catalog.pooling import pooled_shape
from minicaffe.export.converters.pooling import caffe_divisors


def pooling_net(H, W, kernel, pad, stride, method, round_mode="CEIL", N=2, C=3, mask=False):
    (kh, kw), (ph, pw), (sh, sw) = kernel, pad, stride
    tops = 'top: "p" top: "m"' if mask else 'top: "p"'
    body = (f'layer {{ name: "p" type: "Pooling" bottom: "x" {tops} pooling_param {{ '
            f'pool: {method} kernel_h: {kh} kernel_w: {kw} pad_h: {ph} pad_w: {pw} '
            f'stride_h: {sh} stride_w: {sw} round_mode: {round_mode} }} }}\n')
    return make_net(body, {"x": (N, C, H, W)})


def _check(H, W, kernel, pad, stride, method, round_mode="CEIL", mask=False):
    net = pooling_net(H, W, kernel, pad, stride, method, round_mode, mask=mask)
    x = normal((2, 3, H, W), seed=H * 31 + W)
    model = check(net, {"x": x})
    check(net, {"x": normal((1, 3, H, W), seed=1)})
    return net, model


# (H, W, kernel, pad, stride): each one a border rule
BORDER_CASES = [
    (5, 9, (3, 2), (1, 0), (2, 3)),      # CAFFE_NOTES: 3x3, the unpadded axis loses a window too
    (32, 32, (3, 3), (0, 0), (2, 2)),    # CIFAR-10: ceil adds a window over the last row
    (8, 8, (3, 3), (0, 0), (2, 2)),      # CIFAR-10 pool3 (AVE divisor 6 at the border)
    (7, 7, (3, 3), (1, 1), (2, 2)),      # pad both sides, windows whole
    (6, 6, (3, 3), (1, 1), (2, 2)),      # overhang past H + pad: Caffe's divisor < k*k
    (6, 7, (2, 3), (1, 2), (3, 2)),      # asymmetric pads, stride > kernel on one axis
    (8, 8, (2, 2), (0, 0), (4, 4)),      # no pad, stride > kernel: a window past the image
    (10, 4, (3, 2), (2, 1), (4, 1)),     # a window starting in the bottom padding is dropped
    (1, 1, (1, 1), (0, 0), (1, 1)),
    (3, 5, (3, 5), (2, 4), (1, 1)),      # pad = kernel - 1
    (9, 9, (4, 4), (0, 0), (4, 4)),      # floor == ceil? no: 9 = 2*4 + 1 leaves a 1-row window
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", BORDER_CASES, ids=[str(c) for c in BORDER_CASES])
def test_border_cases(case, method):
    _check(*case, method)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", BORDER_CASES[:8], ids=[str(c) for c in BORDER_CASES[:8]])
def test_floor_round_mode(case, method):
    H, W, kernel, pad, stride = case
    if pooled_shape(H, W, kernel, pad, stride, "FLOOR")[0] <= 0:
        pytest.skip("no output")
    _check(*case, method, round_mode="FLOOR")


def test_caffe_notes_example_has_caffes_shape():
    net, model = _check(5, 9, (3, 2), (1, 0), (2, 3), "MAX")
    assert net.blobs["p"].shape[2:] == (3, 3)


def test_ave_divisor_counts_padding_not_overhang():
    """Windows on 6 rows, pad 1, kernel 3, stride 2: starts -1, 1, 3, 5 -> the last spans
    rows 5..7, clipped to H + pad = 7: divisor 2 rows, not 3 (padding) and not 1 (image)."""
    assert list(caffe_divisors(6, 3, 1, 2, 3)) == [3, 3, 3]
    assert list(caffe_divisors(6, 3, 1, 2, 4)) == [3, 3, 3, 2]
    net = pooling_net(6, 6, (3, 3), (1, 1), (2, 2), "AVE", N=1, C=1)
    x = np.ones((1, 1, 6, 6), np.float32)
    model = check(net, {"x": x})
    # all-ones input: an output is (cells in the image) / (Caffe's divisor)
    y = net.blobs["p"].data[0, 0]
    assert y[0, 0] == pytest.approx(4 / 9) and y[3, 3] == pytest.approx(1 / 4)
    ops = [n.op_type for n in model.graph.node]
    assert "Mul" in ops                      # the divisor map, ONNX's own rule differs here


def test_window_wholly_past_the_image():
    """Stride 4 > kernel 2 on 8 rows with the ceil rule: ceil(6 / 4) + 1 = 3 windows, the
    third starting at row 8, past the image: MAX gives -FLT_MAX there and AVE 0, in both."""
    net, _ = _check(8, 8, (2, 2), (0, 0), (4, 4), "MAX")
    assert net.blobs["p"].shape[2:] == (3, 3)
    assert (net.blobs["p"].data[:, :, 2, :] == np.finfo(np.float32).min).all()
    net, _ = _check(8, 8, (2, 2), (0, 0), (4, 4), "AVE")
    assert (net.blobs["p"].data[:, :, 2, :] == 0).all()


def test_argmax_top():
    _check(7, 9, (3, 2), (1, 1), (2, 2), "MAX", mask=True)
    _check(8, 8, (2, 2), (0, 0), (2, 2), "MAX", mask=True)


def test_argmax_top_past_the_image_is_refused():
    net = pooling_net(8, 8, (2, 2), (0, 0), (4, 4), "MAX", mask=True)
    from minicaffe.export import to_onnx
    from minicaffe.errors import ExportError
    with pytest.raises(ExportError, match="layer 'p' \\(Pooling\\).*argmax top"):
        to_onnx(net)


@st.composite
def geometries(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H = draw(st.integers(max(1, kh - 2 * ph), 12))
    W = draw(st.integers(max(1, kw - 2 * pw), 12))
    method = draw(st.sampled_from(["MAX", "AVE"]))
    round_mode = draw(st.sampled_from(["CEIL", "CEIL", "FLOOR"]))
    return H, W, (kh, kw), (ph, pw), (sh, sw), method, round_mode


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometries())
def test_random_geometries(g):
    H, W, kernel, pad, stride, method, round_mode = g
    oh, ow = pooled_shape(H, W, kernel, pad, stride, round_mode)
    if oh <= 0 or ow <= 0:
        return
    net = pooling_net(H, W, kernel, pad, stride, method, round_mode)
    check(net, {"x": normal((2, 3, H, W), seed=H * 13 + W)})
