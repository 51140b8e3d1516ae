/* test_w2c_import.c: a module that imports its memory (import.wat, built
 * with FRESH_IMPORTS: stripped and compiled with --fresh-imports), its
 * memory taken from the pool with cowmem_w2c_import_memory and given back
 * by the stock wasm_rt_free_memory. Compared byte for byte with the stock
 * runtime running the same module unstripped (importref) on a memory the
 * stock wasm_rt_allocate_memory made; isolation after reuse; the image
 * file against the module; refusals. Registered as wasm2c[39]_<name>. */
#include "test_w2c.h"
#ifdef HAVE_W2C_IMPORT
#include "import.h"
#include "importref.h"
#endif
#ifdef HAVE_W2C_SHARED_IMPORT
#include "shimport.h"
#include "shimportref.h"
#endif

#define PAGE COWMEM_WASM_PAGE_SIZE

#ifdef HAVE_W2C_IMPORT
/* What the generated code calls for the import "env" "memory": the host's
 * environment instance hands out its memory. One definition serves both
 * modules (stripped and unstripped import the same name). */
#if COWMEM_W2C_ABI >= 1037
#define ENV struct w2c_env
#define ENV_MEMORY w2c_env_memory
#else
#define ENV struct Z_env_instance_t
#define ENV_MEMORY Z_envZ_memory
#endif
ENV {
  wasm_rt_memory_t memory;
};
typedef ENV env_t;
wasm_rt_memory_t* ENV_MEMORY(env_t* env) {
  return &env->memory;
}

static cowmem_w2c_module_t* g_imp;

static int setup(size_t slots, bool from_wasm) {
  CHECK(init_pool(slots, COWMEM_RESET_ADAPTIVE));
  CHECK(open_set(COWMEM_W2C_WASM_import, from_wasm ? NULL : IMAGES_OF(import), &g_imp));
  /* Every memory of the module is counted, the imported one too (as the
   * WAMR integration counts them), and has the same image both ways. */
  ASSERT_EQ(cowmem_w2c_module_memories(g_imp), 1);
  ASSERT_EQ(cowmem_w2c_module_imports(g_imp), 1);
  ASSERT_NOT_NULL(cowmem_w2c_module_import_image(g_imp, 0));
  ASSERT_PTR_EQ(cowmem_w2c_module_image(g_imp, 0), cowmem_w2c_module_import_image(g_imp, 0));
  static bool once;
  if (!once) {
    wasm_rt_init();
    COWMEM_W2C_INIT_MODULE(import);
    COWMEM_W2C_INIT_MODULE(importref);
    once = true;
  }
  return 0;
}

static int teardown(void) {
  cowmem_w2c_module_free(g_imp);
  g_imp = NULL;
  ASSERT_OK(cowmem_w2c_shutdown());
  return 0;
}

/* The stock runtime's memory after instantiating the unstripped module:
 * what every cowmem instance must start from. */
static uint8_t g_ref[2 * PAGE];
static int stock_reference(void) {
  env_t env;
  memset(&env, 0, sizeof env);
  cowmem_w2c_counters_t before, after;
  cowmem_w2c_counters(&before);
  wasm_rt_allocate_memory(&env.memory, 2, 4
#if COWMEM_W2C_ABI >= 1037
                          ,
                          false, PAGE
#endif
  );
  W2C_T(importref) ref;
  W2C_FN(importref, instantiate)(&ref, &env);
  ASSERT_EQ(env.memory.size, 2 * PAGE);
  memcpy(g_ref, env.memory.data, sizeof g_ref);
  W2C_FN(importref, free)(&ref);
  wasm_rt_free_memory(&env.memory);
  cowmem_w2c_counters(&after);
  ASSERT_EQ(after.stock_allocs - before.stock_allocs, 1);
  ASSERT_EQ(after.stock_frees - before.stock_frees, 1);
  ASSERT_TRUE(memcmp(g_ref + 16, "imported", 8) == 0);
  ASSERT_TRUE(memcmp(g_ref + 24, "MEMORY", 6) == 0);
  ASSERT_TRUE(memcmp(g_ref + 70000, "second page", 11) == 0);
  return 0;
}

/* One instance on a memory from the pool: the stock bytes, then writes and
 * a grow; the memory goes back through the stock free. */
static int one_instance(int round) {
  env_t env;
  memset(&env, 0, sizeof env);
  ASSERT_OK(cowmem_w2c_import_memory(g_imp, 0, &env.memory));
  ASSERT_EQ(env.memory.pages, 2);
  ASSERT_EQ(env.memory.max_pages, 4);
  ASSERT_EQ(env.memory.size, 2 * PAGE);
  W2C_T(import) inst;
  ASSERT_OK(COWMEM_W2C_NEW(g_imp, import, &inst, &env));
  /* The stripped module applied nothing: these bytes are the image's. */
  ASSERT_TRUE(memcmp(env.memory.data, g_ref, sizeof g_ref) == 0);
  ASSERT_EQ(W2C_X(import, load)(&inst, 24), 'M');
  ASSERT_EQ(W2C_X(import, size)(&inst), 2);
  /* Dirty it: the next instance in this slot must not see any of it. */
  W2C_X(import, store)(&inst, 16, 'X' + round);
  W2C_X(import, store)(&inst, 70000, 'Y');
  W2C_X(import, store)(&inst, 3 * PAGE / 2, 'Z');
  ASSERT_EQ(W2C_X(import, grow)(&inst, 2), 2);
  ASSERT_EQ(W2C_X(import, grow)(&inst, 1), (uint32_t)-1); /* max 4 */
  W2C_X(import, store)(&inst, 4 * PAGE - 1, 0xee);
  ASSERT_EQ(W2C_X(import, load)(&inst, 4 * PAGE - 1), 0xee);
  ASSERT_EQ(env.memory.pages, 4);
  W2C_FN(import, free)(&inst);
  wasm_rt_free_memory(&env.memory); /* the wrapper: back to the pool */
  ASSERT_NULL(env.memory.data);
  return 0;
}

static int run_rounds(void) {
  CHECK(stock_reference());
  cowmem_w2c_counters_t before, after;
  cowmem_w2c_counters(&before);
  for (int round = 0; round < 5; round++)
    CHECK(one_instance(round));
  cowmem_w2c_counters(&after);
  ASSERT_EQ(after.cowmem_allocs - before.cowmem_allocs, 5);
  ASSERT_EQ(after.cowmem_frees - before.cowmem_frees, 5);
  ASSERT_EQ(after.stock_allocs, before.stock_allocs);
  ASSERT_EQ(after.live, 0);
  return 0;
}
#endif

/* One slot: every instance reuses it after the previous one dirtied and
 * grew it, and still starts from exactly the stock runtime's bytes. */
TEST_IMPL(imported_memory) {
#ifndef HAVE_W2C_IMPORT
  TEST_SKIP("wat2wasm not found: import.wat not built");
#else
  CHECK(setup(1, false));
  CHECK(run_rounds());
  /* The one slot is back: a second memory at once is refused, not fatal. */
  env_t a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  ASSERT_OK(cowmem_w2c_import_memory(g_imp, 0, &a.memory));
  ASSERT_ERR(cowmem_w2c_import_memory(g_imp, 0, &b.memory), COWMEM_EEXHAUSTED);
  ASSERT_NULL(b.memory.data);
  wasm_rt_free_memory(&a.memory);
  return teardown();
#endif
}

/* The same from the .wasm at run time (cowmem_w2c_module_open: the module
 * parsed with fresh imports), several slots; and the refusals. */
TEST_IMPL(imported_memory_wasm) {
#ifndef HAVE_W2C_IMPORT
  TEST_SKIP("wat2wasm not found: import.wat not built");
#else
  CHECK(setup(4, true));
  CHECK(run_rounds());
  env_t env;
  memset(&env, 0, sizeof env);
  ASSERT_ERR(cowmem_w2c_import_memory(g_imp, 1, &env.memory), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_w2c_import_memory(NULL, 0, &env.memory), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_w2c_import_memory(g_imp, 0, NULL), COWMEM_EINVAL);
#if COWMEM_W2C_ABI >= 1037 && defined(WASM_RT_C11_AVAILABLE)
  wasm_rt_shared_memory_t sm;
  memset(&sm, 0, sizeof sm);
  ASSERT_ERR(cowmem_w2c_import_memory_shared(g_imp, 0, &sm), COWMEM_EINVAL);
#endif
  ASSERT_NULL(env.memory.data);
  return teardown();
#endif
}

#ifdef HAVE_W2C_SHARED_IMPORT
/* The environment of shared_import.wat: "penv" "memory", shared. */
struct w2c_penv {
  wasm_rt_shared_memory_t memory;
};
wasm_rt_shared_memory_t* w2c_penv_memory(struct w2c_penv* env) {
  return &env->memory;
}
#endif

/* A shared imported memory (pthread builds; wabt >= 1.0.37): from the pool
 * with cowmem_w2c_import_memory_shared, equal to the stock runtime's after
 * the unstripped module, atomics, grow under its lock to the maximum, and
 * freed by the stock wasm_rt_free_memory_shared; one slot reused. */
TEST_IMPL(imported_shared_memory) {
#ifndef HAVE_W2C_SHARED_IMPORT
  TEST_SKIP("no shared memories in this wabt (1.0.32), or wat2wasm not found");
#else
  CHECK(init_pool(1, COWMEM_RESET_ADAPTIVE));
  cowmem_w2c_module_t* m = NULL;
  CHECK(open_set(COWMEM_W2C_WASM_shimport, COWMEM_W2C_IMAGES_shimport, &m));
  ASSERT_EQ(cowmem_w2c_module_imports(m), 1);
  ASSERT_NOT_NULL(cowmem_w2c_module_import_image(m, 0));
  wasm_rt_init();
  struct w2c_penv env;
  memset(&env, 0, sizeof env);
  /* The stock runtime: its own shared memory, the unstripped module. */
  wasm_rt_allocate_memory_shared(&env.memory, 1, 2, false, PAGE);
  w2c_shimportref ref;
  wasm2c_shimportref_instantiate(&ref, &env);
  static uint8_t want[PAGE];
  memcpy(want, (const uint8_t*)env.memory.data, PAGE);
  ASSERT_TRUE(memcmp(want + 32, "shared import", 13) == 0);
  wasm2c_shimportref_free(&ref);
  wasm_rt_free_memory_shared(&env.memory);
  /* Unshared entry point: refused. */
  wasm_rt_memory_t plain;
  memset(&plain, 0, sizeof plain);
  ASSERT_ERR(cowmem_w2c_import_memory(m, 0, &plain), COWMEM_EINVAL);
  for (int round = 0; round < 3; round++) {
    memset(&env, 0, sizeof env);
    ASSERT_OK(cowmem_w2c_import_memory_shared(m, 0, &env.memory));
    ASSERT_EQ(env.memory.pages, 1);
    ASSERT_EQ(env.memory.max_pages, 2);
    w2c_shimport inst;
    ASSERT_OK(COWMEM_W2C_NEW(m, shimport, &inst, &env));
    ASSERT_TRUE(memcmp((const uint8_t*)env.memory.data, want, PAGE) == 0);
    ASSERT_EQ(w2c_shimport_load(&inst, 32), 's');
    ASSERT_EQ(w2c_shimport_add(&inst, 32, 1), 0x72616873); /* "shar" */
    ASSERT_EQ(w2c_shimport_load(&inst, 32), 't');
    ASSERT_EQ(w2c_shimport_grow(&inst, 1), 1);
    ASSERT_EQ(w2c_shimport_grow(&inst, 1), (uint32_t)-1); /* max 2 */
    ASSERT_EQ(w2c_shimport_add(&inst, 2 * PAGE - 4, 7), 0);
    wasm2c_shimport_free(&inst);
    wasm_rt_free_memory_shared(&env.memory); /* the wrapper: back to the pool */
    ASSERT_NULL((const void*)env.memory.data);
  }
  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  ASSERT_EQ(n.live, 0);
  cowmem_w2c_module_free(m);
  ASSERT_OK(cowmem_w2c_shutdown());
  return 0;
#endif
}
