#!/usr/bin/env bash
# The CUDA checks on a machine with a GPU, in one go: what the machine has,
# the CUDA tests (tests/cuda_layers_test.cc), the CPU-vs-GPU benchmark
# (bench/cuda_model_bench.cc) and a short `tessera train --device` on each
# device. Results land in OUT_DIR (gpu_check.log and one log per step).
#
#   bash scripts/gpu_check.sh OUT_DIR [BIN_DIR]
#
# BIN_DIR holds the binaries (cuda_layers_test, cuda_model_bench, tessera),
# optionally lib.tar.xz with the non-CUDA shared libraries they need and
# data/ with a Fashion-MNIST cut; scripts/gpu_bundle.sh makes such a folder on a build
# machine (the GPU machine may lack the Debian packages). Without BIN_DIR
# (or when its binaries cannot start) it configures and builds build-gpu here.
set -u
OUT_DIR=${1:?usage: gpu_check.sh OUT_DIR [BIN_DIR]}
BIN=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUT_DIR"
exec > >(tee "$OUT_DIR/gpu_check.log") 2>&1

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
(nvcc --version | tail -1; cmake --version | head -1; grep PRETTY /etc/os-release; nproc) 2>&1
echo "== CUDA libraries"
ls /usr/local/cuda/lib64 2>/dev/null | grep -E "^lib(cudart|cublas|cudnn)\.so" | head
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
  path=$(find /usr/local /opt /usr/lib -name "$lib" 2>/dev/null | head -1)
  echo "$lib: ${path:-missing}"
  [ -n "$path" ] && LIBS="${LIBS:-}:$(dirname "$path")"
done
echo "== Debian packages the full build needs"
for lib in libprotobuf libzmq librocksdb libdnnl libopenblas libglog libgflags libpng16 libjpeg; do
  echo "$lib: $(ldconfig -p | grep -c "$lib")"
done

if [ -n "$BIN" ]; then
  mkdir -p /tmp/gpu-check-lib
  [ -f "$BIN/lib.tar.xz" ] && tar -xJf "$BIN/lib.tar.xz" -C /tmp/gpu-check-lib
  export LD_LIBRARY_PATH="/tmp/gpu-check-lib/lib${LIBS:-}:${LD_LIBRARY_PATH:-}"
  if ldd "$BIN/cuda_layers_test" | grep "not found"; then
    echo "the carried binaries cannot start here; building instead"
    BIN=
  fi
fi
if [ -z "$BIN" ]; then
  echo "== build"
  export LD_LIBRARY_PATH="${LIBS:-}:${LD_LIBRARY_PATH:-}"
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT_DIR/configure.log" 2>&1 &&
    cmake --build build-gpu -j16 --target cuda_layers_test cuda_model_bench tessera > "$OUT_DIR/build.log" 2>&1 ||
    { tail -30 "$OUT_DIR/configure.log" "$OUT_DIR/build.log" 2>/dev/null; exit 1; }
  mkdir -p build-gpu/bin
  cp build-gpu/tests/cuda_layers_test build-gpu/bench/cuda_model_bench build-gpu/tessera build-gpu/bin/
  BIN=build-gpu/bin
fi

echo "== tests/cuda_layers_test"
timeout 300 "$BIN/cuda_layers_test" 2>&1 | tee "$OUT_DIR/cuda_layers_test.log" | grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) *\]|Failure|error|Expected|Which is|cpu |element" | head -80

echo "== bench/cuda_model_bench"
for spec in examples/fmnist-cnn.pbtxt examples/fmnist-cnn-bn.pbtxt; do
  [ -f "$spec" ] || continue
  timeout 120 "$BIN/cuda_model_bench" --spec "$spec" --batch 64 --steps 100 --threads 1 2>&1 | tee -a "$OUT_DIR/bench.log"
done
timeout 120 "$BIN/cuda_model_bench" --spec examples/fmnist-cnn.pbtxt --batch 64 --steps 100 --threads 16 --profile=false 2>&1 |
  tee -a "$OUT_DIR/bench.log"

if [ -d "$BIN/data" ]; then
  for device in cuda cpu; do
    echo "== tessera train examples/fmnist-cnn.pbtxt --device $device (10000 training examples, 1 epoch)"
    rm -rf "/tmp/run-$device"
    timeout 150 "$BIN/tessera" train examples/fmnist-cnn.pbtxt --device "$device" --data_dir "$BIN/data" --epochs 1 \
      --workers 1 --servers 1 --progress plain --run_dir "/tmp/run-$device" 2>&1 | tail -4
    cp "/tmp/run-$device/summary.json" "$OUT_DIR/summary-$device.json" 2>/dev/null
    grep -h "computing on" /tmp/run-$device/logs/worker-0.log 2>/dev/null | head -1
  done
fi
if [ -f /tmp/run-cuda/summary.json ]; then
  # GPU inference (--device cuda for predict; serve shares BuildRuntimeModel):
  # the classes and probabilities must match the CPU's.
  echo "== tessera export, then predict --device cuda against --device cpu"
  rm -rf /tmp/gpu-repo
  timeout 120 "$BIN/tessera" export /tmp/run-cuda --out /tmp/gpu-repo/cnn --data_dir "$BIN/data" 2>&1 | tail -1
  for device in cuda cpu; do
    timeout 120 "$BIN/tessera" predict /tmp/gpu-repo/cnn "$BIN/data/t10k-images-idx3-ubyte.gz" \
      --labels "$BIN/data/t10k-labels-idx1-ubyte.gz" --out "$OUT_DIR/predict-$device.csv" --device "$device" 2>&1 | tail -1
  done
  python3 - "$OUT_DIR/predict-cuda.csv" "$OUT_DIR/predict-cpu.csv" <<'PY' 2>&1 || true
import sys
rows = [[line.split(",") for line in open(path).read().splitlines()[1:]] for path in sys.argv[1:3]]
same = sum(a[1] == b[1] for a, b in zip(*rows))
diff = max(abs(float(x) - float(y)) for a, b in zip(*rows) for x, y in zip(a[2:], b[2:]))
print(f"predict cuda vs cpu: {same} of {len(rows[1])} classes equal, max probability difference {diff:.2e}")
PY
fi
echo "== done"
