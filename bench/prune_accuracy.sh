#!/usr/bin/env bash
# Accuracy cost of pruning: exports a trained fmnist-cnn checkpoint with
# SPARSITY (default 0.9) unstructured pruning and FINE_TUNE_EPOCHS (default 1)
# epochs of fine-tuning (tessera export --prune-sparsity --fine-tune-epochs),
# prints the test accuracy after each step from the export's manifest, and
# fails (exit 1) when the fine-tuned model's accuracy is more than MAX_DROP
# (default 1.0) points below the source model's. Without a checkpoint it first
# trains examples/fmnist-cnn.pbtxt for TRAIN_EPOCHS (default 2) epochs.
#
#   bench/prune_accuracy.sh [BUILD_DIR] [CHECKPOINT_OR_RUN_DIR] [extra export flags...]
#   SPARSITY=0.9 FINE_TUNE_EPOCHS=1 MAX_DROP=1.0 MODE=unstructured bench/prune_accuracy.sh build runs/fmnist-cnn-...
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SOURCE=${2:-}
shift $(( $# > 2 ? 2 : $# ))
SPARSITY=${SPARSITY:-0.9}
FINE_TUNE_EPOCHS=${FINE_TUNE_EPOCHS:-1}
MAX_DROP=${MAX_DROP:-1.0}
MODE=${MODE:-unstructured}
WORK=$(mktemp -d /tmp/prune_accuracy.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
if [[ -z "$SOURCE" ]]; then
  SOURCE="$WORK/run"
  "$BUILD/tessera" train examples/fmnist-cnn.pbtxt --run-dir "$SOURCE" --epochs "${TRAIN_EPOCHS:-2}" \
    --progress none > "$WORK/train.txt"
fi
"$BUILD/tessera" export "$SOURCE" --out "$WORK/repo/pruned" --prune-sparsity "$SPARSITY" --prune-mode "$MODE" \
  --fine-tune-epochs "$FINE_TUNE_EPOCHS" --progress none "$@"
python3 - "$WORK/repo/pruned/1/manifest.json" "$MAX_DROP" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
acc = {s["step"]: s["test_accuracy"] for s in m["steps"]}
d = m["pruning_details"]
print(f"{d['mode']} {d['requested_sparsity']}: achieved sparsity {d['achieved_sparsity']:.4f}, "
      f"{d['parameters_before']} -> {d['parameters_after']} parameters, {d['fine_tune_epochs']} fine-tuning epoch(s)")
for step in m["steps"]:
    print(f"  {step['step']:<10} test accuracy {step['test_accuracy']:.4f}")
final = acc.get("fine_tune", acc["prune"])
drop = (acc["source"] - final) * 100
print(f"drop {drop:+.2f} points (target <= {float(sys.argv[2]):.2f})")
sys.exit(0 if drop <= float(sys.argv[2]) else 1)
PY
