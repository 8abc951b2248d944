#!/usr/bin/env bash
# Install minicaffe (building its C++ kernels) and what the tests and the main job need.
# Idempotent; works on a fresh machine with Python 3, pip and a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet -e ".[test]"
# PyTorch is an optional test oracle: the cross-checks skip without it. 2.13.0 is the local CPU build.
"$PY" -m pip install --quiet "torch==2.13.0" || echo "setup: torch==2.13.0 not installable; PyTorch cross-checks will skip"
"$PY" -c "import minicaffe; print('minicaffe build:', minicaffe.build_info())"
