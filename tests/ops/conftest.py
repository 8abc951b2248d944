"""Run each ops test on both paths: the NumPy twins and, when built, the compiled kernels."""
import pytest

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
