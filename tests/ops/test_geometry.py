"""ops.ConvGeometry: Caffe's convolution output size and the derived sizes, against the formula
floor((H + 2p - (d(k-1)+1)) / s) + 1 written out here, and every refusal with its numbers."""
import itertools
import math

import numpy as np
import pytest

from minicaffe.ops import ConvGeometry


def caffe_out(size, k, p, s, d):
    """Caffe's ConvolutionLayer::compute_output_shape for one axis, in its own arithmetic."""
    extent = d * (k - 1) + 1
    return (size + 2 * p - extent) // s + 1


# C, H, W, kh, kw, ph, pw, sh, dh: every seventh of the product (sw, dw follow from sh, dh)
CASES = list(itertools.product([1, 3], [1, 5, 8], [1, 6, 7], [1, 2, 3], [1, 3], [0, 1],
                               [0, 2], [1, 2, 3], [1, 2]))[::7]


@pytest.mark.parametrize("C, H, W, kh, kw, ph, pw, sh, dh", CASES)
def test_sizes_follow_caffes_formula(C, H, W, kh, kw, ph, pw, sh, dh):
    sw, dw = 4 - sh, 3 - dh                   # different per axis, so swapped axes show
    g = ConvGeometry(C, H, W, kh, kw, ph, pw, sh, sw, dh, dw)
    oh, ow = caffe_out(H, kh, ph, sh, dh), caffe_out(W, kw, pw, sw, dw)
    if oh < 1 or ow < 1:
        assert g.problem is not None and f"output would be {oh}x{ow}" in g.problem
        return
    assert (g.oh, g.ow) == (oh, ow)
    assert g.rows == C * kh * kw and g.cols == oh * ow
    assert g.image_shape == (C, H, W)
    assert g.native == (C, H, W, kh, kw, ph, pw, sh, sw, dh, dw)
    assert g.problem is None


def test_defaults_are_no_pad_stride_and_dilation_one():
    g = ConvGeometry(2, 9, 7, 3, 2)
    assert g.native == (2, 9, 7, 3, 2, 0, 0, 1, 1, 1, 1)
    assert (g.oh, g.ow) == (7, 6)


def test_the_output_size_rounds_down():
    g = ConvGeometry(1, 8, 8, 3, 3, 0, 0, 2, 2)     # (8 - 3) / 2 = 2.5
    assert (g.oh, g.ow) == (3, 3) and math.floor(2.5) + 1 == 3


@pytest.mark.parametrize("field, value", [("C", 0), ("H", 0), ("W", 0), ("kh", 0), ("kw", 0),
                                          ("ph", -1), ("pw", -1), ("sh", 0), ("sw", 0),
                                          ("dh", 0), ("dw", 0), ("kh", 1.5), ("sw", 2.5)])
def test_each_field_below_its_minimum_is_named(field, value):
    fields = dict(C=2, H=6, W=6, kh=3, kw=3, ph=0, pw=0, sh=1, sw=1, dh=1, dw=1)
    fields[field] = value
    low = 0 if field in ("ph", "pw") else 1
    assert ConvGeometry(**fields).problem == \
        f"geom.{field} = {value}; expected an integer >= {low}"


@pytest.mark.parametrize("field", ["C", "H", "W", "kh", "kw", "sh", "sw", "dh", "dw"])
def test_one_is_allowed_everywhere(field):
    fields = dict(C=2, H=6, W=6, kh=3, kw=3, ph=0, pw=0, sh=2, sw=2, dh=2, dw=2)
    fields[field] = 1
    if field in ("H", "W"):
        fields.update(kh=1, kw=1)
    assert ConvGeometry(**fields).problem is None


def test_pad_zero_is_allowed_and_an_empty_output_is_refused_with_its_sizes():
    assert ConvGeometry(1, 3, 3, 3, 3).problem is None              # exactly one output
    assert ConvGeometry(1, 3, 3, 3, 3).cols == 1
    problem = ConvGeometry(1, 3, 4, 3, 3, 0, 0, 1, 1, 2, 1).problem
    assert problem == ("output would be -1x2: the dilated kernel 5x3 does not fit the padded "
                       "input 3x4")
    assert ConvGeometry(1, 3, 4, 3, 3, 1, 0, 1, 1, 2, 1).problem is None   # padding makes room
    problem = ConvGeometry(1, 4, 4, 3, 5).problem
    assert problem == ("output would be 2x0: the dilated kernel 3x5 does not fit the padded "
                       "input 4x4")
    # the padded size counts both sides' padding on each axis (pad 1 and 2 here)
    problem = ConvGeometry(1, 2, 3, 7, 9, 1, 2).problem
    assert problem == ("output would be -2x-1: the dilated kernel 7x9 does not fit the padded "
                       "input 4x7")


def test_numpy_integer_fields_are_integers():
    """Sizes computed with NumPy (np.int64) are whole numbers like Python ints: checked by
    value, not by type."""
    fields = dict(C=2, H=6, W=6, kh=3, kw=3, ph=1, pw=0, sh=2, sw=1, dh=1, dw=2)
    g = ConvGeometry(**{k: np.int64(v) for k, v in fields.items()})
    assert g.problem is None and (g.oh, g.ow) == (ConvGeometry(**fields).oh, 2) == (3, 2)


def test_equal_geometries_are_equal_and_hash_alike():
    a, b = ConvGeometry(2, 6, 6, 3, 3, 1, 1), ConvGeometry(2, 6, 6, 3, 3, 1, 1)
    assert a == b and hash(a) == hash(b) and a.oh == b.oh
    assert a != ConvGeometry(2, 6, 6, 3, 3, 1, 0)
    with pytest.raises(AttributeError):
        a.C = 3
