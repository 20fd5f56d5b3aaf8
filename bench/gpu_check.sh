#!/usr/bin/env bash
# The CUDA backend on a lent GPU machine, in one call (bench/README.md, "gpu_check.sh").
#
#   bench/gpu_check.sh prepare [path/to/aotgrad]   here: builds what the GPU machine runs into
#                                                   gpu_carry/ (ignored by git; about 40 MiB)
#   bench/gpu_check.sh run [LOGDIR]                 there, from the checkout's root, with
#                                                   gpu_carry carried: prints one table; the
#                                                   logs go to LOGDIR/gpu_check_logs.tar.gz
#
# The GPU machine has the CUDA driver, nvcc and PyTorch 2 but no LLVM, OpenBLAS or dataset,
# so `prepare` packs the binaries (built with --target cpu,cuda, with their CUDA C), gpu_diff
# and its cases (every op sample and model, compiled here), OpenBLAS and its Fortran runtime
# (xz), Fashion-MNIST and bench/anchors. `run`:
#   0. where this toolkit's cubin and PTX do not load (a driver older than CUDA 13), builds
#      every module again with the machine's nvcc and uses those (AOTGRAD_CUDA_IMAGE);
#   1. gpu_diff: every op's sample at batches 1, 7, 256, 1001 and every model's train step on
#      the GPU against the interpreter (1e-5; dropout bit for bit);
#   2. per classifier, one epoch on the GPU and on the CPU (8 threads, and 1) from the same
#      seed: the GPU's loss within 1% of the CPU's, or within twice the CPU's own spread
#      between thread counts (the sums' order differs; dropout at lr 0.5 amplifies that),
#      and eval of the CPU's weights on both devices (test accuracy within 0.002);
#   2b. predict with the CPU's mlp weights on both devices (lines that agree), and resume on
#      the GPU: mlp_dropout 1 + 1 epochs against 2, the checkpoints' tensors byte for byte;
#   2c. data-parallel on NCCL with one rank (issue 20; one GPU a rank is NCCL's rule):
#      mlp_dropout built with --distributed nccl (its buckets summed by NCCL inside the
#      captured step, PyTorch's libnccl.so.2) against the plain build, 2 epochs, seed 3;
#   3. every classifier for 10 epochs on the GPU: test accuracy (bars 0.82, 0.82, 0.84, 0.82) and
#      the median epoch of 2-10; then `mlp bench --device cuda` (a row per kernel);
#   4. PyTorch (bench/anchors/torch_d2l.py mlp, --device cuda) eager and with
#      --compile reduce-overhead, median epoch of 2-10; targets: ours >= 3x eager's speed and
#      faster than torch.compile's;
#   5. LeNet (models/lenet.c, classic and --set act=relu): 10 epochs on the GPU (test
#      accuracy, bars 0.75 and 0.84, and the median epoch of 2-10), and PyTorch's lenet and
#      lenet_relu eager and torch.compile'd for 4 epochs (median epoch of 2-4);
#   6. LeNet on this machine's CPU at 2 threads, ours against PyTorch 2's eager and
#      torch.compile (4 epochs each, median of 2-4): the comparison issue 19 asks for, which
#      the project's own machines (PyTorch 1.13, no torch.compile) cannot make.
# Every step has a time limit, so a hang still ends with the table. It finishes in a few
# minutes; the last lines are the table.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
carry=gpu_carry
models=(softmax mlp mlp_dropout mlp_adam)
convnets=(lenet lenet_relu) # models/lenet.c, and with --set act=relu

if [ "${1:-}" = "--help" ] || [ $# -lt 1 ]; then
  sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

if [ "$1" = prepare ]; then
  ag=${2:-build/aotgrad}
  diff_bin=$(dirname "$ag")/tests/gpu_diff
  [ -x "$diff_bin" ] || { echo "prepare: no $diff_bin (cmake --build $(dirname "$ag") --target gpu_diff)" >&2; exit 1; }
  grep -qx '/gpu_carry/' .git/info/exclude 2>/dev/null || echo '/gpu_carry/' >> .git/info/exclude
  rm -rf "$carry" && mkdir -p "$carry/bin" "$carry/lib" "$carry/data" "$carry/anchors" "$carry/ir"
  for m in "${models[@]}"; do
    echo "prepare: building $m (--target cpu,cuda)" >&2
    "$ag" build "models/$m.c" --target cpu,cuda --emit exe,cu -o "$carry/bin/$m"
  done
  for v in "${convnets[@]}"; do
    echo "prepare: building $v (--target cpu,cuda)" >&2
    set_=(); [ "$v" = lenet_relu ] && set_=(--set act=relu)
    "$ag" build models/lenet.c "${set_[@]}" --target cpu,cuda --emit exe,cu -o "$carry/bin/$v"
  done
  echo "prepare: building mlp_dropout_nccl (--distributed nccl)" >&2
  "$ag" build models/mlp_dropout.c --target cpu,cuda --distributed nccl --bucket-mib 0.05 --emit exe,cu \
    -o "$carry/bin/mlp_dropout_nccl"
  echo "prepare: gpu_diff's cases" >&2
  for m in mlp softmax mlp_dropout linreg weight_decay mlp_adam lenet; do "$ag" ir "models/$m.c" > "$carry/ir/$m.ir"; done
  "$ag" ir models/mlp.c --set act=tanh > "$carry/ir/mlp_tanh.ir"
  "$diff_bin" write "$carry/cases" "$carry"/ir/*.ir >&2
  cp "$diff_bin" "$carry/bin/gpu_diff"
  for lib in $(ldd "$carry/bin/mlp" | awk '/openblas|gfortran|quadmath/ {print $3}'); do
    echo "prepare: packing $lib" >&2
    xz -6 -T2 -c "$(readlink -f "$lib")" > "$carry/lib/$(basename "$lib").xz"
  done
  cp /usr/share/datasets/fashion-mnist/*.gz "$carry/data/"
  cp bench/anchors/torch_d2l.py bench/anchors/gemm_floor.c "$carry/anchors/"
  du -sh "$carry" >&2
  echo "prepare: done; on the GPU machine: bench/gpu_check.sh run (carry $carry)" >&2
  exit 0
fi

[ "$1" = run ] || { echo "usage: bench/gpu_check.sh prepare [AOTGRAD] | run [LOGDIR]" >&2; exit 2; }
[ -d "$carry/bin" ] || { echo "gpu_check: no $carry/ (run bench/gpu_check.sh prepare here first)" >&2; exit 1; }
logdir=${2:-}
t0=$(date +%s)
out=$(mktemp -d)
# each command under a time limit (seconds): a hang must not cost the table
limit() { local s=$1; shift; timeout -k 5 "$s" "$@"; }
mkdir -p "$out/lib" # the libraries unpacked outside gpu_carry, which stays small enough to carry
for f in "$carry"/lib/*.xz; do xz -dc "$f" > "$out/lib/$(basename "$f" .xz)"; done
export LD_LIBRARY_PATH="$out/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
data="$root/$carry/data"
export PATH="$PATH:/usr/local/cuda/bin" # nvcc, for step 0
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo "unknown GPU")
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ' || true)
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
# (a missing figure reads as nothing, never as a failure that set -e would end the script on)
epochs_of() { { grep -E '^epoch ' "$1" || true; } | { grep -oE '[0-9]+\.[0-9]+s ' || true; } | tr -d 's ' | tail -n +2 | median; }
field() { { grep -oE "$2 [0-9.]+" "$1" || true; } | tail -1 | awk '{print $2}'; }
echo "gpu_check on $gpu (sm_${cc:-?})"
cp -r "$carry/cases" "$out/cases"

echo "== 0. do the modules load? =="
images=built-here
# AOTGRAD_CUDA_IMAGE for binary $1 where the modules were built again on this machine
img() { [ "$images" = built-here ] || echo "AOTGRAD_CUDA_IMAGE=$out/$1.cubin"; }
nvidia-smi > "$out/nvidia-smi" 2>&1 || true
if ! limit 60 "$carry/bin/mlp" bench --device cuda --steps 1 > "$out/probe" 2>&1; then
  cat "$out/probe"
  if grep -q cuModuleLoadDataEx "$out/probe" && command -v nvcc >/dev/null && [ -n "$cc" ]; then
    images="nvcc $(nvcc --version | grep -oE 'release [0-9.]+' | head -1), sm_$cc"
    echo "building the modules again with $images"
    for m in "${models[@]}" "${convnets[@]}"; do nvcc -w -cubin -arch="sm_$cc" -std=c++17 -o "$out/$m.cubin" "$carry/bin/$m.cu"; done
    ls "$out"/cases/*.cu | xargs -P 16 -I{} sh -c 'nvcc -w -cubin -arch=sm_'"$cc"' -std=c++17 -o "${1%.cu}.cubin" "$1" && rm -f "${1%.cu}.ptx"' _ {}
  fi
fi
echo "modules: $images"

echo "== 1. gpu_diff: every op and model on the GPU against the interpreter =="
limit 150 "$carry/bin/gpu_diff" run "$out/cases" > "$out/gpu_diff" 2>&1 || true
grep -v ' ok$' "$out/gpu_diff" | head -n 20 || true
gpu_diff_line=$(grep -E '^gpu_diff: ' "$out/gpu_diff" | tail -1 || true)

echo "== 2. differential: GPU against CPU, one epoch, seed 1 =="
diff_ok=yes
for m in "${models[@]}"; do
  limit 60 env $(img "$m") "$carry/bin/$m" train --device cuda --data "$data" --epochs 1 --seed 1 --save "$out/$m.gpu.st" > "$out/$m.d.gpu" 2>&1 || { cat "$out/$m.d.gpu"; diff_ok=no; continue; }
  limit 60 "$carry/bin/$m" train --device cpu --threads 8 --data "$data" --epochs 1 --seed 1 --save "$out/$m.cpu.st" > "$out/$m.d.cpu" 2>&1 || { cat "$out/$m.d.cpu"; diff_ok=no; continue; }
  limit 60 "$carry/bin/$m" train --device cpu --threads 1 --data "$data" --epochs 1 --seed 1 > "$out/$m.d.cpu1" 2>&1 || { cat "$out/$m.d.cpu1"; diff_ok=no; continue; }
  limit 60 env $(img "$m") "$carry/bin/$m" eval --device cuda --data "$data" --weights "$out/$m.cpu.st" > "$out/$m.e.gpu" 2>&1 || { cat "$out/$m.e.gpu"; diff_ok=no; continue; }
  limit 60 "$carry/bin/$m" eval --device cpu --threads 8 --data "$data" --weights "$out/$m.cpu.st" > "$out/$m.e.cpu" 2>&1 || { cat "$out/$m.e.cpu"; diff_ok=no; continue; }
  lg=$(field "$out/$m.d.gpu" train_loss) lc=$(field "$out/$m.d.cpu" train_loss) l1=$(field "$out/$m.d.cpu1" train_loss)
  eg=$(field "$out/$m.e.gpu" test_acc) ec=$(field "$out/$m.e.cpu" test_acc)
  ok=$(awk -v a="$lg" -v b="$lc" -v b1="$l1" -v c="$eg" -v d="$ec" 'BEGIN {
    r = a - b; if (r < 0) r = -r; s = b1 - b; if (s < 0) s = -s; tol = 0.01 * b; if (2 * s > tol) tol = 2 * s
    e = c - d; if (e < 0) e = -e; print (r <= tol && e <= 0.002) ? "ok" : "DIFFERS" }')
  [ "$ok" = ok ] || diff_ok=no
  echo "$m: train_loss gpu $lg cpu $lc (1 thread: $l1); eval of the CPU's weights: test_acc gpu $eg cpu $ec: $ok"
done

echo "== 2b. predict and resume on the GPU =="
# predict: the CPU's mlp weights on the 10000 test images, on both devices (a near-tie may
# round the other way: the sums' order differs)
agree=nan resume=fail
if limit 60 env $(img mlp) "$carry/bin/mlp" predict --device cuda --weights "$out/mlp.cpu.st" "$data/t10k-images-idx3-ubyte.gz" > "$out/p.gpu" 2>&1 &&
   limit 60 "$carry/bin/mlp" predict --device cpu --threads 8 --weights "$out/mlp.cpu.st" "$data/t10k-images-idx3-ubyte.gz" > "$out/p.cpu" 2>&1; then
  agree=$(paste -d'|' "$out/p.gpu" "$out/p.cpu" | awk -F'|' '$1 == $2 {n++} END {print n + 0 " of " NR}')
else
  tail -n 3 "$out/p.gpu" "$out/p.cpu" 2>/dev/null || true
fi
# resume: mlp_dropout (the dropout masks follow the step the device keeps) 1 + 1 epochs
# against 2, the checkpoints' tensors compared byte for byte (their metadata differ: the
# history holds each epoch's seconds)
m=mlp_dropout
if limit 60 env $(img $m) "$carry/bin/$m" train --device cuda --data "$data" --epochs 2 --seed 3 --save "$out/r2.st" > "$out/r2" 2>&1 &&
   limit 60 env $(img $m) "$carry/bin/$m" train --device cuda --data "$data" --epochs 1 --seed 3 --save "$out/r1.st" > "$out/r1" 2>&1 &&
   limit 60 env $(img $m) "$carry/bin/$m" train --device cuda --data "$data" --epochs 2 --seed 3 --resume "$out/r1.st" --save "$out/r12.st" > "$out/r12" 2>&1; then
  tensors() { python3 -c 'import struct, sys; b = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(b[8 + struct.unpack("<Q", b[:8])[0]:])' "$1"; } # after the safetensors header
  if tensors "$out/r2.st" > "$out/r2.bin" && tensors "$out/r12.st" > "$out/r12.bin" && [ -s "$out/r2.bin" ]; then
    cmp -s "$out/r2.bin" "$out/r12.bin" && resume="bit for bit" || resume=DIFFERS
  else
    resume="not compared (cannot read the checkpoints' tensors)"
  fi
else
  tail -n 3 "$out/r2" "$out/r1" "$out/r12" 2>/dev/null || true
fi
echo "predict (the CPU's mlp weights, 10000 test images): GPU and CPU agree on $agree; resume on the GPU ($m, 1 + 1 epochs against 2): $resume"

echo "== 2c. one rank on NCCL =="
# NCCL from PyTorch's wheel (nvidia-nccl), else the system's
nccl=$(python3 -c 'import glob, os, site
for d in site.getsitepackages() + [site.getusersitepackages()]:
    for p in glob.glob(os.path.join(d, "nvidia", "nccl", "lib", "libnccl.so*")):
        print(p); raise SystemExit' 2>/dev/null || true)
nccl=${nccl:-$( (ldconfig -p 2>/dev/null || true) | awk '/libnccl.so.2 / {print $NF; exit}')}
one_rank=fail
if [ -z "$nccl" ]; then
  one_rank="not run (no libnccl.so.2 here)"
elif limit 60 env $(img mlp_dropout_nccl) AOTGRAD_LIBNCCL="$nccl" "$carry/bin/mlp_dropout_nccl" train --device cuda \
       --data "$data" --epochs 2 --seed 3 > "$out/nccl1" 2>&1 && [ -s "$out/r2" ]; then
  tail -n 2 "$out/nccl1"
  one_rank=$(awk -v a="$(field "$out/nccl1" train_loss)" -v b="$(field "$out/r2" train_loss)" \
    -v s="$(grep -c '1 rank on GPUs (NCCL)' "$out/nccl1")" 'BEGIN {
      d = a - b; if (d < 0) d = -d
      printf "%s: train_loss %s against the plain build'"'"'s %s (%s)", s ? "through NCCL" : "NOT through NCCL", a, b,
             (s && b > 0 && d <= 0.01 * b) ? "within 1%" : "DIFFERS" }')
else
  tail -n 5 "$out/nccl1" 2>/dev/null || true
fi
echo "one rank on NCCL (mlp_dropout, 2 epochs): $one_rank"

echo "== 3. 10 epochs on the GPU =="
declare -A acc sec
for m in "${models[@]}"; do
  limit 90 env $(img "$m") "$carry/bin/$m" train --device cuda --data "$data" --seed 1 > "$out/$m.t" 2>&1 || { cat "$out/$m.t"; acc[$m]=fail; sec[$m]=nan; continue; }
  tail -n 3 "$out/$m.t"
  acc[$m]=$(field "$out/$m.t" test_acc)
  sec[$m]=$(epochs_of "$out/$m.t")
done
limit 60 env $(img mlp) "$carry/bin/mlp" bench --device cuda --steps 200 2>&1 | tee "$out/bench" || true
for m in softmax mlp_dropout; do limit 60 env $(img "$m") "$carry/bin/$m" bench --device cuda --steps 200 > "$out/$m.bench" 2>&1 || true; done
step_us=$(grep -oE '[0-9.]+ us/step \(the replayed' "$out/bench" | awk '{print $1}' || true)

echo "== 4. PyTorch on the same GPU (mlp) =="
tp() { { PYTHONUNBUFFERED=1 limit 200 python3 "$carry/anchors/torch_d2l.py" mlp --device cuda --data "$data" --seed 1 "$@" 2>&1 || true; } | tee -a "$out/torch.log" | { grep -oE 'median_epoch_sec [0-9.]+' || true; } | awk '{print $2}' | tail -1; }
eager=$(tp); eager=${eager:-nan}
compiled=$(tp --compile reduce-overhead); compiled=${compiled:-nan}
tail -n 2 "$out/torch.log" || true

echo "== 5. LeNet on the GPU, and PyTorch's =="
for v in "${convnets[@]}"; do
  limit 120 env $(img "$v") "$carry/bin/$v" train --device cuda --data "$data" --seed 1 > "$out/$v.t" 2>&1 || { cat "$out/$v.t"; acc[$v]=fail; sec[$v]=nan; continue; }
  tail -n 2 "$out/$v.t"
  acc[$v]=$(field "$out/$v.t" test_acc)
  sec[$v]=$(epochs_of "$out/$v.t")
done
limit 60 env $(img lenet) "$carry/bin/lenet" bench --device cuda --steps 100 > "$out/lenet.bench" 2>&1 || true
declare -A teager tcomp
for v in "${convnets[@]}"; do
  tl() { { PYTHONUNBUFFERED=1 limit 150 python3 "$carry/anchors/torch_d2l.py" "$v" --device cuda --data "$data" --seed 1 --epochs 4 "$@" 2>&1 || true; } | tee -a "$out/torch_$v.log" | { grep -oE 'median_epoch_sec [0-9.]+' || true; } | awk '{print $2}' | tail -1; }
  teager[$v]=$(tl); teager[$v]=${teager[$v]:-nan}
  tcomp[$v]=$(tl --compile default); tcomp[$v]=${tcomp[$v]:-nan}
done

echo "== 6. LeNet on the CPU, 2 threads: ours, PyTorch eager, torch.compile =="
declare -A ccpu ceager ccomp
for v in "${convnets[@]}"; do
  limit 120 "$carry/bin/$v" train --device cpu --threads 2 --data "$data" --seed 1 --epochs 4 > "$out/$v.cpu" 2>&1 || cat "$out/$v.cpu"
  ccpu[$v]=$(epochs_of "$out/$v.cpu"); ccpu[$v]=${ccpu[$v]:-nan}
  tc() { { PYTHONUNBUFFERED=1 limit 240 python3 "$carry/anchors/torch_d2l.py" "$v" --threads 2 --data "$data" --seed 1 --epochs 4 "$@" 2>&1 || true; } | tee -a "$out/torch_cpu_$v.log" | { grep -oE 'median_epoch_sec [0-9.]+' || true; } | awk '{print $2}' | tail -1; }
  ceager[$v]=$(tc); ceager[$v]=${ceager[$v]:-nan}
  ccomp[$v]=$(tc --compile default); ccomp[$v]=${ccomp[$v]:-nan}
done

echo
echo "gpu_check on $gpu, $(date -u +%Y-%m-%d), $(( $(date +%s) - t0 )) s; modules: $images"
echo "${gpu_diff_line:-gpu_diff: no summary (see above)}"
printf '%-12s %-10s %-6s %-14s\n' model test_acc bar "median epoch"
for m in "${models[@]}"; do
  bar=0.82; [ "$m" = mlp_dropout ] && bar=0.84
  printf '%-12s %-10s %-6s %-14s\n' "$m" "${acc[$m]}" "$bar" "${sec[$m]} s"
done
printf 'differential (GPU vs CPU, 1 epoch + eval): %s; mlp bench: %s us a step (the replayed graph)\n' "$diff_ok" "${step_us:-nan}"
printf 'predict on both devices: %s agree; resume on the GPU: %s\n' "$agree" "$resume"
printf 'one rank on NCCL (mlp_dropout --distributed nccl, 2 epochs): %s\n' "$one_rank"
awk -v a="${sec[mlp]}" -v e="$eager" -v c="$compiled" 'BEGIN {
  printf "mlp epoch: aotgrad %s s, PyTorch eager %s s (%.2fx; target >= 3x), torch.compile %s s (%.2fx; target > 1x)\n",
         a, e, (a > 0 ? e / a : 0), c, (a > 0 ? c / a : 0) }'
for v in "${convnets[@]}"; do
  bar=0.75; [ "$v" = lenet_relu ] && bar=0.84
  awk -v v="$v" -v t="${acc[$v]}" -v b="$bar" -v a="${sec[$v]}" -v e="${teager[$v]}" -v c="${tcomp[$v]}" 'BEGIN {
    printf "%s: test_acc %s (bar %s); epoch aotgrad %s s, PyTorch eager %s s (%.2fx), torch.compile %s s (%.2fx)\n",
           v, t, b, a, e, (a > 0 ? e / a : 0), c, (a > 0 ? c / a : 0) }'
  awk -v v="$v" -v a="${ccpu[$v]}" -v e="${ceager[$v]}" -v c="${ccomp[$v]}" 'BEGIN {
    printf "%s on the CPU, 2 threads: epoch aotgrad %s s, PyTorch eager %s s (%.2fx), torch.compile %s s (%.2fx; targets > 1x)\n",
           v, a, e, (a > 0 ? e / a : 0), c, (a > 0 ? c / a : 0) }'
done
if [ -n "$logdir" ]; then # everything but the cases' kernels
  tar -C "$out" --exclude=cases --exclude=lib --exclude='*.bin' -czf "$logdir/gpu_check_logs.tar.gz" . &&
    echo "logs: $logdir/gpu_check_logs.tar.gz" || echo "logs: could not write $logdir/gpu_check_logs.tar.gz"
fi
rm -rf "$out"
