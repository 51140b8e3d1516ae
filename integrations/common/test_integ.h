/* test_integ.h: what the runtime integrations' tests share (the wasm2c
 * tests through test_w2c.h, the WAMR tests in test_wamr.c): the pool set
 * up for a test, through either integration's init (they take the same
 * configuration, cowmem_integ.h), and a module set's opening checked. */
#ifndef COWMEM_TEST_INTEG_H
#define COWMEM_TEST_INTEG_H

#include <pthread.h>

#include "cowmem_integ.h"
#include "test.h"

typedef int (*test_integ_init_fn)(const cowmem_integ_config_t* cfg, cowmem_diag_t* diag);

/* init (cowmem_w2c_init, cowmem_wamr_init) with `slots` memories and the
 * given reset. */
static inline int test_integ_init(test_integ_init_fn init, size_t slots,
                                  cowmem_reset_strategy_t reset) {
  cowmem_integ_config_t cfg;
  cowmem_integ_config_init(&cfg);
  cfg.max_memories = slots;
  cfg.reset = reset;
  ASSERT_OK(init(&cfg, NULL));
  return 0;
}

/* Fails the test, saying why, when opening the module set `what` (its
 * image file or .wasm) returned r. */
static inline int test_integ_opened(int r, const char* what, const cowmem_diag_t* diag) {
  if (r != 0) TEST_FAIL_("%s: %s (%s)", what, cowmem_err_name(r), diag->reason);
  return 0;
}

/* fn(arg) on `n` (at most 8) threads at once; each must return NULL. */
static inline int test_integ_threads(void* (*fn)(void*), void* arg, int n) {
  pthread_t t[8];
  ASSERT_TRUE(n > 0 && n <= 8);
  for (int i = 0; i < n; i++)
    ASSERT_EQ(pthread_create(&t[i], NULL, fn, arg), 0);
  for (int i = 0; i < n; i++) {
    void* r = (void*)1;
    ASSERT_EQ(pthread_join(t[i], &r), 0);
    ASSERT_NULL(r);
  }
  return 0;
}

#endif
