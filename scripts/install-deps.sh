#!/usr/bin/env bash
# Installs everything Tessera needs to build and test, from Debian 12's packages.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ccache
  libzmq3-dev cppzmq-dev
  libprotobuf-dev protobuf-compiler
  librocksdb-dev
  libgoogle-glog-dev libgflags-dev
  googletest libgtest-dev libgmock-dev
  libopenblas-dev zlib1g-dev libssl-dev
  libpng-dev libjpeg62-turbo-dev
  # Debian builds oneDNN with its OpenCL runtime, so dnnl-config.cmake calls
  # find_package(OpenCL REQUIRED); libdnnl-dev only recommends the headers.
  libdnnl-dev ocl-icd-opencl-dev
  libonnx-dev
  libcpp-httplib-dev nlohmann-json3-dev
  python3-onnx python3-numpy
  iproute2
  dataset-fashion-mnist
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
