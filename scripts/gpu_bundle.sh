#!/usr/bin/env bash
# Gathers what scripts/gpu_check.sh needs to run on a GPU machine that lacks
# the Debian packages: the binaries of BUILD_DIR, the shared libraries they
# load apart from glibc, the C++ runtime and CUDA's own (lib.tar.xz), and a cut of
# Fashion-MNIST (data/: 10000 training and 2000 test examples).
#
#   bash scripts/gpu_bundle.sh BUILD_DIR OUT_DIR
set -euo pipefail
BUILD=${1:?usage: gpu_bundle.sh BUILD_DIR OUT_DIR}
DEST=${2:?usage: gpu_bundle.sh BUILD_DIR OUT_DIR}
mkdir -p "$DEST/lib" "$DEST/data"
cp "$BUILD/tests/cuda_layers_test" "$BUILD/bench/cuda_model_bench" "$BUILD/tessera" "$DEST/"
# Click logs for the sparse_embedding on CUDA (gpu_session.sh writes them there).
cp "$BUILD/bench/make_criteo" "$DEST/"
# The tests run `tessera` from the path it was built at.
realpath "$BUILD/tessera" > "$DEST/tessera_path"
strip "$DEST/cuda_layers_test" "$DEST/cuda_model_bench" "$DEST/tessera"
for bin in "$DEST/cuda_layers_test" "$DEST/cuda_model_bench" "$DEST/tessera"; do
  ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | grep -vE '/lib(c|m|dl|rt|pthread|stdc\+\+|gcc_s|cuda|cudart|cublas|cublasLt|cudnn[a-z_]*)\.so' |
  while read -r lib; do cp -L "$lib" "$DEST/lib/"; done
python3 - "$DEST/data" <<'PY'
import gzip, struct, sys
src, dest = '/usr/share/datasets/fashion-mnist/', sys.argv[1]
def cut(name, n):
    d = gzip.open(src + name).read()
    magic = struct.unpack('>I', d[:4])[0]
    dims = list(struct.unpack('>' + 'I' * (magic & 0xff), d[4:4 + 4 * (magic & 0xff)]))
    per = 1
    for x in dims[1:]:
        per *= x
    head = 4 + 4 * len(dims)
    dims[0] = n
    gzip.open(dest + '/' + name, 'wb').write(struct.pack('>I', magic) + struct.pack('>' + 'I' * len(dims), *dims) + d[head:head + n * per])
for name, n in [('train-images-idx3-ubyte.gz', 10000), ('train-labels-idx1-ubyte.gz', 10000),
                ('t10k-images-idx3-ubyte.gz', 2000), ('t10k-labels-idx1-ubyte.gz', 2000)]:
    cut(name, n)
PY
tar -C "$DEST" -cf - lib | xz -T0 -6 > "$DEST/lib.tar.xz"
rm -rf "$DEST/lib"
du -sh "$DEST"
