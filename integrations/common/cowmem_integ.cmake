# The layer under the runtime integrations (cowmem_integ.h): the static
# library cowmem_integ, defined once per project, whichever integration's
# CMake file (cowmem_wasm2c.cmake, cowmem_wamr.cmake) includes this first.
# It knows no runtime: it is compiled once, on cowmem.h only.
include(${CMAKE_CURRENT_LIST_DIR}/../cowmem_targets.cmake)
if(NOT TARGET cowmem_integ)
  add_library(cowmem_integ STATIC ${CMAKE_CURRENT_LIST_DIR}/cowmem_integ.c)
  target_include_directories(cowmem_integ PUBLIC ${CMAKE_CURRENT_LIST_DIR})
  find_package(Threads REQUIRED)
  target_link_libraries(cowmem_integ PUBLIC ${COWMEM_INTEGRATION_LIBRARY} Threads::Threads)
endif()
