/* test_wasm2c.c: cowmem as wasm2c's memory provider, against the stock
 * runtime in the same process. ctest runs each as wasm2c_<name>.
 *   demo     demo.wasm as wasm2c made it, stock runtime (the reference)
 *   cowdemo  the stripped demo.wasm, memories from the cowmem pool
 * Built once per wabt (test_wasm2c for 1.0.32, test_wasm2c39 for >= 1.0.37;
 * the generated names through w2c_util.h); the memory kinds only the later
 * runtime has are in test_w2c_kinds.c. */
#include <pthread.h>

#include "cowdemo.h"
#include "demo_w.h"
#include "test_images.h"
#include "test_w2c.h"
#ifdef HAVE_W2C_MULTI
#include "multi.h"
#include "trap.h"
#endif

W2C_DEFINE_SERVE(demo)
W2C_DEFINE_SERVE(cowdemo)

#define PAGE COWMEM_WASM_PAGE_SIZE
#define DEMO_PAGES 9u
#define DEMO_MAX 1024u
#define NEG1 0xffffffffu /* memory.grow failed */

static cowmem_w2c_module_t* g_mod;

/* One slot when `one_slot`: every instance then runs in the same slot. */
static int setup_reset(bool one_slot, cowmem_reset_strategy_t reset) {
  CHECK(init_pool(one_slot ? 1 : 8, reset));
  CHECK(OPEN_SET(cowdemo, &g_mod)); /* the recipe's image file, if built */
  ASSERT_EQ(cowmem_w2c_module_memories(g_mod), 1);
  ASSERT_NOT_NULL(cowmem_w2c_module_image(g_mod, 0));
  /* Once per process: wasm_rt_free does not let wasm_rt_init run again
   * (its guard stays set, so the signal handler would not come back). */
  static bool once;
  if (!once) {
    wasm_rt_init();
    COWMEM_W2C_INIT_MODULE(demo);
    COWMEM_W2C_INIT_MODULE(cowdemo);
    once = true;
  }
  return 0;
}

static int setup(bool one_slot) {
  return setup_reset(one_slot, COWMEM_RESET_ADAPTIVE);
}

static int teardown(void) {
  cowmem_w2c_module_free(g_mod);
  g_mod = NULL;
  ASSERT_OK(cowmem_w2c_shutdown());
  return 0;
}

static int instantiate(W2C_T(cowdemo) * inst) {
  ASSERT_OK(COWMEM_W2C_INSTANTIATE(g_mod, W2C_FN(cowdemo, instantiate), inst));
  return 0;
}

/* peek(addr) in a trap frame: the trap code, 0 if none (*v the value). */
W2C_DEFINE_TRY(cow_peek, cowdemo, peek, uint32_t, uint32_t)
W2C_DEFINE_TRY(stock_peek, demo, peek, uint32_t, uint32_t)

TEST_IMPL(same_outputs) {
  CHECK(setup(false));
  char* big = demo_big_request(DEMO_BIG_LEN);
  ASSERT_NOT_NULL(big);
  for (size_t i = 0; i <= DEMO_NREQUESTS; i++) {
    uint32_t len;
    const char* req = demo_input(i, big, &len);
    char a[256], b[256];
    W2C_T(demo) s;
    W2C_T(cowdemo) c;
    W2C_FN(demo, instantiate)(&s);
    CHECK(instantiate(&c));
    /* Two requests per instance: the second sees the first's state. */
    for (int round = 0; round < 2; round++) {
      uint32_t na = w2c_serve_demo(&s, req, len, a, sizeof a);
      uint32_t nb = w2c_serve_cowdemo(&c, req, len, b, sizeof b);
      ASSERT_EQ(na, nb);
      ASSERT_STR_EQ(a, b);
    }
    uint32_t pages = W2C_X(demo, pages)(&s);
    ASSERT_EQ(pages, W2C_X(cowdemo, pages)(&c));
    if (i == DEMO_NREQUESTS) ASSERT_GT(pages, DEMO_PAGES); /* it grew */
    ASSERT_EQ(W2C_X(demo, checksum)(&s, 0, pages * PAGE),
              W2C_X(cowdemo, checksum)(&c, 0, pages * PAGE));
    W2C_FN(demo, free)(&s);
    W2C_FN(cowdemo, free)(&c);
  }
  free(big);
  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  ASSERT_EQ(n.live, 0);
  ASSERT_EQ(n.cowmem_allocs, DEMO_NREQUESTS + 1);
  ASSERT_EQ(n.stock_allocs, DEMO_NREQUESTS + 1);
  return teardown();
}

/* Instance a writes a secret (BSS, data, heap), grows, writes the grown
 * pages and an image page from the host; instance b, in the same slot, sees
 * the image and zeros only. Twice, so the second pair starts from a reset
 * slot, for every reset strategy. */
static int isolation_with(cowmem_reset_strategy_t reset) {
  CHECK(setup_reset(true, reset));
  for (int pass = 0; pass < 2; pass++) {
    W2C_T(demo) ref;
    W2C_FN(demo, instantiate)(&ref);
    uint32_t fresh_sum = W2C_X(demo, checksum)(&ref, 0, DEMO_PAGES * PAGE);
    W2C_FN(demo, free)(&ref);

    W2C_T(cowdemo) a;
    CHECK(instantiate(&a));
    uint8_t* slot_a = W2C_X(cowdemo, memory)(&a)->data;
    ASSERT_EQ(W2C_X(cowdemo, checksum)(&a, 0, DEMO_PAGES * PAGE), fresh_sum);
    uint32_t heap = W2C_X(cowdemo, write_secret)(&a, 0x5ec2e7u);
    ASSERT_NE(heap, 0);
    ASSERT_NE(W2C_X(cowdemo, read_secret)(&a), 0);
    ASSERT_EQ(W2C_X(cowdemo, grow)(&a, 3), DEMO_PAGES);
    wasm_rt_memory_t* ma = W2C_X(cowdemo, memory)(&a);
    memset(ma->data + DEMO_PAGES * PAGE, 0xA5, 3 * PAGE); /* the grown part */
    memset(ma->data + 1024, 0x5A, 4096);                  /* the image */
    W2C_FN(cowdemo, free)(&a);

    W2C_T(cowdemo) b;
    CHECK(instantiate(&b));
    wasm_rt_memory_t* mb = W2C_X(cowdemo, memory)(&b);
    ASSERT_PTR_EQ(mb->data, slot_a); /* the same slot */
    ASSERT_EQ(mb->pages, DEMO_PAGES);
    ASSERT_EQ(W2C_X(cowdemo, pages)(&b), DEMO_PAGES);
    ASSERT_EQ(W2C_X(cowdemo, read_secret)(&b), 0);
    ASSERT_EQ(W2C_X(cowdemo, peek)(&b, heap), 0);
    ASSERT_EQ(W2C_X(cowdemo, checksum)(&b, 0, DEMO_PAGES * PAGE), fresh_sum);
    uint32_t v = 0;
    /* The pages a grew are inaccessible again, then zeros after a grow. */
    ASSERT_EQ(cow_peek(&b, DEMO_PAGES * PAGE, &v), WASM_RT_TRAP_OOB);
    ASSERT_EQ(W2C_X(cowdemo, grow)(&b, 3), DEMO_PAGES);
    for (uint32_t off = 0; off < 3 * PAGE; off++)
      if (mb->data[DEMO_PAGES * PAGE + off] != 0)
        TEST_FAIL_("grown byte %u is %u, not 0", off, mb->data[DEMO_PAGES * PAGE + off]);
    W2C_FN(cowdemo, free)(&b);
  }
  return teardown();
}

TEST_IMPL(isolation) {
  CHECK(isolation_with(COWMEM_RESET_ADAPTIVE));
  CHECK(isolation_with(COWMEM_RESET_MADVISE));
  CHECK(isolation_with(COWMEM_RESET_KEEP_RESIDENT));
  return 0;
}

TEST_IMPL(oob_traps) {
  CHECK(setup(false));
  W2C_T(cowdemo) c;
  W2C_T(demo) s;
  CHECK(instantiate(&c));
  W2C_FN(demo, instantiate)(&s);
  /* Before and after a grow, for both runtimes: the last word reads, the
   * first word past the end, the last address a u32 can name, and an
   * access straddling the end all trap with WASM_RT_TRAP_OOB. */
  for (int grown = 0; grown < 2; grown++) {
    uint32_t size = (DEMO_PAGES + 7 * (uint32_t)grown) * PAGE;
    uint32_t probes[] = {size - 4, size, size - 2, size + 4096, 0xfffffffcu, 0x80000000u};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
      uint32_t v1 = 0, v2 = 0;
      int want = probes[i] <= size - 4 ? 0 : WASM_RT_TRAP_OOB;
      ASSERT_EQ(cow_peek(&c, probes[i], &v1), want);
      ASSERT_EQ(stock_peek(&s, probes[i], &v2), want);
      ASSERT_EQ(v1, v2);
    }
    wasm_rt_trap_t t = (wasm_rt_trap_t)wasm_rt_impl_try();
    if (t == WASM_RT_TRAP_NONE) {
      W2C_X(cowdemo, trap_oob)(&c);
      TEST_FAIL_("trap_oob returned");
    }
    ASSERT_EQ(t, WASM_RT_TRAP_OOB);
    if (!grown) {
      ASSERT_EQ(W2C_X(cowdemo, grow)(&c, 7), DEMO_PAGES);
      ASSERT_EQ(W2C_X(demo, grow)(&s, 7), DEMO_PAGES);
    }
  }
  /* The instance is intact after traps. */
  char a[256], b[256];
  w2c_serve_demo(&s, demo_default_request, (uint32_t)strlen(demo_default_request), a,
                 sizeof a);
  w2c_serve_cowdemo(&c, demo_default_request, (uint32_t)strlen(demo_default_request), b,
                    sizeof b);
  ASSERT_STR_EQ(a, b);
  W2C_FN(cowdemo, free)(&c);
  W2C_FN(demo, free)(&s);
  return teardown();
}

TEST_IMPL(grow_to_max) {
  CHECK(setup(false));
  W2C_T(cowdemo) c;
  CHECK(instantiate(&c));
  ASSERT_EQ(W2C_X(cowdemo, grow)(&c, 0), DEMO_PAGES);
  ASSERT_EQ(W2C_X(cowdemo, grow)(&c, DEMO_MAX - DEMO_PAGES + 1), NEG1); /* past max */
  ASSERT_EQ(W2C_X(cowdemo, grow)(&c, 0xffffffffu), NEG1);               /* wraps */
  ASSERT_EQ(W2C_X(cowdemo, pages)(&c), DEMO_PAGES);
  ASSERT_EQ(W2C_X(cowdemo, grow)(&c, 100), DEMO_PAGES);
  ASSERT_EQ(W2C_X(cowdemo, grow)(&c, DEMO_MAX - DEMO_PAGES - 100), DEMO_PAGES + 100);
  ASSERT_EQ(W2C_X(cowdemo, pages)(&c), DEMO_MAX);
  wasm_rt_memory_t* m = W2C_X(cowdemo, memory)(&c);
  ASSERT_EQ(m->size, DEMO_MAX * PAGE);
  uint32_t v = 1;
  ASSERT_EQ(cow_peek(&c, DEMO_MAX * PAGE - 4, &v), 0);
  ASSERT_EQ(v, 0);
  m->data[DEMO_MAX * PAGE - 1] = 7; /* the last byte is writable */
  ASSERT_EQ(cow_peek(&c, DEMO_MAX * PAGE, &v), WASM_RT_TRAP_OOB);
  ASSERT_EQ(W2C_X(cowdemo, grow)(&c, 1), NEG1);
  ASSERT_EQ(W2C_X(cowdemo, grow)(&c, 0), DEMO_MAX);
  W2C_FN(cowdemo, free)(&c);
  /* The stock runtime agrees. */
  W2C_T(demo) s;
  W2C_FN(demo, instantiate)(&s);
  ASSERT_EQ(W2C_X(demo, grow)(&s, DEMO_MAX - DEMO_PAGES + 1), NEG1);
  ASSERT_EQ(W2C_X(demo, grow)(&s, DEMO_MAX - DEMO_PAGES), DEMO_PAGES);
  ASSERT_EQ(W2C_X(demo, grow)(&s, 1), NEG1);
  W2C_FN(demo, free)(&s);
  return teardown();
}

/* Thousands of instantiate/free cycles (with requests, and a grow every
 * tenth) leave VmSize where it was: no reservation leaks. */
TEST_IMPL(no_leak) {
  CHECK(setup(false));
  W2C_T(cowdemo) c[3];
  for (int i = 0; i < 3; i++)
    CHECK(instantiate(&c[i])); /* warm 3 slots */
  for (int i = 0; i < 3; i++)
    W2C_FN(cowdemo, free)(&c[i]);
  unsigned long before = demo_status_kb("VmSize");
  ASSERT_GT(before, 0);
  for (int i = 0; i < 5000; i++) {
    W2C_T(cowdemo) x, y;
    CHECK(instantiate(&x));
    CHECK(instantiate(&y)); /* two live: two slots in turn */
    w2c_serve_cowdemo(&x, demo_default_request, (uint32_t)strlen(demo_default_request),
                      NULL, 0);
    if (i % 10 == 0) ASSERT_EQ(W2C_X(cowdemo, grow)(&y, 2), DEMO_PAGES);
    W2C_FN(cowdemo, free)(&x);
    W2C_FN(cowdemo, free)(&y);
  }
  unsigned long after = demo_status_kb("VmSize");
  printf("10000 instantiate/free cycles: VmSize %lu -> %lu KiB\n", before, after);
  ASSERT_EQ(after, before);
  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  ASSERT_EQ(n.live, 0);
  return teardown();
}

/* With wabt 1.0.32, memory64 and shared memories are refused when the
 * module is loaded; later runtimes take them (test_w2c_kinds.c). */
TEST_IMPL(unsupported) {
  static const uint8_t mem64[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 5, 3, 1, 0x04, 1};
  static const uint8_t shared[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 5, 4, 1, 0x03, 1, 1};
  static const uint8_t plain[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 5, 4, 1, 0x01, 1, 2};
  cowmem_w2c_module_t* m = NULL;
  cowmem_diag_t diag;
  ASSERT_EQ(cowmem_w2c_abi(), COWMEM_W2C_ABI);
#if COWMEM_W2C_ABI == 1032
  ASSERT_ERR(cowmem_w2c_module_new(mem64, sizeof mem64, &m, &diag), COWMEM_EUNSUPPORTED);
  ASSERT_TRUE(strstr(diag.reason, "memory64") != NULL);
  ASSERT_ERR(cowmem_w2c_module_new(shared, sizeof shared, &m, &diag),
             COWMEM_EUNSUPPORTED);
  ASSERT_TRUE(strstr(diag.reason, "shared") != NULL);
  ASSERT_NULL(m);
#else
  ASSERT_OK(cowmem_w2c_module_new(mem64, sizeof mem64, &m, &diag));
  cowmem_w2c_module_free(m);
  ASSERT_OK(cowmem_w2c_module_new(shared, sizeof shared, &m, &diag));
  cowmem_w2c_module_free(m);
  m = NULL;
#endif
  ASSERT_OK(cowmem_w2c_module_new(plain, sizeof plain, &m, &diag));
  ASSERT_EQ(cowmem_w2c_module_memories(m), 1);
  ASSERT_NULL(cowmem_w2c_module_image(m, 0)); /* no data: zeros */
  cowmem_w2c_module_free(m);
  ASSERT_ERR(cowmem_w2c_module_open("/nonexistent.wasm", &m, &diag), COWMEM_ENOENT);
  return 0;
}

/* The image file `cowmem compile` wrote and the images built from the
 * .wasm at run time hold the same bytes; the file's images map the file. */
TEST_IMPL(image_file) {
#ifndef COWMEM_W2C_IMAGES_cowdemo
  TEST_SKIP("built without the cowmem command: no image file");
#else
  cowmem_w2c_module_t *f, *w;
  cowmem_diag_t diag;
  ASSERT_OK(cowmem_w2c_module_open_images(COWMEM_W2C_IMAGES_cowdemo, NULL, &f, &diag));
  ASSERT_OK(cowmem_w2c_module_open(COWMEM_W2C_WASM_cowdemo, &w, &diag));
  ASSERT_EQ(cowmem_w2c_module_memories(f), cowmem_w2c_module_memories(w));
  CHECK(test_same_image(cowmem_w2c_module_image(f, 0), cowmem_w2c_module_image(w, 0),
                        DEMO_PAGES * PAGE));
  /* A wrong hash is refused. */
  uint8_t zero[32] = {0};
  cowmem_w2c_module_t* x = NULL;
  ASSERT_ERR(cowmem_w2c_module_open_images(COWMEM_W2C_IMAGES_cowdemo, zero, &x, &diag),
             COWMEM_EMISMATCH);
  ASSERT_NULL(x);
  cowmem_w2c_module_free(f);
  cowmem_w2c_module_free(w);
  return 0;
#endif
}

/* A begin whose instantiate allocates nothing ends with ESTATE; the stock
 * module runs through the stock runtime while no module is set. */
TEST_IMPL(begin_end) {
  CHECK(setup(false));
  cowmem_w2c_begin(g_mod);
  ASSERT_ERR(cowmem_w2c_end(), COWMEM_ESTATE);
  ASSERT_OK(cowmem_w2c_end()); /* nothing set */
  W2C_T(demo) s;
  W2C_FN(demo, instantiate)(&s);
  W2C_FN(demo, free)(&s);
  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  ASSERT_EQ(n.stock_allocs, 1);
  ASSERT_EQ(n.stock_frees, 1);
  ASSERT_EQ(n.cowmem_allocs, 0);
  /* The pool refuses to go while a cowmem memory lives. */
  W2C_T(cowdemo) c;
  CHECK(instantiate(&c));
  ASSERT_ERR(cowmem_w2c_shutdown(), COWMEM_EBUSY);
  W2C_FN(cowdemo, free)(&c);
  return teardown();
}

/* Two threads instantiate, serve and free at once (no traps: the stock
 * runtime's trap buffer is one global). Every report is a fresh instance's. */
static void* thread_run(const char* expect) {
  for (int i = 0; i < 2000; i++) {
    W2C_T(cowdemo) c;
    char out[256];
    if (COWMEM_W2C_INSTANTIATE(g_mod, W2C_FN(cowdemo, instantiate), &c) != 0)
      return (void*)1;
    w2c_serve_cowdemo(&c, demo_default_request, (uint32_t)strlen(demo_default_request),
                      out, sizeof out);
    if (i % 16 == 0 && W2C_X(cowdemo, grow)(&c, 1) != DEMO_PAGES) return (void*)1;
    W2C_FN(cowdemo, free)(&c);
    if (strcmp(out, expect) != 0) return (void*)1;
  }
  return NULL;
}

static void* thread_loop(void* arg) {
  COWMEM_W2C_THREAD_INIT(); /* >= 1.0.37: this thread's signal stack */
  void* r = thread_run(arg);
  COWMEM_W2C_THREAD_FREE();
  return r;
}

TEST_IMPL(threads) {
  CHECK(setup(false));
  char expect[256];
  W2C_T(demo) s;
  W2C_FN(demo, instantiate)(&s);
  w2c_serve_demo(&s, demo_default_request, (uint32_t)strlen(demo_default_request), expect,
                 sizeof expect);
  W2C_FN(demo, free)(&s);
  CHECK(test_integ_threads(thread_loop, expect, 2));
  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  ASSERT_EQ(n.cowmem_allocs, 4000);
  ASSERT_EQ(n.live, 0);
  return teardown();
}

/* Two memories (multi.wat): each allocation of an instantiation maps its
 * own memory's image; a write and a grow in one instance are gone in the
 * next; out-of-bounds in the second memory traps. */
#ifdef HAVE_W2C_MULTI
W2C_DEFINE_TRY(multi_peek1, multi, load1, uint32_t, uint32_t)

/* Trap code of load_far / load64_far(addr) (0: no trap). */
static int multi_far(W2C_T(multi) * inst, uint32_t addr, int wide) {
  wasm_rt_trap_t t = (wasm_rt_trap_t)wasm_rt_impl_try();
  if (t != WASM_RT_TRAP_NONE) return (int)t;
  if (wide)
    (void)W2C_X(multi, load64_far)(inst, addr);
  else
    (void)W2C_X(multi, load_far)(inst, addr);
  return 0;
}

static int multi_check_fresh(W2C_T(multi) * inst) {
  static const char a[] = "first memory", b[] = "second memory";
  for (uint32_t i = 0; i < sizeof a - 1; i++)
    ASSERT_EQ(W2C_X(multi, load0)(inst, 16 + i), (uint8_t)a[i]);
  for (uint32_t i = 0; i < sizeof b - 1; i++)
    ASSERT_EQ(W2C_X(multi, load1)(inst, 70000 + i), (uint8_t)b[i]);
  ASSERT_EQ(W2C_X(multi, load0)(inst, 15), 0);
  ASSERT_EQ(W2C_X(multi, load1)(inst, 69999), 0);
  ASSERT_EQ(W2C_X(multi, mem0)(inst)->pages, 1);
  ASSERT_EQ(W2C_X(multi, mem1)(inst)->pages, 2);
  return 0;
}
#endif

TEST_IMPL(multi_memory) {
#ifndef HAVE_W2C_MULTI
  TEST_SKIP("wat2wasm not found: multi.wat not built");
#else
  CHECK(setup(false));
  cowmem_w2c_module_t* mm;
  CHECK(OPEN_SET(multi, &mm));
  ASSERT_EQ(cowmem_w2c_module_memories(mm), 2);
  static bool once;
  if (!once) COWMEM_W2C_INIT_MODULE(multi);
  once = true;
  for (int round = 0; round < 3; round++) {
    W2C_T(multi) inst;
    ASSERT_OK(COWMEM_W2C_INSTANTIATE(mm, W2C_FN(multi, instantiate), &inst));
    CHECK(multi_check_fresh(&inst));
    uint32_t v = 0;
    ASSERT_EQ(multi_peek1(&inst, 2 * PAGE, &v), WASM_RT_TRAP_OOB);
    W2C_X(multi, store1)(&inst, 70000, 'X');
    ASSERT_EQ(W2C_X(multi, grow1)(&inst, 2), 2);
    ASSERT_EQ(W2C_X(multi, grow1)(&inst, 1), NEG1); /* max 4 */
    W2C_X(multi, store1)(&inst, 4 * PAGE - 1, 0xee);
    ASSERT_EQ(multi_peek1(&inst, 4 * PAGE - 1, &v), 0);
    ASSERT_EQ(v, 0xee);
    ASSERT_EQ(multi_peek1(&inst, 4 * PAGE, &v), WASM_RT_TRAP_OOB);
    W2C_FN(multi, free)(&inst);
  }
  /* The farthest addresses generated code forms (u32 address + u32 static
   * offset, up to data + 8 GiB + 6 for an i64) trap OOB in every live
   * instance, with neighbouring slots live and written: each lands in the
   * instance's own slot or guard, never in the next slot. */
  W2C_T(multi) live[3];
  for (int i = 0; i < 3; i++) {
    ASSERT_OK(COWMEM_W2C_INSTANTIATE(mm, W2C_FN(multi, instantiate), &live[i]));
    memset(W2C_X(multi, mem0)(&live[i])->data, 0x11, PAGE);
  }
  static const uint32_t far[] = {0xffffffffu, 0xfffffff8u, 0x80000000u, 0x00010000u - 1,
                                 0x1u};
  for (int i = 0; i < 3; i++)
    for (size_t j = 0; j < sizeof far / sizeof far[0]; j++) {
      ASSERT_EQ(multi_far(&live[i], far[j], 0), WASM_RT_TRAP_OOB);
      ASSERT_EQ(multi_far(&live[i], far[j], 1), WASM_RT_TRAP_OOB);
    }
  for (int i = 0; i < 3; i++)
    W2C_FN(multi, free)(&live[i]);

  /* The demo's module set while instantiating multi: its limits differ,
   * the child aborts with a message instead of mapping the wrong image. */
  pid_t pid = fork();
  if (pid == 0) {
    W2C_T(multi) inst;
    (void)COWMEM_W2C_INSTANTIATE(g_mod, W2C_FN(multi, instantiate), &inst);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(WTERMSIG(status), SIGABRT);
  cowmem_w2c_module_free(mm);
  return teardown();
#endif
}

/* An instantiation that traps (trap.wat: a segment past the memory's end)
 * traps as with the stock runtime, after the earlier segment's bytes were
 * written; the caller ends the instantiation and frees the instance, and
 * the slot's next instance sees only zeros. */
#ifdef HAVE_W2C_MULTI
static int trap_instantiate(const cowmem_w2c_module_t* m, W2C_T(trap) * inst) {
  wasm_rt_trap_t t = (wasm_rt_trap_t)wasm_rt_impl_try();
  if (t != WASM_RT_TRAP_NONE) return (int)t;
  cowmem_w2c_begin(m);
  W2C_FN(trap, instantiate)(inst);
  return 0;
}
#endif

TEST_IMPL(instantiate_trap) {
#ifndef HAVE_W2C_MULTI
  TEST_SKIP("wat2wasm not found: trap.wat not built");
#else
  CHECK(setup_reset(true, COWMEM_RESET_ADAPTIVE));
  cowmem_w2c_module_t* tm;
  CHECK(open_set(COWMEM_W2C_WASM_trap, NULL, &tm));
  ASSERT_NULL(cowmem_w2c_module_image(tm, 0)); /* out of bounds: no image */
  COWMEM_W2C_INIT_MODULE(trap);
  for (int round = 0; round < 3; round++) {
    W2C_T(trap) inst;
    memset(&inst, 0, sizeof inst);
    ASSERT_EQ(trap_instantiate(tm, &inst), WASM_RT_TRAP_OOB);
    ASSERT_OK(cowmem_w2c_end()); /* the trap path must end it */
    wasm_rt_memory_t* mem = W2C_X(trap, memory)(&inst);
    ASSERT_EQ(memcmp(mem->data, "written first", 13), 0);
    ASSERT_EQ(mem->data[65529], 0);
    W2C_FN(trap, free)(&inst);
  }
  /* The one slot is free again and holds zeros only. */
  W2C_T(cowdemo) c;
  CHECK(instantiate(&c));
  ASSERT_EQ(W2C_X(cowdemo, read_secret)(&c), 0);
  W2C_FN(cowdemo, free)(&c);
  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  ASSERT_EQ(n.live, 0);
  cowmem_w2c_module_free(tm);
  return teardown();
#endif
}

/* Issue #14: the process forks with live instances, warm slots and hot
 * sets learned; parent and child both keep serving requests with the
 * stock runtime's answers, and neither sees the other's secret. */
static int fork_requests(W2C_T(cowdemo) * live, uint32_t heap, uint32_t secret) {
  for (int i = 0; i < 200; i++) {
    const char* req = demo_requests[i % DEMO_NREQUESTS];
    uint32_t len = (uint32_t)strlen(req);
    char a[256], b[256];
    W2C_T(demo) s;
    W2C_T(cowdemo) c;
    W2C_FN(demo, instantiate)(&s);
    CHECK(instantiate(&c));
    ASSERT_EQ(W2C_X(cowdemo, read_secret)(&c), 0);
    uint32_t na = w2c_serve_demo(&s, req, len, a, sizeof a);
    uint32_t nb = w2c_serve_cowdemo(&c, req, len, b, sizeof b);
    ASSERT_EQ(na, nb);
    ASSERT_STR_EQ(a, b);
    W2C_FN(demo, free)(&s);
    W2C_FN(cowdemo, free)(&c);
  }
  ASSERT_EQ(W2C_X(cowdemo, peek)(live, heap), secret);
  return 0;
}

TEST_IMPL(fork_child) {
  CHECK(setup(false));
  W2C_T(cowdemo) warm;
  for (int i = 0; i < 100; i++) { /* the hot set is learned */
    CHECK(instantiate(&warm));
    w2c_serve_cowdemo(&warm, demo_default_request, (uint32_t)strlen(demo_default_request),
                      NULL, 0);
    W2C_FN(cowdemo, free)(&warm);
  }
  W2C_T(cowdemo) live;
  CHECK(instantiate(&live));
  uint32_t heap = W2C_X(cowdemo, write_secret)(&live, 0x11111u);
  ASSERT_NE(heap, 0);
  fflush(NULL);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    uint8_t* data = W2C_X(cowdemo, memory)(&live)->data;
    uint32_t v = 0x22222u;
    memcpy(data + heap, &v, 4);
    int r = W2C_X(cowdemo, peek)(&live, heap) == v ? 0 : 2;
    if (r == 0) r = fork_requests(&live, heap, v);
    W2C_FN(cowdemo, free)(&live);
    cowmem_w2c_counters_t n;
    cowmem_w2c_counters(&n);
    if (r == 0 && n.live != 0) r = 3;
    _exit(r);
  }
  CHECK(fork_requests(&live, heap, 0x11111u));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  /* The child's writes never reached the parent. */
  ASSERT_EQ(W2C_X(cowdemo, peek)(&live, heap), 0x11111u);
  W2C_FN(cowdemo, free)(&live);
  return teardown();
}

/* test_w2c_kinds.c */
TEST_IMPL(memory64);
TEST_IMPL(shared_memory);
TEST_IMPL(custom_page_size);
/* test_w2c_import.c */
TEST_IMPL(imported_memory);
TEST_IMPL(imported_memory_wasm);
TEST_IMPL(imported_shared_memory);
/* test_w2c_harden.c */
TEST_IMPL(double_free);
TEST_IMPL(interior_free);
TEST_IMPL(idle_slot_free);
TEST_IMPL(stale_free);
TEST_IMPL(wrong_module);

TEST_MAIN(TEST_ENTRY(same_outputs) TEST_ENTRY(isolation) TEST_ENTRY(oob_traps)
              TEST_ENTRY(grow_to_max) TEST_ENTRY(no_leak) TEST_ENTRY(unsupported)
                  TEST_ENTRY(begin_end) TEST_ENTRY(multi_memory) TEST_ENTRY(threads)
                      TEST_ENTRY(fork_child) TEST_ENTRY(image_file)
                          TEST_ENTRY(instantiate_trap) TEST_ENTRY(memory64)
                              TEST_ENTRY(shared_memory) TEST_ENTRY(custom_page_size)
                                  TEST_ENTRY(imported_memory)
                                      TEST_ENTRY(imported_memory_wasm)
                                          TEST_ENTRY(imported_shared_memory)
                                              TEST_ENTRY(double_free)
                                                  TEST_ENTRY(interior_free)
                                                      TEST_ENTRY(idle_slot_free)
                                                          TEST_ENTRY(stale_free)
                                                              TEST_ENTRY(wrong_module))
