#!/usr/bin/env bash
# Training throughput of examples/fmnist-mlp.pbtxt: samples/s (training time,
# evaluation excluded) with 1 worker + 1 server and with 2 workers + 2
# servers, 1 compute thread per worker. Usage: bench/train_bench.sh [BUILD_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
EPOCHS=${2:-2}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
printf "%-22s %14s %14s %10s\n" "cluster" "samples/s" "test_accuracy" "epochs"
for shape in "1 1" "2 2"; do
  set -- $shape
  workers=$1 servers=$2
  run="$OUT/w${workers}s${servers}"
  "$BUILD/tessera" train examples/fmnist-mlp.pbtxt --workers "$workers" --servers "$servers" \
    --epochs "$EPOCHS" --threads 1 --progress none --run-dir "$run" > /dev/null
  sps=$(grep -o '"samples_per_sec": [0-9.e+]*' "$run/summary.json" | awk '{print $2}')
  acc=$(grep -o '"test_accuracy": [0-9.e+]*' "$run/summary.json" | awk '{print $2}')
  printf "%-22s %14.0f %14.4f %10s\n" "${workers} worker + ${servers} server" "$sps" "$acc" "$EPOCHS"
done
