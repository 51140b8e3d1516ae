/* wamr_api.h: the WAMR functions the demo and the tests call, as a table,
 * once for each of the two runtimes linked into one program:
 *   wamr_api_cowmem  the runtime built with the allocator hook (plain
 *                    names), whose memories cowmem_wamr serves;
 *   wamr_api_stock   the stock runtime (cowmem_wamr_runtime(... STOCK):
 *                    every symbol prefixed cowmem_stock_), which reserves
 *                    8 GiB and copies the data segments per instance.
 * wamr_api.c is compiled once per table (WAMR_API_STOCK selects the
 * prefixed names). */
#ifndef COWMEM_WAMR_API_H
#define COWMEM_WAMR_API_H

#include <stdbool.h>
#include <stdint.h>

#include "wasm_export.h"

typedef struct wamr_api_s {
  const char* name;
  bool (*full_init)(RuntimeInitArgs* args);
  void (*destroy)(void);
  bool (*init_thread_env)(void);
  void (*destroy_thread_env)(void);
  wasm_module_t (*load)(uint8_t* buf, uint32_t size, char* err, uint32_t err_size);
  void (*unload)(wasm_module_t module);
  wasm_module_inst_t (*instantiate)(const wasm_module_t module, uint32_t stack_size,
                                    uint32_t heap_size, char* err, uint32_t err_size);
  void (*deinstantiate)(wasm_module_inst_t inst);
  wasm_function_inst_t (*lookup_function)(const wasm_module_inst_t inst,
                                          const char* name);
  wasm_exec_env_t (*create_exec_env)(wasm_module_inst_t inst, uint32_t stack_size);
  void (*destroy_exec_env)(wasm_exec_env_t env);
  bool (*call_wasm)(wasm_exec_env_t env, wasm_function_inst_t f, uint32_t argc,
                    uint32_t argv[]);
  const char* (*get_exception)(wasm_module_inst_t inst);
  void (*clear_exception)(wasm_module_inst_t inst);
  void* (*app_to_native)(wasm_module_inst_t inst, uint64_t app_offset);
  wasm_memory_inst_t (*default_memory)(const wasm_module_inst_t inst);
  uint64_t (*memory_pages)(const wasm_memory_inst_t mem);
  void* (*memory_base)(const wasm_memory_inst_t mem);
  uint64_t (*bytes_per_page)(const wasm_memory_inst_t mem);
  uint64_t (*app_malloc)(wasm_module_inst_t inst, uint64_t size, void** native);
} wamr_api_t;

extern const wamr_api_t wamr_api_cowmem;
extern const wamr_api_t wamr_api_stock;

#endif
