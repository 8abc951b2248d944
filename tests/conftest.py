"""Shared fixtures (seeded RNGs, optional-dependency skips, the Fashion-MNIST files) and the CI
rules for skips.

Skips under CI. Locally a test skips with its reason when something it needs is not there
(PyTorch, Fashion-MNIST, a GPU, ...). With the environment variable CI=true (`.ci/run` sets it)
a skip fails the run unless its reason is on ALLOWED_SKIPS below: CI installs every test
dependency (scripts/setup.sh), so only facts about the machine may still skip a test. A test
that must skip for such a fact says so in words one of the rules matches; a new kind of fact
gets a rule here, with its reason.

The `gpu` marker: a test that needs CuPy and a CUDA device carries it and is skipped
automatically without them (the reason says which); a GPU skip is allowed under CI only for
a test that carries the marker, and only when CuPy is not missing on a machine with a CUDA
driver (that is a missing install).

Generated LayerCase tests that cannot apply to a case (an in-place check of a layer that is
not run in place, a gradient check of a layer without gradient or params) are left out at
collection (`LayerCase.applies`), so they are neither run nor reported as skips.
"""
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["pytester"]        # tests/test_ci_skips.py runs these rules in a subprocess

ROOT = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
NATIVE_OFF = os.environ.get("MINICAFFE_NATIVE", "1") == "0"


@dataclass(frozen=True)
class SkipRule:
    """A skip reason CI accepts: `pattern` (a regex searched in the reason), why it is a fact
    about the machine, and when it applies (`marker`: only for tests carrying that marker;
    `when`: only while this is true)."""
    pattern: str
    why: str
    marker: str = None
    when: bool = True

    def allows(self, reason, markers):
        return (self.when and re.search(self.pattern, reason) is not None
                and (self.marker is None or self.marker in markers))


ALLOWED_SKIPS = (
    SkipRule(r"no CUDA GPU", "no CUDA device on this machine", marker="gpu"),
    SkipRule(r"a GPU is present", "a test of the no-GPU error path, on a machine with a GPU"),
    SkipRule(r"\bCPU (lacks|without)\b", "the CPU lacks an instruction set (AVX2, AVX-512, ...)"),
    SkipRule(r"kernels not compiled into this build \(another architecture",
             "not an x86-64 machine: only the generic (baseline) kernels are built",
             when=platform.machine().lower() not in ("x86_64", "amd64")),
    SkipRule(r"built without MKL", "the build links OpenBLAS, not MKL (MINICAFFE_BLAS=mkl)"),
    SkipRule(r"not the scipy-openblas32 build", "the build links MKL or a system BLAS"),
    SkipRule(r"POSIX signals", "the OS has no POSIX signals"),
    SkipRule(r"minicaffe\._kernels not built|compiled kernel",
             "MINICAFFE_NATIVE=0 chose the NumPy path on purpose", when=NATIVE_OFF),
)


def skip_allowed(reason, markers=()):
    """The SkipRule that lets a test skip for `reason` under CI, or None."""
    for rule in ALLOWED_SKIPS:
        if rule.allows(reason, set(markers)):
            return rule
    return None


def _skip_reason(report):
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text[len("Skipped: "):] if text.startswith("Skipped: ") else text


def _refuse(report, reason):
    report.outcome = "failed"
    report.longrepr = (f"CI=true: skipped for a reason that is not on the allow-list in "
                       f"tests/conftest.py: {reason!r}\nInstall what is missing "
                       f"(scripts/setup.sh does under CI=true) or, if this is a fact about the "
                       f"machine, add a SkipRule to ALLOWED_SKIPS saying why.")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if skip_allowed(reason, [m.name for m in item.iter_markers()]) is None:
            _refuse(report, reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped:                  # a module-level importorskip & co.
        reason = _skip_reason(report)
        if skip_allowed(reason) is None:
            _refuse(report, reason)


def pytest_collection_modifyitems(config, items):
    """Leave out generated LayerCase tests that do not apply to their case."""
    from minicaffe.testing.layer_case import LayerCase  # noqa: PLC0415

    def applies(item):
        cls = getattr(item, "cls", None)
        if cls is None or not issubclass(cls, LayerCase):
            return True
        return cls.applies(getattr(item, "originalname", item.name))

    items[:] = [item for item in items if applies(item)]


def gpu_skip_reason():
    """Why a `gpu` test cannot run here (None when it can)."""
    from minicaffe import backend  # noqa: PLC0415

    if backend.gpu_available():
        return None
    error = backend.gpu_unavailable_reason() or ""
    driver = Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists()
    if driver and ("ModuleNotFoundError" in error or "ImportError" in error):
        return f"CuPy not installed on a machine with a CUDA driver (pip install " \
               f"'minicaffe[gpu]'): {error}"
    return f"no CUDA GPU: {error}"


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is not None:
        reason = gpu_skip_reason()
        if reason is not None:
            pytest.skip(reason)


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def rng():
    """A seeded NumPy Generator, fresh per test."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed_global_rng():
    np.random.seed(1234)
    yield


@pytest.fixture
def torch():
    """The torch module, or skip the test with the reason (torch is an optional test extra)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")
    torch.manual_seed(0)
    return torch


FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"), ROOT / "data" / "fashion-mnist")


def find_fashion_mnist():
    """The first folder holding the four Fashion-MNIST IDX files: Debian's
    dataset-fashion-mnist package, else data/fashion-mnist of this checkout (where
    `python -m minicaffe.data get fashion-mnist` puts it); None when neither has them."""
    for folder in FASHION_MNIST_DIRS:
        if all((folder / name).is_file() for name in FASHION_MNIST_FILES):
            return folder
    return None


@pytest.fixture
def fashion_mnist():
    """Path of the Fashion-MNIST folder (see find_fashion_mnist), or skip saying how to get it
    (scripts/setup.sh installs it; under CI a missing dataset fails the run)."""
    folder = find_fashion_mnist()
    if folder is None:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, or "
                    "python -m minicaffe.data get fashion-mnist)")
    return folder
