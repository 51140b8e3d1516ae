# cowmem_wasm2c_module(<target> <file.wasm> [NAME <name>] [DEPENDS <targets>...]
#                      [WASM2C_FLAGS <flags>...])
#
# Builds a WebAssembly module for the cowmem wasm2c integration:
#   1. strips it (covered data segments become empty passive ones, so the
#      generated init_memories copies nothing),
#   2. runs wasm2c on the stripped module (module name <name>, default
#      <target>; the API is Z_<name>_instantiate, Z_<name>_free, Z_<name>Z_*),
#   3. compiles the generated C into the static library <target>, which links
#      cowmem_wasm2c (the memory provider, the stock runtime for traps and
#      signals, and the -Wl,--wrap flags).
# Consumers get the generated header <name>.h and the compile definition
# COWMEM_W2C_WASM_<name>="<absolute path of the original .wasm>", which is
# what cowmem_w2c_module_open needs at run time for the images:
#
#   cowmem_wasm2c_module(mymod ${CMAKE_CURRENT_SOURCE_DIR}/mymod.wasm)
#   add_executable(app app.c)
#   target_link_libraries(app PRIVATE mymod)
#
#   // app.c
#   #include "cowmem_wasm2c.h"
#   #include "mymod.h"
#   wasm_rt_init(); Z_mymod_init_module();
#   cowmem_w2c_module_t* m;
#   cowmem_w2c_module_open(COWMEM_W2C_WASM_mymod, &m, NULL);
#   Z_mymod_instance_t inst;
#   COWMEM_W2C_INSTANTIATE(m, Z_mymod_instantiate, &inst);
#   ... Z_mymodZ_<export>(&inst, ...) ...
#   Z_mymod_free(&inst);
#
# DEPENDS names targets that produce <file.wasm> (a custom target building
# it in this project). WASM2C_FLAGS go to wasm2c (--enable-multi-memory for
# a module with several memories). Needs wasm2c (WASM2C_EXECUTABLE) and the targets
# cowmem_w2c_strip and cowmem_wasm2c from integrations/wasm2c.
function(cowmem_wasm2c_module target wasm)
  cmake_parse_arguments(A "" "NAME" "DEPENDS;WASM2C_FLAGS" ${ARGN})
  if(NOT A_NAME)
    set(A_NAME ${target})
  endif()
  get_filename_component(wasm ${wasm} ABSOLUTE)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_w2c)
  file(MAKE_DIRECTORY ${dir})
  set(stripped ${dir}/${A_NAME}.stripped.wasm)
  add_custom_command(OUTPUT ${stripped}
    COMMAND cowmem_w2c_strip ${wasm} ${stripped}
    DEPENDS ${wasm} cowmem_w2c_strip ${A_DEPENDS}
    COMMENT "cowmem strip ${wasm}"
    VERBATIM)
  add_custom_command(OUTPUT ${dir}/${A_NAME}.c ${dir}/${A_NAME}.h
    COMMAND ${WASM2C_EXECUTABLE} ${A_WASM2C_FLAGS} ${stripped} -n ${A_NAME} -o ${dir}/${A_NAME}.c
    DEPENDS ${stripped}
    COMMENT "wasm2c ${A_NAME} (stripped)"
    VERBATIM)
  add_library(${target} STATIC ${dir}/${A_NAME}.c)
  target_include_directories(${target} PUBLIC ${dir})
  target_compile_options(${target} PRIVATE ${COWMEM_W2C_GENERATED_FLAGS})
  target_link_libraries(${target} PUBLIC cowmem_wasm2c)
  target_compile_definitions(${target} INTERFACE
                             COWMEM_W2C_WASM_${A_NAME}="${wasm}")
  if(A_DEPENDS)
    add_dependencies(${target} ${A_DEPENDS})
  endif()
endfunction()
