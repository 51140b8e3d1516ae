#!/bin/sh
# compare.sh COWMEM_IWASM IWASM NODE_RUN_JS PROBE_WASM REACTOR_WASM WORKDIR [COWMEM]
# Runs probe.wasm and reactor.wasm cases through stock iwasm (the oracle),
# cowmem-iwasm, cowmem-iwasm --stock, cowmem-iwasm --images (with the
# cowmem command) and node:wasi (commands only): stdout, the files written
# in the preopened directory and the exit code must be identical. Then
# cowmem-iwasm's own errors (missing file, bad module, missing preopen)
# and a request loop's isolation and reuse of execution environments.
set -u
CI=$1 IW=$2 NODE_RUN=$3 PROBE=$4 REACTOR=$5 WORK=$6 TOOL=${7:-}
MOD=$PROBE
. "$(dirname "$0")/common.sh"

# run RUNNER OUTDIR [options] module args...: stdout to OUTDIR/out, the
# exit code to OUTDIR/rc, with a fresh preopened directory OUTDIR/d (its
# files seeded) mapped as /d.
run() {
  r=$1 out=$2
  shift 2
  rm -rf "$out" && mkdir -p "$out/d" && echo seed > "$out/d/seed.txt"
  case $r in
    iwasm) (cd "$out" && "$IW" --map-dir=/d::d "$@") ;;
    cowmem) (cd "$out" && "$CI" --map-dir=/d::d "$@") ;;
    stock) (cd "$out" && "$CI" --stock --map-dir=/d::d "$@") ;;
    images)
      # the stripped module in place of the original
      n=$#
      for a; do
        [ "$a" = "$PROBE" ] && a=$WORK/mod.stripped.wasm
        set -- "$@" "$a"
      done
      shift "$n"
      (cd "$out" && "$CI" --images="$WORK/mod.cwimg" --map-dir=/d::d "$@") ;;
    node) (cd "$out" && node --no-warnings "$NODE_RUN" --map-dir=/d::d "$@") ;;
  esac > "$out/out" 2> "$out/err"
  echo $? > "$out/rc"
}

# same NAME [options] module args...: every runner against iwasm's.
same() {
  name=$1
  shift
  run iwasm "$name.iwasm" "$@"
  for r in $runners; do
    [ "$r" = iwasm ] && continue
    # node:wasi takes iwasm's options but --stack-size, and reports a trap
    # as a JavaScript error, not iwasm's line.
    case "$r:$*" in
      images:*"$REACTOR"* | node:*--stack-size* | node:*trap*) continue ;;
    esac
    run "$r" "$name.$r" "$@"
    for f in out rc; do
      cmp -s "$name.iwasm/$f" "$name.$r/$f" ||
        fail "$name: $r's $f differs from iwasm's: $(head -c 300 "$name.$r/$f") vs $(head -c 300 "$name.iwasm/$f")"
    done
    diff -r "$name.iwasm/d" "$name.$r/d" >/dev/null || fail "$name: $r's files differ"
  done
  echo "same: $name (rc $(cat "$name.iwasm/rc"))"
}

same args "$PROBE" args one "two words" ""
same env --env=A=1 --env=B=x=y "$PROBE" env A B C
same cat "$PROBE" cat < /dev/null
same write "$PROBE" write /d/new.txt "written by the program"
same read "$PROBE" read /d/seed.txt
same ls "$PROBE" ls /d
same outside "$PROBE" read /etc/hostname
same exit "$PROBE" exit 42
same trap "$PROBE" trap
same grow "$PROBE" grow 32
same stack --stack-size=131072 "$PROBE" args
same reactor_add -f add "$REACTOR" 40 2
same reactor_hello -f hello "$REACTOR"
[ "$(cat exit.iwasm/rc)" = 42 ] || fail "exit: iwasm gave $(cat exit.iwasm/rc)"
grep -q "written by the program" write.cowmem/d/new.txt || fail "write: no file"

# cowmem-iwasm's errors: iwasm's exit code (255), a message saying what.
expect_error() {
  name=$1 says=$2
  shift 2
  "$CI" "$@" > "$name.out" 2> "$name.err"
  rc=$?
  [ $rc = 255 ] || fail "$name: exit code $rc, not 255"
  grep -q "$says" "$name.err" || fail "$name: stderr lacks '$says': $(cat "$name.err")"
  echo "error: $name: $(cat "$name.err")"
}
expect_error missing_file "cannot read $WORK/none.wasm" "$WORK/none.wasm"
printf 'not wasm' > bad.wasm
expect_error bad_module "malformed module" bad.wasm
expect_error bad_module_stock "not a module" --stock bad.wasm
expect_error missing_dir "cannot preopen directory $WORK/nodir" --dir="$WORK/nodir" "$PROBE" args
expect_error missing_map "cannot preopen directory /x::$WORK/nodir" --map-dir="/x::$WORK/nodir" "$PROBE" args
"$CI" --bogus "$PROBE" > /dev/null 2>&1
[ $? = 2 ] || fail "a bad option is not exit code 2"

# A request loop: every request sees clean memory; the file it left in the
# directory the host gives again is what it sees of the previous one.
mkdir -p loop
"$CI" --repeat=4 --map-dir=/d::loop "$PROBE" secret /d/s > loop.out 2> loop.err ||
  fail "repeat: exit code $?"
[ "$(grep -c 'memory clean' loop.out)" = 4 ] || fail "repeat: memory not clean: $(cat loop.out)"
[ "$(grep -c 'file HOLDS' loop.out)" = 3 ] || fail "repeat: file: $(cat loop.out)"
grep -q "requests/s" loop.err || fail "repeat: no latency table: $(cat loop.err)"
grep -q "minor faults/request" loop.err || fail "repeat: no fault count"
# Each request's instance runs on the execution environment the previous
# one gave back: one made, the others reused.
grep -q "execution environments: 1 created, 3 reused" loop.err ||
  fail "repeat: environments not reused: $(grep environments loop.err)"
# The same for an export called by name (-f), whose result is printed as
# iwasm prints it, once per request.
run iwasm hello1.iwasm -f hello "$REACTOR"
"$CI" --repeat=3 -f hello "$REACTOR" > hello3.out 2> hello3.err || fail "repeat -f: exit code $?"
cat hello1.iwasm/out hello1.iwasm/out hello1.iwasm/out | cmp -s - hello3.out ||
  fail "repeat -f: output differs from iwasm's, three times: $(head -c 300 hello3.out)"
grep -q "execution environments: 1 created, 2 reused" hello3.err ||
  fail "repeat -f: environments not reused: $(grep environments hello3.err)"
"$CI" --live=3 "$PROBE" args > live.out 2> live.err || fail "live: exit code $?"
grep -q "3 live instances" live.err || fail "live: $(cat live.err)"

finish "probe and reactor"
