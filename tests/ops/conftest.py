"""Run each ops test on both paths: the NumPy twins and, when built, the compiled kernels."""
import pytest

from minicaffe import ops
from minicaffe.ops import native


@pytest.fixture(params=["numpy", pytest.param("native", marks=pytest.mark.native)])
def engine(request, monkeypatch):
    """'numpy' forces the NumPy fallback; 'native' needs minicaffe._kernels (skipped without)."""
    if request.param == "numpy":
        monkeypatch.setattr(native, "kernels", lambda: None)
    elif not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    return request.param


def tol(dtype):
    """(rtol, atol) for comparing a float32/float64 result with a float64 reference."""
    return (1e-5, 1e-5) if dtype == "float32" or getattr(dtype, "name", "") == "float32" \
        else (1e-12, 1e-12)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """Runs a test at one and at two threads, restoring the count afterwards."""
    before = ops.get_num_threads()
    ops.set_num_threads(request.param)
    yield request.param
    ops.set_num_threads(before)
