#!/usr/bin/env bash
# The test command: install, then run the whole test suite (bench/ is separate: see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m pytest -q -ra "$@"
