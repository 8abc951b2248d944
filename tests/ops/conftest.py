"""Run each ops test on every path: the NumPy twins and the compiled kernels under each
instruction set this machine runs (baseline, AVX2, AVX-512), so both sides of every
instruction-set boundary are covered (a CPU with AVX2 only runs the first two and skips AVX-512
with the reason 'CPU lacks avx512', which the CI allow-list accepts)."""
import pytest

from minicaffe import ops
from minicaffe.ops import native
from minicaffe.testing.isa import isa_forced

ISAS = native.ISAS


def _native_params():
    return [pytest.param(name, marks=pytest.mark.native) for name in ISAS]


@pytest.fixture(params=["numpy", *_native_params()])
def engine(request, monkeypatch):
    """'numpy' forces the NumPy fallback; the others run the compiled kernels with that
    instruction set (skipped where the kernels are not built or the CPU lacks it). Yields
    'numpy' or 'native'."""
    if request.param == "numpy":
        monkeypatch.setattr(native, "kernels", lambda: None)
        yield "numpy"
        return
    with isa_forced(request.param):
        yield "native"


@pytest.fixture(params=_native_params())
def isa(request):
    """Runs a test of the compiled kernels under each instruction set; yields its name."""
    with isa_forced(request.param):
        yield request.param


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
