"""The compiled kernels called directly: argument checks with exact messages, threads, info."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from minicaffe import ops
from minicaffe.errors import KernelError
from minicaffe.ops import native

pytestmark = pytest.mark.native


@pytest.fixture
def k():
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    return native.kernels()


GEOM = (1, 4, 4, 3, 3, 0, 0, 1, 1, 1, 1)  # C H W kh kw ph pw sh sw dh dw -> 9 rows, 2x2 output


def f32(*shape):
    return np.zeros(shape, np.float32)


def test_gemm_wrong_dtype_is_type_error(k):
    with pytest.raises(TypeError, match=r"^gemm: a has dtype int64; expected float32 or float64$"):
        k.gemm(np.zeros((2, 3), np.int64), f32(3, 4), f32(2, 4))
    with pytest.raises(TypeError, match=r"^gemm: b has dtype float64; expected float32$"):
        k.gemm(f32(2, 3), np.zeros((3, 4)), f32(2, 4))


def test_gemm_non_contiguous_and_shapes(k):
    with pytest.raises(ValueError, match=r"^gemm: a must be C-contiguous$"):
        k.gemm(f32(3, 2).T, f32(3, 4), f32(2, 4))
    with pytest.raises(ValueError, match=r"^gemm: out has shape \(2, 5\); expected \(2, 4\)$"):
        k.gemm(f32(2, 3), f32(3, 4), f32(2, 5))
    with pytest.raises(ValueError, match=r"^gemm: b has shape \(5, 4\); expected \(3, 4\)$"):
        k.gemm(f32(2, 3), f32(5, 4), f32(2, 4))
    ro = f32(2, 4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"^gemm: out is read-only$"):
        k.gemm(f32(2, 3), f32(3, 4), ro)


def test_lowering_checks(k):
    x = f32(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"^im2col_batch: geom.kh = 0; expected >= 1$"):
        k.im2col_batch(x, (1, 4, 4, 0, 3, 0, 0, 1, 1, 1, 1), f32(9, 4))
    with pytest.raises(ValueError, match=r"^im2col_batch: output would be -1x2"):
        k.im2col_batch(x, (1, 4, 4, 6, 3, 0, 0, 1, 1, 1, 1), f32(9, 4))
    with pytest.raises(ValueError, match=r"^im2col_rows: rows\[1\] = 9; expected indices in "
                                         r"\[0, 9\)$"):
        k.im2col_rows(x, GEOM, np.array([0, 9]), f32(2, 4))
    with pytest.raises(ValueError, match=r"^im2col_rows: rows is not strictly increasing at "
                                         r"position 1 \(3 then 3\)$"):
        k.im2col_rows(x, GEOM, np.array([3, 3]), f32(2, 4))
    with pytest.raises(TypeError, match=r"^im2col_rows: rows has dtype int32; expected int64$"):
        k.im2col_rows(x, GEOM, np.array([1], np.int32), f32(1, 4))
    with pytest.raises(ValueError, match=r"^im2col_batch: x has shape \(1, 2, 4, 4\); expected "
                                         r"\(1, 1, 4, 4\)$"):
        k.im2col_batch(f32(1, 2, 4, 4), GEOM, f32(9, 4))
    with pytest.raises(ValueError, match=r"^col2im_batch: N = 0; expected >= 1$"):
        k.col2im_batch(f32(9, 4), GEOM, 0, f32(1, 1, 4, 4))


def test_compact_checks(k):
    packed = f32(2, 3)
    with pytest.raises(ValueError, match=r"^f32_gemm_compact: row_idx is not strictly increasing "
                                         r"at position 1 \(2 then 1\)$"):
        k.gemm_compact(packed, np.array([2, 1]), None, f32(3, 5), f32(4, 5))
    with pytest.raises(ValueError, match=r"^f32_gemm_compact: row_idx\[1\] = 4; expected indices "
                                         r"in \[0, 4\)$"):
        k.gemm_compact(packed, np.array([0, 4]), None, f32(3, 5), f32(4, 5))
    with pytest.raises(ValueError, match=r"^f32_gemm_compact: col_idx\[2\] = 7; expected indices "
                                         r"in \[0, 6\)$"):
        k.gemm_compact(packed, np.array([0, 1]), np.array([0, 1, 7]), f32(6, 5), f32(4, 5))
    with pytest.raises(ValueError, match=r"^gemm_compact: rows has 3 entries but packed has only "
                                         r"2 rows$"):
        k.gemm_compact(packed, np.array([0, 1, 2]), None, f32(3, 5), f32(4, 5))
    with pytest.raises(ValueError, match=r"^f32_gemm_compact: m_kept = 2 exceeds M = 1$"):
        k.gemm_compact(packed, np.array([0, 1]), None, f32(3, 5), f32(1, 5))
    with pytest.raises(ValueError, match=r"^f32_gemm_compact: m_pad = 4; expected m_kept <= "
                                         r"m_pad <= M \(2 \.\. 3\)$"):
        k.gemm_compact(f32(4, 3), np.array([0, 1]), None, f32(3, 5), f32(3, 5))
        k.gemm_compact(packed, np.array([0, 1]), None, f32(3, 5), f32(1, 5))


def csr(indptr, indices, data):
    return (np.array(indptr, np.int64), np.array(indices, np.int64),
            np.array(data, np.float32))


@pytest.mark.parametrize("parts,message", [
    (([0, 2, 2], [2, 1], [1, 1]), r"^f32_csrmm: indices of row 0 are not sorted: 2 then 1 "
                                  r"\(sort them, e.g. scipy's sort_indices\(\)\)$"),
    (([0, 2, 2], [1, 1], [1, 1]), r"^f32_csrmm: indices of row 0 are not sorted: 1 then 1"),
    (([0, 1, 2], [0, 9], [1, 1]), r"^f32_csrmm: indices\[1\] = 9 \(row 1\); expected column "
                                  r"indices in \[0, 4\)$"),
    (([0, 1, 3], [0, 1], [1, 1]), r"^f32_csrmm: indptr\[-1\] = 3 but indices has 2 entries$"),
    (([1, 1, 2], [0, 1], [1, 1]), r"^f32_csrmm: indptr\[0\] = 1; expected 0$"),
    (([0, 2, 1, 2], [0, 1], [1, 1]), r"^f32_csrmm: indptr decreases at row 1 \(2 then 1\)$"),
    (([0, 1, 2], [0, 1], [1]), r"^csrmm: data has shape \(1,\) but indices has 2 entries$"),
])
def test_csr_checks(k, parts, message):
    indptr, indices, data = csr(*parts)
    M = len(indptr) - 1
    with pytest.raises(ValueError, match=message):
        k.csrmm(indptr, indices, data, 4, f32(4, 3), f32(M, 3))


def test_csr_negative_size_and_index_dtype(k):
    indptr, indices, data = csr([0, 1], [0], [1])
    with pytest.raises(ValueError, match=r"^csrmm: K = -1; expected a size >= 0$"):
        k.csrmm(indptr, indices, data, -1, f32(0, 3), f32(1, 3))
    with pytest.raises(TypeError, match=r"^csrmm: indices has dtype float64; expected int64$"):
        k.csrmm(indptr, indices.astype(np.float64), data, 4, f32(4, 3), f32(1, 3))


def test_errors_do_not_poison_later_calls(k, rng):
    with pytest.raises(KernelError):  # std::invalid_argument arrives as minicaffe's KernelError
        k.csrmm(*csr([0, 1], [5], [1]), 4, f32(4, 3), f32(1, 3))
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    np.testing.assert_allclose(ops.gemm(a, b), a @ b, rtol=1e-12)


def test_threads_roundtrip(k):
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        assert ops.get_num_threads() == 1
        assert ops.build_info()["threads"] == 1
    finally:
        ops.set_num_threads(before)
    assert ops.get_num_threads() == before


@pytest.mark.parametrize("n", [0, -2, 1.5, True])
def test_set_num_threads_rejects(n):
    with pytest.raises(ValueError, match=r"^set_num_threads: n = .*; expected an integer >= 1"):
        ops.set_num_threads(n)


@pytest.mark.parametrize("n", [native.MAX_THREADS + 1, 100000, 2**31])
def test_set_num_threads_rejects_more_than_the_limit(n):
    before = ops.get_num_threads()
    with pytest.raises(ValueError, match=rf"^set_num_threads: n = {n}; expected an integer "
                                         rf"from 1 to {native.MAX_THREADS} \(MAX_THREADS\)"):
        ops.set_num_threads(n)
    assert ops.get_num_threads() == before


def test_limit_is_accepted(k):
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(native.MAX_THREADS)
        assert ops.get_num_threads() == native.MAX_THREADS
    finally:
        ops.set_num_threads(before)


@pytest.mark.parametrize("n, omp", [(100000, -1), (1, 100000), (2**31 - 1, 2)])
def test_kernel_entry_point_bounds_threads_too(k, n, omp):
    """The C++ side checks the same limit, for callers that bypass ops.set_num_threads."""
    before = ops.get_num_threads()
    with pytest.raises(ValueError, match=rf"set_num_threads: .* = {max(n, omp)}; expected "
                                         rf"1 to {native.MAX_THREADS}"):
        k.set_num_threads(n, omp)
    assert k.get_num_threads() == before
    assert k.max_threads() == native.MAX_THREADS


_CONV_AFTER = ("import numpy as np, minicaffe\n"
               "from minicaffe import ops\n"
               "from minicaffe.ops.geometry import ConvGeometry\n"
               "{setup}\n"
               "x = np.ones((8, 3, 16, 16), np.float32)\n"
               "g = ConvGeometry(3, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1)\n"
               "y = ops.conv_forward_nchw(x, g, np.ones((4, 27), np.float32))\n"
               "print('threads', ops.get_num_threads(), 'sum', float(y.sum()))\n")


def test_huge_thread_count_is_refused_before_a_convolution(k, tmp_path):
    """set_num_threads(100000) used to be accepted and the next convolution segfaulted."""
    setup = ("try:\n    minicaffe.set_num_threads(100000)\n"
             "except ValueError as e:\n    print('refused', e)")
    out = subprocess.run([sys.executable, "-c", _CONV_AFTER.format(setup=setup)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused set_num_threads: n = 100000" in out.stdout
    assert " sum " in out.stdout


def test_huge_omp_num_threads_is_clamped_with_a_warning(k, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="100000")
    out = subprocess.run([sys.executable, "-W", "always", "-c", _CONV_AFTER.format(setup="")],
                         env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"threads {native.MAX_THREADS} " in out.stdout
    assert "OMP_NUM_THREADS" in out.stderr and str(native.MAX_THREADS) in out.stderr


def test_build_info_fields(k):
    info = ops.build_info()
    assert info["compiled"] is True
    assert set(info) >= {"blas_vendor", "blas_version", "threads", "isa", "isa_available",
                         "isa_compiled", "vector_bits", "openmp", "compiled", "tile_gemm"}
    assert info["blas_vendor"]
    # the best this CPU runs unless MINICAFFE_ISA chose (tests/ops/test_isa.py checks both)
    assert info["isa"] == native.get_isa() and info["isa"] in info["isa_available"]
    assert info["isa_available"][0] == "baseline"
    assert set(info["isa_available"]) <= set(info["isa_compiled"]) <= set(native.ISAS)


def test_omp_num_threads_is_honoured(k, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = ("import minicaffe; "
            "print(minicaffe.get_num_threads(), minicaffe.build_info()['compiled'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert out.stdout.split() == ["1", "True"]


def test_missing_extension_warns_once_and_falls_back(monkeypatch):
    monkeypatch.delenv("MINICAFFE_NATIVE", raising=False)   # the warning is for a failed import
    monkeypatch.setattr(native, "_loaded", False)
    monkeypatch.setattr(native, "_kernels", None)
    monkeypatch.setattr(native, "_import_error", None)
    monkeypatch.setitem(sys.modules, "minicaffe._kernels", None)  # makes the import fail
    with pytest.warns(RuntimeWarning, match="compiled kernels .* not available"):
        assert native.kernels() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.kernels() is None  # no second warning
    assert ops.build_info()["compiled"] is False
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(ops.gemm(a, a.T), a @ a.T)


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_paths_match_numpy(k, isa, rng, threads, monkeypatch):
    """Sizes above the kernels' OpenMP thresholds, so the threaded loops really run."""
    import importlib  # noqa: PLC0415

    from minicaffe.ops import ConvGeometry  # noqa: PLC0415

    # (ops.im2col is the function; the module of NumPy twins is reached by its full name)
    im2col_module = importlib.import_module("minicaffe.ops.im2col")

    before = ops.get_num_threads()
    ops.set_num_threads(threads)
    try:
        g = ConvGeometry(8, 20, 18, 3, 3, 1, 1, 1, 1)
        x = rng.standard_normal((4, 8, 20, 18)).astype(np.float32)
        cols = ops.im2col_batch(x, g)
        want = im2col_module._np_im2col_batch(x, g, np.empty_like(cols))
        np.testing.assert_array_equal(cols, want)
        back = ops.col2im_batch(cols, g, 4)
        np.testing.assert_allclose(back, im2col_module._np_col2im_batch(
            cols, g, 4, np.empty_like(back)), rtol=1e-5, atol=1e-5)
        w = rng.standard_normal((200, g.rows)).astype(np.float32)
        w[rng.random(w.shape) < 0.9] = 0
        w[5:40] = 0  # a run of empty rows
        got = ops.matmul(ops.CSRWeights(w), cols)
        np.testing.assert_allclose(got, w.astype(np.float64) @ cols, rtol=1e-4, atol=1e-4)
    finally:
        ops.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N", [5, 16, 41, 169, 200, 64 * 9 + 5])
def test_csr_column_remainders(k, isa, rng, threads, dtype, N):
    """Column counts that leave a partial block: packed (few columns, many blocks) or written
    again from the right edge (rows split over threads, or one thread)."""
    before = ops.get_num_threads()
    ops.set_num_threads(threads)
    try:
        w = rng.standard_normal((37, 300)).astype(dtype)
        w[rng.random(w.shape) < 0.8] = 0
        w[3:9] = 0
        b = rng.standard_normal((300, N)).astype(dtype)
        out = np.full((37, N), np.nan, dtype)
        got = ops.matmul(ops.CSRWeights(w), b, out=out)
        tol = 1e-4 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(got, w.astype(np.float64) @ b, rtol=tol, atol=tol)
    finally:
        ops.set_num_threads(before)


def test_mkl_sparse_matches_when_built(k, rng):
    if not hasattr(k, "csrmm_mkl"):
        pytest.skip("built without MKL (MINICAFFE_BLAS=mkl adds csrmm_mkl)")
    w = rng.standard_normal((37, 50)).astype(np.float32)
    w[rng.random(w.shape) < 0.8] = 0
    w[3:9] = 0
    b = rng.standard_normal((50, 70)).astype(np.float32)
    csr = ops.CSRWeights(w)
    out = np.full((37, 70), np.nan, np.float32)
    k.csrmm_mkl(csr.indptr, csr.indices, csr.data, 50, b, out)
    np.testing.assert_allclose(out, w.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    with pytest.raises(KernelError, match=r"^f32_csrmm_mkl: indices of row"):
        k.csrmm_mkl(*csr_unsorted(), 4, np.zeros((4, 3), np.float32), np.zeros((1, 3), np.float32))


def csr_unsorted():
    return csr([0, 2], [2, 1], [1, 1])


def test_peak_gflops(k):
    widths = {"baseline": 128, "avx2": 256, "avx512": 512}
    # positive and finite (an emulator runs at well under 1 GFLOP/s; a real core at tens)
    for name in native.available_isas():
        assert 0 < k.peak_gflops(widths[name], 0.01) < 1e5
    assert 0 < k.peak_gflops(0, 0.01) < 1e5  # the active instruction set's width
    with pytest.raises(KernelError, match=r"^peak_gflops: vector_bits = 64; expected one of "
                                          r"128(, 256, 512)? \(the vector widths compiled into "
                                          r"this build\)$"):
        k.peak_gflops(64, 0.01)


def test_openblas_coretype_choice_is_ours_alone(k, tmp_path):
    """MINICAFFE_OPENBLAS_CORETYPE picks the kernels of our OpenBLAS copy; without it an
    AVX-512 CPU gets SkylakeX even under a process-wide Haswell pin; the user's
    OPENBLAS_CORETYPE is back in place afterwards either way."""
    if "openblas (scipy-openblas32" not in ops.build_info()["blas_vendor"]:
        pytest.skip("not the scipy-openblas32 build")
    if not native._SKYLAKEX_FLAGS <= native._cpu_flags():
        pytest.skip("CPU without the AVX-512 subsets of OpenBLAS's SkylakeX kernels")
    code = ("import os, minicaffe; print(minicaffe.build_info()['blas_version']); "
            "print(os.environ.get('OPENBLAS_CORETYPE'))")
    env = dict(os.environ, OPENBLAS_CORETYPE="SKYLAKEX", MINICAFFE_OPENBLAS_CORETYPE="Haswell")
    env.pop("MINICAFFE_ISA", None)  # a forced lower instruction set picks older kernels itself
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout.splitlines()
    assert "Haswell" in out[0] and out[1] == "SKYLAKEX"
    env.pop("MINICAFFE_OPENBLAS_CORETYPE")
    env["OPENBLAS_CORETYPE"] = "Haswell"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout.splitlines()
    assert "SkylakeX" in out[0] and out[1] == "Haswell"


@pytest.mark.parametrize("block_bytes", [1, 3000, 1 << 30])  # one image, a few, the whole batch
def test_conv_forward_blocks(k, isa, rng, block_bytes):
    from minicaffe.ops import ConvGeometry  # noqa: PLC0415

    g = ConvGeometry(4, 7, 6, 3, 2, 1, 0, 1, 2)
    gt = (4, 7, 6, 3, 2, 1, 0, 1, 2, 1, 1)
    x = rng.standard_normal((5, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((9, g.rows)).astype(np.float32)
    w[[1, 2, 6]] = 0
    w[:, ::3] = 0
    want = w.astype(np.float64) @ ops.im2col_batch(x, g)
    cw = ops.CompactWeights(w)
    out = np.full((9, 5 * g.cols), np.nan, np.float32)
    k.conv_forward(x, gt, cw._padded, cw.rows, cw.cols, out, block_bytes)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    k.conv_forward(x, gt, w, None, None, out, block_bytes)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_conv_forward_bad_arguments(k):
    x, gt = f32(1, 1, 4, 4), GEOM
    with pytest.raises(KernelError, match=r"^f32_conv_forward: a has 3 rows; expected M = 2 "
                                          r"without row_idx$"):
        k.conv_forward(x, gt, f32(3, 9), None, None, f32(2, 4))
    with pytest.raises(KernelError, match=r"^f32_conv_forward: a has 8 columns; expected "
                                          r"C\*kh\*kw = 9 without col_idx$"):
        k.conv_forward(x, gt, f32(2, 8), None, None, f32(2, 4))
    with pytest.raises(KernelError, match=r"^f32_conv_forward: col_idx is not strictly "
                                          r"increasing at position 1 \(4 then 2\)$"):
        k.conv_forward(x, gt, f32(2, 2), None, np.array([4, 2]), f32(2, 4))
    with pytest.raises(KernelError, match=r"^conv_forward: block_bytes = 0; expected >= 1$"):
        k.conv_forward(x, gt, f32(2, 9), None, None, f32(2, 4), 0)


def test_one_thread_pool(k):
    """Our OpenMP threads do the GEMM splitting; OpenBLAS (its own pthreads) stays serial, so
    two pools never fight over the cores."""
    try:
        ops.set_num_threads(2)
        info = ops.build_info()
        assert info["threads"] == 2 and ops.get_num_threads() == 2
        if "scipy-openblas32" in info["blas_vendor"]:
            assert info["blas_threads"] == 1
    finally:
        ops.set_num_threads(1)


# m*n*k above the 2M multiply-adds where blas_gemm starts splitting; tall and wide outputs
# split rows and columns respectively, with every transpose combination.
@pytest.mark.parametrize("shape", [(64, 900, 300), (900, 64, 300), (3, 5000, 200)])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_split_over_threads_matches_numpy(k, isa, rng, shape, trans_a, trans_b):
    m, n, kk = shape
    a = rng.standard_normal((kk, m) if trans_a else (m, kk))
    b = rng.standard_normal((n, kk) if trans_b else (kk, n))
    c0 = rng.standard_normal((m, n))
    want = 0.5 * (a.T if trans_a else a) @ (b.T if trans_b else b) + 2.0 * c0
    try:
        ops.set_num_threads(2)
        got = ops.gemm(a, b, out=c0.copy(), alpha=0.5, beta=2.0, trans_a=trans_a, trans_b=trans_b)
    finally:
        ops.set_num_threads(1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
