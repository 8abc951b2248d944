"""The convolution forward's own AVX-512 GEMM (kernels/tile_gemm.cc), called directly, and the
switch that turns it off."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minicaffe import ops
from minicaffe.ops import native

pytestmark = pytest.mark.native


@pytest.fixture
def k():
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    k = native.kernels()
    probe = np.ones((1, 1), np.float32)
    if not k.tile_sgemm(probe, probe, np.empty((1, 1), np.float32)):
        pytest.skip("this build has no AVX-512: every product goes to the BLAS")
    return k


# m around the 8-row tile, n around the 16-column vector and 48-column strip, k from 1 up.
@pytest.mark.parametrize("m", [1, 7, 8, 9, 17, 104])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 33, 47, 48, 49, 169, 1536])
@pytest.mark.parametrize("kk", [1, 5, 264])
def test_matches_float64_product(k, m, n, kk, rng):
    a = rng.standard_normal((m, kk)).astype(np.float32)
    b = rng.standard_normal((kk, n)).astype(np.float32)
    out = np.full((m, n), np.nan, np.float32)
    assert k.tile_sgemm(a, b, out) is True
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * np.sqrt(kk))


def test_rows_past_the_last_tile_are_never_written(k, rng):
    # 9 rows: the second tile holds one real row; the rows below `out` belong to another array.
    big = np.full((16, 20), 7.0, np.float32)
    a = rng.standard_normal((9, 4)).astype(np.float32)
    b = rng.standard_normal((4, 20)).astype(np.float32)
    out = big[:9]
    assert k.tile_sgemm(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    assert (big[9:] == 7.0).all()


def test_wide_or_empty_products_are_left_to_the_blas(k):
    a = np.ones((2, 3), np.float32)
    out = np.full((2, 1537), 5.0, np.float32)
    assert k.tile_sgemm(a, np.ones((3, 1537), np.float32), out) is False
    assert (out == 5.0).all()
    assert k.tile_sgemm(np.ones((2, 0), np.float32), np.ones((0, 4), np.float32),
                        np.empty((2, 4), np.float32)) is False


def test_bad_arguments_raise(k):
    f32 = np.zeros
    with pytest.raises(ValueError, match=r"^tile_sgemm: a has dtype float64; expected float32$"):
        k.tile_sgemm(f32((2, 3)), f32((3, 4), np.float32), f32((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"^tile_sgemm: b must be C-contiguous$"):
        k.tile_sgemm(f32((2, 3), np.float32), f32((4, 3), np.float32).T,
                     f32((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"^tile_sgemm: b has shape \(2, 4\); expected \(3, 4\)$"):
        k.tile_sgemm(f32((2, 3), np.float32), f32((2, 4), np.float32), f32((2, 4), np.float32))
    with pytest.raises(ValueError,
                       match=r"^tile_sgemm: out has shape \(2, 5\); expected \(2, 4\)$"):
        k.tile_sgemm(f32((2, 3), np.float32), f32((3, 4), np.float32), f32((2, 5), np.float32))


SWITCH = """
import numpy as np
from minicaffe import ops
rng = np.random.default_rng(3)
g = ops.ConvGeometry(16, 13, 13, 3, 3, 1, 1)
x = rng.standard_normal((2, 16, 13, 13)).astype(np.float32)
w = rng.standard_normal((40, g.rows)).astype(np.float32)
np.save({path!r}, ops.conv_forward(x, g, ops.DenseWeights(w)))
print(ops.build_info()["tile_gemm"])
"""


def test_minicaffe_tile_gemm_0_turns_it_off_with_the_same_results(k, tmp_path):
    results = {}
    for value in ("0", "1"):
        path = str(tmp_path / f"y{value}.npy")
        env = dict(os.environ, MINICAFFE_TILE_GEMM=value)
        run = subprocess.run([sys.executable, "-c", SWITCH.format(path=path)], env=env,
                             capture_output=True, text=True, check=True)
        assert run.stdout.strip() == ("False" if value == "0" else "True")
        results[value] = np.load(path)
    np.testing.assert_allclose(results["0"], results["1"], rtol=1e-4, atol=1e-4)
