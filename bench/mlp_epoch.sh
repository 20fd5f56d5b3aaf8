#!/usr/bin/env bash
# The MLP's training epoch against the GEMM floor and PyTorch, measured in one run.
# Usage: bench/mlp_epoch.sh [--threads T] [--epochs N] [--no-torch] [path/to/aotgrad]
# Run with --help for the details; bench/README.md ("mlp_epoch.sh") has results.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/mlp_epoch.sh [--threads T] [--epochs N] [--data DIR] [--no-torch] [path/to/aotgrad]

Times one training epoch of the d2l MLP (784-256-10, batch 256, Fashion-MNIST) three ways,
in one run so that the ratios are comparable on a noisy machine:

  aotgrad  `aotgrad build models/mlp.c`, then `mlp train --epochs N --seed 1 --threads T`:
           the median of the epoch seconds of epochs 2..N (training only, no evaluation)
  floor    the anchors' gemm_floor (OpenBLAS, OPENBLAS_NUM_THREADS=T): the five sgemm calls
           of every training step of one epoch, best of 5 repetitions; it runs before and
           after the trainings and the better of the two is the floor
  PyTorch  the anchors' `torch_d2l.py mlp --threads T --seed 1 --epochs N`: the median of
           epochs 2..N

and prints a table: both medians (and the fastest epoch of each), the floor, aotgrad/floor
(bar: <= 1.25), PyTorch/aotgrad (aotgrad's speedup), the test accuracies after the last
epoch, threads, CPU, the OpenBLAS kernels in use, how much CPU other processes took while
it measured (they skew every figure), date, and the command that reproduces it.

options:
  path/to/aotgrad  the compiler to test (default: build/aotgrad under the project root)
  --threads T      threads for all three (default: nproc)
  --epochs N       epochs of both trainings, at least 2 (default 10)
  --data DIR       Fashion-MNIST IDX folder for both trainings (default: each one's default,
                   /usr/share/datasets/fashion-mnist)
  --no-torch       neither install nor run PyTorch; only the floor ratio is reported
  --help           this text

environment:
  ANCHORS          folder of gemm_floor.c and torch_d2l.py (default: bench/anchors, the
                   copies of the project's reference programs)
  OPENBLAS_CORETYPE  passed on to gemm_floor and the MLP binary (both use OpenBLAS). The table
                   names the OpenBLAS kernels in use and warns when OpenBLAS fell back to SSE
                   kernels on an AVX2/AVX-512 CPU it does not know (Debian 12's OpenBLAS 0.3.21
                   does this on the Xeon model 207 of this project's machines).
  XDG_CACHE_HOME   PyTorch is used from `python3` if it imports torch and numpy; otherwise
                   from a venv at ${XDG_CACHE_HOME:-~/.cache}/aotgrad-bench-venv, created and
                   filled by pip on first use (the CPU wheel from download.pytorch.org, or
                   PyPI's torch if that index cannot be reached). Progress goes to stderr.
                   If PyTorch cannot be had, the table says why and the run still exits 0.

Exit status: 1 if aotgrad, the MLP binary, or gemm_floor fails (build or run); 2 on a usage
error; otherwise 0, whether or not the 1.25x bar holds. Progress goes to stderr, the table
to stdout. Takes a few minutes (plus a one-time PyTorch install).
EOF
}

orig_args=("$@")
threads=$(nproc)
epochs=10
data=
no_torch=0
ag=
while [ $# -gt 0 ]; do
  case $1 in
    --help|-h) usage; exit 0 ;;
    --threads) [ $# -ge 2 ] || { echo "mlp_epoch.sh: --threads needs a value" >&2; exit 2; }
               threads=$2; shift 2 ;;
    --threads=*) threads=${1#*=}; shift ;;
    --epochs) [ $# -ge 2 ] || { echo "mlp_epoch.sh: --epochs needs a value" >&2; exit 2; }
              epochs=$2; shift 2 ;;
    --epochs=*) epochs=${1#*=}; shift ;;
    --data) [ $# -ge 2 ] || { echo "mlp_epoch.sh: --data needs a value" >&2; exit 2; }
            data=$2; shift 2 ;;
    --data=*) data=${1#*=}; shift ;;
    --no-torch) no_torch=1; shift ;;
    -*) echo "mlp_epoch.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$ag" ] || { echo "mlp_epoch.sh: more than one aotgrad path (see --help)" >&2; exit 2; }
       ag=$1; shift ;;
  esac
done
[[ $threads =~ ^[1-9][0-9]*$ ]] || { echo "mlp_epoch.sh: --threads must be a positive integer" >&2; exit 2; }
if ! [[ $epochs =~ ^[1-9][0-9]*$ ]] || [ "$epochs" -lt 2 ]; then
  echo "mlp_epoch.sh: --epochs must be an integer >= 2" >&2; exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# A path given on the command line is taken relative to the caller's directory.
ag=${ag:-$root/build/aotgrad}
case $ag in /*) ;; *) ag=$PWD/$ag ;; esac
[ -z "$data" ] || case $data in /*) ;; *) data=$PWD/$data ;; esac
anchors=${ANCHORS:-$root/bench/anchors}
[ -d "$anchors" ] || { echo "mlp_epoch.sh: no anchors folder at $anchors (set ANCHORS)" >&2; exit 1; }
anchors=$(cd "$anchors" && pwd)

say() { echo "mlp_epoch.sh: $*" >&2; }
fail() { echo "mlp_epoch.sh: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Median of the numbers on stdin (mean of the middle two for an even count).
median() {
  sort -g | awk '{v[NR] = $1} END {
    if (NR == 0) exit 1
    if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
lowest() { awk 'NR == 1 || $1 < m { m = $1 } END { printf "%.3f", m }'; }
# CPU seconds: "busy steal" of the whole machine (/proc/stat), and this script's own (its
# time and that of every descendant it waited for, from /proc/$$/stat).
hz=$(getconf CLK_TCK)
machine_cpu() { awk -v hz="$hz" '$1 == "cpu" { printf "%.2f %.2f", ($2 + $3 + $4 + $7 + $8) / hz, $9 / hz }' /proc/stat; }
own_cpu() { awk -v hz="$hz" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13 + $14 + $15) / hz }' "/proc/$$/stat"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# ---- 1. builds -------------------------------------------------------------------------
[ -x "$ag" ] || fail "no aotgrad at $ag (build it: cmake -S . -B build && cmake --build build -j2)"
say "building the MLP binary: $ag build models/mlp.c"
(cd "$root" && "$ag" build models/mlp.c -o "$tmp/mlp") >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log" >&2; fail "aotgrad build models/mlp.c failed"; }
[ -x "$tmp/mlp" ] || fail "aotgrad build models/mlp.c made no binary at $tmp/mlp"

say "building gemm_floor from $anchors/gemm_floor.c"
cc -O2 "$anchors/gemm_floor.c" -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas \
  -o "$tmp/gemm_floor" 2>"$tmp/floor_build.log" ||
  { cat "$tmp/floor_build.log" >&2; fail "building gemm_floor failed (needs libopenblas-dev)"; }

# Which OpenBLAS kernels run here (the floor's and, through libopenblas, the MLP binary's).
# An OpenBLAS older than the CPU may not know its model and fall back to old SSE kernels.
printf '%s\n' 'char *openblas_get_corename(void);' '#include <stdio.h>' \
  'int main(void) { puts(openblas_get_corename()); return 0; }' >"$tmp/blas_core.c"
blas_core=$(cc "$tmp/blas_core.c" -lopenblas -o "$tmp/blas_core" 2>/dev/null && "$tmp/blas_core" || echo unknown)
flags=$(awk -F: '/^flags/ { print $2; exit }' /proc/cpuinfo)
case " $flags " in
  *" avx512f "*) want_core=SkylakeX; isa=AVX-512 ;;
  *" avx2 "*) want_core=Haswell; isa=AVX2 ;;
  *) want_core='' isa='' ;;
esac
blas_warn=
case $blas_core in
  Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Katmai|Coppermine|Northwood|Banias|unknown)
    if [ -n "$want_core" ]; then
      model=$(awk -F: '/^model[ \t]*:/ { gsub(/ /, "", $2); print $2; exit }' /proc/cpuinfo)
      blas_warn="OpenBLAS runs its $blas_core kernels on this $isa CPU (model $model unknown to it): the floor and the MLP binary's OpenBLAS calls are several times slower than the hardware allows; rerun with OPENBLAS_CORETYPE=$want_core"
      say "warning: $blas_warn"
    fi ;;
esac

# ---- PyTorch: find or install it before any timing ----------------------------------------
py=
torch_note=
venv=${XDG_CACHE_HOME:-$HOME/.cache}/aotgrad-bench-venv
has_torch() { "$1" -c 'import torch, numpy' >/dev/null 2>&1; }
if [ "$no_torch" = 1 ]; then
  torch_note="not measured: --no-torch"
elif command -v python3 >/dev/null 2>&1 && has_torch python3; then
  py=python3
elif [ -x "$venv/bin/python" ] && has_torch "$venv/bin/python"; then
  py=$venv/bin/python
else
  say "PyTorch is not importable by python3; installing it into $venv (once; progress follows)"
  if ! command -v python3 >/dev/null 2>&1; then
    torch_note="not measured: no python3 to install PyTorch with"
  elif ! { [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2; }; then
    torch_note="not measured: python3 -m venv $venv failed"
  else
    pip=("$venv/bin/python" -m pip install --progress-bar off)
    # The CPU wheel is the one wanted; where that index is not reachable, PyPI's torch
    # (which also pulls the CUDA libraries, a few GB, unused here) times the same CPU code.
    if "${pip[@]}" --retries 1 --timeout 30 --index-url https://download.pytorch.org/whl/cpu \
         torch numpy >&2; then
      :
    else
      say "the CPU wheel index could not be used; trying PyPI's torch (larger download)"
      "${pip[@]}" torch numpy >&2 || true
    fi
    if has_torch "$venv/bin/python"; then
      py=$venv/bin/python
    else
      err=$("$venv/bin/python" -c 'import torch, numpy' 2>&1 | tail -n 1 || true)
      torch_note="not measured: installing PyTorch into $venv failed${err:+ ($err)}"
    fi
  fi
fi
torch_version=
if [ -n "$py" ]; then
  torch_version=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '?')
  say "PyTorch $torch_version from $(command -v "$py" || echo "$py")"
elif [ "$no_torch" = 0 ]; then
  say "PyTorch: $torch_note"
fi

# ---- 2-4. measurements ------------------------------------------------------------------
floor_run() { # $1: label, $2: OPENBLAS_CORETYPE or empty; prints "seconds gflops" of the best of 5
  local out
  say "gemm_floor 5 ($1, OPENBLAS_NUM_THREADS=$threads${2:+, OPENBLAS_CORETYPE=$2})"
  if [ -n "${2:-}" ]; then
    out=$(OPENBLAS_CORETYPE=$2 OPENBLAS_NUM_THREADS=$threads "$tmp/gemm_floor" 5) || fail "gemm_floor failed"
  else
    out=$(OPENBLAS_NUM_THREADS=$threads "$tmp/gemm_floor" 5) || fail "gemm_floor failed"
  fi
  echo "$out" >&2
  awk '$1 == "gemm_floor_epoch_sec" && $3 == "gflops" { print $2, $4; f = 1 } END { exit !f }' \
    <<<"$out" || fail "gemm_floor printed no gemm_floor_epoch_sec line"
}
load1=$(cut -d' ' -f1 /proc/loadavg)
read -r busy1 steal1 <<<"$(machine_cpu)"
own1=$(own_cpu)
wall1=$(date +%s.%N)
fl=$(floor_run before)
read -r floor1 gf1 <<<"$fl"
# Where OpenBLAS picks older kernels than the CPU runs, the binary picks the CPU's best itself
# (runtime/threads.c, rt_blas_pick_kernels): the floor is then also measured with those.
fair1= fair2=
if [ -n "$blas_warn" ] && [ -z "${OPENBLAS_CORETYPE+set}" ]; then
  read -r fair1 fgf1 <<<"$(floor_run before "$want_core")"
fi
bin_core=$("$tmp/mlp" bench --steps 1 --threads "$threads" 2>/dev/null | grep -oE "OpenBLAS's [A-Za-z0-9]+ kernels" |
  awk '{print $2}')

data_args=()
[ -z "$data" ] || data_args=(--data "$data")

say "aotgrad: mlp train --epochs $epochs --seed 1 --threads $threads"
set +e
"$tmp/mlp" train --epochs "$epochs" --seed 1 --threads "$threads" "${data_args[@]}" 2>&1 |
  tee "$tmp/ours.log" >&2
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || fail "mlp train failed (exit $rc)"
# epoch K/N ... 1.09s ...: the field that ends in "s" after a number is the epoch's seconds.
awk '$1 == "epoch" && $2 ~ /^[0-9]+\/[0-9]+$/ { split($2, e, "/")
       for (i = 3; i <= NF; i++) if ($i ~ /^[0-9.]+s$/) { print e[1], substr($i, 1, length($i) - 1); break } }' \
  "$tmp/ours.log" >"$tmp/ours.sec"
[ "$(wc -l <"$tmp/ours.sec")" -eq "$epochs" ] ||
  fail "expected $epochs epoch lines with seconds from mlp train, found $(wc -l <"$tmp/ours.sec")"
ours=$(awk '$1 >= 2 { print $2 }' "$tmp/ours.sec" | median)
ours_best=$(awk '$1 >= 2 { print $2 }' "$tmp/ours.sec" | lowest)
ours_acc=$(awk '$1 == "mlp:" && $2 == "test" && $3 == "accuracy" { print $4 }' "$tmp/ours.log" | tail -n 1)
[ -n "$ours_acc" ] || ours_acc=$(awk '$1 == "epoch" { for (i = 3; i < NF; i++) if ($i == "test_acc") a = $(i + 1) } END { print a }' "$tmp/ours.log")

torch_med=
torch_acc=
if [ -n "$py" ]; then
  say "PyTorch: torch_d2l.py mlp --threads $threads --seed 1 --epochs $epochs"
  set +e
  "$py" "$anchors/torch_d2l.py" mlp --threads "$threads" --seed 1 --epochs "$epochs" "${data_args[@]}" 2>&1 |
    tee "$tmp/torch.log" >&2
  rc=${PIPESTATUS[0]}
  set -e
  # epoch K loss L train_acc A test_acc T sec S
  awk '$1 == "epoch" && $9 == "sec" { print $2, $10 }' "$tmp/torch.log" >"$tmp/torch.sec"
  if [ "$rc" != 0 ]; then
    torch_note="not measured: torch_d2l.py failed (exit $rc): $(tail -n 1 "$tmp/torch.log")"
  elif [ "$(wc -l <"$tmp/torch.sec")" -ne "$epochs" ]; then
    torch_note="not measured: torch_d2l.py printed $(wc -l <"$tmp/torch.sec") epoch lines, not $epochs"
  else
    torch_med=$(awk '$1 >= 2 { print $2 }' "$tmp/torch.sec" | median)
    torch_best=$(awk '$1 >= 2 { print $2 }' "$tmp/torch.sec" | lowest)
    torch_acc=$(awk '$1 == "epoch" && $7 == "test_acc" { a = $8 } END { print a }' "$tmp/torch.log")
  fi
fi

fl=$(floor_run after)
read -r floor2 gf2 <<<"$fl"
if [ -n "$fair1" ]; then
  read -r fair2 fgf2 <<<"$(floor_run after "$want_core")"
  if awk -v a="$fair1" -v b="$fair2" 'BEGIN { exit !(b < a) }'; then fair=$fair2 fgf=$fgf2; else fair=$fair1 fgf=$fgf1; fi
fi
read -r busy2 steal2 <<<"$(machine_cpu)"
own2=$(own_cpu)
wall2=$(date +%s.%N)
# What other processes (and the hypervisor, as steal) took of the machine while we measured.
others=$(awk -v b1="$busy1" -v b2="$busy2" -v o1="$own1" -v o2="$own2" -v w1="$wall1" -v w2="$wall2" \
  -v s1="$steal1" -v s2="$steal2" -v n="$(nproc)" 'BEGIN {
    cap = (w2 - w1) * n; o = (b2 - b1) - (o2 - o1); if (o < 0) o = 0
    printf "%.0f%% of %d cores over %.0f s, steal %.0f%%", 100 * o / cap, n, w2 - w1, 100 * (s2 - s1) / cap }')
if awk -v a="$floor1" -v b="$floor2" 'BEGIN { exit !(b < a) }'; then floor=$floor2 gf=$gf2; else floor=$floor1 gf=$gf1; fi

# ---- 5. table ---------------------------------------------------------------------------
r_floor=$(ratio "$ours" "$floor")
if awk -v r="$r_floor" 'BEGIN { exit !(r <= 1.25) }'; then bar="met"; else bar="NOT met"; fi
cpu=$(awk -F: '/^model name/ { sub(/^[ \t]+/, "", $2); print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit + uncommitted changes"
cmd="bench/mlp_epoch.sh"
[ -z "${ANCHORS:-}" ] || cmd="ANCHORS=$(printf '%q' "$ANCHORS") $cmd"
[ -z "${OPENBLAS_CORETYPE+set}" ] || cmd="OPENBLAS_CORETYPE=$(printf '%q' "$OPENBLAS_CORETYPE") $cmd"
[ ${#orig_args[@]} -eq 0 ] || cmd="$cmd$(printf ' %q' "${orig_args[@]}")"
last="epochs 2-$epochs"

echo
echo "MLP epoch (d2l 784-256-10, batch 256, Fashion-MNIST, seed 1): aotgrad vs GEMM floor vs PyTorch"
echo
echo "| measure | value |"
echo "| --- | --- |"
echo "| aotgrad median epoch ($last) | ${ours} s (fastest ${ours_best} s) |"
echo "| GEMM floor (OpenBLAS, best of 5, before ${floor1} s / after ${floor2} s) | ${floor} s (${gf} GFLOP/s) |"
if [ -n "$torch_med" ]; then
  echo "| PyTorch ${torch_version} median epoch ($last) | ${torch_med} s (fastest ${torch_best} s) |"
else
  echo "| PyTorch median epoch | ${torch_note} |"
fi
echo "| aotgrad / floor (bar: <= 1.25) | ${r_floor}x, bar ${bar} |"
if [ -n "$fair1" ]; then
  r_fair=$(ratio "$ours" "$fair")
  if awk -v r="$r_fair" 'BEGIN { exit !(r <= 1.25) }'; then fair_bar="met"; else fair_bar="NOT met"; fi
  echo "| GEMM floor with OpenBLAS's $want_core kernels (the binary's) | ${fair} s (${fgf} GFLOP/s) |"
  echo "| aotgrad / that floor, the fair ratio (bar: <= 1.25) | ${r_fair}x, bar ${fair_bar} |"
fi
if [ -n "$torch_med" ]; then
  echo "| PyTorch / aotgrad (aotgrad's speedup) | $(ratio "$torch_med" "$ours")x |"
  echo "| test accuracy after $epochs epochs | aotgrad ${ours_acc}, PyTorch ${torch_acc} |"
else
  echo "| PyTorch / aotgrad (aotgrad's speedup) | not measured |"
  echo "| test accuracy after $epochs epochs | aotgrad ${ours_acc}, PyTorch not measured |"
fi
echo "| threads | ${threads} |"
echo "| CPU | ${cpu:-unknown} ($(nproc) cores seen) |"
echo "| OpenBLAS kernels: floor, MLP binary | ${blas_core}${OPENBLAS_CORETYPE+ (OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE)}, ${bin_core:-unknown} |"
echo "| other processes during the measurements | ${others} (load average before: ${load1}) |"
echo "| date | $(date '+%Y-%m-%d %H:%M %Z') |"
echo "| aotgrad | $ag (this script's checkout: commit $commit) |"
echo "| reproduce | \`${cmd}\` (from the project root) |"
echo
if [ -n "$fair1" ]; then
  # The binary runs faster kernels than the floor as built: only the same kernels' floor is a fair bar.
  echo "The 1.25x bar (aotgrad epoch <= 1.25 x GEMM floor) against the floor with the binary's $want_core kernels is ${fair_bar}: ${ours} s vs ${fair} s (${r_fair}x). Against the floor as built (OpenBLAS's own $blas_core kernels for this CPU, slower than the binary's) it is ${bar} (${r_floor}x), which compares different kernels."
else
  echo "The 1.25x bar (aotgrad epoch <= 1.25 x GEMM floor) is ${bar}: ${ours} s vs ${floor} s."
fi
[ -z "$blas_warn" ] || [ -z "${OPENBLAS_CORETYPE+set}" ] || echo "Warning: $blas_warn."
