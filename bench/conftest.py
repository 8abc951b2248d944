"""bench/ follows the CI skip rules of tests/conftest.py: under CI=true (the smoke run of
scripts/test.sh, `pytest bench/ --benchmark-disable`) a benchmark that skips for a reason not on
its allow-list fails, so a missing peer (PyTorch) cannot hide a benchmark's correctness check."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_minicaffe_test_conftest", Path(__file__).resolve().parents[1] / "tests" / "conftest.py")
_rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_rules)

pytest_runtest_makereport = _rules.pytest_runtest_makereport
pytest_make_collect_report = _rules.pytest_make_collect_report
pytest_runtest_setup = _rules.pytest_runtest_setup
