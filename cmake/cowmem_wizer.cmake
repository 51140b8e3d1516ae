# Wizer, the pinned npm build (a native binary that runs offline), installed
# into the build tree at configure time: the oracle of the preinit tests and
# the baseline of the pre-initialization benchmarks. Sets COWMEM_WIZER_PATH
# to where it goes and COWMEM_WIZER to it when it is there ("" when it
# cannot be installed here: npm missing, not x86-64 Linux, offline without
# it). Included by tools/ and by the wasm2c integration; installs once.
set(COWMEM_WIZER_NPM_VERSION 11.0.3)
set(COWMEM_WIZER_DIR ${PROJECT_BINARY_DIR}/npm-wizer)
set(wizer_pkg ${COWMEM_WIZER_DIR}/node_modules/@bytecodealliance/wizer-linux-x64)
set(have "")
if(EXISTS ${wizer_pkg}/package.json)
  file(READ ${wizer_pkg}/package.json pkg_json)
  string(REGEX MATCH "\"version\": *\"([0-9.]+)\"" _ "${pkg_json}")
  set(have "${CMAKE_MATCH_1}")
endif()
find_program(NPM_EXECUTABLE npm)
if(NOT have STREQUAL COWMEM_WIZER_NPM_VERSION AND NPM_EXECUTABLE
   AND CMAKE_SYSTEM_NAME STREQUAL "Linux" AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  message(STATUS "cowmem: npm install @bytecodealliance/wizer-linux-x64@"
                 "${COWMEM_WIZER_NPM_VERSION} into ${COWMEM_WIZER_DIR}")
  execute_process(COMMAND ${NPM_EXECUTABLE} install --prefix ${COWMEM_WIZER_DIR} --no-audit
                          --no-fund --ignore-scripts --no-save
                          @bytecodealliance/wizer-linux-x64@${COWMEM_WIZER_NPM_VERSION}
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET TIMEOUT 300)
endif()
set(COWMEM_WIZER_PATH ${wizer_pkg}/wizer)
set(COWMEM_WIZER "")
if(EXISTS ${COWMEM_WIZER_PATH})
  set(COWMEM_WIZER ${COWMEM_WIZER_PATH})
endif()
