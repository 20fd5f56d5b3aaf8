#!/usr/bin/env bash
# Installs, through apt-get, whichever of aotgrad's Debian packages are missing; does nothing
# when all are there. Safe to run again.
set -euo pipefail
packages=(
  gcc make cmake pkg-config  # the build
  llvm-19-dev                # code generation through the LLVM C API
  libopenblas-dev            # sgemm for matmuls
  libcriterion-dev           # the test suite
  clang-format-19            # the test suite's format check (.clang-format)
  zlib1g-dev                 # gzipped IDX data files
  libpng-dev                 # png.h for PNG input to predict (libpng itself is loaded with dlopen)
  librandom123-dev           # Philox known-answer vectors for the RNG tests
  dataset-fashion-mnist      # /usr/share/datasets/fashion-mnist
  libopenmpi-dev openmpi-bin # --distributed mpi: data-parallel training, and mpirun for its tests
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
