# cmake -DGEN=<generated .c of a stripped module> [-DIMPORTED=1 -DREF=<.c>]
#       -P check_no_copy.cmake
# The recipe's point: wasm2c's init_memories for the stripped module only
# allocates (no LOAD_DATA, so no copy and no segment arrays behind it).
# IMPORTED: the module's memories are all imported (stripped with
# --fresh-imports), so init_memories allocates nothing either; REF, the
# same module unstripped, must copy (else the check proves nothing).
file(READ ${GEN} text)
string(REGEX MATCH "static void init_memories[^}]*}" init "${text}")
if(init STREQUAL "")
  message(FATAL_ERROR "${GEN}: no init_memories")
endif()
if(init MATCHES "LOAD_DATA\\(")
  message(FATAL_ERROR "${GEN}: init_memories still copies data:\n${init}")
endif()
if(IMPORTED)
  file(READ ${REF} ref)
  string(REGEX MATCH "static void init_memories[^}]*}" refinit "${ref}")
  if(NOT refinit MATCHES "LOAD_DATA\\(")
    message(FATAL_ERROR "${REF}: the unstripped module copies nothing:\n${refinit}")
  endif()
  if(init MATCHES "wasm_rt_allocate_memory")
    message(FATAL_ERROR "${GEN}: init_memories allocates an imported memory:\n${init}")
  endif()
elseif(NOT init MATCHES "wasm_rt_allocate_memory")
  message(FATAL_ERROR "${GEN}: init_memories allocates nothing:\n${init}")
endif()
message(STATUS "init_memories: ${init}")
