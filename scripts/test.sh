#!/usr/bin/env bash
# The test command (what .ci/run runs): install (scripts/setup.sh), lint (ruff, configured in
# pyproject.toml), the whole test suite, the ops tests once more on the NumPy twins alone
# (MINICAFFE_NATIVE=0), and one pass over bench/ with timing off: every benchmark's
# correctness check, in seconds (pytest-benchmark's --benchmark-disable).
# Arguments go to the main pytest run. Under CI=true a skip whose reason is not on the
# allow-list in tests/conftest.py fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh
"$PY" -m ruff check .
"$PY" -m pytest -q -ra "$@"
MINICAFFE_NATIVE=0 "$PY" -m pytest -q -ra -m "not native" tests/ops
"$PY" -m pytest -q -ra bench/ --benchmark-disable
