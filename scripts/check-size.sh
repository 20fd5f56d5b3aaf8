#!/usr/bin/env bash
# The house's limits on size (docs/contributing.md): no source file over 1000 lines, no
# function over 150 (a function: from a '{' alone at the start of a line to the '}' that
# starts a line after it). Test data and models aside. Exits 1 naming each one over.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.c' '*.h' '*.cpp' | grep -v -e '^tests/data/' -e '^models/' | xargs awk '
    function file_done() { if (name != "" && lines > 1000) { print name ": " lines " lines (at most 1000)"; bad = 1 } }
    FNR == 1 { file_done(); name = FILENAME; start = 0 }
    { lines = FNR }
    $0 == "{" { start = FNR }
    /^}/ && start { if (FNR - start > 150) { print FILENAME ":" start ": a function of " FNR - start " lines (at most 150)"; bad = 1 } start = 0 }
    END { file_done(); exit bad }'
