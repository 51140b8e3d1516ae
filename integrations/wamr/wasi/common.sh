# common.sh: sourced by compare.sh and workloads.sh after they set WORK,
# TOOL (the cowmem command, or empty) and MOD (the module to strip and
# compile). Makes WORK the current directory, defines fail() and the
# failure count, and sets `runners`: stock iwasm, cowmem-iwasm, its
# --stock, --images (with the cowmem command: mod.stripped.wasm and
# mod.cwimg written here) and node:wasi (when node has it); with
# COWMEM_WASI_RUNNERS=cowmem only iwasm, cowmem-iwasm and --images.
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
cd "$WORK" || exit 1

runners="iwasm cowmem"
[ "${COWMEM_WASI_RUNNERS:-}" = cowmem ] || runners="$runners stock"
if [ -n "$TOOL" ]; then
  "$TOOL" strip --fresh-imports "$MOD" -o mod.stripped.wasm &&
    "$TOOL" compile --fresh-imports "$MOD" -o mod.cwimg || exit 1
  runners="$runners images"
fi
if [ "${COWMEM_WASI_RUNNERS:-}" = cowmem ]; then
  : # sanitized builds: only what runs cowmem's code
elif command -v node >/dev/null && node -e 'require("node:wasi")' 2>/dev/null; then
  runners="$runners node"
else
  echo "note: node:wasi not available, compared without it"
fi

# The verdict, at the end of a script.
finish() {
  if [ "$fails" -gt 0 ]; then
    echo "$fails failed"
    exit 1
  fi
  echo "$1: all same ($runners)"
}
