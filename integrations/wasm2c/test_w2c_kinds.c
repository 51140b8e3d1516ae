/* test_w2c_kinds.c: the memory kinds only wabt >= 1.0.37's runtime knows,
 * each from a slot of the pool with its image: memory64 (bounds-checked by
 * the generated code, grown within the slot), shared memories (atomics and
 * grow from two threads on one instance), and a custom page size, which is
 * refused when the module is loaded. memory64 and shared memories are
 * compared byte for byte with the stock runtime's (the same modules
 * unstripped, <m>ref). Registered as wasm2c39_<name>; in the
 * wabt 1.0.32 build they skip (that runtime refuses these kinds: see
 * wasm2c_unsupported). */
#include <pthread.h>

#include "test_w2c.h"
#ifdef HAVE_W2C_KINDS
#include "mem64.h"
#include "mem64ref.h" /* the same modules unstripped, for the stock runtime */
#include "shared.h"
#include "sharedref.h"
#endif

#define PAGE COWMEM_WASM_PAGE_SIZE

#ifdef HAVE_W2C_KINDS
static int setup(void) {
  CHECK(init_pool(8, COWMEM_RESET_ADAPTIVE));
  wasm_rt_init();
  return 0;
}

W2C_DEFINE_TRY(m64_load, mem64, load, uint64_t, uint64_t)
W2C_DEFINE_TRY(m64_load64, mem64, load64, uint64_t, uint64_t)
W2C_DEFINE_TRY(m64_load_far, mem64, load_far, uint64_t, uint64_t)
W2C_DEFINE_TRY(m64_load_big, mem64, load_big, uint64_t, uint64_t)
W2C_DEFINE_TRY(sh_load, shared, load, uint32_t, uint64_t)
W2C_DEFINE_TRY(sh_load_far, shared, load_far, uint32_t, uint64_t)

/* Every byte, size and limit of two memories equal (a cowmem one and the
 * stock runtime's). */
#define SAME_MEMORY(a, b)                                                                \
  do {                                                                                   \
    ASSERT_UEQ((a)->size, (b)->size);                                                    \
    ASSERT_UEQ((a)->pages, (b)->pages);                                                  \
    ASSERT_UEQ((a)->max_pages, (b)->max_pages);                                          \
    ASSERT_EQ((a)->is64, (b)->is64);                                                     \
    ASSERT_EQ((a)->page_size, (b)->page_size);                                           \
    ASSERT_EQ(memcmp((const void*)(a)->data, (const void*)(b)->data, (a)->size), 0);     \
  } while (0)

/* A cowmem instance and a stock one of the same module, the same writes
 * and grows: the same memories throughout. */
static int m64_against_stock(cowmem_w2c_module_t* m) {
  W2C_T(mem64) c;
  W2C_T(mem64ref) s;
  ASSERT_OK(COWMEM_W2C_NEW(m, mem64, &c));
  W2C_FN(mem64ref, instantiate)(&s);
  SAME_MEMORY(W2C_X(mem64, mem)(&c), W2C_X(mem64ref, mem)(&s));
  SAME_MEMORY(W2C_X(mem64, big)(&c), W2C_X(mem64ref, big)(&s));
  W2C_X(mem64, store)(&c, 70001, 'Y');
  W2C_X(mem64ref, store)(&s, 70001, 'Y');
  ASSERT_UEQ(W2C_X(mem64, grow)(&c, 3), W2C_X(mem64ref, grow)(&s, 3));
  ASSERT_UEQ(W2C_X(mem64, grow)(&c, 6), W2C_X(mem64ref, grow)(&s, 6)); /* fails */
  W2C_X(mem64, store)(&c, 5 * PAGE - 1, 0x77);
  W2C_X(mem64ref, store)(&s, 5 * PAGE - 1, 0x77);
  SAME_MEMORY(W2C_X(mem64, mem)(&c), W2C_X(mem64ref, mem)(&s));
  ASSERT_UEQ(W2C_X(mem64, grow_big)(&c, 2), W2C_X(mem64ref, grow_big)(&s, 2));
  SAME_MEMORY(W2C_X(mem64, big)(&c), W2C_X(mem64ref, big)(&s));
  W2C_FN(mem64, free)(&c);
  W2C_FN(mem64ref, free)(&s);
  return 0;
}

static int m64_fresh(W2C_T(mem64) * inst) {
  static const char a[] = "hello memory64", b[] = "second page";
  for (uint64_t i = 0; i < sizeof a - 1; i++)
    ASSERT_EQ(W2C_X(mem64, load)(inst, 100 + i), (uint8_t)a[i]);
  for (uint64_t i = 0; i < sizeof b - 1; i++)
    ASSERT_EQ(W2C_X(mem64, load)(inst, 70000 + i), (uint8_t)b[i]);
  ASSERT_EQ(W2C_X(mem64, load)(inst, 99), 0);
  wasm_rt_memory_t* mem = W2C_X(mem64, mem)(inst);
  ASSERT_TRUE(mem->is64);
  ASSERT_UEQ(mem->pages, 2);
  ASSERT_UEQ(mem->size, 2 * PAGE);
  ASSERT_UEQ(mem->max_pages, 10);
  return 0;
}
#endif

/* memory64: the image, out-of-bounds traps at and past the end (the code
 * checks `size`, so 64-bit addresses far beyond any slot trap too), grow to
 * the maximum and past it, a memory without maximum grown to its 4 GiB
 * slot and refused one page more, and a fresh instance in the same slot
 * after writes and grows. */
TEST_IMPL(memory64) {
#ifndef HAVE_W2C_KINDS
  TEST_SKIP("wabt 1.0.32 refuses memory64 (see wasm2c_unsupported)");
#else
  CHECK(setup());
  cowmem_w2c_module_t* m;
  CHECK(OPEN_SET(mem64, &m));
  ASSERT_EQ(cowmem_w2c_module_memories(m), 2);
  ASSERT_NOT_NULL(cowmem_w2c_module_image(m, 0));
  CHECK(m64_against_stock(m));
  uint8_t* first = NULL;
  for (int round = 0; round < 3; round++) {
    W2C_T(mem64) inst;
    ASSERT_OK(COWMEM_W2C_NEW(m, mem64, &inst));
    wasm_rt_memory_t* mem = W2C_X(mem64, mem)(&inst);
    if (!first) first = mem->data;
    CHECK(m64_fresh(&inst));
    uint64_t v = 0;
    ASSERT_EQ(m64_load(&inst, 2 * PAGE - 1, &v), 0);
    ASSERT_EQ(m64_load(&inst, 2 * PAGE, &v), WASM_RT_TRAP_OOB);
    ASSERT_EQ(m64_load64(&inst, 2 * PAGE - 4, &v), WASM_RT_TRAP_OOB); /* straddles */
    ASSERT_EQ(m64_load(&inst, (uint64_t)1 << 40, &v), WASM_RT_TRAP_OOB);
    ASSERT_EQ(m64_load(&inst, UINT64_MAX, &v), WASM_RT_TRAP_OOB);
    ASSERT_EQ(m64_load_far(&inst, 0, &v), WASM_RT_TRAP_OOB);
    /* A secret, a grow, writes in the grown part. */
    W2C_X(mem64, store)(&inst, 100, 'X');
    ASSERT_UEQ(W2C_X(mem64, grow)(&inst, 9), UINT64_MAX); /* past max 10 */
    ASSERT_UEQ(W2C_X(mem64, grow)(&inst, 8), 2);
    ASSERT_UEQ(mem->size, 10 * PAGE);
    ASSERT_EQ(m64_load(&inst, 10 * PAGE - 1, &v), 0);
    ASSERT_EQ(v, 0);
    W2C_X(mem64, store)(&inst, 10 * PAGE - 1, 0xee);
    ASSERT_EQ(m64_load(&inst, 10 * PAGE - 1, &v), 0);
    ASSERT_EQ(v, 0xee);
    ASSERT_EQ(m64_load(&inst, 10 * PAGE, &v), WASM_RT_TRAP_OOB);
    ASSERT_UEQ(W2C_X(mem64, grow)(&inst, 1), UINT64_MAX);
    if (round == 0) {
      /* No maximum: the slot (4 GiB) is the limit, reached by mprotect
       * alone; its last byte reads, the next one traps. */
      ASSERT_UEQ(W2C_X(mem64, grow_big)(&inst, 65535), 1);
      ASSERT_UEQ(W2C_X(mem64, grow_big)(&inst, 1), UINT64_MAX);
      ASSERT_EQ(m64_load_big(&inst, ((uint64_t)4 << 30) - 1, &v), 0);
      ASSERT_EQ(m64_load_big(&inst, (uint64_t)4 << 30, &v), WASM_RT_TRAP_OOB);
    }
    W2C_FN(mem64, free)(&inst);
  }
  /* The same slot each round (one instance alive at a time). */
  W2C_T(mem64) again;
  ASSERT_OK(COWMEM_W2C_NEW(m, mem64, &again));
  CHECK(m64_fresh(&again));
  ASSERT_TRUE(W2C_X(mem64, mem)(&again)->data == first ||
              W2C_X(mem64, big)(&again)->data == first);
  W2C_FN(mem64, free)(&again);
  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  ASSERT_EQ(n.live, 0);
  ASSERT_EQ(n.stock_allocs, 2); /* the reference instance's */
  ASSERT_EQ(n.stock_frees, 2);
  cowmem_w2c_module_free(m);
  ASSERT_OK(cowmem_w2c_shutdown());
  return 0;
#endif
}

#ifdef HAVE_W2C_KINDS
#define SH_COUNTER 1024u
#define SH_ADDS 20000
static W2C_T(shared) g_sh;

static void* sh_adder(void* arg) {
  COWMEM_W2C_THREAD_INIT();
  for (int i = 0; i < SH_ADDS; i++)
    W2C_X(shared, add)(&g_sh, SH_COUNTER, 1);
  if (arg) /* the growing thread: one page at a time up to the maximum */
    for (uint32_t k = 1; k < 4; k++)
      if (W2C_X(shared, grow)(&g_sh, 1) != k) return (void*)1;
  COWMEM_W2C_THREAD_FREE();
  return NULL;
}
#endif

/* A shared memory: its image, atomics from two threads at once on one
 * instance (exact count), one thread growing it to the maximum while the
 * other works, guard-page traps past the end and at the farthest address,
 * and the next instance in the same slot back to the image. */
TEST_IMPL(shared_memory) {
#ifndef HAVE_W2C_KINDS
  TEST_SKIP("wabt 1.0.32 refuses shared memories (see wasm2c_unsupported)");
#else
  CHECK(setup());
  cowmem_w2c_module_t* m;
  CHECK(OPEN_SET(shared, &m));
  static const char want[] = "shared data";
  {
    W2C_T(sharedref) s;
    ASSERT_OK(COWMEM_W2C_NEW(m, shared, &g_sh));
    W2C_FN(sharedref, instantiate)(&s);
    SAME_MEMORY(W2C_X(shared, mem)(&g_sh), W2C_X(sharedref, mem)(&s));
    ASSERT_EQ(W2C_X(shared, add)(&g_sh, 64, 5), W2C_X(sharedref, add)(&s, 64, 5));
    ASSERT_EQ(W2C_X(shared, grow)(&g_sh, 2), W2C_X(sharedref, grow)(&s, 2));
    ASSERT_EQ(W2C_X(shared, grow)(&g_sh, 2), W2C_X(sharedref, grow)(&s, 2)); /* fails */
    SAME_MEMORY(W2C_X(shared, mem)(&g_sh), W2C_X(sharedref, mem)(&s));
    W2C_FN(shared, free)(&g_sh);
    W2C_FN(sharedref, free)(&s);
  }
  for (int round = 0; round < 2; round++) {
    ASSERT_OK(COWMEM_W2C_NEW(m, shared, &g_sh));
    wasm_rt_shared_memory_t* mem = W2C_X(shared, mem)(&g_sh);
    for (uint32_t i = 0; i < sizeof want - 1; i++)
      ASSERT_EQ(W2C_X(shared, load)(&g_sh, 16 + i), (uint8_t)want[i]);
    ASSERT_EQ(W2C_X(shared, load)(&g_sh, SH_COUNTER), 0);
    ASSERT_UEQ(mem->pages, 1);
    uint64_t v = 0;
    ASSERT_EQ(sh_load(&g_sh, PAGE, &v), WASM_RT_TRAP_OOB);
    ASSERT_EQ(sh_load_far(&g_sh, 0xffffffffu, &v), WASM_RT_TRAP_OOB);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
      ASSERT_EQ(pthread_create(&t[i], NULL, sh_adder, i ? (void*)1 : NULL), 0);
    for (int i = 0; i < 2; i++) {
      void* r = (void*)1;
      ASSERT_EQ(pthread_join(t[i], &r), 0);
      ASSERT_NULL(r);
    }
    ASSERT_EQ(W2C_X(shared, add)(&g_sh, SH_COUNTER, 0), 2 * SH_ADDS);
    ASSERT_UEQ(mem->pages, 4);
    ASSERT_UEQ(mem->size, 4 * PAGE);
    ASSERT_UEQ(W2C_X(shared, grow)(&g_sh, 1), UINT32_MAX); /* max 4 */
    ASSERT_EQ(sh_load(&g_sh, 4 * PAGE - 1, &v), 0);
    ASSERT_EQ(sh_load(&g_sh, 4 * PAGE, &v), WASM_RT_TRAP_OOB);
    W2C_FN(shared, free)(&g_sh);
  }
  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  ASSERT_EQ(n.live, 0);
  ASSERT_EQ(n.cowmem_allocs, 3);
  ASSERT_EQ(n.stock_allocs, 1); /* the reference instance's */
  cowmem_w2c_module_free(m);
  ASSERT_OK(cowmem_w2c_shutdown());
  return 0;
#endif
}

/* A custom page size is refused when the module is loaded, with the
 * reason; nothing is allocated. */
TEST_IMPL(custom_page_size) {
#ifndef HAVE_W2C_KINDS
  TEST_SKIP("custom page sizes need wabt >= 1.0.37");
#else
  cowmem_w2c_module_t* m = NULL;
  cowmem_diag_t diag;
  ASSERT_ERR(cowmem_w2c_module_open(COWMEM_W2C_PAGESIZE_WASM, &m, &diag),
             COWMEM_EUNSUPPORTED);
  ASSERT_NULL(m);
  printf("refused: %s\n", diag.reason);
  ASSERT_TRUE(strstr(diag.reason, "custom page size") != NULL);
  return 0;
#endif
}
