# The CMake side of the cowmem wasm2c integration. From an installed cowmem:
#   find_package(cowmem REQUIRED COMPONENTS wasm2c)
# which includes this file (with cowmem::cowmem_static and, when installed,
# the cowmem command cowmem::tool); inside cowmem's tree, include() it from
# integrations/wasm2c.
#
# cowmem_wasm2c_find_wabt(<target>)
#   The provider <target> for the wabt found on the system (Debian's wabt
#   1.0.32: wasm2c, /usr/include/wasm-rt.h, libwasm-rt-impl.a, and
#   wasm-rt-impl.h from /usr/share/wabt/wasm2c, which a program needs to
#   catch traps with wasm_rt_impl_try). Sets COWMEM_W2C_WABT_FOUND (and
#   WAT2WASM_EXECUTABLE when wat2wasm is there); if it is FALSE, nothing is
#   defined and COWMEM_W2C_WABT_MISSING says what is missing.
#
# cowmem_wasm2c_provider(<target> WASM2C <command...> INCLUDE_DIR <dir>
#                        [RUNTIME_LIBRARY <lib> | RUNTIME_SOURCES <dir>]
#                        [IMPL_INCLUDE_DIR <dir>] [GENERATED_FLAGS <flags>...])
#   The integration for one wabt: the static library <target> (the wrapped
#   memory functions compiled against <dir>/wasm-rt.h, the runtime, the
#   -Wl,--wrap flags), the translator to run on modules, and the warning
#   flags its output needs. RUNTIME_LIBRARY links a prebuilt runtime
#   (Debian's libwasm-rt-impl.a); RUNTIME_SOURCES builds the runtime's
#   sources in <dir> (wasm-rt-impl.c, wasm-rt-mem-impl.c,
#   wasm-rt-exceptions-impl.c when present) into <target>_rt, unchanged.
#   WASM2C may be several words (`node .../wasm2c` for the npm build).
#   Which runtime ABI the library serves is decided by that wasm-rt.h alone
#   (cowmem_wasm2c.h, COWMEM_W2C_ABI): wabt 1.0.32 or >= 1.0.37.
#
# cowmem_wasm2c_module(<target> <file.wasm> [NAME <name>] [PROVIDER <p>]
#                      [DEPENDS <targets>...] [WASM2C_FLAGS <flags>...]
#                      [FRESH_IMPORTS] [PREINIT <func> [PREINIT_ARGS <args>...]])
#   Builds a WebAssembly module for the integration:
#   1. `cowmem strip`s it (covered data segments become empty passive ones,
#      so the generated init_memories copies nothing) and `cowmem compile`s
#      the original into <name>.cwimg, the image file,
#   2. runs the provider's wasm2c on the stripped module (module name
#      <name>, default <target>),
#   3. compiles the generated C into the static library <target>, which
#      links the provider <p> (default cowmem_wasm2c, Debian's wabt).
#   4. defines the module's identity, cowmem_w2c_id_<name> (the SHA-256 of
#      <file.wasm>, which the image file records), for COWMEM_W2C_NEW to
#      check that the module set it enters is this module's.
#   Consumers get the generated header <name>.h and the compile definitions
#   COWMEM_W2C_IMAGES_<name>="<absolute path of <name>.cwimg>" (for
#   cowmem_w2c_module_open_images; absent when the project is configured
#   with COWMEM_BUILD_TOOLS=OFF) and COWMEM_W2C_WASM_<name>="<absolute path
#   of the original .wasm>" (for cowmem_w2c_module_open):
#
#     cowmem_wasm2c_module(mymod ${CMAKE_CURRENT_SOURCE_DIR}/mymod.wasm)
#     add_executable(app app.c)
#     target_link_libraries(app PRIVATE mymod)
#
#     // app.c: the same for either wabt (cowmem_wasm2c.h names both)
#     #include "cowmem_wasm2c.h"
#     #include "mymod.h"
#     wasm_rt_init(); COWMEM_W2C_INIT_MODULE(mymod);
#     cowmem_w2c_module_t* m;
#     cowmem_w2c_module_open_images(COWMEM_W2C_IMAGES_mymod, NULL, &m, NULL);
#     COWMEM_W2C_INSTANCE(mymod) inst;
#     COWMEM_W2C_NEW(m, mymod, &inst);
#     ... COWMEM_W2C_EXPORT(mymod, <export>)(&inst, ...) ...
#     COWMEM_W2C_FN(mymod, free)(&inst);
#
#   DEPENDS names targets that produce <file.wasm>. WASM2C_FLAGS go to
#   wasm2c (--enable-multi-memory, --enable-memory64, --enable-threads).
#   FRESH_IMPORTS: strip and compile with --fresh-imports, for a host that
#   gives each instance its imported memories from cowmem_w2c_import_memory
#   (the stripped module then applies nothing to them either).
#   PREINIT <func>: pre-initialized at build time: step 1 is `cowmem
#   preinit -f <func> -o <name>.stripped.wasm --images <name>.cwimg` (the
#   command's preinit needed: an error without it), so instances start from
#   the state <func> left (after the module's _initialize, when it exports
#   one and <func> is another; a reactor's own start-up is PREINIT
#   _initialize) and nothing of it is copied at instantiation. The module's
#   identity is then the stripped module's (the image file records it), and
#   COWMEM_W2C_WASM_<name> is not defined: the original does not hold that
#   state. PREINIT_ARGS go to cowmem preinit (--allow-wasi, --env K=V,
#   --dir D, -r dst=src).
#   With the cowmem command the images are compiled at build time; without
#   it (COWMEM_BUILD_TOOLS=OFF) a small helper built from w2c_strip.c
#   strips, and the program builds the images at run time.
set(COWMEM_W2C_SOURCE_DIR ${CMAKE_CURRENT_LIST_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/../cowmem_targets.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/../common/cowmem_integ.cmake)

function(cowmem_wasm2c_find_wabt target)
  find_program(WASM2C_EXECUTABLE wasm2c)
  find_program(WAT2WASM_EXECUTABLE wat2wasm)
  find_path(WASM_RT_INCLUDE_DIR wasm-rt.h)
  # Debian ships wasm-rt-impl.h with the runtime's source, not in /usr/include.
  find_path(WASM_RT_IMPL_INCLUDE_DIR wasm-rt-impl.h
            PATHS /usr/src/wasm2c /usr/share/wabt/wasm2c)
  find_library(WASM_RT_IMPL_LIBRARY NAMES libwasm-rt-impl.a wasm-rt-impl)
  set(missing)
  foreach(v WASM2C_EXECUTABLE WASM_RT_INCLUDE_DIR WASM_RT_IMPL_INCLUDE_DIR
            WASM_RT_IMPL_LIBRARY)
    if(NOT ${v})
      list(APPEND missing ${v})
    endif()
  endforeach()
  set(COWMEM_W2C_WABT_MISSING "${missing}" PARENT_SCOPE)
  if(missing)
    set(COWMEM_W2C_WABT_FOUND FALSE PARENT_SCOPE)
    return()
  endif()
  # Warnings that wasm2c 1.0.32's output trips under -Wall -Wextra (gcc 12
  # and clang 14): unused static helpers, unused `instance` parameters, and
  # the `(wasm_rt_trap(..), 0)` comma expression of its TRAP macro.
  cowmem_wasm2c_provider(${target} WASM2C ${WASM2C_EXECUTABLE}
    INCLUDE_DIR ${WASM_RT_INCLUDE_DIR} IMPL_INCLUDE_DIR ${WASM_RT_IMPL_INCLUDE_DIR}
    RUNTIME_LIBRARY ${WASM_RT_IMPL_LIBRARY}
    GENERATED_FLAGS -Wno-unused-function -Wno-unused-parameter -Wno-unused-value)
  set(COWMEM_W2C_WABT_FOUND TRUE PARENT_SCOPE)
endfunction()

function(cowmem_wasm2c_provider target)
  cmake_parse_arguments(A "" "INCLUDE_DIR;RUNTIME_LIBRARY;RUNTIME_SOURCES;IMPL_INCLUDE_DIR"
                        "WASM2C;GENERATED_FLAGS" ${ARGN})
  if(A_RUNTIME_SOURCES)
    set(rt_srcs)
    foreach(f wasm-rt-impl.c wasm-rt-mem-impl.c wasm-rt-exceptions-impl.c)
      if(EXISTS ${A_RUNTIME_SOURCES}/${f})
        list(APPEND rt_srcs ${A_RUNTIME_SOURCES}/${f})
      endif()
    endforeach()
    add_library(${target}_rt STATIC ${rt_srcs})
    target_include_directories(${target}_rt PUBLIC ${A_RUNTIME_SOURCES})
    # wabt's code, built as it is: our warning flags are not its.
    target_compile_options(${target}_rt PRIVATE -w)
    set(rt ${target}_rt)
    if(NOT A_IMPL_INCLUDE_DIR)
      set(A_IMPL_INCLUDE_DIR ${A_RUNTIME_SOURCES})
    endif()
  else()
    set(rt ${A_RUNTIME_LIBRARY})
  endif()
  add_library(${target} STATIC ${COWMEM_W2C_SOURCE_DIR}/cowmem_wasm2c.c
                               ${COWMEM_W2C_SOURCE_DIR}/w2c_runtime.c)
  target_include_directories(${target} PUBLIC ${COWMEM_W2C_SOURCE_DIR} ${A_INCLUDE_DIR}
                             ${A_IMPL_INCLUDE_DIR})
  find_package(Threads REQUIRED)
  target_link_libraries(${target} PUBLIC cowmem_integ ${COWMEM_INTEGRATION_LIBRARY} ${rt} m
                        Threads::Threads)
  # Every memory function the generated code calls goes to the wrappers
  # (the _shared ones exist from wabt 1.0.33 on; wrapping an absent symbol
  # is harmless).
  set(wraps)
  foreach(fn allocate grow free)
    list(APPEND wraps -Wl,--wrap=wasm_rt_${fn}_memory
                      -Wl,--wrap=wasm_rt_${fn}_memory_shared)
  endforeach()
  target_link_options(${target} INTERFACE ${wraps})
  set_target_properties(${target} PROPERTIES COWMEM_W2C_WASM2C "${A_WASM2C}"
                        COWMEM_W2C_GENERATED_FLAGS "${A_GENERATED_FLAGS}"
                        COWMEM_W2C_RUNTIME "${rt}")
endfunction()

function(cowmem_wasm2c_module target wasm)
  cmake_parse_arguments(A "FRESH_IMPORTS" "NAME;PROVIDER;PREINIT"
                        "DEPENDS;WASM2C_FLAGS;PREINIT_ARGS" ${ARGN})
  set(fresh)
  if(A_FRESH_IMPORTS)
    set(fresh --fresh-imports)
  endif()
  if(NOT A_NAME)
    set(A_NAME ${target})
  endif()
  if(NOT A_PROVIDER)
    set(A_PROVIDER cowmem_wasm2c)
  endif()
  get_target_property(wasm2c ${A_PROVIDER} COWMEM_W2C_WASM2C)
  get_target_property(gen_flags ${A_PROVIDER} COWMEM_W2C_GENERATED_FLAGS)
  get_filename_component(wasm ${wasm} ABSOLUTE)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_w2c)
  file(MAKE_DIRECTORY ${dir})
  set(stripped ${dir}/${A_NAME}.stripped.wasm)
  set(images ${dir}/${A_NAME}.cwimg)
  set(id_of ${wasm}) # the module whose SHA-256 the image file records
  if(A_PREINIT)
    if(NOT COWMEM_INTEGRATION_TOOL)
      message(FATAL_ERROR "cowmem_wasm2c_module(${target} ... PREINIT): needs the "
                          "cowmem command (COWMEM_BUILD_TOOLS, a WAMR tree for its preinit)")
    endif()
    add_custom_command(OUTPUT ${stripped} ${images}
      COMMAND ${COWMEM_INTEGRATION_TOOL} preinit ${fresh} -f ${A_PREINIT} ${A_PREINIT_ARGS}
              ${wasm} -o ${stripped} --images ${images}
      DEPENDS ${wasm} ${COWMEM_INTEGRATION_TOOL} ${A_DEPENDS}
      COMMENT "cowmem preinit -f ${A_PREINIT} ${wasm}"
      VERBATIM)
    set(id_of ${stripped})
  elseif(COWMEM_INTEGRATION_TOOL)
    add_custom_command(OUTPUT ${stripped}
      COMMAND ${COWMEM_INTEGRATION_TOOL} strip ${fresh} ${wasm} -o ${stripped}
      DEPENDS ${wasm} ${COWMEM_INTEGRATION_TOOL} ${A_DEPENDS}
      COMMENT "cowmem strip ${wasm}"
      VERBATIM)
    add_custom_command(OUTPUT ${images}
      COMMAND ${COWMEM_INTEGRATION_TOOL} compile ${fresh} ${wasm} -o ${images}
      DEPENDS ${wasm} ${COWMEM_INTEGRATION_TOOL} ${A_DEPENDS}
      COMMENT "cowmem compile ${wasm}"
      VERBATIM)
  else()
    # Without the command: strip with the library (a small helper), and the
    # program builds the images from the original module at run time.
    if(NOT TARGET cowmem_w2c_strip)
      add_executable(cowmem_w2c_strip ${COWMEM_W2C_SOURCE_DIR}/w2c_strip.c)
      target_link_libraries(cowmem_w2c_strip PRIVATE ${COWMEM_INTEGRATION_LIBRARY})
    endif()
    add_custom_command(OUTPUT ${stripped}
      COMMAND cowmem_w2c_strip ${wasm} ${stripped} ${fresh}
      DEPENDS ${wasm} cowmem_w2c_strip ${A_DEPENDS}
      COMMENT "cowmem strip ${wasm}"
      VERBATIM)
    set(images)
  endif()
  # The module's identity, which COWMEM_W2C_NEW checks against the set.
  set(id ${dir}/${A_NAME}.cowmem_id.c)
  add_custom_command(OUTPUT ${id}
    COMMAND ${CMAKE_COMMAND} -DWASM=${id_of} -DNAME=${A_NAME} -DOUT=${id}
            -P ${COWMEM_W2C_SOURCE_DIR}/w2c_id.cmake
    DEPENDS ${id_of} ${COWMEM_W2C_SOURCE_DIR}/w2c_id.cmake ${A_DEPENDS}
    COMMENT "cowmem_w2c_id_${A_NAME}: SHA-256 of ${id_of}"
    VERBATIM)
  add_custom_command(OUTPUT ${dir}/${A_NAME}.c ${dir}/${A_NAME}.h
    COMMAND ${wasm2c} ${A_WASM2C_FLAGS} ${stripped} -n ${A_NAME} -o ${dir}/${A_NAME}.c
    DEPENDS ${stripped}
    COMMENT "wasm2c ${A_NAME} (stripped)"
    VERBATIM)
  add_library(${target} STATIC ${dir}/${A_NAME}.c ${id} ${images})
  target_include_directories(${target} PUBLIC ${dir})
  target_compile_options(${target} PRIVATE ${gen_flags})
  target_link_libraries(${target} PUBLIC ${A_PROVIDER})
  if(NOT A_PREINIT)
    target_compile_definitions(${target} INTERFACE
                               COWMEM_W2C_WASM_${A_NAME}="${wasm}")
  endif()
  if(images)
    target_compile_definitions(${target} INTERFACE
                               COWMEM_W2C_IMAGES_${A_NAME}="${images}")
  endif()
  if(A_DEPENDS)
    add_dependencies(${target} ${A_DEPENDS})
  endif()
endfunction()
