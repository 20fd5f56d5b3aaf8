#!/usr/bin/env bash
# The main job: installs what is missing, builds aotgrad, and takes the d2l MLP
# (models/mlp.c) through it: its graph as text IR, a forward pass in the interpreter, and
# 10 epochs of training on Fashion-MNIST through the interpreter (about 30 s), then its
# compilation by the LLVM backend into an object file and a header.
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
echo "== aotgrad run models/mlp.c (training through the reference interpreter) =="
build/aotgrad run models/mlp.c --save build/mlp.safetensors
echo
echo "== aotgrad build models/mlp.c (LLVM: object file + header) =="
build/aotgrad build models/mlp.c -o build/mlp --emit obj,h --time
echo "wrote build/mlp.o and build/mlp.h"
