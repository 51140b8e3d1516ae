#!/bin/sh
# Builds and runs every C program in the documentation, and checks that the
# documentation names build folders and CMake options the way the build
# does.
#
# Usage: check_docs.sh SOURCE_DIR WORK_DIR CC INCLUDE_DIR LIBRARY [CFLAGS...]
#
# Documentation files: README.md, CONTRIBUTING.md, CHANGELOG.md,
# bench/RESULTS.md and every .md under docs/. A C block is fenced with
# ```c (a complete program: compiled with -Wall -Wextra -Werror against
# the library, run, and expected to exit 0) or ```c fragment (a part of a
# program, not compiled). Any other info string starting with c and a
# space, or an indented ```c fence, is an error: the convention is checked,
# not guessed.
set -u
src=$1 work=$2 cc=$3 inc=$4 lib=$5
shift 5
libdir=$(cd "$(dirname "$lib")" && pwd)
mkdir -p "$work"
rm -f "$work"/*.c "$work"/*.bin "$work"/*.log

files=""
for f in README.md CONTRIBUTING.md CHANGELOG.md bench/RESULTS.md; do
  [ -f "$src/$f" ] && files="$files $f"
done
if [ -d "$src/docs" ]; then
  files="$files $(cd "$src" && find docs -name '*.md' | sort | tr '\n' ' ')"
fi

failed=0
programs=0
fragments=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

for f in $files; do
  stem=$(echo "$f" | tr '/.' '__')
  # One line per block: "<kind> <first line> <file>" (kind program,
  # fragment or bad:<info>); programs are written to WORK/<stem>_<line>.c.
  blocks=$(awk -v out="$work/$stem" '
    /^[ \t]+```[cC]([ \t]|$)/ && !inside { print "bad:indented " NR; next }
    !inside && /^```/ {
      info = substr($0, 4); sub(/[ \t]+$/, "", info)
      inside = 1; start = NR + 1; kind = ""
      if (info == "c") { kind = "program"; file = out "_" start ".c"; printf "" > file }
      else if (info == "c fragment") kind = "fragment"
      else if (info ~ /^[cC]([ \t]|$)/) { print "bad:" info " " start; kind = "" }
      if (kind != "") print kind " " start
      next
    }
    inside && /^```[ \t]*$/ { inside = 0; if (kind == "program") close(file); kind = ""; next }
    inside && kind == "program" { print > file }
    END { if (inside) print "bad:unclosed " start }
  ' "$src/$f")
  # Each block's line, in order (fields: kind line).
  echo "$blocks" | while read -r kind line; do
    [ -n "$kind" ] || continue
    case $kind in
      fragment) echo "fragment $f:$line" ;;
      program) echo "program $f:$line" ;;
      bad:*) echo "bad $f:$line ${kind#bad:}" ;;
    esac
  done >> "$work/blocks.log"
done

# Compile and run the programs; check the convention's errors.
while read -r kind where rest; do
  case $kind in
    fragment) fragments=$((fragments + 1)) ;;
    bad) fail "$where: C block with info string '$rest' (use \`\`\`c or \`\`\`c fragment, unindented)" ;;
    program)
      programs=$((programs + 1))
      file=${where%%:*} line=${where##*:}
      stem=$(echo "$file" | tr '/.' '__')_$line
      # What a program makes it frees: a pool's reservation and an image's
      # memfd are not heap memory, so a leak checker would not say so.
      unpaired=""
      for pair in cowmem_pool_new:cowmem_pool_free cowmem_slot_new:cowmem_slot_free \
                  cowmem_image_new_from_:cowmem_image_release cowmem_snapshot:cowmem_image_release \
                  cowmem_module_parse:cowmem_module_free cowmem_imgfile_open:cowmem_imgfile_free; do
        if grep -q "${pair%%:*}" "$work/$stem.c" && ! grep -q "${pair##*:}(" "$work/$stem.c"; then
          unpaired="$unpaired ${pair%%:*} without ${pair##*:};"
        fi
      done
      [ -z "$unpaired" ] || fail "$where:$unpaired"
      if ! "$cc" -std=c11 -Wall -Wextra -Werror "$@" -I"$inc" "$work/$stem.c" "$lib" \
             -lpthread -Wl,-rpath,"$libdir" -o "$work/$stem.bin" > "$work/$stem.log" 2>&1; then
        fail "$where: does not compile:"; sed 's/^/    /' "$work/$stem.log"
      elif ! (cd "$work" && timeout 120 "./$stem.bin") >> "$work/$stem.log" 2>&1; then
        fail "$where: exits with an error:"; sed 's/^/    /' "$work/$stem.log"
      else
        echo "ok: $where"
      fi ;;
  esac
done < "$work/blocks.log"
rm -f "$work/blocks.log"

# Build folders: every path into a build tree names the build (build/release/
# tests/..., build/asan/...), never a bare build/tests/.
bare=$(cd "$src" && grep -nE '(^|[^A-Za-z0-9_./-])build/(bench|tests|tools|integrations|examples|src)/' $files)
[ -z "$bare" ] || fail "paths into a build tree without its name (build/release/...):
$bare"

# CMake options: every -DCOWMEM_X the documentation passes is one the build
# declares (option() or a cache variable).
for opt in $(cd "$src" && grep -ohE -- '-DCOWMEM_[A-Z0-9_]+' $files | sort -u); do
  name=${opt#-D}
  if ! grep -rqsE "(option|set)\\(($name)[ )]" "$src/CMakeLists.txt" "$src/cmake" \
         "$src/integrations" "$src/tests" "$src/bench" "$src/tools" "$src/examples"; then
    fail "$opt: no such CMake option"
  fi
done

echo "docs: $programs programs, $fragments fragments, $failed failures"
[ "$programs" -gt 0 ] || { echo "FAIL: no C program found in the documentation"; exit 1; }
[ "$failed" -eq 0 ]
