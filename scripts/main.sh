#!/usr/bin/env bash
# The main job: installs what is missing, builds aotgrad, and takes the d2l MLP
# (models/mlp.c) through it: its graph as text IR (parsed back), a forward pass in the
# interpreter, then its compilation by the LLVM backend into a standalone binary that trains
# on Fashion-MNIST for 10 epochs (about 15-30 s here), saving a checkpoint, the per-epoch
# figures and their plot, and ends with the test accuracy and where those were written.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo
echo "== aotgrad ir models/mlp.c =="
build/aotgrad ir models/mlp.c | tee build/mlp.ir
echo
echo "== aotgrad check build/mlp.ir (the printed IR parses back) =="
build/aotgrad check --print build/mlp.ir | cmp - build/mlp.ir && echo "round trip: identical"
echo
echo "== aotgrad forward models/mlp.c --batch 3 =="
build/aotgrad forward models/mlp.c --batch 3 --seed 1
echo
echo "== aotgrad build models/mlp.c -o build/mlp (LLVM: a standalone binary) =="
build/aotgrad build models/mlp.c -o build/mlp --time
echo "build/mlp needs at run time: $(readelf -d build/mlp | grep -o 'NEEDED.*\[.*\]' | grep -o '\[.*\]' | tr -d '[]' | tr '\n' ' ')"
echo
echo "== build/mlp train (10 epochs on Fashion-MNIST) =="
build/mlp train --save build/mlp.safetensors --metrics build/mlp-metrics.csv --plot build/mlp-training.svg
