"""The CI skip rules of tests/conftest.py, run in a pytest subprocess: under CI=true a skip
whose reason is not on the allow-list fails (in a test and at collection), an allowed one still
skips, the `gpu` marker skips by itself and makes a GPU skip allowed; without CI every skip
skips."""
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

TESTS = '''
import pytest

def test_missing_install():
    pytest.skip("PyTorch not installed (pip install torch==2.13.0)")

def test_cpu_fact():
    pytest.skip("this CPU lacks AVX-512")

@pytest.mark.gpu
def test_marked_gpu():
    from minicaffe import backend
    assert backend.gpu_available()

def test_unmarked_gpu_skip():
    pytest.skip("no CUDA GPU: CUDARuntimeError")

def test_passes():
    pass
'''

MODULE_SKIP = '''
import pytest
pytest.importorskip("no_such_module_for_the_ci_rules")

def test_never_runs():
    pass
'''


@pytest.fixture
def project(pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    pytester.makepyfile(test_rules=TESTS)
    return pytester


def test_ci_refuses_skips_that_are_not_on_the_allow_list(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "test_rules.py")
    gpu_present = "test_marked_gpu PASSED" in result.stdout.str()
    result.assert_outcomes(passed=2 if gpu_present else 1, failed=2,
                           skipped=1 if gpu_present else 2)
    result.stdout.fnmatch_lines(["*not on the allow-list*PyTorch not installed*"])
    result.stdout.fnmatch_lines(["*not on the allow-list*no CUDA GPU*"])


def test_ci_refuses_a_module_level_skip(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_module=MODULE_SKIP)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*not on the allow-list*no_such_module_for_the_ci_rules*"])


def test_without_ci_skips_skip_with_their_reason(project, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "test_rules.py")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*SKIPPED*PyTorch not installed*"])


def test_native_skips_are_allowed_only_when_native_is_off(project, monkeypatch):
    project.makepyfile(test_native='''
import pytest
def test_needs_kernels():
    pytest.skip("minicaffe._kernels not built: disabled by MINICAFFE_NATIVE=0")
''')
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("MINICAFFE_NATIVE", "0")
    project.runpytest_subprocess("-p", "no:cacheprovider", "test_native.py").assert_outcomes(
        skipped=1)
    monkeypatch.delenv("MINICAFFE_NATIVE")
    project.runpytest_subprocess("-p", "no:cacheprovider", "test_native.py").assert_outcomes(
        failed=1)
