"""Meta-test: every registered layer type has a LayerCase somewhere under tests/.

Test modules that mention LayerCase are imported so their cases register themselves in
`harness.CASES`; a module that fails to import is reported, not skipped silently.
"""
import importlib.util
import pathlib
import sys

from minicaffe.catalog import layer_type_list
from minicaffe.testing import layer_case as harness

TESTS_DIR = pathlib.Path(__file__).resolve().parents[1]


def _import_case_modules():
    failures = []
    for path in sorted(TESTS_DIR.rglob("test_*.py")):
        if path.resolve() == pathlib.Path(__file__).resolve():
            continue
        if "LayerCase" not in path.read_text(encoding="utf-8", errors="replace"):
            continue
        name = "tests." + ".".join(path.relative_to(TESTS_DIR).with_suffix("").parts)
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception as exc:  # report every broken module at once
            sys.modules.pop(name, None)
            failures.append(f"{path.relative_to(TESTS_DIR)}: {type(exc).__name__}: {exc}")
    return failures


def test_every_registered_layer_has_a_layer_case():
    failures = _import_case_modules()
    missing = [t for t in layer_type_list() if t not in harness.CASES]
    assert not missing and not failures, (
        f"registered layer types without a LayerCase: {missing}; "
        f"test modules that failed to import: {failures}")


def test_cases_name_registered_types():
    _import_case_modules()
    unknown = sorted(set(harness.CASES) - set(layer_type_list()))
    assert not unknown, f"LayerCase subclasses for unregistered layer types: {unknown}"
