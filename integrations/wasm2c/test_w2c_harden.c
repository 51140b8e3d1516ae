/* test_w2c_harden.c: what a host can get wrong with the memories it is
 * handed, and how the integration refuses it. A pointer inside the pool
 * that is not a live memory's base (a double free, a stale copy of a
 * wasm_rt_memory_t, an interior pointer, an idle slot) aborts the process
 * with a message naming it, as the stock runtime's own checks do: handed
 * to the stock free it would unmap part of the pool, and handed to the
 * pool it would release another instance's slot. Built into
 * test_wasm2c<suffix> for both runtime ABIs. */
#include "cowdemo.h"
#include "test_death.h"
#include "test_w2c.h"
#ifdef HAVE_W2C_MULTI
#include "multi.h"
#include "twin.h"
#endif

#define PAGE COWMEM_WASM_PAGE_SIZE
#define STRIDE (COWMEM_WASM32_SLOT_RESERVE + COWMEM_WASM32_GUARD_SIZE)
#define MARK 0x5au

static cowmem_w2c_module_t* h_mod;

static int h_setup(size_t slots) {
  CHECK(init_pool(slots, COWMEM_RESET_ADAPTIVE));
  CHECK(OPEN_SET(cowdemo, &h_mod));
  wasm_rt_init();
  COWMEM_W2C_INIT_MODULE(cowdemo);
  return 0;
}

static int h_teardown(void) {
  return close_set(&h_mod);
}

static int h_new(W2C_T(cowdemo) * inst) {
  ASSERT_OK(COWMEM_W2C_NEW(h_mod, cowdemo, inst));
  return 0;
}

static wasm_rt_memory_t* mem_of(W2C_T(cowdemo) * inst) {
  return W2C_X(cowdemo, memory)(inst);
}

static void free_copy(void* arg) {
  wasm_rt_free_memory(arg);
}

static void grow_copy(void* arg) {
  (void)wasm_rt_grow_memory(arg, 1);
}

/* Freeing and growing m abort, naming its data. */
static int both_abort(wasm_rt_memory_t* m) {
  ASSERT_ABORTS(free_copy, m, test_ptr_text(m->data));
  ASSERT_ABORTS(grow_copy, m, test_ptr_text(m->data));
  return 0;
}

/* A copy of a memory struct kept after the memory is freed: freed again
 * while its slot is idle, it aborts (the stock free would unmap the slot's
 * part of the pool). */
TEST_IMPL(double_free) {
  CHECK(h_setup(1));
  W2C_T(cowdemo) a;
  CHECK(h_new(&a));
  wasm_rt_memory_t copy = *mem_of(&a);
  W2C_FN(cowdemo, free)(&a);
  ASSERT_NULL(cowmem_pool_slot_of(cowmem_w2c_pool(), copy.data)); /* idle */
  CHECK(both_abort(&copy));
  ASSERT_ABORTS(free_copy, &copy, "no live memory's base");
  /* The parent's pool is whole: the slot serves the next instance. */
  CHECK(h_new(&a));
  ASSERT_PTR_EQ(mem_of(&a)->data, copy.data);
  ASSERT_EQ(W2C_X(cowdemo, read_secret)(&a), 0);
  W2C_FN(cowdemo, free)(&a);
  return h_teardown();
}

/* An address inside a live memory, not its base (a struct whose data was
 * moved along): free and grow abort; the memory lives on. */
TEST_IMPL(interior_free) {
  CHECK(h_setup(2));
  W2C_T(cowdemo) a;
  CHECK(h_new(&a));
  wasm_rt_memory_t in = *mem_of(&a);
  in.data += PAGE;
  CHECK(both_abort(&in));
  in.data = mem_of(&a)->data + COWMEM_WASM32_SLOT_RESERVE; /* its guard */
  CHECK(both_abort(&in));
  ASSERT_NOT_NULL(cowmem_pool_slot_of(cowmem_w2c_pool(), mem_of(&a)->data));
  W2C_FN(cowdemo, free)(&a);
  return h_teardown();
}

/* The base of a slot no instance holds (never handed out, or given back):
 * free and grow abort. */
TEST_IMPL(idle_slot_free) {
  CHECK(h_setup(2));
  W2C_T(cowdemo) a;
  CHECK(h_new(&a));
  cowmem_pool_t* pool = cowmem_w2c_pool();
  uint8_t* data = mem_of(&a)->data;
  wasm_rt_memory_t idle = *mem_of(&a);
  idle.data = cowmem_pool_contains(pool, data + STRIDE) ? data + STRIDE : data - STRIDE;
  ASSERT_TRUE(cowmem_pool_contains(pool, idle.data));
  ASSERT_NULL(cowmem_pool_slot_of(pool, idle.data));
  CHECK(both_abort(&idle));
  W2C_FN(cowdemo, free)(&a);
  return h_teardown();
}

/* A stale copy of a memory whose slot now serves another instance: free
 * and grow abort naming it, and the other instance keeps its slot and its
 * bytes (checked in the child, in the abort's handler). */
static W2C_T(cowdemo) * g_live;

static void live_kept(int sig) {
  (void)sig;
  wasm_rt_memory_t* m = mem_of(g_live);
  bool kept = cowmem_pool_slot_of(cowmem_w2c_pool(), m->data) != NULL &&
              m->data[PAGE] == MARK && m->pages > 0;
  _exit(kept ? 42 : 43);
}

static void free_stale(void* arg) {
  signal(SIGABRT, live_kept);
  wasm_rt_free_memory(arg);
}

static void grow_stale(void* arg) {
  signal(SIGABRT, live_kept);
  (void)wasm_rt_grow_memory(arg, 1);
}

TEST_IMPL(stale_free) {
  CHECK(h_setup(1));
  W2C_T(cowdemo) a, b;
  CHECK(h_new(&a));
  wasm_rt_memory_t stale = *mem_of(&a);
  W2C_FN(cowdemo, free)(&a);
  CHECK(h_new(&b)); /* the one slot again */
  ASSERT_PTR_EQ(mem_of(&b)->data, stale.data);
  mem_of(&b)->data[PAGE] = MARK;
  g_live = &b;
  void (*fns[])(void*) = {free_stale, grow_stale};
  for (size_t i = 0; i < 2; i++) {
    test_death_t d;
    ASSERT_EQ(test_death_run(fns[i], &stale, &d), 0);
    if (d.code != 42 || !strstr(d.err, test_ptr_text(stale.data)) ||
        !strstr(d.err, "stale copy"))
      TEST_FAIL_("call %zu: expected an abort naming %p with b's slot kept; got "
                 "signal %d, exit %d, stderr \"%s\"",
                 i, (void*)stale.data, d.signal, d.code, d.err);
  }
  /* In this process b still runs in its slot. */
  ASSERT_EQ(mem_of(&b)->data[PAGE], MARK);
  W2C_FN(cowdemo, free)(&b);
  return h_teardown();
}

/* twin.wat has multi.wat's limits and other data: instantiated inside
 * multi's module set it is refused before any memory is allocated (it once
 * got multi's images); instantiated anyway after the refusal, the
 * allocation aborts; each module in its own set sees its own data. */
#ifdef HAVE_W2C_MULTI
COWMEM_W2C_DECLARE_ID(twin);
static cowmem_w2c_module_t* g_multi_set;

static void twin_in_multi_set(void* arg) {
  (void)cowmem_w2c_begin_id(g_multi_set, COWMEM_W2C_ID(twin)); /* refused */
  W2C_FN(twin, instantiate)(arg);
}

static int twin_sees(cowmem_w2c_module_t* set, const char* text) {
  W2C_T(twin) t;
  ASSERT_OK(COWMEM_W2C_NEW(set, twin, &t));
  for (uint32_t i = 0; text[i]; i++)
    ASSERT_EQ(W2C_X(twin, load0)(&t, 16 + i), (uint8_t)text[i]);
  W2C_FN(twin, free)(&t);
  return 0;
}
#endif

TEST_IMPL(wrong_module) {
#ifndef HAVE_W2C_MULTI
  TEST_SKIP("wat2wasm not found: twin.wat not built");
#else
  CHECK(init_pool(2, COWMEM_RESET_ADAPTIVE));
  cowmem_w2c_module_t *mm, *tm;
  CHECK(OPEN_SET(multi, &mm));
  CHECK(OPEN_SET(twin, &tm));
  wasm_rt_init();
  COWMEM_W2C_INIT_MODULE(multi);
  COWMEM_W2C_INIT_MODULE(twin);
  cowmem_w2c_counters_t before, after;
  cowmem_w2c_counters(&before);
  W2C_T(twin) t;
  ASSERT_EQ(COWMEM_W2C_NEW(mm, twin, &t), COWMEM_EMISMATCH);
  cowmem_w2c_counters(&after);
  ASSERT_EQ(after.cowmem_allocs, before.cowmem_allocs);
  ASSERT_EQ(after.stock_allocs, before.stock_allocs);
  ASSERT_EQ(after.live, 0);
  ASSERT_EQ(cowmem_w2c_begin_id(mm, COWMEM_W2C_ID(twin)), COWMEM_EMISMATCH);
  ASSERT_EQ(cowmem_w2c_end(), COWMEM_EMISMATCH);
  ASSERT_EQ(cowmem_w2c_end(), 0); /* the refusal ended with the set */
  ASSERT_EQ(cowmem_w2c_begin_id(mm, NULL), COWMEM_EINVAL);
  ASSERT_EQ(cowmem_w2c_end(), COWMEM_EINVAL);
  ASSERT_EQ(COWMEM_W2C_NEW(NULL, twin, &t), COWMEM_EINVAL);
  g_multi_set = mm;
  ASSERT_ABORTS(twin_in_multi_set, &t, "does not belong to the module being instantiated");
  /* Each in its own set: its own data. */
  CHECK(twin_sees(tm, "twin memory"));
  W2C_T(multi) m;
  ASSERT_OK(COWMEM_W2C_NEW(mm, multi, &m));
  ASSERT_EQ(W2C_X(multi, load0)(&m, 16), 'f');
  W2C_FN(multi, free)(&m);
  cowmem_w2c_module_free(mm);
  cowmem_w2c_module_free(tm);
  ASSERT_OK(cowmem_w2c_shutdown());
  return 0;
#endif
}
