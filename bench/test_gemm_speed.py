"""Kernel speed on AlexNet's conv layers (pytest-benchmark; not part of the default test run).

    python -m pytest bench/test_gemm_speed.py --benchmark-columns=median,ops -q
One operation per test, parametrised by layer x batch x engine; each result is checked inside
(a fast wrong answer is worthless). extra_info carries GFLOPS (work actually done), effective
GFLOPS (work counted as if dense), the BLAS vendor and the thread count.
"""
import numpy as np
import pytest

from minicaffe import bench, ops

pytest.importorskip("pytest_benchmark")

ENGINES = ["dense", "compact", "dense-gemm", "compact-gemm", "sgemm-ours", "sgemm-blas",
           "csr-ours", "csr-scipy", "csr-mkl", "csr-torch", "torch-conv2d"]
LAYERS = {layer.name: layer for layer in bench.ALEXNET}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = ops.get_num_threads()
    ops.set_num_threads(1)
    yield
    ops.set_num_threads(before)


def _flops(layer, batch, engine):
    g = layer.geom
    dense = 2.0 * layer.M * g.rows * g.cols * batch
    if engine.startswith(("compact", "sgemm")):
        return dense * (1 - layer.row_sparsity) * (1 - layer.col_sparsity), dense
    if engine.startswith("csr"):
        return dense * (1 - layer.l1_sparsity), dense
    return dense, dense


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("layer_name", list(LAYERS))
def test_conv_gemm_speed(benchmark, layer_name, batch, engine):
    layer = LAYERS[layer_name]
    torch = bench._torch() if engine.endswith("torch") or engine.startswith("torch") else None
    engines, ideal = bench.layer_engines(layer, batch, np.random.default_rng(2016), torch)
    if engine not in engines:
        pytest.skip("built without MKL (MINICAFFE_BLAS=mkl adds csrmm_mkl)" if engine == "csr-mkl"
                    else "minicaffe._kernels not built: no compiled GEMM to compare"
                    if engine.startswith("sgemm")
                    else "PyTorch not installed (pip install torch==2.13.0)")
    if torch is not None:
        torch.set_num_threads(1)
    fn, check = engines[engine]
    benchmark.pedantic(fn, rounds=5 if batch == 8 else 20, warmup_rounds=1)
    check()
    if benchmark.stats is None:  # --benchmark-disable: ran once, checked, nothing to record
        return
    work, dense_work = _flops(layer, batch, engine)
    seconds = benchmark.stats.stats.median
    info = ops.build_info()
    benchmark.extra_info.update(
        gflops=work / seconds / 1e9, effective_gflops=dense_work / seconds / 1e9,
        ideal_speedup=ideal.get(engine, 1.0), blas=info["blas_vendor"], threads=info["threads"],
        isa=info["isa"])


def test_sgemm_2048(benchmark):
    n = 2048
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    c = np.empty((n, n), np.float32)
    benchmark.pedantic(ops.gemm, args=(a, b), kwargs={"out": c}, rounds=5, warmup_rounds=1)
    np.testing.assert_allclose(c[:4, :4], a[:4] @ b[:, :4], rtol=1e-3, atol=1e-2)
    if benchmark.stats is None:
        return
    gflops = 2.0 * n ** 3 / benchmark.stats.stats.median / 1e9
    benchmark.extra_info.update(gflops=gflops, percent_of_peak=100 * gflops / bench.PEAK_GFLOPS,
                                blas=ops.build_info()["blas_vendor"], threads=1)
