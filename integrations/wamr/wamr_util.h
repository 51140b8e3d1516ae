/* wamr_util.h: helpers shared by the WAMR demo and its tests: an instance
 * with its execution environment (cowmem-iwasm's runner keeps its
 * instances so too), calls of the demo's exports and one request served. The clock, the quantiles, the request inputs and
 * /proc/self/status are examples/demo/demo.h's, shared with the wasm2c
 * integration. */
#ifndef COWMEM_WAMR_UTIL_H
#define COWMEM_WAMR_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem_wamr.h"
#include "demo.h"
#include "wamr_api.h"

#define WAMR_STACK (64u << 10) /* operand stack of an instance */
#define WAMR_TRAP 0xdeadbeefu  /* what wamr_call1 returns after a trap */

/* An instance of either runtime and its execution environment. */
typedef struct {
  const wamr_api_t* api;
  wasm_module_inst_t inst;
  wasm_exec_env_t env;
  cowmem_wamr_instance_t* owner; /* inst and env, when they are its */
  char exception[128];           /* the last trap's message ("" if none) */
} wamr_inst_t;

/* Take i (NULL: fails), an instance of the cowmem runtime with its
 * environment (cowmem_wamr_instance_new). 0 or -1. */
static inline int wamr_inst_of(wamr_inst_t* x, cowmem_wamr_instance_t* i) {
  memset(x, 0, sizeof *x);
  x->api = &wamr_api_cowmem;
  x->owner = i;
  x->inst = cowmem_wamr_instance_inst(i);
  x->env = cowmem_wamr_instance_exec_env(i);
  return i ? 0 : -1;
}

/* Take inst (NULL: fails) and give it an execution environment. 0 or -1. */
static inline int wamr_inst_wrap(wamr_inst_t* x, const wamr_api_t* api,
                                 wasm_module_inst_t inst) {
  memset(x, 0, sizeof *x);
  x->api = api;
  x->inst = inst;
  if (!inst) return -1;
  x->env = api->create_exec_env(inst, WAMR_STACK);
  if (!x->env) {
    api->deinstantiate(inst);
    x->inst = NULL;
    return -1;
  }
  return 0;
}

/* An instance with its execution environment: of the module set m
 * through cowmem_wamr_instance_new (its environment reused from the set's
 * cache), or with m NULL of `module` in api's runtime, with an environment
 * created for it, as stock hosts do. 0, or -1 with the reason in err. */
static inline int wamr_inst_new(wamr_inst_t* x, const cowmem_wamr_module_t* m,
                                const wamr_api_t* api, wasm_module_t module, char* err,
                                uint32_t err_size) {
  if (m) return wamr_inst_of(x, cowmem_wamr_instance_new(m, WAMR_STACK, 0, err, err_size));
  return wamr_inst_wrap(x, api, api->instantiate(module, WAMR_STACK, 0, err, err_size));
}

static inline void wamr_inst_free(wamr_inst_t* x) {
  if (x->owner) {
    cowmem_wamr_instance_free(x->owner);
  } else {
    if (x->env) x->api->destroy_exec_env(x->env);
    if (x->inst) x->api->deinstantiate(x->inst);
  }
  x->owner = NULL;
  x->env = NULL;
  x->inst = NULL;
}

/* Call export `name` with argv[0..argc); argv[0] holds the result. false
 * after a trap (x->exception says which) or when there is no such export. */
static inline bool wamr_call(wamr_inst_t* x, const char* name, uint32_t argc,
                             uint32_t* argv) {
  x->exception[0] = 0;
  wasm_function_inst_t f = x->api->lookup_function(x->inst, name);
  if (!f) {
    snprintf(x->exception, sizeof x->exception, "no export %s", name);
    return false;
  }
  if (x->api->call_wasm(x->env, f, argc, argv)) return true;
  const char* e = x->api->get_exception(x->inst);
  snprintf(x->exception, sizeof x->exception, "%s", e ? e : "?");
  x->api->clear_exception(x->inst);
  return false;
}

/* name(a, b) with up to two i32 arguments: the i32 result, or WAMR_TRAP. */
static inline uint32_t wamr_call1(wamr_inst_t* x, const char* name, int argc, uint32_t a,
                                  uint32_t b) {
  uint32_t argv[2] = {a, b};
  return wamr_call(x, name, (uint32_t)argc, argv) ? argv[0] : WAMR_TRAP;
}

/* Whether the last call trapped out of bounds. */
static inline bool wamr_oob(const wamr_inst_t* x) {
  return strstr(x->exception, "out of bounds memory access") != NULL;
}

/* The default memory: base and size in bytes (as the wasm pages count). */
static inline uint8_t* wamr_memory(const wamr_inst_t* x, uint64_t* pages) {
  wasm_memory_inst_t mem = x->api->default_memory(x->inst);
  if (pages) *pages = mem ? x->api->memory_pages(mem) : 0;
  return mem ? x->api->memory_base(mem) : NULL;
}

/* Write the request into the instance's input buffer, run it, copy the
 * report into out (NUL-terminated, truncated to cap): run's result. */
static inline uint32_t wamr_serve(wamr_inst_t* x, const void* req, uint32_t len,
                                  char* out, size_t cap) {
  uint32_t in = wamr_call1(x, "input_ptr", 0, 0, 0);
  uint8_t* p = x->api->app_to_native(x->inst, in);
  if (!p) return WAMR_TRAP;
  if (len) memcpy(p, req, len);
  uint32_t n = wamr_call1(x, "run", 2, in, len);
  if (out && cap) {
    size_t k = n == (uint32_t)-1 || n == WAMR_TRAP ? 0 : n < cap - 1 ? n : cap - 1;
    uint8_t* r = x->api->app_to_native(x->inst, wamr_call1(x, "result_ptr", 0, 0, 0));
    if (r && k) memcpy(out, r, k);
    out[k] = 0;
  }
  return n;
}

#endif
