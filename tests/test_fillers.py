"""Fillers against their distributions (moments, ranges, sparsity) and exact formulas."""
import math

import numpy as np
import pytest

from minicaffe import fillers
from minicaffe.blob import Blob
from minicaffe.errors import LayerSetupError
from minicaffe.prototxt import FillerParameter


def filled(shape, dtype=np.float64, **fields):
    blob = Blob(shape, dtype=dtype)
    fillers.fill(blob, FillerParameter(**fields))
    return blob.data


def test_default_is_constant_zero():
    assert np.all(filled((3, 4)) == 0)


def test_constant_value_and_dtype():
    x = filled((2, 3, 4), dtype=np.float32, type="constant", value=2.5)
    assert x.dtype == np.float32 and np.all(x == 2.5)


def test_uniform_range_and_moments():
    x = filled((200, 500), type="uniform", min=-2.0, max=3.0)
    assert x.min() >= -2.0 and x.max() <= 3.0
    assert abs(x.mean() - 0.5) < 0.02                       # sd of mean: 5/sqrt(12)/316 = 0.005
    assert abs(x.var() - 25 / 12) < 0.03


def test_gaussian_moments():
    x = filled((300, 400), type="gaussian", mean=1.5, std=0.3)
    assert abs(x.mean() - 1.5) < 0.003 and abs(x.std() - 0.3) < 0.003


def test_gaussian_sparse_keeps_s_per_output():
    # keep probability sparse / num_outputs = 5 / 50
    x = filled((50, 4000), type="gaussian", std=1.0, sparse=5)
    frac = np.mean(x != 0)
    assert abs(frac - 0.1) < 0.005
    kept = x[x != 0]
    assert abs(kept.std() - 1.0) < 0.03


def test_gaussian_sparse_zero_gives_all_zeros():
    assert np.all(filled((10, 20), type="gaussian", sparse=0) == 0)


@pytest.mark.parametrize("norm, n", [("FAN_IN", 3 * 5 * 5), ("FAN_OUT", 64 * 5 * 5),
                                     ("AVERAGE", (3 * 25 + 64 * 25) / 2)])
def test_xavier_bound_and_variance(norm, n):
    x = filled((64, 3, 5, 5), type="xavier", variance_norm=norm)
    bound = math.sqrt(3.0 / n)
    assert np.abs(x).max() <= bound
    assert np.abs(x).max() > 0.98 * bound
    assert abs(x.var() / (bound ** 2 / 3) - 1) < 0.08


@pytest.mark.parametrize("norm, n", [("FAN_IN", 20 * 9), ("FAN_OUT", 50 * 9),
                                     ("AVERAGE", (20 * 9 + 50 * 9) / 2)])
def test_msra_std(norm, n):
    x = filled((50, 20, 3, 3), type="msra", variance_norm=norm)
    assert abs(x.mean()) < 0.01 * math.sqrt(2.0 / n) * 10
    assert abs(x.std() / math.sqrt(2.0 / n) - 1) < 0.04


def test_fan_in_out_of_inner_product_and_1d():
    assert fillers.fan_in_out((500, 800)) == (800, 500)
    assert fillers.fan_in_out((10,)) == (1, 10)


def test_positive_unitball_rows_sum_to_one():
    x = filled((7, 3, 4), type="positive_unitball")
    assert np.all(x >= 0)
    np.testing.assert_allclose(x.reshape(7, -1).sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_bilinear_matches_interpolation_kernel(k):
    x = filled((2, 1, k, k), type="bilinear")
    f = math.ceil(k / 2)
    c = (k - 1) / (2 * f)
    for y in range(k):
        for xx in range(k):
            want = (1 - abs(xx / f - c)) * (1 - abs(y / f - c))
            assert x[1, 0, y, xx] == pytest.approx(want)
    np.testing.assert_allclose(x[0, 0], x[0, 0].T)                # symmetric
    np.testing.assert_allclose(x[0, 0], x[0, 0][::-1, ::-1])      # centred


def test_bilinear_rejects_non_square():
    with pytest.raises(LayerSetupError, match="square"):
        filled((1, 1, 3, 4), type="bilinear")


def test_unknown_filler_names_the_known_ones():
    with pytest.raises(LayerSetupError, match="xavier"):
        filled((2, 2), type="xavir")


def test_seeded_fill_repeats():
    np.random.seed(5)
    a = filled((4, 4), type="gaussian")
    np.random.seed(5)
    b = filled((4, 4), type="gaussian")
    np.testing.assert_array_equal(a, b)


# --- bad parameters: rejected with the field, and by a Net with the layer -------------------
@pytest.mark.parametrize("ftype, field, value", [
    ("gaussian", "std", math.nan), ("gaussian", "mean", math.inf), ("constant", "value", math.nan),
    ("uniform", "min", -math.inf), ("uniform", "max", math.nan), ("xavier", "std", math.nan),
    ("msra", "mean", -math.inf), ("positive_unitball", "value", math.inf),
])
def test_non_finite_parameters_are_refused(ftype, field, value):
    """`std: nan` used to fill the weights with NaN without a word."""
    with pytest.raises(LayerSetupError, match=rf"^{ftype} filler: {field} = {value}; expected a "
                                              r"finite number$"):
        filled((3, 4), type=ftype, **{field: value})


def test_negative_gaussian_std_is_refused():
    with pytest.raises(LayerSetupError, match=r"^gaussian filler: std = -0.5; expected >= 0$"):
        filled((3, 4), type="gaussian", std=-0.5)


def test_empty_blob_is_left_alone():
    for ftype in ("constant", "uniform", "gaussian", "xavier", "msra", "positive_unitball"):
        assert filled((0, 4), type=ftype).shape == (0, 4)


_NET = """name: "n"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{
  name: "ip1"
  type: "InnerProduct"
  bottom: "data"
  top: "ip1"
  inner_product_param {{
    num_output: 4
    weight_filler {{ type: "gaussian" std: 0.1 }}
    bias_filler {{ {bias} }}
  }}
}}
"""


@pytest.mark.parametrize("bias, message", [
    ("type: \"gaussian\" std: nan",
     r"^.*net\.prototxt:3:1: layer 'ip1' \(InnerProduct\): inner_product_param\.bias_filler "
     r"\(line 11, column 5\): gaussian filler: std = nan; expected a finite number$"),
    ("type: \"constant\" value: -inf",
     r"^.*net\.prototxt:3:1: layer 'ip1' \(InnerProduct\): inner_product_param\.bias_filler "
     r"\(line 11, column 5\): constant filler: value = -inf; expected a finite number$"),
    ("type: \"gausian\"",
     r"^.*net\.prototxt:3:1: layer 'ip1' \(InnerProduct\): inner_product_param\.bias_filler "
     r"\(line 11, column 5\): unknown filler type 'gausian'.*did you mean 'gaussian'"),
])
def test_a_net_names_the_layer_and_the_filler_field(tmp_path, bias, message):
    from minicaffe import TRAIN, Net

    path = tmp_path / "net.prototxt"
    path.write_text(_NET.format(bias=bias))
    with pytest.raises(LayerSetupError, match=message) as err:
        Net(str(path), TRAIN)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize("ftype", ["gaussian", "uniform", "xavier", "msra", "positive_unitball",
                                   "constant"])
def test_filling_needs_no_more_memory_than_a_chunk(ftype):
    """A whole-blob float64 draw then astype needed 3x the blob (a mistyped dimension gave a
    6.5 GB weight blob and a 23 GB peak, found by the net fuzzer as an OOM kill); values are now
    drawn a chunk at a time into the blob."""
    import tracemalloc

    blob = Blob((8192, 1024), dtype=np.float32)             # 32 MB; a chunk is 8 MB of float64
    tracemalloc.start()
    try:
        fillers.fill(blob, FillerParameter(type=ftype, std=0.1, value=1.0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < blob.count * 4 // 1.5, peak           # less than the blob itself
    assert np.isfinite(blob.data).all()
