#!/usr/bin/env bash
# On a GPU machine: --overlap-push on vs off for fmnist-cnn on CUDA (1 worker +
# 1 server, and 2 + 2 sharing the GPU), two rounds each, 3 epochs of the
# 10000-example cut. BIN_DIR is a folder made by scripts/gpu_bundle.sh.
#
#   bash bench/gpu_overlap.sh BIN_DIR
set -u
BIN=${1:?usage: gpu_overlap.sh BIN_DIR}
mkdir -p /tmp/lib && tar -xJf $BIN/lib.tar.xz -C /tmp/lib
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
  path=$(find /usr/local /opt /usr/lib -name "$lib" 2>/dev/null | head -1); [ -n "$path" ] && LIBS="${LIBS:-}:$(dirname "$path")"
done
export LD_LIBRARY_PATH="/tmp/lib/lib${LIBS:-}:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name --format=csv,noheader
for shape in "1 1" "2 2"; do
  set -- $shape
  for r in 0 1; do
    for o in true false; do
      run=/tmp/run-$1-$r-$o
      timeout 120 $BIN/tessera train examples/fmnist-cnn.pbtxt --device cuda --data_dir $BIN/data --epochs 3 \
        --workers $1 --servers $2 --progress none --overlap-push=$o --run_dir $run > /dev/null 2>&1
      echo "workers $1 servers $2 round $r overlap $o: $(grep -hE '"samples_per_sec"|worker_compute|worker_push|worker_wait|test_accuracy' $run/summary.json | tr -d '\n ')"
    done
  done
done
