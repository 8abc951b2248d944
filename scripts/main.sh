#!/usr/bin/env bash
# The main job: the SSL paper's pipeline on LeNet / Fashion-MNIST (python -m minicaffe.experiments
# lenet): a dense baseline; SSL from its weights (filters + channels, and filter shapes);
# compaction; fine-tuning of the compacted nets with their zero groups frozen; a dense net trained
# as long for comparison; then the closing table in the form of the paper's Tables 1-2 (error,
# filters and channels, filter sizes, FLOPs and measured speedups per layer and end to end, batch
# 1 and 64) and the figures, all in results/lenet/. A status line per stage shows the ETA.
# Extra arguments go to the experiment (e.g. --quick for a shortened smoke run, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh

# Fashion-MNIST into data/fashion-mnist/, where the prototxt files read it (setup.sh installed
# Debian's dataset-fashion-mnist when it could; `get` copies it, or downloads, verified).
"$PY" -m minicaffe.data get fashion-mnist --dir data/fashion-mnist

"$PY" -m minicaffe.experiments lenet --dataset fashion-mnist "$@"
