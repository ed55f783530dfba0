#!/bin/bash
# Sparse against dense pushes and pulls of an embedding model, in the same run:
# gradient bytes a worker pushes per step and parameter bytes it gets back
# (summary.json push_bytes_per_step, pull_bytes_per_step),
# training samples/s, and whether the two trained the same parameters.
#
# The data is made here: 20,000 examples of 16 ids drawn from a Zipf-like
# distribution over VOCAB ids (default 100,000; int32 IDX images [count, 1,
# 16]); the label is a function of the first id. The model is embedding
# VOCAB x 32 -> linear 10, on 2 workers x 2 servers, 16 examples per worker
# per step.
#
#   bash bench/sparse_push.sh [BUILD_DIR] [EPOCHS] [VOCAB]
set -euo pipefail
build=${1:-build}
epochs=${2:-3}
vocab=${3:-100000}
tessera=$build/tessera
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$vocab" <<'PY'
import gzip, itertools, random, struct, sys
out, vocab = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
# Zipf-like: a few ids are common, most rare.
cumulative = list(itertools.accumulate(1.0 / (i + 1) for i in range(vocab)))
def write(prefix, count):
    ids, labels = [], bytearray()
    for _ in range(count):
        row = rng.choices(range(vocab), cum_weights=cumulative, k=16)
        ids += row
        labels.append(row[0] % 10)
    with gzip.open(f"{out}/{prefix}-images.gz", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 0x0C, 3, count, 1, 16) + struct.pack(f">{len(ids)}i", *ids))
    with gzip.open(f"{out}/{prefix}-labels.gz", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, count) + bytes(labels))
write("train", 20000)
write("test", 2000)
PY

for mode in true false; do
  cat > "$work/spec-$mode.pbtxt" <<SPEC
name: "sparse-$mode"
model {
  layer { embedding { num_embeddings: $vocab embedding_dim: 32 sparse_gradients: $mode } }
  layer { linear { out_features: 10 } }
}
data { dir: "$work" train_images: "train-images.gz" train_labels: "train-labels.gz"
       test_images: "test-images.gz" test_labels: "test-labels.gz" mean: 0 std: 1 }
cluster { servers: 2 workers: 2 }
optimizer { learning_rate: 0.05 momentum: 0.9 }
checkpoint { enabled: false }
batch_size: 16
epochs: $epochs
SPEC
  "$tessera" train "$work/spec-$mode.pbtxt" --run-dir "$work/run-$mode" --threads 1 --progress none > /dev/null
done

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
s = json.load(open(f"{work}/run-true/summary.json"))
d = json.load(open(f"{work}/run-false/summary.json"))
print(f"{'':22}{'sparse':>14}{'dense':>14}{'ratio':>8}")
for key in ("push_bytes_per_step", "pull_bytes_per_step", "samples_per_sec", "worker_push_seconds", "worker_wait_seconds", "test_accuracy"):
    ratio = s[key] / d[key] if d[key] else float("nan")
    print(f"{key:22}{s[key]:>14.4g}{d[key]:>14.4g}{ratio:>8.3f}")
print("same parameters:", s["params_sha256"] == d["params_sha256"])
PY
