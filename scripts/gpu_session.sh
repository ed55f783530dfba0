#!/usr/bin/env bash
# One short session on a lent GPU machine, most important check first, so
# that a run cut short still brings back what it did. Every step writes its
# own log under OUT_DIR; summary.txt collects the lines worth reading.
#
#   bash scripts/gpu_session.sh OUT_DIR BIN_DIR
#
# BIN_DIR: a folder made by scripts/gpu_bundle.sh (binaries, lib.tar.xz,
# data/). Steps: the CUDA tests; the sparse_embedding's twin (its tests,
# and the Criteo example on cuda against cpu); the CNN training step on CPU and GPU
# (cuda_model_bench) and, where PyTorch with CUDA is installed, PyTorch's
# on the same GPU; a 1-epoch `tessera train --device cuda`, its export,
# `predict --device cuda` against `--device cpu`, and `serve --device cuda`
# against `--device cpu` (fp32 and int8 versions); onnxruntime against
# `tessera predict` (fp32, int8, fp16) where it is installed; the embedding
# example on the GPU; --overlap-push and --overlap-pull on and off.
set -u
OUT=${1:?usage: gpu_session.sh OUT_DIR BIN_DIR}
BIN=${2:?usage: gpu_session.sh OUT_DIR BIN_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
S="$OUT/summary.txt"
note() { echo "$*" | tee -a "$S"; }
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }

note "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$S"
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
  path=$(find /usr/local /opt /usr/lib -name "$lib" 2>/dev/null | head -1)
  note "$lib: ${path:-missing}"
  [ -n "$path" ] && LIBS="${LIBS:-}:$(dirname "$path")"
done
mkdir -p /tmp/gpu-lib && tar -xJf "$BIN/lib.tar.xz" -C /tmp/gpu-lib
export LD_LIBRARY_PATH="/tmp/gpu-lib/lib${LIBS:-}:${LD_LIBRARY_PATH:-}"
ldd "$BIN/tessera" | grep "not found" | tee -a "$S"

# The tests run `tessera` from the build tree's path (CudaDeviceTest.DeviceFlag).
tessera_path=$(cat "$BIN/tessera_path" 2>/dev/null)
[ -n "$tessera_path" ] && [ ! -e "$tessera_path" ] && mkdir -p "$(dirname "$tessera_path")" && ln -sf "$PWD/$BIN/tessera" "$tessera_path"

note "== cuda_layers_test ($(elapsed))"
timeout 150 "$BIN/cuda_layers_test" > "$OUT/cuda_layers_test.log" 2>&1
note "exit $?"
grep -E "^\[ *(FAILED|PASSED|SKIPPED) *\]|tests? ran|Failure|Expected|Which is|Value of|Actual" "$OUT/cuda_layers_test.log" |
  head -60 | tee -a "$S"

note "== the sparse_embedding on CUDA: its tests, and examples/criteo-ctr.pbtxt on cuda and cpu ($(elapsed))"
grep -E "SparseEmbedding" "$OUT/cuda_layers_test.log" | grep -E "^\[ *(OK|FAILED|SKIPPED) *\]" | tee -a "$S"
if [ -x "$BIN/make_criteo" ]; then
  mkdir -p /tmp/criteo
  "$BIN/make_criteo" --rows 40000 --seed 1 --out /tmp/criteo/train.tsv.gz > /dev/null 2>&1
  "$BIN/make_criteo" --rows 5000 --seed 1 --rows_seed 1 --out /tmp/criteo/test.tsv.gz > /dev/null 2>&1
  for device in cuda cpu; do
    rm -rf /tmp/run-ctr-$device
    timeout 120 "$BIN/tessera" train examples/criteo-ctr.pbtxt --device $device --data_dir /tmp/criteo \
      --progress none --run_dir /tmp/run-ctr-$device > "$OUT/ctr-$device.log" 2>&1
    note "criteo-ctr --device $device: exit $? $(grep -ohE '"(auc|samples_per_sec)": [0-9.]+' /tmp/run-ctr-$device/summary.json 2>/dev/null | tr '\n' ' ')"
  done
else
  note "no make_criteo in $BIN: skipped"
fi

note "== cuda_model_bench, 1 CPU thread ($(elapsed))"
for spec in examples/fmnist-cnn.pbtxt examples/fmnist-cnn-bn.pbtxt; do
  timeout 60 "$BIN/cuda_model_bench" --spec "$spec" --batch 64 --steps 100 --threads 1 > "$OUT/bench-$(basename "$spec" .pbtxt).log" 2>&1
  grep -vE "^ +layer|^  [a-z0-9_.]+ +[0-9.]+ ms" "$OUT/bench-$(basename "$spec" .pbtxt).log" | tail -8 | tee -a "$S"
done

note "== PyTorch on the same GPU ($(elapsed))"
for py in /usr/bin/python3 python3; do
  if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    for model in cnn cnn-bn; do
      timeout 60 "$py" bench/torch_cuda_step.py --model "$model" --batch 64 --steps 200 2>&1 | tee -a "$S"
    done
    break
  fi
  note "$py: no PyTorch with CUDA"
done

note "== tessera train --device cuda, 1 epoch of 10000 ($(elapsed))"
rm -rf /tmp/run-cuda
timeout 90 "$BIN/tessera" train examples/fmnist-cnn.pbtxt --device cuda --data_dir "$BIN/data" --epochs 1 \
  --workers 1 --servers 1 --progress none --run_dir /tmp/run-cuda > "$OUT/train-cuda.log" 2>&1
note "exit $?"; tail -3 "$OUT/train-cuda.log" | tee -a "$S"
cp /tmp/run-cuda/summary.json "$OUT/summary-cuda.json" 2>/dev/null
cp /tmp/run-cuda/logs/worker-0.log "$OUT/worker-cuda.log" 2>/dev/null
grep -h "computing on" /tmp/run-cuda/logs/worker-0.log 2>/dev/null | head -1 | tee -a "$S"

if [ -f /tmp/run-cuda/summary.json ]; then
  note "== export, predict --device cuda vs cpu ($(elapsed))"
  rm -rf /tmp/gpu-repo
  timeout 60 "$BIN/tessera" export /tmp/run-cuda --out /tmp/gpu-repo/cnn --data_dir "$BIN/data" 2>&1 | tail -1 | tee -a "$S"
  for device in cuda cpu; do
    timeout 60 "$BIN/tessera" predict /tmp/gpu-repo/cnn "$BIN/data/t10k-images-idx3-ubyte.gz" \
      --labels "$BIN/data/t10k-labels-idx1-ubyte.gz" --out "$OUT/predict-$device.csv" --device "$device" 2>&1 |
      tail -1 | tee -a "$S"
  done
  python3 - "$OUT/predict-cuda.csv" "$OUT/predict-cpu.csv" <<'PY' 2>&1 | tee -a "$S"
import sys
rows = [[line.split(",") for line in open(path).read().splitlines()[1:]] for path in sys.argv[1:3]]
same = sum(a[1] == b[1] for a, b in zip(*rows))
diff = max(abs(float(x) - float(y)) for a, b in zip(*rows) for x, y in zip(a[2:], b[2:]))
print(f"predict cuda vs cpu: {same} of {len(rows[1])} classes equal, max probability difference {diff:.2e}")
PY
fi

if [ -f /tmp/run-cuda/summary.json ]; then
  note "== serve --device cuda vs cpu, fp32 and int8 versions ($(elapsed))"
  timeout 60 "$BIN/tessera" export /tmp/run-cuda --out /tmp/gpu-repo/cnn --data_dir "$BIN/data" --quantize int8 2>&1 |
    tail -1 | tee -a "$S"
  timeout 40 "$BIN/tessera" serve --model-repo /tmp/gpu-repo --port 18500 --device cuda > "$OUT/serve-cuda.log" 2>&1 &
  timeout 40 "$BIN/tessera" serve --model-repo /tmp/gpu-repo --port 18501 --device cpu > "$OUT/serve-cpu.log" 2>&1 &
  sleep 3
  python3 - "$BIN/data/t10k-images-idx3-ubyte.gz" <<'PY' 2>&1 | tee -a "$S"
import gzip, json, sys, urllib.request
pixels = gzip.open(sys.argv[1]).read()[16:16 + 8 * 784]
x = [(b / 255.0 - 0.2860) / 0.3530 for b in pixels]
def infer(port, version):
    body = json.dumps({"inputs": [{"name": "input", "shape": [8, 1, 28, 28], "datatype": "FP32", "data": x}]})
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/cnn/versions/{version}/infer",
                                     body.encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=20))["outputs"][0]["data"]
for version in ("1", "2"):
    a, b = infer(18500, version), infer(18501, version)
    print(f"serve version {version}: cuda vs cpu, max |logit difference| {max(abs(p - q) for p, q in zip(a, b)):.2e}")
PY
  pkill -f "tessera serve --model-repo /tmp/gpu-repo"
fi

note "== onnxruntime against tessera predict, fp32, fp16 and int8 versions ($(elapsed))"
for py in /opt/torch/.venv/bin/python3 /usr/bin/python3 python3; do
  "$py" -c "import onnxruntime, numpy" 2>/dev/null && { ORT_PY=$py; break; }
done
if [ -n "${ORT_PY:-}" ] && [ -f /tmp/run-cuda/summary.json ]; then
  timeout 60 "$BIN/tessera" export /tmp/run-cuda --out /tmp/gpu-repo/cnn --data_dir "$BIN/data" --quantize fp16 2>&1 |
    tail -1 | tee -a "$S"
  for v in 1 2 3; do  # fp32, int8 (above), fp16
    timeout 60 "$BIN/tessera" predict /tmp/gpu-repo/cnn/$v "$BIN/data/t10k-images-idx3-ubyte.gz" --out /tmp/ort-$v.csv \
      --device cpu > /dev/null 2>&1
    "$ORT_PY" - /tmp/gpu-repo/cnn/$v /tmp/ort-$v.csv "$BIN/data/t10k-images-idx3-ubyte.gz" <<'PY' 2>&1 | tee -a "$S"
import gzip, sys
import numpy as np, onnxruntime as ort
version, csv, images = sys.argv[1:4]
session = ort.InferenceSession(version + "/model.onnx", providers=["CPUExecutionProvider"])
props = session.get_modelmeta().custom_metadata_map
scale, mean, std = (np.float32(props["tessera.input_" + k]) for k in ("scale", "mean", "std"))
raw = gzip.open(images).read()
n = int.from_bytes(raw[4:8], "big")
x = ((np.frombuffer(raw[16:], dtype=np.uint8).astype(np.float32) * scale - mean) / std).reshape(n, 1, 28, 28)
logits = session.run(None, {session.get_inputs()[0].name: x})[0]
p = np.exp(logits - logits.max(1, keepdims=True))
p /= p.sum(1, keepdims=True)
rows = [line.split(",") for line in open(csv).read().splitlines()[1:]]
classes = np.array([int(r[1]) for r in rows])
probabilities = np.array([[float(v) for v in r[2:]] for r in rows])
print(f"{version} ({props.get('tessera.precision')}): onnxruntime {ort.__version__} vs tessera predict: "
      f"{(p.argmax(1) == classes).sum()} of {n} classes equal, max probability difference "
      f"{np.abs(p - probabilities).max():.2e}")
PY
  done
else
  note "no onnxruntime (or no trained model): skipped"
fi

note "== examples/fmnist-embedding.pbtxt --device cuda, 1 epoch, 2 workers + 2 servers ($(elapsed))"
rm -rf /tmp/run-emb
timeout 90 "$BIN/tessera" train examples/fmnist-embedding.pbtxt --device cuda --data_dir "$BIN/data" --epochs 1 \
  --progress none --run_dir /tmp/run-emb 2>&1 | grep -E "done:|rror" | head -3 | tee -a "$S"

note "== --overlap-push / --overlap-pull on and off, cuda, 2 epochs, two rounds ($(elapsed))"
for shape in "1 1" "2 2"; do
  for round in 1 2; do
    for mode in "true true" "true false" "false true" "false false"; do
      set -- $shape $mode
      rm -rf /tmp/run-o
      timeout 60 "$BIN/tessera" train examples/fmnist-cnn.pbtxt --device cuda --data_dir "$BIN/data" --epochs 2 \
        --workers $1 --servers $2 --progress none --overlap-push=$3 --overlap-pull=$4 --run_dir /tmp/run-o > /dev/null 2>&1
      note "$1+$2 round $round push $3 pull $4: $(grep -hE '"samples_per_sec"|worker_compute|worker_wait' /tmp/run-o/summary.json 2>/dev/null | tr -d '\n ')"
    done
  done
done

note "== tessera train --device cpu, 1 epoch of 10000, 16 threads ($(elapsed))"
rm -rf /tmp/run-cpu
timeout 60 "$BIN/tessera" train examples/fmnist-cnn.pbtxt --device cpu --data_dir "$BIN/data" --epochs 1 \
  --workers 1 --servers 1 --progress none --run_dir /tmp/run-cpu > "$OUT/train-cpu.log" 2>&1
note "exit $?"; tail -2 "$OUT/train-cpu.log" | tee -a "$S"
note "== done ($(elapsed))"
