#!/usr/bin/env bash
# Data-parallel training's epoch on this machine (issue 20): models/mlp.c built with and
# without --distributed mpi, trained on Fashion-MNIST for 3 epochs by the plain binary (one
# process, every core) and by mpirun on 1, 2 and 4 ranks (one thread a rank; 4 oversubscribe
# a 2-core machine). Prints each run's median epoch of epochs 2-3 (in the same run, so the
# ratios hold on a noisy machine), its test accuracy, and the distributed runs' allreduce
# line: the time a step waited on the sums, what the sums take alone, and the share of them
# the overlap with the backward pass hid.
#
#   bench/distributed.sh [BUILD_DIR] [--bucket-mib M]     (default build/, 4 MiB buckets)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
shift || true
bucket=(--bucket-mib 4)
[ "${1:-}" = "--bucket-mib" ] && bucket=(--bucket-mib "$2")
ag=$build/aotgrad
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
"$ag" build "$here/models/mlp.c" -o "$t/plain" >/dev/null
"$ag" build "$here/models/mlp.c" --distributed mpi "${bucket[@]}" -o "$t/mlp" >/dev/null

median_epoch() { # the median seconds of epochs 2.. of a log
  grep '^epoch ' "$1" | tail -n +2 | sed 's/.*  \([0-9.]*\)s  .*/\1/' | sort -n |
    awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

echo "models/mlp.c, 3 epochs of Fashion-MNIST, $(nproc) cores, buckets ${bucket[1]} MiB ($(date -u +%F))"
printf '%-34s %10s %9s  %s\n' run "epoch (s)" test_acc "allreduce"
"$t/plain" train --epochs 3 >"$t/plain.log"
base=$(median_epoch "$t/plain.log")
printf '%-34s %10s %9s\n' "one process, $(nproc) threads (no MPI)" "$base" \
  "$(sed -n 's/.*test accuracy \([0-9.]*\).*/\1/p' "$t/plain.log")"
for ranks in 1 2 4; do
  mpirun -np "$ranks" "$t/mlp" train --epochs 3 --threads 1 >"$t/r$ranks.log" 2>&1
  e=$(median_epoch "$t/r$ranks.log")
  printf '%-34s %10s %9s  %s\n' "mpirun -np $ranks, 1 thread a rank" "$e ($(awk -v a="$e" -v b="$base" 'BEGIN { printf "%.2fx", a / b }'))" \
    "$(sed -n 's/.*test accuracy \([0-9.]*\).*/\1/p' "$t/r$ranks.log")" \
    "$(sed -n 's/.*allreduce: //p' "$t/r$ranks.log")"
done
