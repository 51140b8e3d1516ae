#!/bin/sh
# CLI tests of the cowmem command: every subcommand, --help, usage errors
# (exit 2), bad files (exit 1, file name and reason on stderr), golden
# output for a small hand-made module, JSON parsed with node, compile ->
# dump round trip, strip output validated by wabt.
#
# usage: test_tools.sh <cowmem> <demo.wasm> <scratch dir>
# Exit 0 pass, 1 fail, 77 skip (node absent: JSON is what most checks read).
set -u
COWMEM=$1
DEMO=$2
WORK=$3
command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed"; exit 77; }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

# expect CODE NAME -- command...: runs it, stdout to out.txt, stderr to err.txt
expect() {
  want=$1; name=$2; shift 3
  "$@" >out.txt 2>err.txt
  got=$?
  if [ "$got" -ne "$want" ]; then
    fail "$name: exit $got, expected $want"; sed 's/^/    /' err.txt | head -5
    return 1
  fi
  ok "$name"
  return 0
}
# stderr must name the file and contain the reason
expect_err() {
  file=$1; reason=$2; name=$3
  if ! grep -q -- "$file" err.txt || ! grep -qi -- "$reason" err.txt; then
    fail "$name: stderr lacks '$file' / '$reason':"; sed 's/^/    /' err.txt
  fi
}
json() { # json FILE EXPR: evaluate EXPR with `j` the parsed file; prints it
  node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
           const v = eval(process.argv[2]); if (v === false) process.exit(1);
           console.log(typeof v === "object" ? JSON.stringify(v) : v)' "$1" "$2"
}
check_json() { # check_json FILE EXPR NAME
  if json "$1" "$2" >/dev/null 2>json_err.txt; then ok "$3"; else
    fail "$3: $2"; head -3 json_err.txt; fi
}

# A module: memory 0 of 4 pages (max 8), segments at 16 and 200000 (a run
# of zero pages between them), written byte by byte.
printf '\000asm\001\000\000\000\005\004\001\001\004\010' > sparse.wasm
printf '\013\325\001\002\000\101\020\013\144' >> sparse.wasm
i=0; while [ $i -lt 100 ]; do printf 'A'; i=$((i + 1)); done >> sparse.wasm
printf '\000\101\300\232\014\013\144' >> sparse.wasm
i=0; while [ $i -lt 100 ]; do printf 'z'; i=$((i + 1)); done >> sparse.wasm

# ---- help and usage --------------------------------------------------------
expect 0 "--help" -- "$COWMEM" --help && grep -q "Usage: cowmem" out.txt || fail "--help text"
expect 2 "no arguments" -- "$COWMEM"
expect 2 "unknown command" -- "$COWMEM" frobnicate
for sub in inspect compile strip dump bench; do
  expect 0 "$sub --help" -- "$COWMEM" $sub --help &&
    { grep -q "Usage: cowmem $sub" out.txt || fail "$sub --help: no usage line"; }
  expect 2 "$sub --bogus" -- "$COWMEM" $sub --bogus sparse.wasm
done
expect 2 "inspect without a file" -- "$COWMEM" inspect
expect 2 "compile without -o" -- "$COWMEM" compile sparse.wasm
expect 2 "strip without -o" -- "$COWMEM" strip sparse.wasm
expect 2 "dump without -o" -- "$COWMEM" dump sparse.wasm
expect 2 "dump with --global without =" -- "$COWMEM" dump sparse.wasm --global x -o d.bin
expect 2 "dump with an unknown global" -- "$COWMEM" dump sparse.wasm --global nope=1 -o d.bin
expect 2 "bench --iterations 0" -- "$COWMEM" bench sparse.wasm --iterations 0
expect 2 "two inputs" -- "$COWMEM" inspect sparse.wasm sparse.wasm

# ---- inspect: golden output ---------------------------------------------------
expect 0 "inspect sparse.wasm" -- "$COWMEM" inspect sparse.wasm
cat > golden.txt <<'EOF'
sparse.wasm: WebAssembly module, 230 bytes, sha256 @HASH@
memory 0: defined, 4 pages initial, 8 max
  segments: 2 active, 2 in the image, 0 left for instantiation
  image: memory offset 0, length 200704, resident 8192 bytes, 1 holes (192512 bytes)
segments: 2
  0: active, memory 0, offset 16, 100 bytes, in the image
  1: active, memory 0, offset 200000, 100 bytes, in the image
EOF
hash=$(sha256sum sparse.wasm | cut -d' ' -f1)
sed -i "s/@HASH@/$hash/" golden.txt
if [ "$(getconf PAGESIZE)" = 4096 ]; then
  diff -u golden.txt out.txt >diff.txt && ok "inspect golden" || { fail "inspect golden"; cat diff.txt; }
fi
expect 0 "inspect --json" -- "$COWMEM" inspect --json sparse.wasm && cp out.txt sparse.json
check_json sparse.json 'j.kind === "module" && j.memories.length === 1 && j.segment_count === 2' "inspect json: module"
check_json sparse.json 'j.memories[0].image.holes === 1 && j.memories[0].segments_left === 0 && j.start === false' "inspect json: layout"
check_json sparse.json "j.sha256 === \"$hash\"" "inspect json: hash"

# ---- compile + inspect the image file -----------------------------------------------
expect 0 "compile" -- "$COWMEM" compile sparse.wasm -o sparse.cwimg
expect 0 "inspect .cwimg --json" -- "$COWMEM" inspect --json sparse.cwimg && cp out.txt cw.json
check_json cw.json "j.kind === 'imgfile' && j.version === 1 && j.module_sha256 === '$hash'" "cwimg json: header"
check_json cw.json 'j.memories[0].image.file_offset % j.page_size === 0 && j.memories[0].image.resident_bytes === 2 * j.page_size' "cwimg json: layout"
check_json cw.json 'j.allocated < j.size' "cwimg is sparse on disk"
expect 0 "inspect .cwimg" -- "$COWMEM" inspect sparse.cwimg
grep -q "in the file: offset" out.txt || fail "inspect .cwimg: no file layout"

# ---- dump: module vs image file vs expected bytes ---------------------------------------
expect 0 "dump module" -- "$COWMEM" dump sparse.wasm -o a.bin
expect 0 "dump cwimg" -- "$COWMEM" dump sparse.cwimg -o b.bin
expect 0 "dump cwimg --module" -- "$COWMEM" dump sparse.cwimg --module sparse.wasm -o c.bin
cmp -s a.bin b.bin && cmp -s a.bin c.bin && ok "dumps equal" || fail "dumps differ"
[ "$(stat -c %s a.bin)" = 262144 ] && ok "dump size = initial size" || fail "dump size $(stat -c %s a.bin)"
node -e 'const b = require("fs").readFileSync("a.bin");
  for (let i = 0; i < b.length; i++) {
    const want = i >= 16 && i < 116 ? 65 : i >= 200000 && i < 200100 ? 122 : 0;
    if (b[i] !== want) { console.error("byte " + i + ": " + b[i]); process.exit(1); } }' &&
  ok "dump bytes" || fail "dump bytes"
expect 1 "dump --memory 1 (none)" -- "$COWMEM" dump sparse.wasm --memory 1 -o x.bin
expect_err sparse.wasm "no memory 1" "dump --memory 1"

# A memory whose segment offset is an imported global: no image; dump
# applies it with the value given.
printf '\000asm\001\000\000\000\002\010\001\001m\001g\003\177\000\005\003\001\000\001' > glob.wasm
printf '\013\011\001\000\043\000\013\003abc' >> glob.wasm
expect 0 "inspect global-offset module" -- "$COWMEM" inspect glob.wasm
grep -q "no image: segment 0: offset is imported global 0" out.txt && ok "why no image" || { fail "why no image"; cat out.txt; }
expect 0 "dump --global m.g=100" -- "$COWMEM" dump glob.wasm --global m.g=100 -o g.bin
node -e 'const b = require("fs").readFileSync("g.bin");
  process.exit(b.length === 65536 && b.slice(100, 103).toString() === "abc" && b[99] === 0 ? 0 : 1)' &&
  ok "dump with a global" || fail "dump with a global"
expect 1 "dump --global g=70000 (traps)" -- "$COWMEM" dump glob.wasm --global g=70000 -o g.bin
expect_err glob.wasm "out of bounds" "dump trap"
expect 0 "compile global-offset module" -- "$COWMEM" compile glob.wasm -o glob.cwimg
expect 1 "dump .cwimg with segments left, no module" -- "$COWMEM" dump glob.cwimg -o g.bin
expect_err glob.cwimg "--module" "dump needs --module"

# ---- bad files ------------------------------------------------------------------
expect 1 "inspect missing file" -- "$COWMEM" inspect nonexistent.wasm
expect_err nonexistent.wasm "No such file" "missing file"
printf 'hello world' > junk.bin
expect 1 "inspect junk" -- "$COWMEM" inspect junk.bin
expect_err junk.bin "unknown magic" "junk"
head -c 100 sparse.wasm > trunc.wasm
expect 1 "inspect truncated module" -- "$COWMEM" inspect trunc.wasm
expect_err trunc.wasm "unexpected end" "truncated module"
size=$(stat -c %s sparse.cwimg)
head -c $((size - 1)) sparse.cwimg > trunc.cwimg
expect 1 "inspect truncated .cwimg" -- "$COWMEM" inspect trunc.cwimg
expect_err trunc.cwimg "truncated" "truncated cwimg"
head -c 50 sparse.cwimg > trunc2.cwimg
expect 1 "inspect .cwimg cut in the header" -- "$COWMEM" inspect trunc2.cwimg
expect_err trunc2.cwimg "truncated" "cwimg cut in the header"
patch() { # patch IN OUT OFFSET BYTE(octal)
  cp "$1" "$2"; printf "\\$4" | dd of="$2" bs=1 seek="$3" conv=notrunc 2>/dev/null
}
patch sparse.cwimg corrupt.cwimg 120 377
expect 1 "inspect corrupt .cwimg" -- "$COWMEM" inspect corrupt.cwimg
expect_err corrupt.cwimg "corrupt" "corrupt cwimg"
patch sparse.cwimg v2.cwimg 8 002
expect 1 "inspect .cwimg of version 2" -- "$COWMEM" inspect v2.cwimg
expect_err v2.cwimg "version 2" "version"
patch sparse.cwimg page.cwimg 17 100
expect 1 "inspect .cwimg of another page size" -- "$COWMEM" inspect page.cwimg
expect_err page.cwimg "pages" "page size"
cp "$DEMO" demo.wasm 2>/dev/null || printf '\000asm\001\000\000\000' > demo.wasm
expect 1 "dump .cwimg with another module" -- "$COWMEM" dump sparse.cwimg --module demo.wasm -o x.bin
expect_err sparse.cwimg "another module" "wrong module"
expect 1 "inspect .cwimg --module (another module)" -- "$COWMEM" inspect sparse.cwimg --module demo.wasm
expect_err sparse.cwimg "another module" "inspect wrong module"
expect 0 "inspect .cwimg --module (its module)" -- "$COWMEM" inspect sparse.cwimg --module sparse.wasm
expect 2 "inspect module --module" -- "$COWMEM" inspect sparse.wasm --module sparse.wasm
expect 1 "compile into a missing directory" -- "$COWMEM" compile sparse.wasm -o no/such/dir.cwimg
expect_err no/such/dir.cwimg "No such file" "compile output error"

# ---- strip ----------------------------------------------------------------------
expect 0 "strip" -- "$COWMEM" strip sparse.wasm -o stripped.wasm
grep -q "2 of 2 data segments stripped (0 left)" out.txt && ok "strip summary" || fail "strip summary: $(cat out.txt)"
expect 0 "inspect stripped --json" -- "$COWMEM" inspect --json stripped.wasm && cp out.txt st.json
check_json st.json 'j.segment_count === 0' "stripped segments removed (no code names them)"
expect 0 "strip global-offset module (nothing to strip)" -- "$COWMEM" strip glob.wasm -o glob2.wasm
cmp -s glob.wasm glob2.wasm && ok "unchanged when nothing is covered" || fail "glob.wasm changed"
if command -v wasm-validate >/dev/null 2>&1; then
  wasm-validate stripped.wasm && ok "wasm-validate stripped.wasm" || fail "wasm-validate stripped.wasm"
fi

# A relocatable object (clang -c): its segments stripped (its memory is
# imported: --fresh-imports), indices kept, and each reloc.* section still
# names its target section (wabt's reading: index and kind) as before.
cat > obj.c <<'C'
static const char s[] = "copy on write";
int t[4] = {1, 2, 3, 4};
const char* pick(int i) { return i ? s : (const char*)&t[i]; }
C
if command -v clang >/dev/null 2>&1 && command -v wasm-objdump >/dev/null 2>&1 &&
  clang --target=wasm32 -O2 -c obj.c -o obj.o 2>/dev/null; then
  expect 0 "strip a relocatable object" -- "$COWMEM" strip --fresh-imports obj.o -o obj.s.o
  grep -q "2 of 2 data segments stripped (2 left)" out.txt || fail "object: $(cat out.txt)"
  wasm-objdump -x obj.o | grep "relocations for section" > relocs.txt
  wasm-objdump -x obj.s.o | grep "relocations for section" > relocs.s.txt
  [ -s relocs.txt ] && cmp -s relocs.txt relocs.s.txt && ok "object: reloc targets kept" ||
    fail "object: reloc targets $(cat relocs.txt) became $(cat relocs.s.txt)"
fi

# Removed or kept by what the code names, checked with wabt and V8: with
# no memory.init the covered segments go, the passive one is renumbered
# with its name; with memory.init every index stays, and the stripped
# module given the image's memory initializes as the original does.
if command -v wat2wasm >/dev/null 2>&1; then
  cat > names.wat <<'WAT'
(module (memory (export "mem") 1)
  (func (export "run") (memory.fill (i32.const 100) (i32.const 7) (i32.const 4)))
  (data $a (i32.const 16) "abc") (data $p "passive") (data $z (i32.const 32) "z"))
WAT
  cat > init.wat <<'WAT'
(module (memory (export "mem") 1)
  (func (export "run") (memory.init $p (i32.const 100) (i32.const 0) (i32.const 7)))
  (data $a (i32.const 16) "abc") (data $p "passive") (data $z (i32.const 32) "z"))
WAT
  for m in names init; do
    wat2wasm --enable-all --debug-names $m.wat -o $m.wasm || fail "wat2wasm $m"
    expect 0 "strip $m.wasm" -- "$COWMEM" strip $m.wasm -o $m.s.wasm && cp out.txt $m.txt
    e=$(wasm-validate --enable-all $m.s.wasm 2>&1) && [ -z "$e" ] && ok "wasm-validate --enable-all $m.s.wasm" ||
      fail "wasm-validate $m.s.wasm: $e"
    expect 0 "dump $m.wasm" -- "$COWMEM" dump $m.wasm -o $m.img
    # V8: the original run, against the stripped module run on a memory
    # that holds the image (what a runtime on cowmem gives it)
    node -e 'const fs = require("fs");
      const run = (file, img) => {
        const i = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(file)));
        const mem = new Uint8Array(i.exports.mem.buffer);
        if (img) { if (mem.some((b) => b !== 0)) process.exit(2); mem.set(fs.readFileSync(img)); }
        i.exports.run();
        return Buffer.from(mem);
      };
      process.exit(Buffer.compare(run(process.argv[1]), run(process.argv[2], process.argv[3])) === 0 ? 0 : 1)' \
      $m.wasm $m.s.wasm $m.img && ok "$m: stripped module + image runs as the original in V8" ||
      fail "$m: stripped module differs from the original in V8"
  done
  grep -q "2 of 3 data segments stripped (1 left)" names.txt && ok "names: covered segments removed" ||
    fail "names: $(cat names.txt)"
  wasm-objdump -x names.s.wasm | grep -q "segment\[0\] <p> passive" && ok "names: passive segment renumbered with its name" ||
    fail "names: $(wasm-objdump -x names.s.wasm | grep -E 'segment|dataseg')"
  grep -q "2 of 3 data segments stripped (3 left)" init.txt && ok "init: indices kept" ||
    fail "init: $(cat init.txt)"
  wasm-objdump -x init.s.wasm | grep -q "segment\[1\] <p> passive size=7" && ok "init: memory.init's segment keeps its index" ||
    fail "init: $(wasm-objdump -x init.s.wasm | grep -E 'segment')"
fi

# ---- the bundled demo ---------------------------------------------------------------
if [ -f "$DEMO" ]; then
  expect 0 "compile demo" -- "$COWMEM" compile "$DEMO" -o demo.cwimg
  expect 0 "dump demo" -- "$COWMEM" dump "$DEMO" -o d1.bin
  expect 0 "dump demo.cwimg" -- "$COWMEM" dump demo.cwimg -o d2.bin
  cmp -s d1.bin d2.bin && ok "demo dumps equal" || fail "demo dumps differ"
  # V8's initial memory of the demo equals the dump (no start function).
  node -e 'const fs = require("fs");
    const m = new WebAssembly.Module(fs.readFileSync(process.argv[1]));
    const imports = {};
    for (const i of WebAssembly.Module.imports(m))
      if (i.kind === "function") (imports[i.module] ||= {})[i.name] = () => 0;
    const inst = new WebAssembly.Instance(m, imports);
    const mem = Object.values(inst.exports).find((e) => e instanceof WebAssembly.Memory);
    process.exit(Buffer.compare(Buffer.from(mem.buffer), fs.readFileSync("d1.bin")) === 0 ? 0 : 1)' "$DEMO" &&
    ok "demo dump equals V8's memory" || fail "demo dump differs from V8"
  expect 0 "strip demo" -- "$COWMEM" strip "$DEMO" -o demo.stripped.wasm
  if command -v wasm-validate >/dev/null 2>&1; then
    wasm-validate demo.stripped.wasm && ok "wasm-validate demo.stripped.wasm" || fail "wasm-validate demo"
  fi
  # bench: no module means the bundled demo
  # (a build without the demo target has no default baked in: pass it)
  default=""
  "$COWMEM" bench --help | grep -q "bundled demo.wasm" || fail "bench help"
  if "$COWMEM" bench --iterations 1 >/dev/null 2>err.txt; then default=1
  else grep -q "bundled demo module was not found" err.txt || fail "bench default: $(cat err.txt)"; fi
  if [ -n "$default" ]; then
    expect 0 "bench (default module) --json" -- "$COWMEM" bench --iterations 40 --dirty 2 --json
  else
    expect 0 "bench demo --json" -- "$COWMEM" bench "$DEMO" --iterations 40 --dirty 2 --json
  fi
  cp out.txt bench.json
  check_json bench.json 'j.module.endsWith("demo.wasm") && j.iterations === 40 && j.dirty_pages === 2' "bench json: header"
  check_json bench.json '["copy-fresh", "copy-reuse", "slot", "slot-cwimg", "pool-madvise", "pool-keep-resident", "pool-batched", "pool-adaptive", "wasmtime-default", "wasmtime-keep64k", "wasmtime-pagemap"].every((n) => j.rows.some((r) => r.name === n))' "bench json: rows"
  check_json bench.json 'j.rows.every((r) => r.instantiate_ns.median > 0 && r.instantiate_ns.p99 >= r.instantiate_ns.median && r.ratio_instantiate > 0 && r.covers.length > 0)' "bench json: figures"
  check_json bench.json 'j.rows[0].name === "copy-fresh" && j.rows[0].ratio_instantiate === 1' "bench json: baseline first"
  # pool-adaptive says what each reset did: the 2 written pages copied back
  # (they are the hot set after the warm-up), a scan or not, madvise calls.
  check_json bench.json 'const a = j.rows.find((r) => r.name === "pool-adaptive"); a.copied_pages_per_reset === 2 && a.scans_per_reset >= 0 && a.scans_per_reset <= 1 && a.quiet_per_reset >= 0 && a.quiet_per_reset + a.scans_per_reset <= 1 && a.madvise_calls_per_reset >= 0 && j.rows.filter((r) => "scans_per_reset" in r).length === 1' "bench json: pool-adaptive per reset"
  # Every image page read and 8 written: ADAPTIVE keeps the written pages
  # (and, with PAGEMAP_SCAN, the read ones) mapped, so it makes fewer faults
  # per request than MADVISE, which drops them all.
  expect 0 "bench --read 1 --json" -- "$COWMEM" bench "$DEMO" --iterations 200 --read 1 --json
  cp out.txt benchr.json
  check_json benchr.json 'const f = (n) => j.rows.find((r) => r.name === n).faults_per_cycle; j.read_pages > 0 && f("pool-adaptive") < f("pool-madvise")' "bench --read 1: faults per cycle"
  # Whole pages written (--lines 64): the header says so, and adaptive
  # still copies back exactly the 2 written pages.
  expect 0 "bench --lines 64 --json" -- "$COWMEM" bench "$DEMO" --iterations 40 --dirty 2 --lines 64 --json
  cp out.txt benchl.json
  check_json benchl.json 'j.dirty_pages === 2 && j.dirty_lines === 64 && j.rows.find((r) => r.name === "pool-adaptive").copied_pages_per_reset === 2' "bench --lines 64 json"
  expect 0 "bench table" -- "$COWMEM" bench "$DEMO" --iterations 20
  grep -q "^copy-fresh" out.txt && grep -q "^pool-madvise" out.txt && ok "bench table rows" || fail "bench table rows"
  grep -Eq "^pool-adaptive, per reset: [0-9.]+ quiet, [0-9.]+ scans, [0-9.]+ copied pages, [0-9.]+ madvise calls" out.txt && ok "bench: pool-adaptive per reset" || fail "bench: pool-adaptive per reset"
  grep -Eq "^pool-adaptive cycle against Wasmtime's modes .*default [0-9.]+x, keep_resident [0-9.]+x, pagemap_scan [0-9.]+x" out.txt && ok "bench: ratios to Wasmtime's modes" || fail "bench: Wasmtime ratios"
  # scaling: every row, controls and Wasmtime's pagemap mode included, with a ratio
  for how in threads processes; do
    expect 0 "bench --$how 2" -- "$COWMEM" bench "$DEMO" --iterations 20 --$how 2
    for row in "control: arithmetic" "control: memcpy 64 KiB" pool-madvise pool-keep-resident \
               pool-adaptive "wasmtime-pagemap, own mem"; do
      grep -Eq "^  $row +1: +[1-9][0-9]*  2: +[1-9][0-9]*  \([0-9.]+x\)" out.txt || fail "bench --$how: $row"
    done
    ok "bench --$how 2: scaling rows"
  done
  if command -v gnuplot >/dev/null 2>&1; then
    expect 0 "bench --plot" -- "$COWMEM" bench "$DEMO" --iterations 20 --plot plot.svg
    grep -q "<svg" plot.svg && ok "plot is an svg" || fail "plot.svg"
  fi
  expect 1 "bench --plot without gnuplot" -- env PATH=/nonexistent "$COWMEM" bench "$DEMO" --iterations 5 --plot p.svg
  expect_err p.svg "gnuplot" "no gnuplot"
else
  echo "note: $DEMO absent; demo checks skipped"
fi

# ---- a module that imports its memory (--fresh-imports) -------------------
# import "env" "memory" (2 pages, max 4); "hello" at 16, "world" at 70000.
printf '\000asm\001\000\000\000\002\020\001\003env\006memory\002\001\002\004' > imp.wasm
printf '\013\027\002\000\101\020\013\005hello\000\101\360\242\004\013\005world' >> imp.wasm
# V8's memory after instantiating FILE with a new memory of the declared
# limits, to OUT (what an emscripten loader with -sIMPORTED_MEMORY does).
v8_fresh() {
  node -e 'const fs = require("fs");
           const mem = new WebAssembly.Memory({ initial: 2, maximum: 4 });
           new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(process.argv[1])),
                                    { env: { memory: mem } });
           fs.writeFileSync(process.argv[2], new Uint8Array(mem.buffer));' "$1" "$2"
}
expect 0 "inspect: imported, no image" -- "$COWMEM" inspect --json imp.wasm
cp out.txt imp0.json
check_json imp0.json 'j.memories[0].imported && !j.memories[0].fresh && j.memories[0].no_image === "imported"' "no image without --fresh-imports"
expect 0 "inspect --fresh-imports" -- "$COWMEM" inspect --json --fresh-imports imp.wasm
cp out.txt imp1.json
check_json imp1.json 'j.memories[0].fresh && j.memories[0].segments_in_image === 2 && j.memories[0].image.length > 0' "fresh import: image"
expect 1 "dump: imported memory refused" -- "$COWMEM" dump imp.wasm -o x.bin
expect_err imp.wasm "imported" "dump names the import"
expect 0 "dump --fresh-imports" -- "$COWMEM" dump --fresh-imports imp.wasm -o fresh.bin
v8_fresh imp.wasm v8.bin && cmp -s fresh.bin v8.bin && ok "dump --fresh-imports equals V8" || fail "dump --fresh-imports differs from V8"
expect 0 "strip --fresh-imports" -- "$COWMEM" strip --fresh-imports imp.wasm -o imp.s.wasm
grep -q "2 of 2 data segments stripped" out.txt || fail "strip --fresh-imports: $(cat out.txt)"
v8_fresh imp.s.wasm v8s.bin && node -e 'process.exit(require("fs").readFileSync("v8s.bin").every((b) => b === 0) ? 0 : 1)' \
  && ok "stripped module copies nothing" || fail "stripped module still writes its imported memory"
expect 1 "bench: imported memory refused" -- "$COWMEM" bench imp.wasm --iterations 5
expect_err imp.wasm "fresh-imports" "bench names the option"
expect 0 "bench --fresh-imports --read 1" -- "$COWMEM" bench --fresh-imports imp.wasm --iterations 20 --read 1 --json
cp out.txt impb.json
# "hello" on page 0 and "world" on page 17: the image covers pages 0-17
check_json impb.json 'j.read_pages === 18 && j.rows.every((r) => r.faults_per_cycle >= 0)' "bench --fresh-imports: reads the image's pages, faults per cycle"
expect 2 "bench --read 2" -- "$COWMEM" bench imp.wasm --read 2
expect 2 "bench --read x" -- "$COWMEM" bench imp.wasm --read x
expect 2 "bench --lines 0" -- "$COWMEM" bench imp.wasm --lines 0
expect 2 "bench --lines 65" -- "$COWMEM" bench imp.wasm --lines 65
expect 0 "strip without --fresh-imports" -- "$COWMEM" strip imp.wasm -o imp.k.wasm
grep -q "0 of 2 data segments stripped" out.txt || fail "strip kept segments: $(cat out.txt)"
expect 0 "compile --fresh-imports" -- "$COWMEM" compile --fresh-imports imp.wasm -o imp.cwimg
expect 0 "dump image file" -- "$COWMEM" dump imp.cwimg -o fresh2.bin
cmp -s fresh2.bin v8.bin && ok "image file equals V8" || fail "image file differs from V8"
expect 0 "compile without --fresh-imports" -- "$COWMEM" compile imp.wasm -o imp0.cwimg
expect 1 "dump: image file without fresh imports" -- "$COWMEM" dump imp0.cwimg -o x.bin
expect_err imp0.cwimg "--fresh-imports" "dump says how"

echo "$failures failures"
[ "$failures" -eq 0 ]
