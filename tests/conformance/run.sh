#!/bin/sh
# ctest entry for the Node drivers: skip (77) where node is absent.
# usage: run.sh <script.js> args...
command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed"; exit 77; }
script=$1
shift
exec node "$script" "$@"
