#!/usr/bin/env bash
# The test command (what .ci/run runs): install (scripts/setup.sh), lint, the whole test suite,
# the ops tests once more on the NumPy twins alone (MINICAFFE_NATIVE=0), and one pass over the
# benchmarks with timing off (each benchmark's correctness check; seconds).
# Arguments go to the main pytest run. Under CI=true a skip whose reason is not on the
# allow-list in tests/conftest.py fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh
"$PY" -m pytest -q -ra "$@"
MINICAFFE_NATIVE=0 "$PY" -m pytest -q -ra -m "not native" tests/ops
