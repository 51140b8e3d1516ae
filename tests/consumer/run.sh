#!/usr/bin/env bash
# Builds each consumer project against an installed cowmem only (the
# prefix, nothing of the source tree), and runs it: the core and pool
# examples (find_package, then pkg-config), a wasm2c program and a WAMR
# program, each with a module of its own.
# Usage: tests/consumer/run.sh <prefix> <build dir> [<WAMR source tree>]
set -euo pipefail
prefix=$1
out=$2
wamr=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib64/pkgconfig"
libdir=$(pkg-config --variable=libdir cowmem)
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

build() { # project, cmake args...
  local name=$1
  shift
  echo "--- consumer: $name"
  cmake -S "$here/$name" -B "$out/$name" -DCMAKE_PREFIX_PATH="$prefix" "$@" >/dev/null
  cmake --build "$out/$name" >/dev/null
}

build core
"$out/core/core"
build pool
"$out/pool/pool"
for p in core pool; do
  echo "--- consumer: $p with pkg-config"
  # shellcheck disable=SC2046 # pkg-config's flags are words
  cc -Wall -Wextra -Werror "$here/$p/$p.c" -o "$out/${p}_pc" $(pkg-config --cflags --libs cowmem)
  "$out/${p}_pc"
done
build wasm2c
"$out/wasm2c/app"
if [ -n "$wamr" ] && [ -f "$wamr/build-scripts/runtime_lib.cmake" ]; then
  build wamr -DWAMR_DIR="$wamr"
  "$out/wamr/app"
else
  echo "--- consumer: wamr SKIPPED (no WAMR source tree at '${wamr}')"
fi
