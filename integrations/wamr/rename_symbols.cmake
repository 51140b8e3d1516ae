# cmake -DNM=nm -DOBJCOPY=objcopy -DIN=a.a -DOUT=b.a -DPREFIX=p_ -P rename_symbols.cmake
# Copies the static library IN to OUT with every global symbol it defines
# renamed PREFIX<name> (definitions and references alike). Symbols starting
# with "__" (compiler and sanitizer runtime names) keep their names.
execute_process(COMMAND ${NM} -g -P --defined-only ${IN}
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} ${IN} failed")
endif()
# Lines are "name type value size"; archive member headers ("lib.a[x.o]:")
# hold brackets, which CMake's list splitting does not survive, so the
# names are matched in the whole text instead of line by line.
string(REGEX MATCHALL "\n[A-Za-z_][A-Za-z0-9_.$]* [A-Za-z] " hits "\n${out}")
set(syms "")
foreach(hit IN LISTS hits)
  string(REGEX REPLACE "^\n([^ ]+) .*" "\\1" sym "${hit}")
  if(NOT sym MATCHES "^__")
    list(APPEND syms ${sym})
  endif()
endforeach()
list(REMOVE_DUPLICATES syms)
set(map "")
foreach(sym IN LISTS syms)
  string(APPEND map "${sym} ${PREFIX}${sym}\n")
endforeach()
file(WRITE ${OUT}.map "${map}")
execute_process(COMMAND ${OBJCOPY} --redefine-syms=${OUT}.map ${IN} ${OUT}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${OBJCOPY} --redefine-syms failed")
endif()
