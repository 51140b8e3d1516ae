/* test_w2c_sweep.c: wasm_rt_allocate_memory cannot fail, so a pool that
 * says "no slot" while one is free kills the host. Three slots, three
 * threads, each holding at most one memory: two instantiate and free the
 * demo in a loop from a module set that lives throughout; the third opens
 * a module set, instantiates, frees the set while the instance lives (its
 * images become orphans, which the pool's sweep decommits once their slot
 * is idle), then frees the instance. A false "no slot" aborts the process.
 * ctest runs it as wasm2c<suffix>_sweep_<reset>, label threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "cowdemo.h"
#include "test_w2c.h"

W2C_DEFINE_SERVE(cowdemo)

enum { SLOTS = 3 };

static cowmem_w2c_module_t* g_mod;
static char g_expect[256];
static _Atomic int g_stop;
static _Atomic long g_cycles, g_orphans;

/* One instance from m: serve the default request, compare, free. */
static int serve_once(cowmem_w2c_module_t* m, bool drop_set) {
  W2C_T(cowdemo) c;
  char out[256];
  if (COWMEM_W2C_INSTANTIATE(m, W2C_FN(cowdemo, instantiate), &c) != 0) return 1;
  if (drop_set) cowmem_w2c_module_free(m); /* the instance keeps its images */
  w2c_serve_cowdemo(&c, demo_default_request, (uint32_t)strlen(demo_default_request), out,
                    sizeof out);
  W2C_FN(cowdemo, free)(&c);
  if (strcmp(out, g_expect) != 0) {
    fprintf(stderr, "got \"%s\", expected \"%s\"\n", out, g_expect);
    return 1;
  }
  return 0;
}

static void* worker(void* arg) {
  COWMEM_W2C_THREAD_INIT(); /* >= 1.0.37: this thread's signal stack */
  bool orphaner = arg != NULL;
  void* r = NULL;
  while (r == NULL && !atomic_load(&g_stop)) {
    cowmem_w2c_module_t* m = g_mod;
    if (orphaner && open_set(COWMEM_W2C_WASM_cowdemo, IMAGES_OF(cowdemo), &m) != 0)
      r = (void*)1;
    else if (serve_once(m, orphaner) != 0)
      r = (void*)1;
    atomic_fetch_add(orphaner ? &g_orphans : &g_cycles, 1);
  }
  COWMEM_W2C_THREAD_FREE();
  return r;
}

static int sweep(cowmem_reset_strategy_t reset) {
  CHECK(init_pool(SLOTS, reset));
  CHECK(OPEN_SET(cowdemo, &g_mod));
  static bool once;
  if (!once) {
    wasm_rt_init();
    COWMEM_W2C_INIT_MODULE(cowdemo);
    once = true;
  }
  W2C_T(cowdemo) c;
  ASSERT_OK(COWMEM_W2C_INSTANTIATE(g_mod, W2C_FN(cowdemo, instantiate), &c));
  w2c_serve_cowdemo(&c, demo_default_request, (uint32_t)strlen(demo_default_request),
                    g_expect, sizeof g_expect);
  W2C_FN(cowdemo, free)(&c);
  pthread_t t[SLOTS];
  for (int i = 0; i < SLOTS; i++)
    ASSERT_EQ(pthread_create(&t[i], NULL, worker, i == 0 ? (void*)1 : NULL), 0);
  struct timespec ts = {1, 0}; /* a few seconds at most, under sanitizers too */
  nanosleep(&ts, NULL);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < SLOTS; i++) {
    void* r = (void*)1;
    ASSERT_EQ(pthread_join(t[i], &r), 0);
    ASSERT_NULL(r);
  }
  long cycles = atomic_load(&g_cycles), orphans = atomic_load(&g_orphans);
  fprintf(stderr, "%ld instances, %ld with their set freed while alive\n", cycles,
          orphans);
  ASSERT_GT(orphans, 0);
  cowmem_pool_metrics_t pm;
  ASSERT_OK(cowmem_pool_metrics(cowmem_w2c_pool(), &pm));
  ASSERT_UEQ(pm.exhausted, 0);
  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  ASSERT_EQ(n.live, 0);
  cowmem_w2c_module_free(g_mod);
  ASSERT_OK(cowmem_w2c_shutdown());
  return 0;
}

TEST_IMPL(sweep_madvise) { return sweep(COWMEM_RESET_MADVISE); }
TEST_IMPL(sweep_batched) { return sweep(COWMEM_RESET_BATCHED); }
TEST_IMPL(sweep_adaptive) { return sweep(COWMEM_RESET_ADAPTIVE); }

TEST_MAIN(TEST_ENTRY(sweep_madvise) TEST_ENTRY(sweep_batched) TEST_ENTRY(sweep_adaptive))
