#!/usr/bin/env bash
# The installed library (ctest `install`): `cmake --install` of this build into a temporary
# prefix holds the CMake package and aotgrad.pc; examples/ configures and builds against it
# (find_package(aotgrad), aotgrad_add_model) and its program trains the MLP for an epoch with
# the loss going down; and a C caller of a forward-only model's object and header, linked
# with `pkg-config --cflags --libs --static aotgrad`, computes what the standalone binary does
# from chain_init's parameters.
#   test_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
unset AOTGRAD_INCLUDE AOTGRAD_RUNTIME_LIB # the installed aotgrad finds its own headers and library
t=$(mktemp -d /tmp/aotgrad-install-XXXXXX)
trap 'rm -rf "$t"' EXIT
fail() { echo "install: $*" >&2; exit 1; }
run() { # a command, its output in $t/log; on failure the command and the log's end
  "$@" >"$t/log" 2>&1 || { tail -n 20 "$t/log" >&2; fail "failed: $*"; }
}

p=$t/prefix
run cmake --install "$build" --prefix "$p"
for f in bin/aotgrad lib/aotgrad/libaotgrad_runtime.a lib/cmake/aotgrad/aotgradConfig.cmake \
  lib/cmake/aotgrad/aotgradConfigVersion.cmake lib/pkgconfig/aotgrad.pc include/aotgrad/aotgrad.h \
  include/aotgrad/aotgrad_runtime.h include/aotgrad/pool.h share/bash-completion/completions/aotgrad; do
  [ -f "$p/$f" ] || fail "cmake --install put no $f in the prefix"
done

# bash completion: commands, options from each command's --help, pass names
complete_words() { # the words the completion offers for a command line, the last word the one completed
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _aotgrad; echo "${COMPREPLY[*]}"' _ \
    "$p/share/bash-completion/completions/aotgrad" "$p/bin/aotgrad" "$@"
}
[ "$(complete_words bu)" = build ] || fail "completion of 'aotgrad bu': $(complete_words bu)"
[ "$(complete_words ir m.c --aft)" = --after ] || fail "completion of 'aotgrad ir m.c --aft': $(complete_words ir m.c --aft)"
[ "$(complete_words ir m.c --after plan)" = plan_memory ] || fail "completion of a pass name"

# examples/: the CMake package
run cmake -S "$src/examples" -B "$t/ex" -DCMAKE_PREFIX_PATH="$p" -DCMAKE_BUILD_TYPE=Release
run cmake --build "$t/ex" -j2
[ -f "$t/ex/mlp_model/mlp.h" ] || fail "aotgrad_add_model wrote no mlp_model/mlp.h"
"$t/ex/train_mlp" >"$t/train" 2>&1 || { cat "$t/train" >&2; fail "train_mlp failed"; }
cat "$t/train"
losses=$(sed -n 's/^steps .*: loss \([0-9.]*\)$/\1/p' "$t/train")
[ "$(echo "$losses" | wc -l)" -ge 5 ] || fail "train_mlp printed fewer than 5 loss lines"
echo "$losses" | awk 'NR == 1 { first = $1 } { last = $1 } END { exit !(last < 0.6 * first) }' ||
  fail "train_mlp's loss did not go down: $(echo $losses)"
grep -q '^test accuracy 0\.[5-9]' "$t/train" || fail "train_mlp's test accuracy is not above 0.5"

# pkg-config: a C caller of a forward-only model's OUT.o + OUT.h
export PKG_CONFIG_PATH=$p/lib/pkgconfig
flags=$(pkg-config --cflags --libs --static aotgrad) || fail "pkg-config --cflags --libs --static aotgrad failed"
echo "pkg-config --cflags --libs --static aotgrad: $flags"
run "$p/bin/aotgrad" build "$src/tests/data/models/chain.c" -o "$t/chain" --emit obj,h
grep -q 'pkg-config --cflags --libs --static aotgrad' "$t/chain.h" || fail "chain.h does not give the link line"
# shellcheck disable=SC2086 # the flags are words
run cc -std=c17 -Wall -Wextra -Werror -I"$t" -o "$t/chain_main" "$src/tests/install/chain_main.c" "$t/chain.o" $flags
run "$p/bin/aotgrad" build "$src/tests/data/models/chain.c" -o "$t/chainbin"
printf '0.5,-1.25,2,0\n1,1,1,1\n-0.75,0.25,-2,3.5\n' >"$t/x.csv" # chain_main.c's rows
for seed in 1 7; do
  "$t/chainbin" predict --seed $seed "$t/x.csv" | grep -v '^#' >"$t/want" || fail "chain predict --seed $seed failed"
  env -u OPENBLAS_CORETYPE "$t/chain_main" $seed >"$t/got" 2>"$t/blas" || fail "chain_main $seed failed: $(cat "$t/blas")"
  diff "$t/want" "$t/got" >&2 || fail "chain_init's parameters (seed $seed) do not give the binary's outputs"
done
grep -q '^kernels .*, tuned$' "$t/blas" || fail "after ag_blas_pick_kernels, OpenBLAS's kernels are not the CPU's best: $(cat "$t/blas")"
# OpenBLAS's oldest kernels on a CPU with AVX2 and FMA: ag_blas_tuned says what to set
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && [ "$(uname -m)" = x86_64 ]; then
  OPENBLAS_CORETYPE=Prescott "$t/chain_main" 1 >/dev/null 2>"$t/blas" || fail "chain_main with Prescott kernels failed"
  grep -q '^kernels Prescott, OpenBLAS runs its Prescott kernels .*set OPENBLAS_CORETYPE=' "$t/blas" ||
    fail "ag_blas_tuned gives no advice for Prescott kernels: $(cat "$t/blas")"
fi
echo "install: the package, examples/ (loss $(echo $losses | awk '{ print $1 " to " $NF }')) and pkg-config's link line work"
