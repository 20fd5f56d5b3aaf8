#!/usr/bin/env bash
# Every C source of the repository as clang-format 19 writes it (.clang-format); models/ and
# tests/data/ stay as they are (.clang-format-ignore). Prints each difference; exit status 1
# when there is one. `scripts/check-format.sh --fix` rewrites the files instead.
set -euo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format-19}
command -v "$cf" >/dev/null || { echo "check-format: $cf not found (scripts/install-deps.sh installs it)" >&2; exit 2; }
if [ "${1:-}" = --fix ]; then
  git ls-files -z '*.c' '*.h' '*.cpp' | xargs -0 "$cf" -i
else
  git ls-files -z '*.c' '*.h' '*.cpp' | xargs -0 "$cf" --dry-run -Werror
fi
