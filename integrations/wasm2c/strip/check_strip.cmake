# cmake -DWAT2WASM=... -DWASM2C=... -DSRC=<dir> -DOUT=<dir> -P check_strip.cmake
# Checks what NOTES.md states: wasm2c copies active segments in
# init_memories (LOAD_DATA) and copies nothing for empty passive ones.
foreach(m active stripped)
  execute_process(COMMAND ${WAT2WASM} ${SRC}/${m}.wat -o ${OUT}/${m}.wasm
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "wat2wasm ${m}.wat failed")
  endif()
  execute_process(COMMAND ${WASM2C} ${OUT}/${m}.wasm -n ${m} -o ${OUT}/${m}.c
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "wasm2c ${m}.wasm failed")
  endif()
  file(READ ${OUT}/${m}.c text)
  string(REGEX MATCH "static void init_memories[^}]*}" init "${text}")
  if(init STREQUAL "")
    message(FATAL_ERROR "${m}.c: no init_memories")
  endif()
  string(REGEX MATCHALL "LOAD_DATA\\(" loads "${init}")
  list(LENGTH loads n)
  message(STATUS "${m}: init_memories has ${n} LOAD_DATA")
  if(m STREQUAL "active" AND NOT n EQUAL 2)
    message(FATAL_ERROR "expected 2 LOAD_DATA for active.wat:\n${init}")
  endif()
  if(m STREQUAL "stripped" AND NOT n EQUAL 0)
    message(FATAL_ERROR "expected no LOAD_DATA for stripped.wat:\n${init}")
  endif()
endforeach()
