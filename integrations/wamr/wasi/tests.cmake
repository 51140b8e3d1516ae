# Tests of WASI through cowmem_wamr (included by ../wasi.cmake).
#   wamr_wasi_<name>   test_wasi.c: the integration's API on probe.wasm and
#                      reactor.wasm (small WASI programs built here)
#   wamr_wasi_oracle   compare.sh: cowmem-iwasm, cowmem-iwasm --stock, stock
#                      iwasm (WAMR's product-mini, built here) and node:wasi
#                      give the same stdout, files and exit codes
#   wamr_wasi_<program>  real programs (workloads.cmake)
# Skipped, saying which package, without a wasm32-wasi C toolchain.
include(ExternalProject)

set(wasi_dir ${CMAKE_CURRENT_LIST_DIR})

# What another build tree of these sources has made already and a
# sanitized tree needs unchanged: the oracle below and the reactors
# (workloads.cmake). scripts/test builds its release tree first and hands
# it to the sanitized ones.
set(COWMEM_WASI_APPS_FROM "" CACHE PATH
    "A build tree of these sources whose WASI reactors and stock iwasm are used instead of built")
# In var: the file at output's place in that tree, or empty when it has none.
function(cowmem_wasi_prebuilt var output)
  set(from "")
  if(COWMEM_WASI_APPS_FROM)
    file(RELATIVE_PATH rel ${PROJECT_BINARY_DIR} ${output})
    if(EXISTS ${COWMEM_WASI_APPS_FROM}/${rel})
      set(from ${COWMEM_WASI_APPS_FROM}/${rel})
    endif()
  endif()
  set(${var} ${from} PARENT_SCOPE)
endfunction()

# Stock iwasm, the oracle: WAMR's own runner from the same tree, built as
# its README says (fast interpreter, WASI), without the project's flags, or
# COWMEM_WASI_APPS_FROM's (a plain Release build either way).
cowmem_wasi_prebuilt(oracle_from ${CMAKE_CURRENT_BINARY_DIR}/iwasm-oracle/iwasm)
if(oracle_from)
  set(COWMEM_IWASM_ORACLE ${oracle_from})
  add_custom_target(cowmem_iwasm_oracle)
else()
  file(COPY ${COWMEM_WAMR_DIR}/product-mini DESTINATION ${COWMEM_WAMR_ROOT})
  set(COWMEM_IWASM_ORACLE ${CMAKE_CURRENT_BINARY_DIR}/iwasm-oracle/iwasm)
  ExternalProject_Add(cowmem_iwasm_oracle
    SOURCE_DIR ${COWMEM_WAMR_ROOT}/product-mini/platforms/linux
    BINARY_DIR ${CMAKE_CURRENT_BINARY_DIR}/iwasm-oracle
    CMAKE_ARGS -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}
               -DWAMR_BUILD_INTERP=1 -DWAMR_BUILD_FAST_INTERP=1 -DWAMR_BUILD_AOT=0
               -DWAMR_BUILD_JIT=0 -DWAMR_BUILD_LIBC_WASI=1 -DWAMR_BUILD_LIBC_BUILTIN=1
               -DWAMR_BUILD_SIMD=0 -Wno-dev
    BUILD_COMMAND ${CMAKE_COMMAND} --build . --target iwasm
    BUILD_BYPRODUCTS ${COWMEM_IWASM_ORACLE}
    INSTALL_COMMAND ""
    LOG_CONFIGURE ON LOG_BUILD ON)
endif()
add_custom_target(cowmem_wasi_oracle_deps ALL DEPENDS cowmem_iwasm_oracle cowmem_iwasm)

find_program(COWMEM_WASI_CC NAMES clang-14 clang)
set(wasi_missing "")
if(NOT COWMEM_WASI_CC)
  set(wasi_missing "clang-14 not found")
else()
  # clang's wasm32-wasi target needs the sysroot (Debian: wasi-libc) and
  # its builtins (libclang-rt-14-dev-wasm32): try one link.
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/wasi_probe_cc.c "int main(void){return 0;}\n")
  execute_process(COMMAND ${COWMEM_WASI_CC} --target=wasm32-wasi
                          ${CMAKE_CURRENT_BINARY_DIR}/wasi_probe_cc.c
                          -o ${CMAKE_CURRENT_BINARY_DIR}/wasi_probe_cc.wasm
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    set(wasi_missing "${COWMEM_WASI_CC} cannot link for wasm32-wasi: install the Debian packages wasi-libc and libclang-rt-14-dev-wasm32 (scripts/setup)")
  endif()
endif()
# Real programs (Flite and CPython need only their npm packages).
include(${wasi_dir}/workloads.cmake)

if(wasi_missing)
  # The tests that need it, each skipped with the reason.
  message(STATUS "cowmem: WASI tests skipped: ${wasi_missing}")
  foreach(t wamr_wasi_api wamr_wasi_oracle)
    add_test(NAME ${t} COMMAND sh -c "echo \"SKIP: \$1\"; exit 77" skip "${wasi_missing}")
    set_tests_properties(${t} PROPERTIES SKIP_RETURN_CODE 77 LABELS wasi)
  endforeach()
  return()
endif()

# The test programs.
set(COWMEM_WASI_PROBE ${CMAKE_CURRENT_BINARY_DIR}/probe.wasm)
set(COWMEM_WASI_REACTOR ${CMAKE_CURRENT_BINARY_DIR}/reactor.wasm)
add_custom_command(OUTPUT ${COWMEM_WASI_PROBE}
  COMMAND ${COWMEM_WASI_CC} --target=wasm32-wasi -O2 ${wasi_dir}/probe.c
          -o ${COWMEM_WASI_PROBE}
  DEPENDS ${wasi_dir}/probe.c VERBATIM)
add_custom_command(OUTPUT ${COWMEM_WASI_REACTOR}
  COMMAND ${COWMEM_WASI_CC} --target=wasm32-wasi -O2 -mexec-model=reactor
          ${wasi_dir}/reactor.c -o ${COWMEM_WASI_REACTOR}
  DEPENDS ${wasi_dir}/reactor.c VERBATIM)
add_custom_target(cowmem_wasi_programs ALL
                  DEPENDS ${COWMEM_WASI_PROBE} ${COWMEM_WASI_REACTOR})

# The integration's API.
cowmem_wamr_wasi_program(test_wasi ${wasi_dir}/test_wasi.c)
add_dependencies(test_wasi cowmem_wasi_programs)
target_compile_definitions(test_wasi PRIVATE COWMEM_WASI_PROBE="${COWMEM_WASI_PROBE}"
                           COWMEM_WASI_REACTOR="${COWMEM_WASI_REACTOR}")
file(STRINGS ${wasi_dir}/test_wasi.c wasi_tests REGEX "^TEST_IMPL\\(")
list(TRANSFORM wasi_tests REPLACE "^TEST_IMPL\\(([A-Za-z0-9_]+)\\).*" "\\1")
foreach(name ${wasi_tests})
  add_test(NAME wamr_wasi_${name} COMMAND test_wasi ${name})
  set_tests_properties(wamr_wasi_${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                       LABELS wasi)
endforeach()
set_tests_properties(wamr_wasi_threads PROPERTIES LABELS "wasi;threads")

# The same programs through every runner, compared.
add_test(NAME wamr_wasi_oracle
  COMMAND sh ${wasi_dir}/compare.sh $<TARGET_FILE:cowmem_iwasm> ${COWMEM_IWASM_ORACLE}
          ${wasi_dir}/node_run.js ${COWMEM_WASI_PROBE} ${COWMEM_WASI_REACTOR}
          ${CMAKE_CURRENT_BINARY_DIR}/wasi-oracle
          $<$<TARGET_EXISTS:cowmem_tool>:$<TARGET_FILE:cowmem_tool>>)
set_tests_properties(wamr_wasi_oracle PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                     LABELS wasi)

# Pre-initialization with WASI (preinit.sh): `cowmem preinit --allow-wasi`
# and cowmem-iwasm --preinit on the QuickJS and SQLite reactors (their
# _initialize) and on preinit_app.c (an init reading a variable and a file
# only cowmem preinit is given), against the original module.
if(COWMEM_BUILD_TOOLS)
  set(COWMEM_WASI_PREINIT_APP ${CMAKE_CURRENT_BINARY_DIR}/preinit_app.wasm)
  add_custom_command(OUTPUT ${COWMEM_WASI_PREINIT_APP}
    COMMAND ${COWMEM_WASI_CC} --target=wasm32-wasi -O2 -mexec-model=reactor
            ${wasi_dir}/preinit_app.c -o ${COWMEM_WASI_PREINIT_APP}
    DEPENDS ${wasi_dir}/preinit_app.c VERBATIM)
  add_custom_target(cowmem_wasi_preinit_app ALL DEPENDS ${COWMEM_WASI_PREINIT_APP})
  set(COWMEM_WASI_ENV ${COWMEM_WASI_PREINIT_APP})
  foreach(w env quickjs sqlite)
    string(TOUPPER ${w} W)
    if(${w}_pkg_MISSING)
      set(cmd sh -c "echo \"SKIP: \$1\"; exit 77" skip "${${w}_pkg_MISSING}")
    else()
      set(cmd sh ${wasi_dir}/preinit.sh ${w} ${COWMEM_WASI_${W}}
              $<TARGET_FILE:cowmem_iwasm> ${COWMEM_IWASM_ORACLE} ${wasi_dir}/node_run.js
              ${CMAKE_CURRENT_BINARY_DIR}/wasi-preinit-${w} $<TARGET_FILE:cowmem_tool>)
    endif()
    add_test(NAME wamr_wasi_preinit_${w} COMMAND ${cmd})
    set_tests_properties(wamr_wasi_preinit_${w} PROPERTIES SKIP_RETURN_CODE 77
                         TIMEOUT 1200 LABELS "wasi;tools")
  endforeach()
endif()
