/* test_wamr.h: what the WAMR integration's test programs (test_wamr.c,
 * test_wamr_instance.c) share: a module set opened from its image file
 * and stripped module when the cowmem command built them, else from the
 * .wasm; the pool's end; a test thread's WAMR environment. */
#ifndef COWMEM_TEST_WAMR_H
#define COWMEM_TEST_WAMR_H

#include <pthread.h>

#include "cowmem_wamr.h"
#include "test.h"
#include "test_integ.h"

#define OPEN_SET(name, out)                                                              \
  open_set(COWMEM_WAMR_WASM_##name, IMAGES_OF(name), STRIPPED_OF(name), out)
#ifdef COWMEM_WAMR_IMAGES_demo
#define IMAGES_OF(name) COWMEM_WAMR_IMAGES_##name
#define STRIPPED_OF(name) COWMEM_WAMR_STRIPPED_##name
#else
#define IMAGES_OF(name) NULL
#define STRIPPED_OF(name) NULL
#endif

static inline int open_set(const char* wasm, const char* images, const char* stripped,
                           cowmem_wamr_module_t** out) {
  cowmem_diag_t diag;
  int r = images ? cowmem_wamr_module_open_images(images, stripped, NULL, out, &diag)
                 : cowmem_wamr_module_open(wasm, out, &diag);
  return test_integ_opened(r, wasm, &diag);
}

/* The end of a test: no linear memory left alive, the pool freed. */
static inline int pool_done(void) {
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.live, 0);
  ASSERT_OK(cowmem_wamr_shutdown());
  return 0;
}

/* WAMR 2.4.5's thread init writes process-wide globals (the signal actions
 * it chains to): one thread at a time (TSan saw the race). */
static pthread_mutex_t g_thread_env_lock = PTHREAD_MUTEX_INITIALIZER;

static inline bool thread_env_init(void) {
  pthread_mutex_lock(&g_thread_env_lock);
  bool ok = wasm_runtime_init_thread_env();
  pthread_mutex_unlock(&g_thread_env_lock);
  return ok;
}

static inline void thread_env_destroy(void) {
  pthread_mutex_lock(&g_thread_env_lock);
  wasm_runtime_destroy_thread_env();
  pthread_mutex_unlock(&g_thread_env_lock);
}

#endif
