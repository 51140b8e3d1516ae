# WASI in the WAMR integration (cowmem_wamr_wasi.h), cowmem-iwasm, and
# their tests against stock iwasm (WAMR's product-mini, built here as the
# oracle) and node:wasi. Included by CMakeLists.txt once the integration's
# targets exist.

# The runtimes with WASI: hooked (cowmem's memories) and stock (renamed).
cowmem_wamr_runtime(cowmem_wamr_vm_wasi WASI)
cowmem_wamr_runtime(cowmem_wamr_vm_stock_wasi STOCK WASI)

add_library(cowmem_wamr_wasi STATIC cowmem_wamr_wasi.c)
target_link_libraries(cowmem_wamr_wasi PUBLIC cowmem_wamr)
# Pre-initialization with WAMR as the runner (cowmem_wamr_preinit.h): for
# the cowmem command's preinit and cowmem-iwasm --preinit.
add_library(cowmem_wamr_preinit STATIC cowmem_wamr_preinit.c)
target_link_libraries(cowmem_wamr_preinit PUBLIC cowmem_wamr_wasi)
# The same file for the stock runtime (wamr_wasi_stock.h).
add_library(cowmem_wamr_wasi_stock OBJECT cowmem_wamr_wasi.c)
target_compile_definitions(cowmem_wamr_wasi_stock PRIVATE WAMR_API_STOCK=1)
target_include_directories(cowmem_wamr_wasi_stock PRIVATE
                           ${COWMEM_WAMR_ROOT}/core/iwasm/include)
target_link_libraries(cowmem_wamr_wasi_stock PRIVATE cowmem_integ cowmem_static)

# A program running WASI modules through both runtimes.
function(cowmem_wamr_wasi_program target)
  add_executable(${target} ${ARGN} iwasm_runner.c
                 $<TARGET_OBJECTS:cowmem_wamr_api_cowmem>
                 $<TARGET_OBJECTS:cowmem_wamr_api_stock>
                 $<TARGET_OBJECTS:cowmem_wamr_wasi_stock>)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/examples/demo ${PROJECT_SOURCE_DIR}/bench/lib
                             ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${target} PRIVATE cowmem_wamr_preinit cowmem_wamr_wasi cowmem_wamr_vm_wasi
                        cowmem_wamr_vm_stock_wasi)
endfunction()
cowmem_wamr_wasi_program(cowmem_iwasm cowmem_iwasm.c iwasm_preinit.c)
set_target_properties(cowmem_iwasm PROPERTIES OUTPUT_NAME cowmem-iwasm)

if(COWMEM_BUILD_TESTS)
  include(${CMAKE_CURRENT_LIST_DIR}/wasi/tests.cmake)
endif()
