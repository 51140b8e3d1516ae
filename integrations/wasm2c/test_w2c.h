/* test_w2c.h: what the wasm2c integration's test files (test_wasm2c.c,
 * test_w2c_kinds.c, test_w2c_import.c) share: the pool set up for a test,
 * a module set opened as the build made it, and an export called in a
 * trap frame. The pool and the opening's check are test_integ.h's, which
 * the WAMR tests use under the same names (init_pool, open_set, OPEN_SET). */
#ifndef COWMEM_TEST_W2C_H
#define COWMEM_TEST_W2C_H

#include "cowmem_wasm2c.h"
#include "test.h"
#include "test_integ.h"
#include "w2c_util.h"
#include "wasm-rt-impl.h"

/* cowmem_w2c_init with `slots` memories and the given reset. */
static inline int init_pool(size_t slots, cowmem_reset_strategy_t reset) {
  return test_integ_init(cowmem_w2c_init, slots, reset);
}

/* Free the test's module set and the pool (which must have no memory
 * left alive). */
static inline int close_set(cowmem_w2c_module_t** m) {
  cowmem_w2c_module_free(*m);
  *m = NULL;
  ASSERT_OK(cowmem_w2c_shutdown());
  return 0;
}

/* A module set from its image file (images not NULL) or from the .wasm at
 * run time; fails the test, saying why, if it cannot be opened. */
static inline int open_set(const char* wasm, const char* images,
                           cowmem_w2c_module_t** out) {
  cowmem_diag_t diag;
  int r = images ? cowmem_w2c_module_open_images(images, NULL, out, &diag)
                 : cowmem_w2c_module_open(wasm, out, &diag);
  return test_integ_opened(r, images ? images : wasm, &diag);
}

/* The module set of test module `name` as the build made it: from its image
 * file when the cowmem command built one (then for every module), else
 * from the .wasm. */
#define OPEN_SET(name, out) open_set(COWMEM_W2C_WASM_##name, IMAGES_OF(name), out)
#ifdef COWMEM_W2C_IMAGES_cowdemo
#define IMAGES_OF(name) COWMEM_W2C_IMAGES_##name
#else
#define IMAGES_OF(name) NULL
#endif

/* Defines name(inst, addr, v): export fn of module mod called with addr in
 * a trap frame; the trap code, or 0 with *v the result. */
#define W2C_DEFINE_TRY(name, mod, fn, T, V)                                              \
  static int name(W2C_T(mod) * inst, T addr, V * v) {                                    \
    wasm_rt_trap_t t = (wasm_rt_trap_t)wasm_rt_impl_try();                               \
    if (t != WASM_RT_TRAP_NONE) return (int)t;                                           \
    *v = (V)W2C_X(mod, fn)(inst, addr);                                                  \
    return 0;                                                                            \
  }

#endif
