#!/usr/bin/env bash
# What pushing gradients layer by layer (--overlap-push, the default) gains
# over pushing the whole gradient after backward: the same job run with the
# overlap on and off, alternating, ROUNDS times each, 1 compute thread per
# worker. Prints each run's samples/s (summary.json) and the median ratio.
#
# Usage: bench/overlap_bench.sh [BUILD_DIR] [SPEC] [ROUNDS] [extra tessera train flags...]
#   defaults: build examples/fmnist-cnn.pbtxt 3 --workers 1 --servers 1 --epochs 1 --max-train-examples 3200
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
BUILD=${1:-build}
SPEC=${2:-examples/fmnist-cnn.pbtxt}
ROUNDS=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
EXTRA=("$@")
[[ ${#EXTRA[@]} -gt 0 ]] || EXTRA=(--workers 1 --servers 1 --epochs 1 --max-train-examples 3200 --max-test-examples 500)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
rate() { grep -o '"samples_per_sec": [0-9.e+]*' "$1/summary.json" | awk '{print $2}'; }
on=() off=()
for ((r = 0; r < ROUNDS; ++r)); do
  for mode in true false; do
    run="$OUT/$mode-$r"
    "$BUILD/tessera" train "$SPEC" "${EXTRA[@]}" --threads 1 --overlap-push="$mode" --progress none \
      --run-dir "$run" > /dev/null
    sps=$(rate "$run")
    printf "round %d  overlap %-5s  %10.0f samples/s\n" "$r" "$mode" "$sps"
    if [[ $mode == true ]]; then on+=("$sps"); else off+=("$sps"); fi
  done
done
median() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
m_on=$(median "${on[@]}") m_off=$(median "${off[@]}")
printf "median: overlap on %.0f, off %.0f samples/s: %.3fx\n" "$m_on" "$m_off" "$(echo "$m_on / $m_off" | bc -l)"
