/* wamr_api.c: one wamr_api_t table (see wamr_api.h). Compiled with
 * WAMR_API_STOCK for the stock runtime, whose symbols carry a prefix. */
#include "wamr_api.h"

#ifdef WAMR_API_STOCK
#define P(name) cowmem_stock_##name
#define TABLE wamr_api_stock
#define NAME "stock WAMR"
#else
#define P(name) name
#define TABLE wamr_api_cowmem
#define NAME "cowmem WAMR"
#endif

/* wasm_export.h declares the plain names; the stock runtime defines the
 * prefixed ones, with the same types. */
#define DECL(ret, name, params) ret P(name) params;
#ifdef WAMR_API_STOCK
DECL(bool, wasm_runtime_full_init, (RuntimeInitArgs*))
DECL(void, wasm_runtime_destroy, (void))
DECL(bool, wasm_runtime_init_thread_env, (void))
DECL(void, wasm_runtime_destroy_thread_env, (void))
DECL(wasm_module_t, wasm_runtime_load, (uint8_t*, uint32_t, char*, uint32_t))
DECL(void, wasm_runtime_unload, (wasm_module_t))
DECL(wasm_module_inst_t, wasm_runtime_instantiate,
     (const wasm_module_t, uint32_t, uint32_t, char*, uint32_t))
DECL(void, wasm_runtime_deinstantiate, (wasm_module_inst_t))
DECL(wasm_function_inst_t, wasm_runtime_lookup_function,
     (const wasm_module_inst_t, const char*))
DECL(wasm_exec_env_t, wasm_runtime_create_exec_env, (wasm_module_inst_t, uint32_t))
DECL(void, wasm_runtime_destroy_exec_env, (wasm_exec_env_t))
DECL(bool, wasm_runtime_call_wasm,
     (wasm_exec_env_t, wasm_function_inst_t, uint32_t, uint32_t[]))
DECL(const char*, wasm_runtime_get_exception, (wasm_module_inst_t))
DECL(void, wasm_runtime_clear_exception, (wasm_module_inst_t))
DECL(void*, wasm_runtime_addr_app_to_native, (wasm_module_inst_t, uint64_t))
DECL(wasm_memory_inst_t, wasm_runtime_get_default_memory, (const wasm_module_inst_t))
DECL(uint64_t, wasm_memory_get_cur_page_count, (const wasm_memory_inst_t))
DECL(void*, wasm_memory_get_base_address, (const wasm_memory_inst_t))
DECL(uint64_t, wasm_memory_get_bytes_per_page, (const wasm_memory_inst_t))
DECL(uint64_t, wasm_runtime_module_malloc, (wasm_module_inst_t, uint64_t, void**))
#endif

const wamr_api_t TABLE = {
    NAME,
    P(wasm_runtime_full_init),
    P(wasm_runtime_destroy),
    P(wasm_runtime_init_thread_env),
    P(wasm_runtime_destroy_thread_env),
    P(wasm_runtime_load),
    P(wasm_runtime_unload),
    P(wasm_runtime_instantiate),
    P(wasm_runtime_deinstantiate),
    P(wasm_runtime_lookup_function),
    P(wasm_runtime_create_exec_env),
    P(wasm_runtime_destroy_exec_env),
    P(wasm_runtime_call_wasm),
    P(wasm_runtime_get_exception),
    P(wasm_runtime_clear_exception),
    P(wasm_runtime_addr_app_to_native),
    P(wasm_runtime_get_default_memory),
    P(wasm_memory_get_cur_page_count),
    P(wasm_memory_get_base_address),
    P(wasm_memory_get_bytes_per_page),
    P(wasm_runtime_module_malloc),
};
