# Which cowmem library and command the integrations' CMake functions use:
# the installed package's (find_package(cowmem) defined cowmem::cowmem_static
# and, when the command was installed, cowmem::tool), or those of cowmem's
# own tree (where cowmem_tool is defined later: target names in COMMAND and
# DEPENDS resolve at generation time). Sets COWMEM_INTEGRATION_LIBRARY and
# COWMEM_INTEGRATION_TOOL (empty without the command).
if(TARGET cowmem::cowmem_static)
  set(COWMEM_INTEGRATION_LIBRARY cowmem::cowmem_static)
  set(COWMEM_INTEGRATION_TOOL)
  if(TARGET cowmem::tool)
    set(COWMEM_INTEGRATION_TOOL cowmem::tool)
  endif()
else()
  set(COWMEM_INTEGRATION_LIBRARY cowmem_static)
  set(COWMEM_INTEGRATION_TOOL)
  if(COWMEM_BUILD_TOOLS)
    set(COWMEM_INTEGRATION_TOOL cowmem_tool)
  endif()
endif()
