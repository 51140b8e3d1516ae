#!/bin/sh
# preinit.sh NAME MODULE COWMEM_IWASM IWASM NODE_RUN_JS WORKDIR COWMEM
# A WASI reactor pre-initialized with its own start-up (_initialize):
#   - without --allow-wasi `cowmem preinit` refuses it, naming the WASI
#     import its start-up called, and writes nothing;
#   - with --allow-wasi, each request's stdout (WAMR's log lines left out:
#     WAMR warns on stdout that a WASI module exporting neither _start nor
#     _initialize is neither command nor reactor, which is what a
#     pre-initialized reactor is) and exit code, through cowmem-iwasm with
#     the image file, cowmem-iwasm --preinit (cowmem and --stock), stock
#     iwasm and node:wasi on the standalone module, must be the original
#     module's through stock iwasm;
#   - a request loop over the pre-initialized images answers each request
#     alike.
# NAME: quickjs or sqlite (their requests), or env (preinit_app.c: the
# init reads a variable and a file given only to cowmem preinit).
set -u
NAME=$1 MOD=$2 CI=$3 IW=$4 NODE_RUN=$5 WORK=$6 TOOL=$7
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
INIT=_initialize

# run RUNNER OUT args...: stdout without WAMR's log lines ("[hh:mm:ss:ms -
# thread]: ...") to OUT.stdout, the exit code to OUT.rc.
run() {
  r=$1 out=$2
  shift 2
  case $r in
    orig) "$IW" "$@" "$MOD" ;;
    images) "$CI" --images=pre.cwimg "$@" pre.stripped.wasm ;;
    atload) "$CI" --preinit="$INIT" "$@" "$MOD" ;;
    atload_stock) "$CI" --stock --preinit="$INIT" "$@" "$MOD" ;;
    iwasm) "$IW" "$@" pre.wasm ;;
    node) node --no-warnings "$NODE_RUN" "$@" pre.wasm ;;
  esac < "${IN:-/dev/null}" > "$out.raw" 2> "$out.stderr"
  echo $? > "$out.rc"
  grep -v '^\[[0-9:]* - [0-9A-Fa-f]*\]: ' "$out.raw" > "$out.stdout"
}

runners="images atload atload_stock iwasm"
if command -v node > /dev/null && node -e 'require("node:wasi")' 2> /dev/null; then
  runners="$runners node"
else
  echo "note: node:wasi not available, compared without it"
fi

# request N FILE: FILE on stdin to export handle, every runner against the
# original module through stock iwasm.
request() {
  n=$1
  IN=$2 run orig "r$n.orig" -f handle
  for r in $runners; do
    IN=$2 run "$r" "r$n.$r" -f handle
    cmp -s "r$n.orig.stdout" "r$n.$r.stdout" ||
      fail "request $n: $r's stdout differs: $(head -c 300 "r$n.$r.stdout") $(head -c 300 "r$n.$r.stderr")"
    cmp -s "r$n.orig.rc" "r$n.$r.rc" || fail "request $n: $r's exit code $(cat "r$n.$r.rc")"
  done
  echo "request $n: same as the original through $runners ($(wc -c < "r$n.orig.stdout") bytes out)"
}

# Without --allow-wasi: refused, naming the import, nothing written.
refused() {
  "$TOOL" preinit "$@" "$MOD" -o none.wasm --images none.cwimg > refused.out 2>&1
  rc=$?
  [ $rc = 1 ] || fail "without --allow-wasi: exit $rc: $(cat refused.out)"
  grep -q "import wasi_snapshot_preview1\.[a-z_]*.*--allow-wasi" refused.out ||
    fail "without --allow-wasi: the import is not named: $(cat refused.out)"
  ! ls none.* > /dev/null 2>&1 || fail "without --allow-wasi: left $(ls none.*)"
  echo "without --allow-wasi: $(sed 's/.*initialization failed: //' refused.out)"
}

case $NAME in
  env)
    # The init reads GREETING and /data/hello.txt: given to cowmem preinit
    # only, seen by every instance of its output.
    INIT=wizer-initialize
    mkdir data && printf 'from the preopened directory' > data/hello.txt
    refused
    "$TOOL" preinit --dir data "$MOD" -o x.wasm > usage.out 2>&1
    [ $? = 2 ] || fail "--dir without --allow-wasi: not a usage error: $(cat usage.out)"
    "$TOOL" preinit --allow-wasi --dir nosuch "$MOD" -o x.wasm > nodir.out 2>&1
    [ $? = 1 ] && grep -q "cannot preopen directory nosuch" nodir.out && [ ! -e x.wasm ] ||
      fail "--dir nosuch: $(cat nodir.out)"
    "$CI" --preinit=nosuch -f show "$MOD" > nofunc.out 2>&1
    [ $? = 255 ] && grep -q "exports no function 'nosuch'" nofunc.out ||
      fail "--preinit=nosuch: $(cat nofunc.out)"
    "$TOOL" preinit --allow-wasi --env GREETING=hello --map-dir /data::data "$MOD" \
      -o pre.wasm > /dev/null &&
      "$TOOL" preinit --allow-wasi --env GREETING=hello --map-dir /data::data "$MOD" \
        -o pre.stripped.wasm --images pre.cwimg > /dev/null || fail "cowmem preinit failed"
    want='greeting=hello file=from the preopened directory'
    for r in images iwasm $(echo "$runners" | grep -o node); do
      run "$r" "show.$r" -f show
      grep -qx "$want" "show.$r.stdout" || fail "$r: $(cat "show.$r.stdout" "show.$r.stderr")"
    done
    # At load, the init gets the program's own WASI arguments.
    "$CI" --preinit=wizer-initialize --env=GREETING=bonjour --map-dir=/data::data -f show \
      "$MOD" > atload.out 2>&1
    grep -qx 'greeting=bonjour file=from the preopened directory' atload.out ||
      fail "--preinit: $(cat atload.out)"
    # The original, uninitialized, shows the defaults.
    run orig show.orig -f show
    grep -q 'greeting=(not initialized)' show.orig.stdout || fail "orig: $(cat show.orig.stdout)"
    # --init calls the init in each request, before the export, and the
    # latency table times it apart; an init the module lacks is named.
    "$CI" --init=wizer-initialize --repeat=2 --env=GREETING=hi --map-dir=/data::data \
      -f show "$MOD" > init.out 2> init.err
    [ "$(grep -cx 'greeting=hi file=from the preopened directory' init.out)" = 2 ] ||
      fail "--init: $(cat init.out init.err)"
    grep -q '^  init  ' init.err || fail "--init: no init phase: $(cat init.err)"
    "$CI" --init=nosuch -f show "$MOD" > noinit.out 2>&1
    [ $? = 1 ] && grep -q "nosuch" noinit.out && ! grep -q greeting= noinit.out ||
      fail "--init=nosuch: $(cat noinit.out)"
    echo "env: the init's variable and file reach every instance of the output"
    ;;
  quickjs | sqlite)
    refused -f _initialize
    "$TOOL" preinit --allow-wasi -f _initialize "$MOD" -o pre.wasm &&
      "$TOOL" preinit --allow-wasi -f _initialize "$MOD" -o pre.stripped.wasm \
        --images pre.cwimg || fail "cowmem preinit --allow-wasi failed"
    if command -v wasm-validate > /dev/null; then
      for f in pre.wasm pre.stripped.wasm; do
        wasm-validate --enable-all "$f" || fail "$f is not valid"
      done
    fi
    if [ "$NAME" = quickjs ]; then
      echo '{"customer":"ada","items":[["sku1",2],["sku3",1],["sku1999",40]]}' > q1
      echo '{"customer":"bo","items":[["sku7",1]]}' > q2
      echo '{"customer":"cy","items":[["nope",1]]}' > q3
    else
      echo 'SELECT count(*) FROM orders; DELETE FROM orders; SELECT count(*) FROM orders;' > q1
      echo 'SELECT city, count(*), sum(qty*cents) FROM orders GROUP BY city ORDER BY city;' > q2
      echo 'SELEC nothing' > q3
    fi
    for n in 1 2 3; do request $n q$n; done
    # Three fresh instances of the pre-initialized images: three answers
    # alike (request 1 changes the state it starts from).
    "$CI" --images=pre.cwimg --repeat=3 -f handle pre.stripped.wasm < q1 2> loop.stderr |
      grep -v '^\[[0-9:]* - [0-9A-Fa-f]*\]: ' > loop.stdout
    cat r1.orig.stdout r1.orig.stdout r1.orig.stdout > loop.expect
    cmp -s loop.stdout loop.expect || fail "loop: not the original's answer three times"
    grep -q "3 requests through cowmem WAMR" loop.stderr || fail "loop: $(cat loop.stderr)"
    ;;
  *) echo "unknown: $NAME"; exit 2 ;;
esac
if [ $fails -gt 0 ]; then
  echo "$fails failed"
  exit 1
fi
echo "$NAME: pre-initialized with WASI: all same"
