"""compact_net: random nets with planted zero groups compute the same outputs after surgery,
and compacting a compacted net changes nothing."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicaffe.prototxt import to_text
from tests.compact_nets import (NETS, assert_same_outputs, compact_and_build, lenet, make,
                                plant, zero_pattern)

# Example counts keep the suite quick; a 150-example run of every net (both dtypes, same
# outputs and idempotence) passed when the surgery landed.
SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _roundtrip(text, data, dtype, seed):
    net = make(text, dtype=dtype, seed=seed)
    plant(net, data.draw(zero_pattern(net)))
    result, small = compact_and_build(net)
    assert_same_outputs(net, small)
    return net, result, small


@pytest.mark.parametrize("key", sorted(NETS))
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_planted_zeros_same_outputs_float32(key, data, seed):
    _roundtrip(NETS[key](), data, np.float32, seed)


@pytest.mark.parametrize("key", sorted(NETS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_planted_zeros_same_outputs_float64(key, data, seed):
    _roundtrip(NETS[key](), data, np.float64, seed)


@pytest.mark.parametrize("pad, pool_pad", [(0, 0), (1, 0), (1, 1), (0, 1)])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_lenet_paddings(pad, pool_pad, data, seed):
    _roundtrip(lenet(pad, pool_pad), data, np.float64, seed)


@pytest.mark.parametrize("key", sorted(NETS))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_compacting_a_compact_net_changes_nothing(key, data, seed):
    net, result, small = _roundtrip(NETS[key](), data, np.float64, seed)
    again = compact_and_build(small)[0]
    assert to_text(again.net_param) == to_text(result.net_param)
    assert [(n, t) for n, t, _ in again.weights] == [(n, t) for n, t, _ in result.weights]
    for (name, _, a), (_, _, b) in zip(again.weights, result.weights):
        assert len(a) == len(b), name
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_dense_net_is_written_unchanged():
    net = make(lenet(), seed=3)
    result, small = compact_and_build(net)
    assert [lp.name for lp in result.net_param.layer] == list(net._layer_names)
    for lp in result.net_param.layer:
        if lp.type == "Convolution":
            assert lp.convolution_param.conv_mode == "LOWERED_GEMM"
    assert_same_outputs(net, small)
