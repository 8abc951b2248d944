#!/usr/bin/env bash
# Install minicaffe (building its C++ kernels), what the tests need (the `test` extra, PyTorch
# 2.13.0 CPU as the cross-check oracle, CuPy where there is a CUDA driver) and the test data
# (Fashion-MNIST). Idempotent; works on a fresh machine with Python 3, pip and a C++ compiler.
#
# Under CI=true (.ci/run sets it) every step must succeed: the set-up fails when the extension
# is not compiled, when torch==2.13.0 or a test dependency cannot be installed, or when
# Fashion-MNIST cannot be had, instead of letting the tests that need them skip. Without CI a
# failed optional step only warns (the tests that need it then skip, saying why).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
case "${CI:-}" in true|TRUE|True|1|yes) strict=1 ;; *) strict=0 ;; esac

problem() {
    if [ "$strict" = 1 ]; then
        echo "setup: FAILED: $1" >&2
        exit 1
    fi
    echo "setup: warning: $1 (not fatal outside CI)" >&2
}

"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet -e ".[test]" || problem "pip install -e .[test] failed"
"$PY" -m pip install --quiet "torch==2.13.0" \
    || problem "torch==2.13.0 is not installable; the PyTorch cross-checks would skip"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$PY" -m pip install --quiet -e ".[gpu]" \
        || problem "CuPy (the gpu extra) is not installable on this machine with a CUDA driver"
fi

# Fashion-MNIST (the main job's data and several tests'): Debian's dataset-fashion-mnist when
# it can be installed, else the data tool's verified download into data/fashion-mnist/. The
# tests look in both places (tests/conftest.py, find_fashion_mnist).
fashion=/usr/share/datasets/fashion-mnist
have_fashion() {
    for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \
             t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
        [ -f "$1/$f" ] || return 1
    done
}
if ! have_fashion "$fashion" && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
        || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) \
        || echo "setup: dataset-fashion-mnist not installable; downloading instead"
fi
if ! have_fashion "$fashion" && ! have_fashion data/fashion-mnist; then
    "$PY" -m minicaffe.data get fashion-mnist --dir data/fashion-mnist \
        || problem "Fashion-MNIST could be neither installed (apt-get) nor downloaded"
fi

# What was installed must also work: the compiled kernels load (not the NumPy fallback) and
# every requirement of the `test` extra is installed at a version it allows.
env -u MINICAFFE_NATIVE "$PY" - "$strict" <<'PYEOF'
import importlib.metadata as md
import sys

from packaging.requirements import Requirement

import minicaffe

strict = sys.argv[1] == "1"
info = minicaffe.build_info()
print("minicaffe build:", info)
problems = []
if not info["compiled"]:
    from minicaffe.ops import native
    problems.append(f"the compiled kernels are not in use ({native.unavailable_reason()})")
for text in md.requires("minicaffe") or []:
    req = Requirement(text)
    if req.marker is None or not req.marker.evaluate({"extra": "test"}):
        continue
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        problems.append(f"test dependency {req} is not installed")
        continue
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        problems.append(f"test dependency {req} is installed at {version}")
for p in problems:
    print(f"setup: {'FAILED' if strict else 'warning'}: {p}", file=sys.stderr)
sys.exit(1 if problems and strict else 0)
PYEOF
