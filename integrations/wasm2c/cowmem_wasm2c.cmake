# cowmem_wasm2c_module(<target> <file.wasm> [NAME <name>] [DEPENDS <targets>...]
#                      [WASM2C_FLAGS <flags>...])
#
# Builds a WebAssembly module for the cowmem wasm2c integration:
#   1. `cowmem strip`s it (covered data segments become empty passive ones,
#      so the generated init_memories copies nothing) and `cowmem compile`s
#      the original into <name>.cwimg, the image file,
#   2. runs wasm2c on the stripped module (module name <name>, default
#      <target>; the API is Z_<name>_instantiate, Z_<name>_free, Z_<name>Z_*),
#   3. compiles the generated C into the static library <target>, which links
#      cowmem_wasm2c (the memory provider, the stock runtime for traps and
#      signals, and the -Wl,--wrap flags).
# Consumers get the generated header <name>.h and the compile definitions
# COWMEM_W2C_IMAGES_<name>="<absolute path of <name>.cwimg>" (for
# cowmem_w2c_module_open_images; absent when the project is configured
# with COWMEM_BUILD_TOOLS=OFF) and COWMEM_W2C_WASM_<name>="<absolute path
# of the original .wasm>" (for cowmem_w2c_module_open, which builds the
# images from the module at run time instead):
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
#   cowmem_w2c_module_open_images(COWMEM_W2C_IMAGES_mymod, NULL, &m, NULL);
#   Z_mymod_instance_t inst;
#   COWMEM_W2C_INSTANTIATE(m, Z_mymod_instantiate, &inst);
#   ... Z_mymodZ_<export>(&inst, ...) ...
#   Z_mymod_free(&inst);
#
# DEPENDS names targets that produce <file.wasm> (a custom target building
# it in this project). WASM2C_FLAGS go to wasm2c (--enable-multi-memory for
# a module with several memories). Needs wasm2c (WASM2C_EXECUTABLE), the
# cowmem command (cowmem_tool; cowmem_w2c_strip without it) and the target
# cowmem_wasm2c from integrations/wasm2c.
function(cowmem_wasm2c_module target wasm)
  cmake_parse_arguments(A "" "NAME" "DEPENDS;WASM2C_FLAGS" ${ARGN})
  if(NOT A_NAME)
    set(A_NAME ${target})
  endif()
  get_filename_component(wasm ${wasm} ABSOLUTE)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_w2c)
  file(MAKE_DIRECTORY ${dir})
  set(stripped ${dir}/${A_NAME}.stripped.wasm)
  set(images ${dir}/${A_NAME}.cwimg)
  if(COWMEM_BUILD_TOOLS)
    # The cowmem command (target cowmem_tool, defined later in the tree:
    # target names in COMMAND and DEPENDS resolve at generation time).
    add_custom_command(OUTPUT ${stripped}
      COMMAND cowmem_tool strip ${wasm} -o ${stripped}
      DEPENDS ${wasm} cowmem_tool ${A_DEPENDS}
      COMMENT "cowmem strip ${wasm}"
      VERBATIM)
    add_custom_command(OUTPUT ${images}
      COMMAND cowmem_tool compile ${wasm} -o ${images}
      DEPENDS ${wasm} cowmem_tool ${A_DEPENDS}
      COMMENT "cowmem compile ${wasm}"
      VERBATIM)
  else()
    # Without the command: strip with the library (a small helper), and the
    # program builds the images from the original module at run time.
    add_custom_command(OUTPUT ${stripped}
      COMMAND cowmem_w2c_strip ${wasm} ${stripped}
      DEPENDS ${wasm} cowmem_w2c_strip ${A_DEPENDS}
      COMMENT "cowmem strip ${wasm}"
      VERBATIM)
    set(images)
  endif()
  add_custom_command(OUTPUT ${dir}/${A_NAME}.c ${dir}/${A_NAME}.h
    COMMAND ${WASM2C_EXECUTABLE} ${A_WASM2C_FLAGS} ${stripped} -n ${A_NAME} -o ${dir}/${A_NAME}.c
    DEPENDS ${stripped}
    COMMENT "wasm2c ${A_NAME} (stripped)"
    VERBATIM)
  add_library(${target} STATIC ${dir}/${A_NAME}.c ${images})
  target_include_directories(${target} PUBLIC ${dir})
  target_compile_options(${target} PRIVATE ${COWMEM_W2C_GENERATED_FLAGS})
  target_link_libraries(${target} PUBLIC cowmem_wasm2c)
  target_compile_definitions(${target} INTERFACE
                             COWMEM_W2C_WASM_${A_NAME}="${wasm}")
  if(images)
    target_compile_definitions(${target} INTERFACE
                               COWMEM_W2C_IMAGES_${A_NAME}="${images}")
  endif()
  if(A_DEPENDS)
    add_dependencies(${target} ${A_DEPENDS})
  endif()
endfunction()
