#!/usr/bin/env bash
# The time of `aotgrad build models/mlp.c --emit obj,h`: the median of 5 runs, and the
# breakdown of the last one. Usage: bench/build_time.sh [path/to/aotgrad]
set -euo pipefail
cd "$(dirname "$0")/.."
ag=${1:-build/aotgrad}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
times=()
for i in 1 2 3 4 5; do
  s=$(date +%s.%N)
  "$ag" build models/mlp.c --emit obj,h -o "$out/mlp" >/dev/null
  e=$(date +%s.%N)
  times+=("$(awk -v s="$s" -v e="$e" 'BEGIN{printf "%.3f", e - s}')")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
echo "aotgrad build models/mlp.c --emit obj,h: median of 5 ${median} s (runs: ${times[*]})"
"$ag" build models/mlp.c --emit obj,h -o "$out/mlp" --time
