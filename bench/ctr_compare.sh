#!/usr/bin/env bash
# Tessera (2 workers + 2 servers, one thread each) against the PyTorch
# reference (bench/torch_ctr.py: one process, one thread) on the same
# click-through-rate model (examples/criteo-ctr.pbtxt) and the same files
# from bench/make_criteo, in one invocation. Issue 16's target: Tessera at
# >= 1.0x PyTorch's samples/s, test AUC within 0.005 of it.
#
# Usage: bench/ctr_compare.sh [BUILD_DIR] [flags]
#   BUILD_DIR     default build (uses BUILD_DIR/tessera, BUILD_DIR/bench/make_criteo)
#   --rows N      training rows to generate (default 200000; test rows: N / 4)
#   --data DIR    where the files are (default /tmp/tessera-ctr-N); files
#                 already there are reused
#   --epochs N    default 1
#   --gzip        Tessera reads the gzip'd files too (default: plain copies,
#                 made once beside them: a worker reaches a block of a gzip'd
#                 file by reading the file from its start, so gzip'd files
#                 cost Tessera a pass from the start per block)
#   --keep        keep the scratch directory (Tessera's run dir, logs, JSON)
#
# Both sides take examples/criteo-ctr.pbtxt's batch: Tessera's batch_size per
# worker, PyTorch batch_size x 2 per step, so both take the same number of
# optimizer steps per epoch. samples/s counts training only (reading the
# files and evaluation excluded) on both sides: Tessera's summary.json
# all_epochs_samples_per_sec, torch_ctr.py's samples_per_sec.
set -uo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
PY=${TORCH_PYTHON:-/usr/bin/python3}
SPEC=examples/criteo-ctr.pbtxt

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

BUILD=build
if [[ $# -gt 0 && $1 != --* ]]; then BUILD=$1; shift; fi
ROWS=200000 DATA= EPOCHS=1 KEEP=0 GZIP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) ROWS=$2; shift ;;
    --data) DATA=$2; shift ;;
    --epochs) EPOCHS=$2; shift ;;
    --gzip) GZIP=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) usage ;;
    *) echo "unknown flag: $1" >&2; usage ;;
  esac
  shift
done
DATA=${DATA:-/tmp/tessera-ctr-$ROWS}
for tool in "$BUILD/tessera" "$BUILD/bench/make_criteo"; do
  [[ -x $tool ]] || { echo "ctr_compare: $tool not found (build first)" >&2; exit 1; }
done

mkdir -p "$DATA"
if [[ ! -f $DATA/train.tsv.gz ]]; then
  "$BUILD/bench/make_criteo" --rows "$ROWS" --seed 1 --out "$DATA/train.tsv.gz" || exit 1
fi
if [[ ! -f $DATA/test.tsv.gz ]]; then
  "$BUILD/bench/make_criteo" --rows $((ROWS / 4)) --seed 1 --rows_seed 1 --out "$DATA/test.tsv.gz" || exit 1
fi
OUT=$(mktemp -d /tmp/ctr_compare.XXXXXX)
[[ $KEEP == 1 ]] && echo "scratch: $OUT" >&2 || trap 'rm -rf "$OUT"' EXIT

BATCH=$(sed -n 's/^batch_size: *\([0-9]*\).*/\1/p' "$SPEC")
TESSERA_SPEC=$SPEC
if [[ $GZIP == 0 ]]; then
  for split in train test; do
    [[ -f $DATA/$split.tsv ]] || gzip -dc "$DATA/$split.tsv.gz" > "$DATA/$split.tsv" || exit 1
  done
  TESSERA_SPEC=$OUT/criteo-ctr.pbtxt
  sed 's/"train.tsv.gz"/"train.tsv"/; s/"test.tsv.gz"/"test.tsv"/' "$SPEC" > "$TESSERA_SPEC"
fi
echo "running tessera train (2 workers + 2 servers, batch $BATCH per worker, $([[ $GZIP == 1 ]] && echo gzip\'d || echo plain) files) ..." >&2
"$BUILD/tessera" train "$TESSERA_SPEC" --data-dir "$DATA" --workers 2 --servers 2 --threads 1 --epochs "$EPOCHS" \
    --max-restarts 0 --progress none --run-dir "$OUT/tessera" > "$OUT/tessera.log" 2>&1
rc=$?
if [[ $rc != 0 || ! -f $OUT/tessera/summary.json ]]; then
  echo "tessera: failed (exit $rc); last lines of its output:" >&2
  tail -n 15 "$OUT/tessera.log" | sed 's/^/  | /' >&2
fi

echo "running bench/torch_ctr.py (1 process, 1 thread, batch $((BATCH * 2))) ..." >&2
"$PY" bench/torch_ctr.py --train "$DATA/train.tsv.gz" --test "$DATA/test.tsv.gz" --batch $((BATCH * 2)) \
    --epochs "$EPOCHS" --threads 1 --json > "$OUT/torch.json" 2> "$OUT/torch.log" \
  || { echo "torch_ctr.py failed:" >&2; tail -n 15 "$OUT/torch.log" >&2; }

"$PY" - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
def load(path):
    try:
        text = open(path).read()
        return json.loads(text) if text.lstrip().startswith("{\n") else json.loads(text.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
tessera = load(os.path.join(out, "tessera", "summary.json"))
torch = load(os.path.join(out, "torch.json"))
rows = []
if tessera:
    test = tessera.get("test", {}).get("binary", {}) or tessera.get("binary", {})
    rows.append(("tessera 2w+2s", tessera.get("all_epochs_samples_per_sec"), test.get("auc"), test.get("log_loss")))
if torch:
    rows.append(("pytorch 1x1", torch["samples_per_sec"], torch["test_auc"], torch["test_log_loss"]))
print(f"{'':16}{'samples/s':>12}{'test AUC':>10}{'log loss':>10}")
for name, speed, auc, loss in rows:
    fmt = lambda v, f: format(v, f) if isinstance(v, (int, float)) else "-"
    print(f"{name:16}{fmt(speed, '12.0f')}{fmt(auc, '10.4f')}{fmt(loss, '10.4f')}")
if len(rows) == 2 and all(isinstance(v, (int, float)) for v in rows[0][1:3]):
    print(f"ratio tessera/pytorch samples/s: {rows[0][1] / rows[1][1]:.2f}  (target >= 1.0)")
    print(f"AUC tessera - pytorch: {rows[0][2] - rows[1][2]:+.4f}  (target within 0.005)")
sys.exit(0 if len(rows) == 2 else 1)
EOF
