#!/usr/bin/env bash
# The main job: train LeNet on Fashion-MNIST with SSL (group Lasso on filters and shape fibres),
# print the sparsity report, then time the learned net dense and compacted (conv_mode LOWERED_CCNMM).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh

# Fashion-MNIST into data/fashion-mnist/, where the prototxt files read it (setup.sh installed
# Debian's dataset-fashion-mnist when it could; `get` copies it, or downloads, verified).
"$PY" -m minicaffe.data get fashion-mnist --dir data/fashion-mnist

"$PY" -m minicaffe.train --solver prototxt/lenet/lenet_ssl_solver.prototxt "$@"

weights=$(ls -t snapshots/lenet/lenet_ssl_iter_*.caffemodel | head -n 1)
for model in lenet_deploy lenet_deploy_compact; do
    echo "== $model with $weights"
    "$PY" -m minicaffe.time --model "prototxt/lenet/$model.prototxt" --weights "$weights" \
        --phase TEST --iterations 50 2>&1 | grep -E "conv[12]\s+forward|Average Forward pass" || true
done
