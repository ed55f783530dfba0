#!/usr/bin/env bash
# Quickstart (1): install, build, and train the Fashion-MNIST MLP on a local
# cluster of 1 scheduler, 2 servers and 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/tessera train examples/fmnist-mlp.pbtxt "$@"
