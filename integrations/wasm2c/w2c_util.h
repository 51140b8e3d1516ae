/* w2c_util.h: helpers shared by the wasm2c demo and its tests: percentiles
 * of per-request arrays, a "serve one request" function generated per
 * wasm2c module (the stock module is demo, the stripped one mapped by
 * cowmem cowdemo), and short names for the generated names of either wabt
 * (cowmem_wasm2c.h). The clock, the request inputs and /proc/self/status
 * are examples/demo/demo.h's, shared with the WAMR integration. */
#ifndef COWMEM_W2C_UTIL_H
#define COWMEM_W2C_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem_wasm2c.h"
#include "demo.h"
#if COWMEM_W2C_ABI >= 1037
#include "wasm-rt-exceptions.h" /* wasm_rt_impl_try sets its unwind target */
#endif

#define W2C_T(mod) COWMEM_W2C_INSTANCE(mod)
#define W2C_X(mod, name) COWMEM_W2C_EXPORT(mod, name)
#define W2C_FN(mod, what) COWMEM_W2C_FN(mod, what)

/* Defines w2c_serve_<mod>(inst, req, len, out, cap): write the request into
 * the instance's input buffer, run it, copy the report into out (NUL-
 * terminated, truncated to cap); returns run's result. */
#define W2C_DEFINE_SERVE(mod)                                                            \
  static inline uint32_t w2c_serve_##mod(W2C_T(mod) * inst, const void* req,             \
                                         uint32_t len, char* out, size_t cap) {          \
    wasm_rt_memory_t* mem = W2C_X(mod, memory)(inst);                                    \
    uint32_t in = W2C_X(mod, input_ptr)(inst);                                           \
    if (len) memcpy(mem->data + in, req, len);                                           \
    uint32_t n = W2C_X(mod, run)(inst, in, len);                                         \
    if (out && cap) {                                                                    \
      size_t k = n == (uint32_t)-1 ? 0 : n < cap - 1 ? n : cap - 1;                      \
      memcpy(out, mem->data + W2C_X(mod, result_ptr)(inst), k);                          \
      out[k] = 0;                                                                        \
    }                                                                                    \
    return n;                                                                            \
  }

#endif
