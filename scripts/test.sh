#!/usr/bin/env bash
# The test suite: installs what is missing, then builds and runs every test twice, in a
# Release build and in an ASan + UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
for variant in release asan; do
  dir=build-test-$variant
  flags=(-DCMAKE_BUILD_TYPE=Release)
  [ "$variant" = asan ] && flags=(-DCMAKE_BUILD_TYPE=Debug -DAG_SANITIZE=ON)
  echo "== $variant build =="
  cmake -S . -B "$dir" "${flags[@]}" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $variant tests =="
  # two suites at a time: each is mostly parallel (Criterion's --jobs 2), but builds and
  # mpirun start-ups leave cores idle that another suite fills (the ASan run: 577 -> 489 s)
  (cd "$dir" && ctest --output-on-failure -j"$jobs")
done
