#!/bin/sh
# workloads.sh NAME MODULE COWMEM_IWASM IWASM NODE_RUN_JS WORKDIR [COWMEM]
# One real WASI program (flite, python, quickjs, sqlite) through stock iwasm (the oracle),
# cowmem-iwasm (images built at start-up; and with --images from the
# cowmem command), cowmem-iwasm --stock and node:wasi: each request's
# stdout, the files it writes into its preopened directory and its exit
# code must be identical. Then a request loop (--repeat) through cowmem
# must answer every request as the oracle did.
set -u
NAME=$1 MOD=$2 CI=$3 IW=$4 NODE_RUN=$5 WORK=$6 TOOL=${7:-}
. "$(dirname "$0")/common.sh"

# run RUNNER DIR args...: the module with args, /out mapped to DIR/out,
# the runner's options $OPTS (word-split), stdin from $IN.
run() {
  r=$1 dir=$2
  shift 2
  rm -rf "$dir" && mkdir -p "$dir/out"
  case $r in
    iwasm) "$IW" --map-dir=/out::"$dir/out" ${OPTS:-} "$MOD" "$@" ;;
    cowmem) "$CI" --map-dir=/out::"$dir/out" ${OPTS:-} "$MOD" "$@" ;;
    stock) "$CI" --stock --map-dir=/out::"$dir/out" ${OPTS:-} "$MOD" "$@" ;;
    images) "$CI" --images=mod.cwimg --map-dir=/out::"$dir/out" ${OPTS:-} mod.stripped.wasm "$@" ;;
    node) node --no-warnings "$NODE_RUN" --map-dir=/out::"$dir/out" ${OPTS:-} "$MOD" "$@" ;;
  esac < "${IN:-/dev/null}" > "$dir/stdout" 2> "$dir/stderr"
  echo $? > "$dir/rc"
}

# request N args...: every runner against iwasm's answer.
request() {
  n=$1
  shift
  run iwasm "r$n.iwasm" "$@"
  for r in $runners; do
    [ "$r" = iwasm ] && continue
    run "$r" "r$n.$r" "$@"
    cmp -s "r$n.iwasm/stdout" "r$n.$r/stdout" ||
      fail "request $n: $r's stdout differs: $(head -c 300 "r$n.$r/stdout")"
    cmp -s "r$n.iwasm/rc" "r$n.$r/rc" || fail "request $n: $r's exit code $(cat "r$n.$r/rc")"
    diff -r "r$n.iwasm/out" "r$n.$r/out" > /dev/null || fail "request $n: $r's files differ"
  done
  echo "request $n: same through $runners (exit $(cat "r$n.iwasm/rc"), $(ls "r$n.iwasm/out" | wc -l) files, $(wc -c < "r$n.iwasm/stdout") bytes out)"
}

# reactor_requests FILE...: request n is export handle with file n on stdin.
reactor_requests() {
  n=0
  for f; do
    n=$((n + 1))
    IN=$f OPTS='-f handle' request $n
  done
  IN= OPTS=
}

# expect FILE TEXT: FILE holds TEXT and a newline, nothing else (the whole
# answer: an export's stdout ends with the result iwasm prints, 0x0:i32).
expect() {
  printf '%s\n' "$2" > "$1.expect"
  cmp -s "$1" "$1.expect" || fail "$1 is not the expected answer: $(head -c 300 "$1")"
}

loop_check() { :; }
case $NAME in
  flite)
    request 1 -t "Copy on write maps the image of each instance." -o /out/a.wav
    request 2 -t "A second request, a second sentence: twelve, 13, and 14." -o /out/b.wav
    [ -s r1.iwasm/out/a.wav ] || fail "flite wrote no WAV"
    loop() { "$CI" --repeat=3 --map-dir=/out::loop "$MOD" -t "Copy on write maps the image of each instance." -o /out/a.wav; }
    loop_check() { cmp -s loop/a.wav r1.iwasm/out/a.wav || fail "loop: WAV differs"; }
    ;;
  python)
    request 1 -c 'import json, hashlib, math
print(json.dumps({"sum": sum(range(1000)), "pi": round(math.pi, 6)}, sort_keys=True))
print(hashlib.sha256(b"cowmem").hexdigest())
print(sorted(["b", "c", "a"]))'
    request 2 -c 'import sys
open("/out/answer.txt", "w").write("written by python\n")
print(open("/out/answer.txt").read(), end="")
sys.exit(3)'
    request 3 -c 'raise ValueError("a traceback on stderr, exit 1")'
    expect r1.iwasm/stdout '{"pi": 3.141593, "sum": 499500}
c510c814d510a5d0f66b649789f55cbd157f25708555ab6282cfbeaa7fd8b6c8
['"'a', 'b', 'c'"']'
    expect r2.iwasm/stdout 'written by python'
    expect r2.iwasm/rc 3
    expect r3.iwasm/rc 1
    loop() { "$CI" --repeat=3 --map-dir=/out::loop "$MOD" -c 'import json, hashlib, math
print(json.dumps({"sum": sum(range(1000)), "pi": round(math.pi, 6)}, sort_keys=True))
print(hashlib.sha256(b"cowmem").hexdigest())
print(sorted(["b", "c", "a"]))'; }
    ;;
  quickjs)
    echo '{"customer":"ada","items":[["sku1",2],["sku3",1],["sku1999",40]]}' > q1.json
    echo '{"customer":"bo","items":[["sku7",1]]}' > q2.json
    echo '{"customer":"cy","items":[["nope",1]]}' > q3.json
    reactor_requests q1.json q2.json q3.json
    expect r1.iwasm/stdout '{"customer":"ADA","lines":[{"sku":"sku1999","name":"item 1999","qty":40,"cents":327240,"fragile":false},{"sku":"sku1","name":"item 1","qty":2,"cents":16038,"fragile":false},{"sku":"sku3","name":"item 3","qty":1,"cents":5857,"fragile":true}],"discount":["three or more lines","over 500.00"],"pct":15,"total":"2967.65"}
0x0:i32'
    expect r2.iwasm/stdout '{"customer":"BO","lines":[{"sku":"sku7","name":"item 7","qty":1,"cents":1533,"fragile":false}],"discount":[],"pct":0,"total":"15.33"}
0x0:i32'
    expect r3.iwasm/stdout 0x1:i32
    expect r3.iwasm/stderr 'exception: Error: unknown sku nope'
    expect r3.cowmem/stderr 'exception: Error: unknown sku nope'
    loop() { "$CI" --repeat=3 -f handle "$MOD" < q1.json; }
    ;;
  sqlite)
    # Request 1 deletes every row: in the loop below, each next request
    # must count the full table again.
    echo 'SELECT count(*) FROM orders; DELETE FROM orders; SELECT count(*) FROM orders;' > s1.sql
    echo 'SELECT city, count(*), sum(qty*cents) FROM orders GROUP BY city ORDER BY city;' > s2.sql
    echo "SELECT id, product, qty FROM orders WHERE city = 'Kobe' AND product = 'ink' ORDER BY id LIMIT 5;" > s3.sql
    echo 'SELEC nothing' > s4.sql
    reactor_requests s1.sql s2.sql s3.sql s4.sql
    expect r1.iwasm/stdout '5000
0
0x0:i32'
    expect r2.iwasm/stdout 'Cork|697|17066640
Fès|696|19835999
Graz|679|17321920
Kobe|742|18544838
Lima|731|18633101
Oslo|721|19313526
Pune|734|20310908
0x0:i32'
    expect r3.iwasm/stdout '18|ink|1
51|ink|13
81|ink|1
172|ink|18
193|ink|5
0x0:i32'
    expect r4.iwasm/stdout 0x1:i32
    expect r4.iwasm/stderr 'sqlite: near "SELEC": syntax error'
    expect r4.cowmem/stderr 'sqlite: near "SELEC": syntax error'
    loop() { "$CI" --repeat=3 -f handle "$MOD" < s1.sql; }
    ;;
  *) echo "unknown workload $NAME"; exit 2 ;;
esac

# The request loop: three fresh instances, three identical answers.
rm -rf loop && mkdir loop
loop > loop.stdout 2> loop.stderr || fail "loop: exit code $?"
cat r1.iwasm/stdout r1.iwasm/stdout r1.iwasm/stdout > loop.expect
cmp -s loop.stdout loop.expect || fail "loop: stdout is not the oracle's three times"
loop_check
grep -q "3 requests through cowmem WAMR" loop.stderr || fail "loop: $(cat loop.stderr)"
sed -n '/requests through/,$p' loop.stderr

finish "$NAME"
