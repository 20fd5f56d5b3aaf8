#!/usr/bin/env bash
# LeNet (d2l 7.6) against PyTorch on the CPU, measured in one run (issue 19's figures).
set -euo pipefail

usage() {
  cat <<'U'
usage: bench/lenet.sh [--threads T] [--epochs N] [--seeds "1 2 3"] [--no-torch] [path/to/aotgrad]

For each variant of models/lenet.c, the classic (sigmoid, average pooling, lr 0.9) and
--set act=relu (ReLU, max pooling, lr 0.1), trained as a standalone binary for N epochs
(default 10) with each seed, and the anchors' torch_d2l.py lenet / lenet_relu (PyTorch eager,
and torch.compile where PyTorch 2 is installed) with the same seeds, interleaved: the median
epoch of epochs 2-N of each run, the median of those over the seeds, and the median test
accuracy after N epochs (bars: classic >= 0.75, relu >= 0.84; epoch faster than PyTorch's).

options:
  path/to/aotgrad  the compiler (default: build/aotgrad under the project root)
  --threads T      threads for every run (default 2)
  --epochs N       epochs of each run (default 10)
  --seeds "S ..."  the seeds (default "1 2 3")
  --no-torch       skip PyTorch
  --help           this text

Needs the Fashion-MNIST files and, for the anchors, PyTorch (/usr/bin/python3 with Debian's
python3-torch, or python3 with PyPI's torch).
U
}

root=$(cd "$(dirname "$0")/.." && pwd)
ag="$root/build/aotgrad" threads=2 epochs=10 torch=1 seeds="1 2 3"
while [ $# -gt 0 ]; do
  case $1 in
  --threads) threads=$2; shift 2 ;;
  --threads=*) threads=${1#*=}; shift ;;
  --epochs) epochs=$2; shift 2 ;;
  --epochs=*) epochs=${1#*=}; shift ;;
  --seeds) seeds=$2; shift 2 ;;
  --seeds=*) seeds=${1#*=}; shift ;;
  --no-torch) torch=0; shift ;;
  -h|--help) usage; exit 0 ;;
  -*) echo "lenet.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  *) ag=$1; shift ;;
  esac
done
anchors=${ANCHORS:-$root/bench/anchors}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
acc_of() { awk '($1 == "epoch") { for (i = 1; i < NF; i++) if ($i == "test_acc") a = $(i + 1) } END { print a }' "$1"; }
# the epoch seconds of epochs 2.. of aotgrad's lines ("12.3s") or PyTorch's ("sec 12.3")
epoch_secs() {
  awk '$1 == "epoch" && $2 !~ /^1(\/|$)/ { for (i = 1; i <= NF; i++) { if ($i ~ /^[0-9.]+s$/) { sub("s", "", $i); print $i } if ($i == "sec") print $(i + 1) } }' "$1" | median
}
py=python3
/usr/bin/python3 -c "import torch" 2>/dev/null && py=/usr/bin/python3
compiled=0
[ "$torch" = 1 ] && "$py" -c "import torch, sys; sys.exit(not hasattr(torch, 'compile'))" 2>/dev/null && compiled=1
[ "$torch" = 1 ] && echo "PyTorch $("$py" -c 'import torch; print(torch.__version__)')$([ $compiled = 1 ] || echo ', no torch.compile (PyTorch 1)')"
for v in classic relu; do
  set_=() anchor=lenet
  [ $v = relu ] && set_=(--set act=relu) anchor=lenet_relu
  "$ag" build "$root/models/lenet.c" "${set_[@]}" -o "$t/lenet_$v" >/dev/null
  echo "== $v: $epochs epochs, seeds $seeds, $threads threads"
  for s in $seeds; do
    "$t/lenet_$v" train --epochs "$epochs" --seed "$s" --threads "$threads" >"$t/a$v$s"
    echo "aotgrad seed $s: test_acc $(acc_of "$t/a$v$s"), epoch $(epoch_secs "$t/a$v$s")s"
    if [ "$torch" = 1 ]; then
      "$py" "$anchors/torch_d2l.py" $anchor --epochs "$epochs" --seed "$s" --threads "$threads" >"$t/p$v$s"
      echo "PyTorch eager seed $s: test_acc $(acc_of "$t/p$v$s"), epoch $(epoch_secs "$t/p$v$s")s"
    fi
    if [ "$compiled" = 1 ]; then
      "$py" "$anchors/torch_d2l.py" $anchor --compile default --epochs "$epochs" --seed "$s" --threads "$threads" >"$t/c$v$s"
      echo "torch.compile seed $s: test_acc $(acc_of "$t/c$v$s"), epoch $(epoch_secs "$t/c$v$s")s"
    fi
  done
  for who in a p c; do
    ls "$t/$who$v"* >/dev/null 2>&1 || continue
    name=$([ $who = a ] && echo aotgrad || { [ $who = p ] && echo "PyTorch eager" || echo torch.compile; })
    acc=$(for s in $seeds; do acc_of "$t/$who$v$s"; done | median)
    sec=$(for s in $seeds; do epoch_secs "$t/$who$v$s"; done | median)
    echo "$v median: $name test_acc $acc, epoch ${sec}s"
  done
done
echo "reproduce: bench/lenet.sh --threads $threads --epochs $epochs --seeds \"$seeds\"; $(date -u +%F), $(nproc) cores"
