# cmake -DGEN=<generated .c of a stripped module> -P check_no_copy.cmake
# The recipe's point: wasm2c's init_memories for the stripped module only
# allocates (no LOAD_DATA, so no copy and no segment arrays behind it).
file(READ ${GEN} text)
string(REGEX MATCH "static void init_memories[^}]*}" init "${text}")
if(init STREQUAL "")
  message(FATAL_ERROR "${GEN}: no init_memories")
endif()
if(init MATCHES "LOAD_DATA\\(")
  message(FATAL_ERROR "${GEN}: init_memories still copies data:\n${init}")
endif()
if(NOT init MATCHES "wasm_rt_allocate_memory")
  message(FATAL_ERROR "${GEN}: init_memories allocates nothing:\n${init}")
endif()
message(STATUS "init_memories: ${init}")
