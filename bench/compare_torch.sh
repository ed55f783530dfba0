#!/usr/bin/env bash
# Tessera against the PyTorch reference (bench/torch_reference.py) on the same
# model, data, batch, optimizer and thread count, in one invocation.
#
# Usage: bench/compare_torch.sh MODEL [BUILD_DIR] [flags]
#   MODEL         mlp | cnn | cnn-bn  (examples/fmnist-MODEL.pbtxt)
#   BUILD_DIR     default build (uses BUILD_DIR/tessera)
#   --ddp         Tessera 2 workers + 2 servers (1 thread each) against PyTorch
#                 DistributedDataParallel with 2 processes x 1 thread (gloo);
#                 default: Tessera 1 worker + 1 server against 1 PyTorch process
#   --epochs N    training epochs for both (default 1)
#   --max-train N first N training examples only (default: all for mlp, 6400 for
#                 the CNNs, which run at a few hundred samples/s per core)
#   --threads N   compute threads of the Tessera worker and the PyTorch process
#                 (default 1; forced to 1 with --ddp)
#   --batch N     examples per worker / process per step (default: the spec's)
#   --steps N     PyTorch speed mode: timed steps (default 300 mlp, 60 CNNs)
#   --spec FILE   Tessera job spec (default examples/fmnist-MODEL.pbtxt); it
#                 must describe MODEL, as the PyTorch side builds MODEL itself
#   --keep        keep the scratch directory (Tessera's run dir, logs, JSON)
#
# Rows: Tessera's summary.json (samples/s over training time, evaluation
# excluded; test accuracy after the last epoch), PyTorch's train mode (same
# epochs and examples, same samples/s definition) and PyTorch's speed mode
# (steady-state steps only). Ratios are Tessera / PyTorch. If Tessera fails
# (for instance a layer it does not support yet) the row says "failed" and
# PyTorch's figures are still printed; the exit status is then 1.
# The optimizer must be SGD (the reference implements SGD only); the learning
# rate, momentum, weight decay, learning-rate schedule (schedule,
# warmup_epochs, step_epochs, gamma, min_learning_rate), batch size and seed
# are read from the spec.
set -uo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
PY=${TORCH_PYTHON:-/usr/bin/python3}

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

MODEL=${1:-}
case "$MODEL" in mlp|cnn|cnn-bn) shift ;; -h|--help|"") usage ;; *) echo "unknown model: $MODEL" >&2; usage ;; esac
BUILD=build
if [[ $# -gt 0 && $1 != --* ]]; then BUILD=$1; shift; fi
DDP=0 EPOCHS=1 MAX_TRAIN= THREADS=1 BATCH= STEPS= KEEP=0 SPEC=examples/fmnist-$MODEL.pbtxt
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ddp) DDP=1 ;;
    --epochs) EPOCHS=$2; shift ;;
    --max-train) MAX_TRAIN=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --spec) SPEC=$2; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) usage ;;
    *) echo "unknown flag: $1" >&2; usage ;;
  esac
  shift
done
if [[ $MODEL == mlp ]]; then
  MAX_TRAIN=${MAX_TRAIN:-0} STEPS=${STEPS:-300}
else
  MAX_TRAIN=${MAX_TRAIN:-6400} STEPS=${STEPS:-60}
fi
[[ $DDP == 1 ]] && THREADS=1

# Settings from the spec (proto defaults where absent): the optimizer block's
# fields and the top-level batch_size and seed, read with a minimal text-format
# scanner (comments stripped, braces tracked, so batch_norm's momentum is not
# taken for the optimizer's).
spec_field() {  # BLOCK.FIELD DEFAULT   (BLOCK empty for top level: .FIELD)
  local v=
  [[ -f $SPEC ]] && v=$("$PY" - "$SPEC" "$1" <<'PYEOF'
import re, sys
# Tokens: strings, braces/brackets, colons, bare words (names, numbers, enums); comments dropped.
toks = re.findall(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}<>\[\],;:]|[^\s{}<>\[\],;:"\'#]+|#[^\n]*',
                  open(sys.argv[1]).read())
toks = [t for t in toks if not t.startswith("#")]
want, path, i = sys.argv[2], [], 0
while i < len(toks):
    t = toks[i]
    if t in ("}", ">"):
        path and path.pop(); i += 1; continue
    if not re.match(r"[A-Za-z_]", t):
        i += 1; continue
    j = i + 1
    if j < len(toks) and toks[j] == ":":
        j += 1
    if j < len(toks) and toks[j] in ("{", "<"):
        path.append(t); i = j + 1; continue
    if j < len(toks) and ".".join(path) + "." + t == want:
        print(toks[j].strip("\"'")); break
    i = j + 1
PYEOF
)
  echo "${v:-$2}"
}
OPT_TYPE=$(spec_field optimizer.type SGD)
LR=$(spec_field optimizer.learning_rate 0.01)
MOMENTUM=$(spec_field optimizer.momentum 0)
WD=$(spec_field optimizer.weight_decay 0)
SEED=$(spec_field .seed 1)
BATCH=${BATCH:-$(spec_field .batch_size 64)}
SCHEDULE=$(spec_field optimizer.schedule CONSTANT)
WARMUP_EPOCHS=$(spec_field optimizer.warmup_epochs 0)
STEP_EPOCHS=$(spec_field optimizer.step_epochs 0)
GAMMA=$(spec_field optimizer.gamma 0.1)
MIN_LR=$(spec_field optimizer.min_learning_rate 0)
if [[ ! -f $SPEC ]]; then
  echo "warning: $SPEC not found: PyTorch runs with the proto's defaults (SGD lr 0.01, momentum 0, batch 64)" >&2
fi
if [[ $OPT_TYPE != SGD ]]; then
  echo "compare_torch.sh: $SPEC uses optimizer $OPT_TYPE; the reference implements SGD only" >&2
  exit 2
fi

OUT=$(mktemp -d)
if [[ $KEEP == 1 ]]; then echo "scratch directory: $OUT" >&2; else trap 'rm -rf "$OUT"' EXIT; fi

if [[ $DDP == 1 ]]; then
  WORKERS=2 SERVERS=2 TORCH_PAR=(--ddp 2) SHAPE="2 workers + 2 servers vs DDP 2x1"
else
  WORKERS=1 SERVERS=1 TORCH_PAR=(--threads "$THREADS") SHAPE="1 worker + 1 server vs 1 process"
fi
echo "$MODEL: $SHAPE, $THREADS thread(s) each, batch $BATCH per worker, SGD lr $LR momentum $MOMENTUM" \
     "weight_decay $WD schedule $SCHEDULE warmup_epochs $WARMUP_EPOCHS, $EPOCHS epoch(s), max-train $MAX_TRAIN, seed $SEED" >&2

# --- Tessera
TESSERA_STATUS=ok
if [[ ! -x $BUILD/tessera ]]; then
  TESSERA_STATUS="failed ($BUILD/tessera not found)"
elif [[ ! -f $SPEC ]]; then
  TESSERA_STATUS="failed ($SPEC not found)"
else
  echo "running tessera train ..." >&2
  "$BUILD/tessera" train "$SPEC" --workers "$WORKERS" --servers "$SERVERS" --epochs "$EPOCHS" \
      --threads "$THREADS" --batch-size "$BATCH" --seed "$SEED" --max-train-examples "$MAX_TRAIN" \
      --max-restarts 0 --progress none --run-dir "$OUT/tessera" > "$OUT/tessera.log" 2>&1
  rc=$?
  if [[ $rc != 0 || ! -f $OUT/tessera/summary.json ]]; then
    TESSERA_STATUS="failed (exit $rc)"
    echo "tessera: failed (exit $rc); last lines of its output:" >&2
    tail -n 15 "$OUT/tessera.log" | sed 's/^/  | /' >&2
  fi
fi

# --- PyTorch
COMMON=(--model "$MODEL" --batch "$BATCH" --lr "$LR" --momentum "$MOMENTUM" --weight-decay "$WD"
        --seed "$SEED" --schedule "${SCHEDULE,,}" --warmup-epochs "$WARMUP_EPOCHS" --min-lr "$MIN_LR"
        --gamma "$GAMMA" --progress-every 0 --json "${TORCH_PAR[@]}")
[[ ${SCHEDULE^^} == STEP ]] && COMMON+=(--step-epochs "$STEP_EPOCHS")
echo "running torch_reference.py train ..." >&2
"$PY" bench/torch_reference.py "${COMMON[@]}" --mode train --epochs "$EPOCHS" --max-train "$MAX_TRAIN" \
    > "$OUT/torch_train.json" 2> "$OUT/torch_train.log" \
  || { echo "torch train failed:" >&2; tail -n 15 "$OUT/torch_train.log" >&2; }
echo "running torch_reference.py speed ($STEPS steps) ..." >&2
"$PY" bench/torch_reference.py "${COMMON[@]}" --mode speed --steps "$STEPS" \
    > "$OUT/torch_speed.json" 2> "$OUT/torch_speed.log" \
  || { echo "torch speed failed:" >&2; tail -n 15 "$OUT/torch_speed.log" >&2; }

# --- table
"$PY" - "$OUT" "$TESSERA_STATUS" <<'EOF'
import json, os, sys
out, tessera_status = sys.argv[1], sys.argv[2]

def load(path):
    try:
        with open(path) as f:
            text = f.read()
        try:
            return json.loads(text)  # summary.json: one (indented) object
        except ValueError:
            return json.loads([l for l in text.splitlines() if l.strip()][-1])  # last JSON line
    except (OSError, IndexError, ValueError):
        return None

tessera = load(os.path.join(out, "tessera", "summary.json")) if tessera_status == "ok" else None
train = load(os.path.join(out, "torch_train.json"))
speed = load(os.path.join(out, "torch_speed.json"))

def row(name, r, status=None):
    if r is None:
        print(f"{name:<22} {status or 'failed'}")
        return
    acc = r.get("test_accuracy")
    acc = f"{acc:.4f}" if isinstance(acc, (int, float)) else "-"
    extra = ""
    if "allreduce_ms_per_step" in r:
        extra = f"   allreduce {r['allreduce_ms_per_step']:.2f} ms/step ({100 * r['allreduce_share']:.1f}%)"
    print(f"{name:<22} {r['samples_per_sec']:>12.0f} {acc:>14}{extra}")

print(f"{'':<22} {'samples/s':>12} {'test_accuracy':>14}")
row("tessera", tessera, "tessera: " + tessera_status)
row("pytorch train", train)
row("pytorch speed", speed)
if tessera:
    for name, r in (("train", train), ("speed", speed)):
        if r and r["samples_per_sec"] > 0:
            print(f"ratio tessera/pytorch ({name}): {tessera['samples_per_sec'] / r['samples_per_sec']:.2f}")
sys.exit(0 if tessera and train and speed else 1)
EOF
