# Building WAMR with cowmem as its linear-memory provider. From an
# installed cowmem:
#   find_package(cowmem REQUIRED COMPONENTS wamr)
# which includes this file (with cowmem::cowmem_static and, when installed,
# the cowmem command cowmem::tool); inside cowmem's tree, include() it from
# integrations/wamr. 64-bit Linux only.
#
# cowmem_wamr_source(<wamr_dir>)
#   Copies a WAMR source tree (the root holding build-scripts/ and core/)
#   into ${CMAKE_CURRENT_BINARY_DIR}/wamr-src, because configuring WAMR
#   writes core/version.h into its tree, and sets COWMEM_WAMR_ROOT (in the
#   caller's scope) to the copy. The source tree is never written. It also
#   enables ASM (WAMR's invokeNative) and defines the static library
#   cowmem_wamr (the integration, cowmem_wamr.h) against that tree's
#   wasm_export.h. Call it once, at file scope.
#
# cowmem_wamr_runtime(<target> [CLASSIC] [SOFTWARE_BOUNDS] [AOT] [STOCK]
#                     [MULTI_MEMORY] [EXACT_MEMORY] [WASI] [BLOCK_CACHE <n>])
#   Builds WAMR's runtime library from COWMEM_WAMR_ROOT as the static
#   library <target>: the fast interpreter (CLASSIC: the classic one), with
#   hardware bounds checks (SOFTWARE_BOUNDS: WAMR_DISABLE_HW_BOUND_CHECK),
#   and with WAMR_BUILD_ALLOC_WITH_USAGE=1, the hook cowmem_wamr's
#   callbacks need (STOCK: without it, WAMR's own 8 GiB reservations, and
#   every global symbol renamed to cowmem_stock_<name> so that a program can
#   link it beside a hooked build and compare the two in one process). AOT
#   adds WAMR's AOT runtime. WASI adds WASI preview 1 (libc-wasi; see
#   cowmem_wamr_wasi.h). Consumers get wasm_export.h on their include
#   path. Multi-module, shared memories, memory64 and multi-memory stay off
#   (cowmem_wamr refuses what it cannot map exactly; see cowmem_wamr.h).
#   MULTI_MEMORY (with CLASSIC: WAMR's fast interpreter has none) turns
#   multi-memory on, for programs that load modules with plain
#   wasm_runtime_load and take each memory from the pool with no image
#   (the cowmem command's preinit runner), never through a module set.
#   EXACT_MEMORY turns WAMR's shrunk memory off (WAMR_BUILD_SHRUNK_MEMORY=0:
#   a module exporting __heap_base keeps its declared memory), so that a
#   program reading memories sees the module's own layout.
#   BLOCK_CACHE <n> (a power of two, with CLASSIC) gives the classic
#   interpreter's block-address cache n sets instead of 64: it looks up
#   there where each block ends, and on a miss scans the function's code,
#   which on a large module costs far more than the interpretation. Each
#   execution environment holds the cache (48 bytes a set).
#
# cowmem_wamr_module(<target> <file.wasm> [NAME <name>] [DEPENDS <targets>...]
#                    [PREINIT <func> [PREINIT_ARGS <args>...]])
#   `cowmem strip`s the module (covered data segments become empty passive
#   ones, so WAMR's instantiation copies nothing) and `cowmem compile`s the
#   original into <name>.cwimg, both with --fresh-imports (without
#   multi-module WAMR creates an imported memory fresh for each instance). <target> is an interface library whose
#   consumers get the definitions
#     COWMEM_WAMR_WASM_<name>="<the original .wasm>"
#     COWMEM_WAMR_STRIPPED_<name>="<name>.stripped.wasm"
#     COWMEM_WAMR_IMAGES_<name>="<name>.cwimg"
#   (the last two absent without the cowmem command, when cowmem was
#   configured with COWMEM_BUILD_TOOLS=OFF: cowmem_wamr_module_new strips
#   at run time).
#   PREINIT <func>: pre-initialized at build time (`cowmem preinit -f
#   <func>`, the command's preinit needed: an error without it): the
#   stripped module and the images are the state <func> left (after the
#   module's _initialize, when it exports one and <func> is another; a
#   reactor's own start-up is PREINIT _initialize), and
#   COWMEM_WAMR_WASM_<name> is the standalone pre-initialized module
#   (<name>.preinit.wasm, the state as data segments: what
#   cowmem_wamr_module_open or another runtime takes). PREINIT_ARGS go to
#   cowmem preinit (--allow-wasi, --env K=V, --dir D, -r dst=src).
#
# Recipe (project(app C ASM); WAMR's own tree, any 2.x with the hook):
#   find_package(cowmem REQUIRED COMPONENTS wamr)
#   cowmem_wamr_source(/path/to/wasm-micro-runtime)
#   cowmem_wamr_runtime(vmlib)
#   cowmem_wamr_module(mymod ${CMAKE_CURRENT_SOURCE_DIR}/mymod.wasm)
#   add_executable(app app.c)
#   target_link_libraries(app PRIVATE mymod cowmem_wamr vmlib)
#
#   // app.c
#   cowmem_wamr_runtime_init(NULL);   // wasm_runtime_full_init + callbacks
#   cowmem_wamr_module_t* m;
#   cowmem_wamr_module_open_images(COWMEM_WAMR_IMAGES_mymod,
#       COWMEM_WAMR_STRIPPED_mymod, NULL, &m, &diag);
#   wasm_module_inst_t inst = cowmem_wamr_instantiate(m, 65536, 0, err, len);
#   ... wasm_runtime_call_wasm(...) ...
#   wasm_runtime_deinstantiate(inst);  // the slot goes back to the pool

set(COWMEM_WAMR_CMAKE_DIR ${CMAKE_CURRENT_LIST_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/../cowmem_targets.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/../common/cowmem_integ.cmake)

macro(cowmem_wamr_source wamr_dir)
  set(COWMEM_WAMR_ROOT ${CMAKE_CURRENT_BINARY_DIR}/wamr-src)
  # Copied at configure time: WAMR's build scripts are read then too.
  file(COPY ${wamr_dir}/build-scripts ${wamr_dir}/core
       DESTINATION ${COWMEM_WAMR_ROOT})
  enable_language(ASM)
  # The integration needs wasm_export.h (and one internal header, below); a
  # program links it with one hooked runtime (cowmem_wamr_runtime).
  add_library(cowmem_wamr STATIC ${COWMEM_WAMR_CMAKE_DIR}/cowmem_wamr.c
                                 ${COWMEM_WAMR_CMAKE_DIR}/cowmem_wamr_module.c
                                 ${COWMEM_WAMR_CMAKE_DIR}/cowmem_wamr_instance.c)
  target_include_directories(cowmem_wamr PUBLIC ${COWMEM_WAMR_CMAKE_DIR}
                             ${COWMEM_WAMR_ROOT}/core/iwasm/include)
  # And cowmem_wamr_instance.c WAMR's wasm_exec_env.h, which declares
  # wasm_exec_env_set_thread_info (wasm_export.h does not), with the
  # headers it includes: WAMR's utilities and its platform layer for
  # Linux, the platform every runtime here is built for (vmlib/).
  target_include_directories(cowmem_wamr PRIVATE ${COWMEM_WAMR_ROOT}/core/iwasm/common
                             ${COWMEM_WAMR_ROOT}/core/shared/utils
                             ${COWMEM_WAMR_ROOT}/core/shared/platform/include
                             ${COWMEM_WAMR_ROOT}/core/shared/platform/linux)
  target_link_libraries(cowmem_wamr PUBLIC cowmem_integ ${COWMEM_INTEGRATION_LIBRARY})
endmacro()

function(cowmem_wamr_runtime target)
  cmake_parse_arguments(A "CLASSIC;SOFTWARE_BOUNDS;AOT;STOCK;MULTI_MEMORY;EXACT_MEMORY;WASI" "BLOCK_CACHE" "" ${ARGN})
  set(COWMEM_WAMR_V_BLOCK_CACHE ${A_BLOCK_CACHE})
  set(COWMEM_WAMR_V_ROOT ${COWMEM_WAMR_ROOT})
  set(COWMEM_WAMR_V_FAST 1)
  set(COWMEM_WAMR_V_HOOK 1)
  set(COWMEM_WAMR_V_SOFTWARE_BOUNDS 0)
  set(COWMEM_WAMR_V_AOT 0)
  set(COWMEM_WAMR_V_NO_STACK_GUARD 0)
  set(COWMEM_WAMR_V_MULTI_MEMORY 0)
  if(A_MULTI_MEMORY)
    set(COWMEM_WAMR_V_MULTI_MEMORY 1)
  endif()
  set(COWMEM_WAMR_V_SHRUNK_MEMORY 1)
  if(A_EXACT_MEMORY)
    set(COWMEM_WAMR_V_SHRUNK_MEMORY 0)
  endif()
  set(COWMEM_WAMR_V_WASI ${A_WASI})
  if(A_CLASSIC)
    set(COWMEM_WAMR_V_FAST 0)
  endif()
  if(A_SOFTWARE_BOUNDS)
    set(COWMEM_WAMR_V_SOFTWARE_BOUNDS 1)
  endif()
  if(A_AOT)
    set(COWMEM_WAMR_V_AOT 1)
  endif()
  if(A_STOCK)
    set(COWMEM_WAMR_V_HOOK 0)
    set(COWMEM_WAMR_V_NAME ${target}_unrenamed)
    # Each runtime's thread init touches the native stack down to its guard
    # pages and then protects them: the second runtime on a thread would
    # fault on the first one's. The baseline checks its native stack in
    # software instead (memory bounds stay hardware-checked, as stock).
    set(COWMEM_WAMR_V_NO_STACK_GUARD 1)
  else()
    set(COWMEM_WAMR_V_NAME ${target})
  endif()
  add_subdirectory(${COWMEM_WAMR_CMAKE_DIR}/vmlib
                   ${CMAKE_CURRENT_BINARY_DIR}/vmlib_${target})
  if(A_STOCK)
    # Two WAMR runtimes in one process: the stock one's global symbols get
    # a prefix (its calls to its own functions follow, since objcopy renames
    # references too); libc and sanitizer symbols are left alone.
    set(out ${CMAKE_CURRENT_BINARY_DIR}/lib${target}.a)
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -DNM=${CMAKE_NM} -DOBJCOPY=${CMAKE_OBJCOPY}
              -DIN=$<TARGET_FILE:${target}_unrenamed> -DOUT=${out}
              -DPREFIX=cowmem_stock_
              -P ${COWMEM_WAMR_CMAKE_DIR}/rename_symbols.cmake
      DEPENDS ${target}_unrenamed ${COWMEM_WAMR_CMAKE_DIR}/rename_symbols.cmake
      COMMENT "Renaming the stock WAMR runtime's symbols"
      VERBATIM)
    add_custom_target(${target}_renamed DEPENDS ${out})
    add_library(${target} STATIC IMPORTED GLOBAL)
    set_target_properties(${target} PROPERTIES IMPORTED_LOCATION ${out})
    add_dependencies(${target} ${target}_renamed)
    target_include_directories(${target} INTERFACE
                               ${COWMEM_WAMR_ROOT}/core/iwasm/include)
    find_package(Threads REQUIRED)
    target_link_libraries(${target} INTERFACE Threads::Threads m dl)
  endif()
endfunction()

function(cowmem_wamr_module target wasm)
  cmake_parse_arguments(A "" "NAME;PREINIT" "DEPENDS;PREINIT_ARGS" ${ARGN})
  if(NOT A_NAME)
    set(A_NAME ${target})
  endif()
  get_filename_component(wasm ${wasm} ABSOLUTE)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_wamr)
  file(MAKE_DIRECTORY ${dir})
  add_library(${target} INTERFACE)
  if(A_PREINIT AND NOT COWMEM_INTEGRATION_TOOL)
    message(FATAL_ERROR "cowmem_wamr_module(${target} ... PREINIT): needs the cowmem "
                        "command (COWMEM_BUILD_TOOLS, a WAMR tree for its preinit)")
  endif()
  if(COWMEM_INTEGRATION_TOOL)
    set(stripped ${dir}/${A_NAME}.stripped.wasm)
    set(images ${dir}/${A_NAME}.cwimg)
    set(tool ${COWMEM_INTEGRATION_TOOL})
    set(deps ${wasm} ${COWMEM_INTEGRATION_TOOL} ${A_DEPENDS})
    if(A_PREINIT)
      set(standalone ${dir}/${A_NAME}.preinit.wasm)
      set(pre ${tool} preinit --fresh-imports -f ${A_PREINIT} ${A_PREINIT_ARGS} ${wasm})
      add_custom_command(OUTPUT ${stripped} ${images}
        COMMAND ${pre} -o ${stripped} --images ${images}
        DEPENDS ${deps} COMMENT "cowmem preinit -f ${A_PREINIT} ${wasm}" VERBATIM)
      add_custom_command(OUTPUT ${standalone} COMMAND ${pre} -o ${standalone}
        DEPENDS ${deps} COMMENT "cowmem preinit -f ${A_PREINIT} ${wasm} (standalone)"
        VERBATIM)
      set(wasm ${standalone})
    else()
      set(standalone)
      add_custom_command(OUTPUT ${stripped}
        COMMAND ${tool} strip --fresh-imports ${wasm} -o ${stripped}
        DEPENDS ${deps} COMMENT "cowmem strip ${wasm}" VERBATIM)
      add_custom_command(OUTPUT ${images}
        COMMAND ${tool} compile --fresh-imports ${wasm} -o ${images}
        DEPENDS ${deps} COMMENT "cowmem compile ${wasm}" VERBATIM)
    endif()
    add_custom_target(${target}_files ALL DEPENDS ${stripped} ${images} ${standalone})
    add_dependencies(${target} ${target}_files)
    target_compile_definitions(${target} INTERFACE
                               COWMEM_WAMR_STRIPPED_${A_NAME}="${stripped}"
                               COWMEM_WAMR_IMAGES_${A_NAME}="${images}")
  elseif(A_DEPENDS)
    add_dependencies(${target} ${A_DEPENDS})
  endif()
  target_compile_definitions(${target} INTERFACE COWMEM_WAMR_WASM_${A_NAME}="${wasm}")
endfunction()
