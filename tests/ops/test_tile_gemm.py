"""The convolution forward's own GEMMs (kernels/tile_gemm.cc: AVX-512, AVX2), called directly,
and the switch that turns them off."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minicaffe import ops
from minicaffe.ops import native
from minicaffe.testing.isa import isa_forced

pytestmark = pytest.mark.native


# The instruction sets that have a GEMM of their own (the baseline leaves every product to the
# BLAS; the row map through the BLAS is tested below under every instruction set).
TILE_ISAS = ("avx2", "avx512")


@pytest.fixture(params=TILE_ISAS)
def k(request):
    with isa_forced(request.param):
        k = native.kernels()
        probe = np.ones((1, 1), np.float32)
        assert k.tile_sgemm(probe, probe, np.empty((1, 1), np.float32)) is True, \
            f"{request.param} has no GEMM of its own any more: update TILE_ISAS"
        yield k


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


# Shapes around the tiles (AVX-512 8 x 48, AVX2 6 x 16 within 48-column strips), one wider than
# the tile kernels take (the BLAS then), and one that two threads split by rows.
@pytest.mark.parametrize("m, n, kk", [(1, 1, 1), (7, 17, 5), (13, 49, 33), (104, 169, 264),
                                      (9, 1600, 20), (600, 40, 30)])
def test_forward_sgemm_matches_float64_product(isa, threads, rng, m, n, kk):
    """The convolution forwards' GEMM path under each instruction set (the baseline's is the
    BLAS), as the benchmark times it against the BLAS."""
    k = native.kernels()
    a = rng.standard_normal((m, kk)).astype(np.float32)
    b = rng.standard_normal((kk, n)).astype(np.float32)
    out = np.full((m, n), np.nan, np.float32)
    k.forward_sgemm(a, b, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5 * np.sqrt(kk))
    zero_k = np.full((2, 3), np.nan, np.float32)
    k.forward_sgemm(np.ones((2, 0), np.float32), np.ones((0, 3), np.float32), zero_k)
    assert (zero_k == 0).all()
    with pytest.raises(ValueError, match=r"^forward_sgemm: b has shape \(3, 4\); expected "
                                         r"\(2, 4\)$"):
        k.forward_sgemm(np.ones((2, 2), np.float32), np.ones((3, 4), np.float32),
                        np.ones((2, 4), np.float32))


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
        env = dict(os.environ, MINICAFFE_TILE_GEMM=value, MINICAFFE_ISA=native.get_isa())
        run = subprocess.run([sys.executable, "-c", SWITCH.format(path=path)], env=env,
                             capture_output=True, text=True, check=True)
        assert run.stdout.strip() == ("False" if value == "0" else "True")
        results[value] = np.load(path)
    np.testing.assert_allclose(results["0"], results["1"], rtol=1e-4, atol=1e-4)


# Which filters survive: the GEMM stores kept row t straight into filter rows[t], and its zero
# padding rows (4 - m_kept % 4 of them) into removed filters' rows, zeroed afterwards.
KEPT = {
    "first-removed": lambda M: np.arange(1, M),
    "last-removed": lambda M: np.arange(M - 3),
    "every-third": lambda M: np.arange(0, M, 3),
    "one": lambda M: np.array([M // 2]),
    "all": lambda M: np.arange(M),
}
# (C, H, W, kernel, pad, stride, M, N): a tile kernel shape, a wide one the BLAS takes at one
# thread (conv1-like, 3025 columns), and a tall one (M > output columns) that two threads split
# by rows.
SHAPES = {
    "13x13": (16, 13, 13, 3, 1, 1, 40, 2),
    "wide": (3, 63, 63, 11, 0, 1, 21, 1),
    "tall": (128, 4, 4, 3, 0, 1, 520, 1),
}


@pytest.mark.parametrize("kept", sorted(KEPT))
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compacted_forward_writes_kept_filters_rows_in_place(rng, isa, threads, kept, shape,
                                                              dtype):
    C, H, W, kernel, pad, stride, M, N = SHAPES[shape]
    g = ops.ConvGeometry(C, H, W, kernel, kernel, pad, pad, stride, stride)
    rows = KEPT[kept](M)
    cols = np.sort(rng.permutation(g.rows)[:max(1, g.rows // 3)])
    w = np.zeros((M, g.rows), dtype)
    w[np.ix_(rows, cols)] = rng.standard_normal((len(rows), len(cols)))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    # An inf that the first kept lowered row reads (at output pixel (pad, pad)): the zero
    # padding rows of the compacted weights turn it into NaN, which must not reach the output.
    c, tap = divmod(cols[0], kernel * kernel)
    x[0, c, tap // kernel, tap % kernel] = np.inf
    out = np.full((M, N * g.cols), 7.0, dtype)
    ops.conv_forward(x, g, ops.CompactWeights(w), out=out)
    assert (out[np.setdiff1d(np.arange(M), rows)] == 0).all()
    want = w[np.ix_(rows, cols)].astype(np.float64) @ ops.im2col_batch(x, g)[cols]
    assert np.isinf(want).any()
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(out[rows], want, rtol=tol, atol=tol * np.sqrt(len(cols)))
