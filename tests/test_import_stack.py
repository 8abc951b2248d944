"""The package is a stack: a module imports only from its own level or the levels below.

Levels (top to bottom), as docs/ARCHITECTURE.md draws them:

    entry points (train, test, time, bench, experiments, ...) and the pycaffe facade
    compact, export, parallel (MPI)
    solver (+ regularizers)
    net, weights
    catalog (the layer implementations)
    data, ops (numpy / native / cupy backends behind one dispatch)
    prototxt, blob, fillers, groups, wire
    errors, backend, registry, phase

The check reads every import statement with `ast` (module level and inside functions: a lazy
import is still an arrow), so an upward arrow fails here instead of in review. A new module must
be given a level below; an unclassified one fails the test.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "minicaffe"

# Module prefix -> level; the longest matching prefix wins.
LEVELS = {
    "errors": 0, "backend": 0, "registry": 0, "phase": 0, "files": 0,
    "prototxt": 1, "blob": 1, "fillers": 1, "groups": 1, "wire": 1,
    "data": 2, "ops": 2,
    "catalog": 3,
    "net": 4, "weights": 4, "plan": 4, "timing": 4,
    "solver": 5,
    "compact": 6, "export": 6, "parallel": 6,
    # entry points and the pycaffe facade
    "": 7, "train": 7, "test": 7, "time": 7, "bench": 7, "experiments": 7, "plot": 7,
    "sweep": 7, "data.__main__": 7, "compact.__main__": 7, "prototxt.__main__": 7, "testing": 7,
    "io": 7, "net_spec": 7, "proto": 7, "draw": 7, "classifier": 7, "detector": 7,
    "pycaffe": 7, "python_layer": 7,
}
NAMES = ["errors, backend, registry, phase, files", "prototxt, blob, fillers, groups, wire", "data, ops",
         "catalog", "net, weights", "solver", "compact, export, parallel",
         "entry points and the pycaffe facade"]


def _module_name(path, root=PACKAGE):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def level_of(module):
    """Level of `module` (dotted, relative to minicaffe), or None when it is unclassified."""
    best = None
    for prefix, level in LEVELS.items():
        if prefix == "" and module != "":
            continue
        if module == prefix or module.startswith(prefix + ".") or prefix == module == "":
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, level)
    return None if best is None else best[1]


def _target_level(target):
    """Level of an imported name: its module's, or its package's for `from pkg import name`."""
    level = level_of(target)
    return level_of(target.rpartition(".")[0]) if level is None else level


def _imports(path, root=PACKAGE):
    """(line, imported module relative to minicaffe) for every minicaffe import in `path`."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                target = ".".join(["minicaffe", *base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            # `from minicaffe import ops` names a module; `from minicaffe.x import f` names x.
            targets = [f"{target}.{a.name}" if target == "minicaffe" else target
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target == "minicaffe" or target.startswith("minicaffe."):
                yield node.lineno, target.removeprefix("minicaffe").removeprefix(".")


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_level():
    unclassified = [_module_name(p) for p in _modules() if level_of(_module_name(p)) is None]
    assert not unclassified, f"give these modules a level in LEVELS: {unclassified}"


def test_no_import_points_up_the_stack():
    upward = []
    for path in _modules():
        here = level_of(_module_name(path))
        for line, target in _imports(path):
            there = _target_level(target)
            if there is not None and here is not None and there > here:
                upward.append(f"minicaffe/{path.relative_to(PACKAGE)}:{line}: imports "
                              f"'minicaffe.{target}' ({NAMES[there]}) from level {NAMES[here]}")
    assert not upward, "imports that point up the stack:\n" + "\n".join(upward)


@pytest.mark.parametrize("source, bad", [
    ("from minicaffe.net import Net\n", True),
    ("from minicaffe import solver\n", True),
    ("from minicaffe.errors import SolverError\n", False),
    ("def f():\n    from ..solver import base\n", True),
])
def test_the_check_catches_an_upward_arrow(tmp_path, source, bad):
    """The walker itself: a file in `ops` importing net or solver is flagged, errors is not."""
    probe = tmp_path / "minicaffe" / "ops" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(source)
    here = level_of(_module_name(probe, tmp_path / "minicaffe"))
    flagged = [t for _, t in _imports(probe, tmp_path / "minicaffe")
               if _target_level(t) > here]
    assert bool(flagged) == bad, flagged
