#!/usr/bin/env bash
# Adam against SGD and against PyTorch, measured in one run (issue 18's figures).
# Usage: bench/optimizers.sh [--threads T] [--no-torch] [path/to/aotgrad]
set -euo pipefail

usage() {
  cat <<'U'
usage: bench/optimizers.sh [--threads T] [--epochs N] [--no-torch] [path/to/aotgrad]

Two figures, each measured in one run so that its ratio holds on a noisy machine:

  accuracy  models/mlp_adam.c (the d2l MLP with Adam, lr 0.001) trained as a binary for N
            epochs (default 10) with seeds 1, 2 and 3, against the anchors' torch_d2l.py mlp
            --optimizer adam with the same seeds: the median test accuracy of each (bar: within
            0.01 of PyTorch's)
  cost      the epoch of models/mlp_adam.c against models/mlp.c's (SGD), 3 epochs each, run
            interleaved three times: the median of each one's median epoch of epochs 2-3, and
            their ratio (bar: <= 1.15)

options:
  path/to/aotgrad  the compiler (default: build/aotgrad under the project root)
  --threads T      threads for every run (default 2)
  --epochs N       epochs of the accuracy runs (default 10)
  --no-torch       skip PyTorch (the accuracy figure then has no anchor)
  --help           this text

Needs the Fashion-MNIST files (dataset-fashion-mnist) and, for the anchor, PyTorch
(/usr/bin/python3 with Debian's python3-torch, or python3 with PyPI's torch).
U
}

root=$(cd "$(dirname "$0")/.." && pwd)
ag="$root/build/aotgrad" threads=2 epochs=10 torch=1
while [ $# -gt 0 ]; do
  case $1 in
  --threads) threads=$2; shift 2 ;;
  --threads=*) threads=${1#*=}; shift ;;
  --epochs) epochs=$2; shift 2 ;;
  --epochs=*) epochs=${1#*=}; shift ;;
  --no-torch) torch=0; shift ;;
  -h|--help) usage; exit 0 ;;
  -*) echo "optimizers.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  *) ag=$1; shift ;;
  esac
done
anchors=${ANCHORS:-$root/bench/anchors}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$ag" build "$root/models/mlp_adam.c" -o "$t/mlp_adam" >/dev/null
"$ag" build "$root/models/mlp.c" -o "$t/mlp" >/dev/null
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
acc_of() { awk '$1 == "epoch" { for (i = 1; i < NF; i++) if ($i == "test_acc") a = $(i + 1) } END { print a }' "$1"; }
epoch_secs() { awk '$1 == "epoch" && $2 !~ /^1\// { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+s$/) { sub("s", "", $i); print $i } }' "$1" | median; }

py=python3
/usr/bin/python3 -c "import torch" 2>/dev/null && py=/usr/bin/python3
echo "== accuracy: $epochs epochs, seeds 1-3, $threads threads"
for s in 1 2 3; do
  "$t/mlp_adam" train --epochs "$epochs" --seed "$s" --threads "$threads" >"$t/a$s"
  echo "aotgrad seed $s: test_acc $(acc_of "$t/a$s")"
  if [ "$torch" = 1 ]; then
    "$py" "$anchors/torch_d2l.py" mlp --optimizer adam --epochs "$epochs" --seed "$s" --threads "$threads" >"$t/p$s"
    echo "PyTorch seed $s: test_acc $(acc_of "$t/p$s")"
  fi
done
ours=$(for s in 1 2 3; do acc_of "$t/a$s"; done | median)
echo "median test accuracy: aotgrad $ours"
if [ "$torch" = 1 ]; then
  theirs=$(for s in 1 2 3; do acc_of "$t/p$s"; done | median)
  echo "median test accuracy: PyTorch $theirs (difference $(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%+.4f", a - b }'); bar: within 0.01)"
fi
echo "== cost: Adam's epoch against SGD's, 3 interleaved runs of 3 epochs"
for r in 1 2 3; do
  "$t/mlp" train --epochs 3 --threads "$threads" >"$t/s$r"
  "$t/mlp_adam" train --epochs 3 --threads "$threads" >"$t/d$r"
done
sgd=$(for r in 1 2 3; do epoch_secs "$t/s$r"; done | median)
adam=$(for r in 1 2 3; do epoch_secs "$t/d$r"; done | median)
echo "epoch: SGD ${sgd}s, Adam ${adam}s, Adam/SGD $(awk -v a="$adam" -v b="$sgd" 'BEGIN { printf "%.3f", a / b }') (bar: <= 1.15)"
echo "reproduce: bench/optimizers.sh --threads $threads --epochs $epochs; $(date -u +%F), $(nproc) cores"
