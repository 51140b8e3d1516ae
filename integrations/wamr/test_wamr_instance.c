/* test_wamr_instance.c: instances with their execution environment
 * (cowmem_wamr_instance_new), the environments reused from the module
 * set's cache. ctest runs each as wamr_instance_<name> (fast interpreter),
 * and those on a reused environment's state also as
 * wamr_instance_classic_<name> and wamr_instance_swbounds_<name>.
 *
 * A reused environment must behave as a fresh one bound to the new
 * instance, whatever the last instance did with it: a trap (in the
 * interpreter, or out of bounds through the signal handler), an exhausted
 * operand stack, its user data and native stack boundary set, its memory
 * written. */
#include "cowmem_wamr.h"
#include "test.h"
#include "test_integ.h"
#include "test_wamr.h"
#include "wamr_util.h"

#define DATA_AT 16      /* deep.wat's data: "deep module data" */
#define TOO_DEEP 100000 /* frames no 64 KiB operand stack holds */

static cowmem_wamr_module_t* g_deep;

static int setup(size_t slots) {
  static bool once; /* WAMR's runtime: once per process */
  if (!once) {
    ASSERT_TRUE(cowmem_wamr_runtime_init(NULL));
    once = true;
  }
  CHECK(test_integ_init(cowmem_wamr_init, slots, COWMEM_RESET_ADAPTIVE));
  CHECK(OPEN_SET(deep, &g_deep));
  return 0;
}

static int teardown(void) {
  cowmem_wamr_module_free(g_deep); /* with the environments it cached */
  g_deep = NULL;
  return pool_done();
}

/* An instance of m, with an operand stack of `stack` bytes. */
static int make(wamr_inst_t* x, const cowmem_wamr_module_t* m, uint32_t stack) {
  char err[128] = "";
  if (wamr_inst_of(x, cowmem_wamr_instance_new(m, stack, 0, err, sizeof err)) != 0)
    TEST_FAIL_("cowmem_wamr_instance_new: %s", err);
  return 0;
}
#define MAKE(x) CHECK(make(x, g_deep, WAMR_STACK))

/* Environments created and reused so far. */
static void envs(uint64_t* created, uint64_t* reused) {
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  *created = n.envs_created;
  *reused = n.envs_reused;
}

/* The deepest call x's operand stack holds (depth(n) returns n). */
static uint32_t deepest(wamr_inst_t* x) {
  uint32_t lo = 0, hi = TOO_DEEP; /* depth(lo) returns, depth(hi) traps */
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (wamr_call1(x, "depth", 1, mid, 0) == mid)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/* A fresh instance's answers, on whatever environment x has. */
static int answers_fresh(wamr_inst_t* x) {
  ASSERT_PTR_EQ(wasm_runtime_get_module_inst(x->env), x->inst);
  ASSERT_NULL(wasm_runtime_get_user_data(x->env));
  ASSERT_EQ(wamr_call1(x, "depth", 1, 100, 0), 100);
  ASSERT_EQ(wamr_call1(x, "peek", 1, DATA_AT, 0), 'd');
  ASSERT_STR_EQ(x->exception, "");
  return 0;
}

/* Free a, then make b: it gets a's environment and answers as a fresh
 * instance. */
static int reuse(wamr_inst_t* a, wamr_inst_t* b) {
  wasm_exec_env_t env = a->env;
  wamr_inst_free(a);
  MAKE(b);
  ASSERT_PTR_EQ(b->env, env);
  CHECK(answers_fresh(b));
  return 0;
}

/* The environment of a freed instance serves the next one, bound to it:
 * calls run on the new instance (the old one is gone). */
TEST_IMPL(rebinds) {
  CHECK(setup(4));
  uint64_t c0, r0, c1, r1;
  envs(&c0, &r0);
  wamr_inst_t a, keep, d, b;
  MAKE(&a);
  MAKE(&keep);
  wasm_exec_env_t env_a = a.env;
  wasm_module_inst_t inst_a = a.inst;
  wamr_inst_free(&a);
  /* An instance with no environment first, so that b's instance is not
   * at a's freed address. */
  ASSERT_EQ(wamr_inst_wrap(&d, &wamr_api_cowmem,
                           cowmem_wamr_instantiate(g_deep, WAMR_STACK, 0, NULL, 0)),
            0);
  MAKE(&b);
  ASSERT_PTR_EQ(b.env, env_a);
  ASSERT_PTR_NE(b.inst, inst_a);
  CHECK(answers_fresh(&b));
  /* b's memory, not keep's nor d's. */
  wamr_call1(&b, "poke", 2, 0, 0x42);
  ASSERT_EQ(wamr_call1(&b, "peek", 1, 0, 0), 0x42);
  ASSERT_EQ(wamr_call1(&keep, "peek", 1, 0, 0), 0);
  ASSERT_EQ(wamr_call1(&d, "peek", 1, 0, 0), 0);
  envs(&c1, &r1);
  ASSERT_UEQ(c1 - c0, 2);
  ASSERT_UEQ(r1 - r0, 1);
  wamr_inst_free(&b);
  wamr_inst_free(&d);
  wamr_inst_free(&keep);
  return teardown();
}

/* A call that trapped, in the interpreter (unreachable) or through the
 * signal handler (an access past the memory): the next instance on the
 * environment runs as on a fresh one. */
TEST_IMPL(after_trap) {
  CHECK(setup(2));
  for (int how = 0; how < 2; how++) {
    wamr_inst_t a, b;
    MAKE(&a);
    if (how == 0) {
      ASSERT_EQ(wamr_call1(&a, "trap", 0, 0, 0), WAMR_TRAP);
      ASSERT_NOT_NULL(strstr(a.exception, "unreachable"));
    } else {
      ASSERT_EQ(wamr_call1(&a, "peek", 1, COWMEM_WASM_PAGE_SIZE, 0), WAMR_TRAP);
      ASSERT_TRUE(wamr_oob(&a));
    }
    CHECK(reuse(&a, &b));
    wamr_inst_free(&b);
  }
  return teardown();
}

/* A call that ran out of operand stack: the next instance on the
 * environment has all of it again. */
TEST_IMPL(after_stack_overflow) {
  CHECK(setup(2));
  wamr_inst_t a, b;
  MAKE(&a);
  uint32_t n = deepest(&a);
  ASSERT_GT(n, 100);
  ASSERT_EQ(wamr_call1(&a, "depth", 1, TOO_DEEP, 0), WAMR_TRAP);
  ASSERT_NOT_NULL(strstr(a.exception, "wasm operand stack overflow"));
  CHECK(reuse(&a, &b));
  ASSERT_EQ(deepest(&b), n);
  wamr_inst_free(&b);
  return teardown();
}

/* The host's settings of an environment are its instance's: user data,
 * and a native stack boundary (here one above the stack, so that every
 * call fails), are gone on the next instance. */
TEST_IMPL(settings_cleared) {
  CHECK(setup(2));
  wamr_inst_t a, b;
  MAKE(&a);
  static int marker;
  wasm_runtime_set_user_data(a.env, &marker);
  wasm_runtime_set_native_stack_boundary(a.env, (uint8_t*)((uintptr_t)1 << 62));
  ASSERT_EQ(wamr_call1(&a, "depth", 1, 1, 0), WAMR_TRAP);
  ASSERT_NOT_NULL(strstr(a.exception, "native stack overflow"));
  CHECK(reuse(&a, &b));
  wamr_inst_free(&b);
  return teardown();
}

/* One slot: b, on a's slot and a's environment, sees the image and zeros,
 * nothing a wrote. */
TEST_IMPL(isolation) {
  CHECK(setup(1));
  wamr_inst_t a, b;
  MAKE(&a);
  uint8_t* base = wamr_memory(&a, NULL);
  wamr_call1(&a, "poke", 2, DATA_AT, 'X');
  wamr_call1(&a, "poke", 2, 1000, 0x5a);
  ASSERT_EQ(wamr_call1(&a, "peek", 1, DATA_AT, 0), 'X');
  CHECK(reuse(&a, &b));
  ASSERT_PTR_EQ(wamr_memory(&b, NULL), base);
  ASSERT_EQ(wamr_call1(&b, "peek", 1, 1000, 0), 0);
  wamr_inst_free(&b);
  return teardown();
}

/* Make n instances of m with `stack`, then free them. */
static int make_free(const cowmem_wamr_module_t* m, uint32_t stack, int n) {
  wamr_inst_t x[COWMEM_WAMR_ENV_CACHE + 1];
  ASSERT_LE(n, COWMEM_WAMR_ENV_CACHE + 1);
  for (int i = 0; i < n; i++)
    CHECK(make(&x[i], m, stack));
  for (int i = 0; i < n; i++)
    wamr_inst_free(&x[i]);
  return 0;
}

/* The cache keeps COWMEM_WAMR_ENV_CACHE environments of one stack size;
 * one more, or one of another size, is destroyed; an instance gets an
 * environment of the stack size it asks for. */
TEST_IMPL(cache_limits) {
  CHECK(setup(COWMEM_WAMR_ENV_CACHE + 2));
  uint64_t c0, r0, c1, r1;
  envs(&c0, &r0);
  CHECK(make_free(g_deep, WAMR_STACK, COWMEM_WAMR_ENV_CACHE + 1));
  CHECK(make_free(g_deep, WAMR_STACK, COWMEM_WAMR_ENV_CACHE + 1));
  envs(&c1, &r1);
  ASSERT_UEQ(c1 - c0, COWMEM_WAMR_ENV_CACHE + 2);
  ASSERT_UEQ(r1 - r0, COWMEM_WAMR_ENV_CACHE);

  /* Another set: its own cache, which x's stack size takes first. */
  cowmem_wamr_module_t* m;
  CHECK(OPEN_SET(deep, &m));
  wamr_inst_t x, y, z, w;
  CHECK(make(&x, m, WAMR_STACK));
  CHECK(make(&y, m, 2 * WAMR_STACK));
  uint32_t small = deepest(&x), big = deepest(&y);
  ASSERT_GT(big, small);
  wamr_inst_free(&x); /* kept */
  wamr_inst_free(&y); /* another size: destroyed */
  CHECK(make(&z, m, 2 * WAMR_STACK));
  CHECK(make(&w, m, WAMR_STACK));
  ASSERT_EQ(deepest(&z), big);
  ASSERT_EQ(deepest(&w), small);
  envs(&c0, &r0);
  ASSERT_UEQ(c0 - c1, 3); /* x, y, z */
  ASSERT_UEQ(r0 - r1, 1); /* w */
  wamr_inst_free(&z);
  wamr_inst_free(&w);
  cowmem_wamr_module_free(m);
  return teardown();
}

/* No module set, an instantiation WAMR refuses: NULL and why, nothing
 * made or leaked. */
TEST_IMPL(bad_input) {
  CHECK(setup(2));
  uint64_t c0, r0, c1, r1;
  envs(&c0, &r0);
  char err[128] = "";
  ASSERT_NULL(cowmem_wamr_instance_new(NULL, WAMR_STACK, 0, err, sizeof err));
  ASSERT_NOT_NULL(strstr(err, "no module set"));
  ASSERT_NULL(cowmem_wamr_instance_new(NULL, WAMR_STACK, 0, NULL, 0));
  ASSERT_NULL(cowmem_wamr_instance_inst(NULL));
  ASSERT_NULL(cowmem_wamr_instance_exec_env(NULL));
  cowmem_wamr_instance_free(NULL);

  cowmem_wamr_module_t* fail;
  CHECK(OPEN_SET(fail, &fail));
  err[0] = 0;
  ASSERT_NULL(cowmem_wamr_instance_new(fail, WAMR_STACK, 0, err, sizeof err));
  ASSERT_NE(err[0], 0); /* WAMR's reason */
  cowmem_wamr_module_free(fail);
  envs(&c1, &r1);
  ASSERT_UEQ(c1, c0);
  ASSERT_UEQ(r1, r0);
  return teardown();
}

/* Threads make, use and free instances of one set at once: every report
 * is a fresh instance's, and no more environments are made than
 * instances are alive at once (the cache holds the others). */
#define THREADS 4
#define THREAD_ITERS 500

static cowmem_wamr_module_t* g_demo;

static void* thread_loop(void* arg) {
  const char* expect = arg;
  if (!thread_env_init()) return (void*)1;
  uint32_t len = (uint32_t)strlen(demo_default_request);
  void* r = NULL;
  for (int i = 0; i < THREAD_ITERS && !r; i++) {
    wamr_inst_t x;
    char out[256];
    if (wamr_inst_of(&x, cowmem_wamr_instance_new(g_demo, WAMR_STACK, 0, NULL, 0)) != 0) {
      r = (void*)1;
      break;
    }
    wamr_serve(&x, demo_default_request, len, out, sizeof out);
    wamr_inst_free(&x);
    if (strcmp(out, expect) != 0) r = (void*)1;
  }
  thread_env_destroy();
  return r;
}

TEST_IMPL(threads) {
  CHECK(setup(THREADS));
  CHECK(OPEN_SET(demo, &g_demo));
  wamr_inst_t x;
  char expect[256];
  ASSERT_EQ(wamr_inst_wrap(&x, &wamr_api_cowmem,
                           cowmem_wamr_instantiate(g_demo, WAMR_STACK, 0, NULL, 0)),
            0);
  wamr_serve(&x, demo_default_request, (uint32_t)strlen(demo_default_request), expect,
             sizeof expect);
  wamr_inst_free(&x);
  uint64_t c0, r0, c1, r1;
  envs(&c0, &r0);
  CHECK(test_integ_threads(thread_loop, expect, THREADS));
  envs(&c1, &r1);
  ASSERT_UEQ((c1 - c0) + (r1 - r0), THREADS * THREAD_ITERS);
  ASSERT_LE(c1 - c0, THREADS);
  cowmem_wamr_module_free(g_demo);
  return teardown();
}

TEST_MAIN(TEST_ENTRY(rebinds) TEST_ENTRY(after_trap) TEST_ENTRY(after_stack_overflow)
              TEST_ENTRY(settings_cleared) TEST_ENTRY(isolation) TEST_ENTRY(cache_limits)
                  TEST_ENTRY(bad_input) TEST_ENTRY(threads))
