#!/usr/bin/env bash
# Serving benchmark: makes a model repository (examples/fmnist-cnn.pbtxt
# trained briefly, exported with tessera export) and runs serve_bench on it:
# 32 concurrent batch-1 clients against tessera serve and against a no-op
# HTTP handler (the ceiling), SECONDS each (default 30).
#
#   bench/serve_bench.sh [BUILD_DIR] [SECONDS] [extra serve_bench flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECONDS_EACH=${2:-30}
shift $(( $# > 2 ? 2 : $# ))
WORK=$(mktemp -d /tmp/serve_bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
"$BUILD/tessera" train examples/fmnist-cnn.pbtxt --run-dir "$WORK/run" --epochs 1 --servers 1 --workers 1 \
  --max-train-examples 2048 --max-test-examples 256 --progress none > "$WORK/train.txt"
"$BUILD/tessera" export "$WORK/run" --out "$WORK/repo/fmnist-cnn" --noevaluate > /dev/null
"$BUILD/bench/serve_bench" --model-repo "$WORK/repo" --seconds "$SECONDS_EACH" --tessera "$BUILD/tessera" "$@"
