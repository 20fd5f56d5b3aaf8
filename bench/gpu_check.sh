#!/usr/bin/env bash
# The CUDA backend on a lent GPU machine, in one call (bench/README.md, "gpu_check.sh").
#
#   bench/gpu_check.sh prepare [path/to/aotgrad]   here: builds what the GPU machine runs into
#                                                   gpu_carry/ (ignored by git; about 45 MiB)
#   bench/gpu_check.sh run                          there, from the checkout's root, with
#                                                   gpu_carry carried: prints one table
#
# The GPU machine has the CUDA driver, nvcc and PyTorch 2 but no LLVM, OpenBLAS or dataset,
# so `prepare` packs the binaries (built with --target cpu,cuda), OpenBLAS and its Fortran
# runtime (xz), Fashion-MNIST and ../shared/anchors. `run`:
#   1. differential: per classifier, one epoch on the GPU and one on the CPU from the same
#      seed (losses and accuracies must agree within the float differences of summation
#      order), and eval of the CPU's weights on both devices (the same accuracy);
#   2. every classifier for 10 epochs on the GPU: test accuracy (bars 0.82, 0.82, 0.84) and
#      the median epoch of 2-10;
#   3. PyTorch (../shared/anchors/torch_d2l.py mlp, --device cuda) eager and with
#      --compile reduce-overhead, median epoch of 2-10; targets: ours >= 3x eager's speed and
#      faster than torch.compile's.
# It finishes in a few minutes; the last lines are the table.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
carry=gpu_carry
models=(softmax mlp mlp_dropout)

if [ "${1:-}" = "--help" ] || [ $# -lt 1 ]; then
  sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

if [ "$1" = prepare ]; then
  ag=${2:-build/aotgrad}
  grep -qx '/gpu_carry/' .git/info/exclude 2>/dev/null || echo '/gpu_carry/' >> .git/info/exclude
  rm -rf "$carry" && mkdir -p "$carry/bin" "$carry/lib" "$carry/data" "$carry/anchors"
  for m in "${models[@]}"; do
    echo "prepare: building $m (--target cpu,cuda)" >&2
    "$ag" build "models/$m.c" --target cpu,cuda -o "$carry/bin/$m"
  done
  for lib in $(ldd "$carry/bin/mlp" | awk '/openblas|gfortran|quadmath/ {print $3}'); do
    echo "prepare: packing $lib" >&2
    xz -6 -T2 -c "$(readlink -f "$lib")" > "$carry/lib/$(basename "$lib").xz"
  done
  cp /usr/share/datasets/fashion-mnist/*.gz "$carry/data/"
  cp ../shared/anchors/torch_d2l.py ../shared/anchors/gemm_floor.c "$carry/anchors/"
  du -sh "$carry" >&2
  echo "prepare: done; on the GPU machine: bench/gpu_check.sh run (carry $carry)" >&2
  exit 0
fi

[ "$1" = run ] || { echo "usage: bench/gpu_check.sh prepare|run" >&2; exit 2; }
[ -d "$carry/bin" ] || { echo "gpu_check: no $carry/ (run bench/gpu_check.sh prepare here first)" >&2; exit 1; }
t0=$(date +%s)
out=$(mktemp -d)
mkdir -p "$out/lib" # the libraries unpacked outside gpu_carry, which stays small enough to carry
for f in "$carry"/lib/*.xz; do xz -dc "$f" > "$out/lib/$(basename "$f" .xz)"; done
export LD_LIBRARY_PATH="$out/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
data="$root/$carry/data"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo "unknown GPU")
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
epochs_of() { grep -E '^epoch ' "$1" | grep -oE '[0-9]+\.[0-9]+s ' | tr -d 's ' | tail -n +2 | median; }
field() { grep -oE "$2 [0-9.]+" "$1" | tail -1 | awk '{print $2}'; }

echo "== 1. differential: GPU against CPU, one epoch, seed 1 =="
diff_ok=yes
for m in "${models[@]}"; do
  "$carry/bin/$m" train --device cuda --data "$data" --epochs 1 --seed 1 --save "$out/$m.gpu.st" > "$out/$m.d.gpu" 2>&1 || { cat "$out/$m.d.gpu"; diff_ok=no; continue; }
  "$carry/bin/$m" train --device cpu --data "$data" --epochs 1 --seed 1 --save "$out/$m.cpu.st" > "$out/$m.d.cpu" 2>&1 || { cat "$out/$m.d.cpu"; diff_ok=no; continue; }
  "$carry/bin/$m" eval --device cuda --data "$data" --weights "$out/$m.cpu.st" > "$out/$m.e.gpu" 2>&1 || { cat "$out/$m.e.gpu"; diff_ok=no; continue; }
  "$carry/bin/$m" eval --device cpu --data "$data" --weights "$out/$m.cpu.st" > "$out/$m.e.cpu" 2>&1 || { cat "$out/$m.e.cpu"; diff_ok=no; continue; }
  lg=$(field "$out/$m.d.gpu" train_loss) lc=$(field "$out/$m.d.cpu" train_loss)
  eg=$(field "$out/$m.e.gpu" test_acc) ec=$(field "$out/$m.e.cpu" test_acc)
  ok=$(awk -v a="$lg" -v b="$lc" -v c="$eg" -v d="$ec" 'BEGIN {r = (a - b) / b; if (r < 0) r = -r; e = c - d; if (e < 0) e = -e; print (r <= 0.01 && e <= 0.002) ? "ok" : "DIFFERS"}')
  [ "$ok" = ok ] || diff_ok=no
  echo "$m: train_loss gpu $lg cpu $lc; eval of the CPU's weights: test_acc gpu $eg cpu $ec: $ok"
done

echo "== 2. 10 epochs on the GPU =="
declare -A acc sec
for m in "${models[@]}"; do
  "$carry/bin/$m" train --device cuda --data "$data" --seed 1 > "$out/$m.t" 2>&1 || { cat "$out/$m.t"; acc[$m]=fail; sec[$m]=nan; continue; }
  tail -n 3 "$out/$m.t"
  acc[$m]=$(field "$out/$m.t" test_acc)
  sec[$m]=$(epochs_of "$out/$m.t")
done

echo "== 3. PyTorch on the same GPU (mlp) =="
tp() { python3 "$carry/anchors/torch_d2l.py" mlp --device cuda --data "$data" --seed 1 "$@" 2>&1 | tee -a "$out/torch.log" | grep -oE 'median_epoch_sec [0-9.]+' | awk '{print $2}'; }
eager=$(tp || echo nan)
compiled=$(tp --compile reduce-overhead || echo nan)
tail -n 2 "$out/torch.log" || true

echo
echo "gpu_check on $gpu, $(date -u +%Y-%m-%d), $(( $(date +%s) - t0 )) s"
printf '%-12s %-10s %-6s %-14s\n' model test_acc bar "median epoch"
for m in "${models[@]}"; do
  bar=0.82; [ "$m" = mlp_dropout ] && bar=0.84
  printf '%-12s %-10s %-6s %-14s\n' "$m" "${acc[$m]}" "$bar" "${sec[$m]} s"
done
printf 'differential (GPU vs CPU, 1 epoch + eval): %s\n' "$diff_ok"
awk -v a="${sec[mlp]}" -v e="$eager" -v c="$compiled" 'BEGIN {
  printf "mlp epoch: aotgrad %s s, PyTorch eager %s s (%.2fx; target >= 3x), torch.compile %s s (%.2fx; target > 1x)\n",
         a, e, (a > 0 ? e / a : 0), c, (a > 0 ? c / a : 0) }'
rm -rf "$out"
