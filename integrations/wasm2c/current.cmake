# The wasm2c integration against a current wabt (>= 1.0.37): the runtime's
# sources built here and a translator of the same version. By default the
# runtime is ../shared/wabt-1.0.39/wasm2c and the translator the npm package
# wabt@1.0.39 (an emscripten build run by node), installed pinned into the
# build tree when the project is configured. Another wabt >= 1.0.37:
#   cmake -DCOWMEM_WABT_RUNTIME_DIR=<wabt>/wasm2c \
#         -DCOWMEM_WABT_WASM2C=<wabt>/bin/wasm2c [-DCOWMEM_WABT_WAT2WASM=...]
# Without them, one test (wasm2c39_missing) says what is missing and skips.
set(COWMEM_WABT_NPM_VERSION 1.0.39)
set(COWMEM_WABT_RUNTIME_DIR "${PROJECT_SOURCE_DIR}/../shared/wabt-1.0.39/wasm2c"
    CACHE PATH "wasm2c runtime sources (wasm-rt.h, wasm-rt-impl.c, ...) of wabt >= 1.0.37")
set(COWMEM_WABT_WASM2C "" CACHE STRING
    "wasm2c of wabt >= 1.0.37 (a command; empty: npm wabt@${COWMEM_WABT_NPM_VERSION})")
set(COWMEM_WABT_WAT2WASM "" CACHE STRING
    "wat2wasm for the test modules (empty: beside COWMEM_WABT_WASM2C, or the npm one)")
set(w2c_missing "")
set(w2c_cmd)
set(wat_cmd)
get_filename_component(rt_dir "${COWMEM_WABT_RUNTIME_DIR}" ABSOLUTE)
if(NOT EXISTS ${rt_dir}/wasm-rt.h OR NOT EXISTS ${rt_dir}/wasm-rt-impl.c)
  set(w2c_missing "no wasm2c runtime sources in COWMEM_WABT_RUNTIME_DIR=${rt_dir}")
elseif(COWMEM_WABT_WASM2C)
  set(w2c_cmd ${COWMEM_WABT_WASM2C})
  list(GET w2c_cmd -1 w2c_exe)
  get_filename_component(w2c_bin ${w2c_exe} DIRECTORY)
  if(COWMEM_WABT_WAT2WASM)
    set(wat_cmd ${COWMEM_WABT_WAT2WASM})
  elseif(EXISTS ${w2c_bin}/wat2wasm)
    set(wat_cmd ${w2c_bin}/wat2wasm)
  endif()
else()
  # npm's wabt, pinned: installed once per build tree (a few seconds), and
  # again if another version is found there.
  find_program(NODE_EXECUTABLE node)
  find_program(NPM_EXECUTABLE npm)
  set(npm_dir ${PROJECT_BINARY_DIR}/npm-wabt)
  set(pkg ${npm_dir}/node_modules/wabt)
  set(have "")
  if(EXISTS ${pkg}/package.json)
    file(READ ${pkg}/package.json pkg_json)
    string(REGEX MATCH "\"version\": *\"([0-9.]+)\"" _ "${pkg_json}")
    set(have "${CMAKE_MATCH_1}")
  endif()
  if(NOT have STREQUAL COWMEM_WABT_NPM_VERSION AND NODE_EXECUTABLE AND NPM_EXECUTABLE)
    message(STATUS "cowmem: npm install wabt@${COWMEM_WABT_NPM_VERSION} into ${npm_dir}")
    execute_process(COMMAND ${NPM_EXECUTABLE} install --prefix ${npm_dir} --no-audit
                            --no-fund --ignore-scripts --no-save
                            wabt@${COWMEM_WABT_NPM_VERSION}
                    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err TIMEOUT 300)
    if(NOT rc EQUAL 0)
      string(REGEX REPLACE "\n.*" "" err "${err}")
      set(w2c_missing "npm install wabt@${COWMEM_WABT_NPM_VERSION} failed (${rc}): ${err}")
    endif()
  endif()
  if(NOT NODE_EXECUTABLE OR NOT NPM_EXECUTABLE)
    set(w2c_missing "node and npm are needed for npm's wabt@${COWMEM_WABT_NPM_VERSION}")
  elseif(EXISTS ${pkg}/bin/wasm2c AND NOT w2c_missing)
    set(w2c_cmd ${NODE_EXECUTABLE} ${pkg}/bin/wasm2c)
    set(wat_cmd ${NODE_EXECUTABLE} ${pkg}/bin/wat2wasm)
  elseif(NOT w2c_missing)
    set(w2c_missing "npm's wabt has no bin/wasm2c in ${pkg}")
  endif()
endif()

if(w2c_missing)
  message(STATUS "cowmem: wasm2c >= 1.0.37 integration skipped: ${w2c_missing}")
  add_test(NAME wasm2c39_missing
           COMMAND sh -c "echo \"SKIP: \$1\"; exit 77" skip "${w2c_missing}")
  set_tests_properties(wasm2c39_missing PROPERTIES SKIP_RETURN_CODE 77)
  return()
endif()

# What its output trips under our warnings (gcc 12, clang 14): those of
# 1.0.32, an incompatible-pointer warning in the LOAD_DATA of a shared
# memory (its data pointer is _Atomic volatile), and an unused va_list in
# the get_func_type of a module without functions.
cowmem_wasm2c_provider(cowmem_wasm2c39 WASM2C ${w2c_cmd}
  INCLUDE_DIR ${rt_dir} RUNTIME_SOURCES ${rt_dir}
  GENERATED_FLAGS -Wno-unused-function -Wno-unused-parameter -Wno-unused-value
                  -Wno-unused-variable -Wno-incompatible-pointer-types)
cowmem_w2c_suite(39 cowmem_wasm2c39 WAT2WASM ${wat_cmd} NEW_KINDS)
