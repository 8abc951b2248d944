#!/usr/bin/env bash
# The main job: train LeNet on Fashion-MNIST with SSL (group Lasso on filters and shape fibres),
# print the sparsity report, then compact the learned net (python -m minicaffe.compact: the
# smaller deploy net in runs/lenet_compact/, checked against the original) and print the
# per-layer table and the execution modes (dense, LOWERED_CCNMM, CSR, compacted) side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh

# Fashion-MNIST into data/fashion-mnist/, where the prototxt files read it (setup.sh installed
# Debian's dataset-fashion-mnist when it could; `get` copies it, or downloads, verified).
"$PY" -m minicaffe.data get fashion-mnist --dir data/fashion-mnist

"$PY" -m minicaffe.train --solver prototxt/lenet/lenet_ssl_solver.prototxt "$@"

weights=$(ls -t snapshots/lenet/lenet_ssl_iter_*.caffemodel | head -n 1)
echo "== compaction of $weights"
"$PY" -m minicaffe.compact --model prototxt/lenet/lenet_deploy.prototxt --weights "$weights" \
    --out runs/lenet_compact --report runs/lenet_compact/report.md \
    --json runs/lenet_compact/report.json --png runs/lenet_compact/report.png --modes
