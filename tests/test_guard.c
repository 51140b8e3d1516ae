/* Guards as a wasm32 runtime without bounds checks uses them: from every
 * slot, the farthest address base + u32 + u32 can form must fault, and so
 * must the byte before the slot, with every other slot grown to its whole
 * reserve so that a layout whose guard is too small shows up as a read of
 * another slot's memory instead of a fault. */
#include <cowmem.h>
#include <setjmp.h>
#include <sys/resource.h>

#include "test.h"

#define WASM_PAGE ((size_t)65536)
#define U32_MAX_ ((uintptr_t)0xffffffffu)

/* Offsets from a slot's base that a wasm32 access may form (an index and an
 * offset, each at most 0xffffffff) and that must fault once the memory is
 * at most 4 GiB: the first byte past a full memory, the probe of a
 * far offset, and the farthest one. */
static const uintptr_t k_reach[] = {
    (uintptr_t)4 << 30, U32_MAX_ + 0x80000065u, U32_MAX_ + U32_MAX_};

static sigjmp_buf g_jump;

static void on_fault(int sig) {
  (void)sig;
  siglongjmp(g_jump, 1);
}

/* 1 if reading *p faulted; else 0 and *byte holds what was read. */
static int faults(const volatile uint8_t* p, uint8_t* byte) {
  if (sigsetjmp(g_jump, 1) != 0) return 1;
  *byte = *p;
  return 0;
}

typedef struct {
  cowmem_pool_t* pool;   /* NULL for stand-alone slots */
  cowmem_slot_t** slots;
  size_t n;
  int check_before;      /* base - 1 must fault too (pools only) */
} reach_t;

/* In a child: probe every address; a read that does not fault prints where
 * it landed and aborts. */
static void probe_all(void* arg) {
  const reach_t* r = arg;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fault;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  for (size_t i = 0; i < r->n; i++) {
    const uint8_t* base = cowmem_slot_base(r->slots[i]);
    for (size_t k = 0; k <= sizeof k_reach / sizeof k_reach[0]; k++) {
      int before = k == sizeof k_reach / sizeof k_reach[0];
      if (before && !r->check_before) continue;
      const uint8_t* p = before ? base - 1 : base + k_reach[k];
      uint8_t byte = 0;
      if (faults(p, &byte)) continue;
      cowmem_slot_t* owner = r->pool ? cowmem_pool_slot_of(r->pool, p) : NULL;
      fprintf(stderr,
              "slot %zu: base %s 0x%" PRIxPTR " did not fault: read %u, %s\n", i,
              before ? "-" : "+", before ? (uintptr_t)1 : k_reach[k], byte,
              owner != NULL && owner != r->slots[i] ? "another slot's byte"
                                                    : "outside every slot");
      abort();
    }
  }
}

/* Every slot of a pool made from cfg acquired, grown to 4 GiB, marked, and
 * probed from a child. */
static int check_pool_reach(const cowmem_pool_config_t* cfg) {
  ASSERT_GE(cfg->slot_reserve + cfg->guard_size, U32_MAX_ + U32_MAX_ + 1);
  ASSERT_GE(cfg->guard_size, 1);
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t why;
  int e = cowmem_pool_new(cfg, &pool, &why);
  if (e != 0) TEST_FAIL_("pool: %s: %s", cowmem_err_name(e), why.reason);
  cowmem_slot_t** slots = calloc(cfg->max_slots, sizeof *slots);
  ASSERT_NOT_NULL(slots);
  size_t n = 0;
  int rc = 0;
  for (; n < cfg->max_slots; n++) {
    e = cowmem_pool_acquire(pool, NULL, WASM_PAGE, COWMEM_WASM32_SLOT_RESERVE,
                            &slots[n]);
    if (e == 0) e = cowmem_slot_grow(slots[n], COWMEM_WASM32_SLOT_RESERVE);
    if (e != 0) {
      fprintf(stderr, "slot %zu: %s\n", n, cowmem_err_name(e));
      rc = 1;
      if (slots[n] != NULL) n++;
      break;
    }
    ((uint8_t*)cowmem_slot_base(slots[n]))[0] = (uint8_t)(n | 1);
  }
  reach_t r = {pool, slots, n, 1};
  int sig = rc ? 0 : test_run_in_child(probe_all, &r);
  for (size_t i = 0; i < n; i++)
    if (cowmem_pool_release(pool, slots[i]) != 0) rc = 1;
  free(slots);
  ASSERT_OK(cowmem_pool_free(pool));
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(sig, 0);
  return 0;
}

/* The defaults: 1000 slots, each probed. */
TEST_IMPL(default_pool_wasm32_reach) {
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  return check_pool_reach(&cfg);
}

TEST_IMPL(wasm32_preset_reach) {
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init_wasm32(&cfg);
  ASSERT_UEQ(cfg.slot_reserve, COWMEM_WASM32_SLOT_RESERVE);
  ASSERT_UEQ(cfg.guard_size, COWMEM_WASM32_GUARD_SIZE);
  cfg.max_slots = 64;
  cfg.reset = COWMEM_RESET_ADAPTIVE; /* the preset keeps other fields */
  return check_pool_reach(&cfg);
}

/* Stand-alone slots of the documented wasm32 reserve, side by side. */
TEST_IMPL(slot_new_wasm32_reach) {
  enum { N = 4 };
  cowmem_slot_t* slots[N] = {NULL};
  for (int i = 0; i < N; i++) {
    ASSERT_OK(cowmem_slot_new(COWMEM_WASM32_SLOT_RESERVE + COWMEM_WASM32_GUARD_SIZE,
                              &slots[i]));
    ASSERT_OK(cowmem_slot_instantiate(slots[i], WASM_PAGE, NULL));
    ASSERT_OK(cowmem_slot_grow(slots[i], COWMEM_WASM32_SLOT_RESERVE));
  }
  reach_t r = {NULL, slots, N, 0};
  int sig = test_run_in_child(probe_all, &r);
  for (int i = 0; i < N; i++)
    ASSERT_OK(cowmem_slot_free(slots[i]));
  ASSERT_EQ(sig, 0);
  return 0;
}

#ifndef UNDER_SANITIZER
/* The default pool's reservation refused by the kernel is a named error:
 * an address-space limit that holds 100 slots but not 1000. */
static void default_pool_over_limit(void* arg) {
  (void)arg;
  struct rlimit lim = {(rlim_t)1 << 40, (rlim_t)1 << 40}; /* 1 TiB */
  if (setrlimit(RLIMIT_AS, &lim) != 0) abort();
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t why;
  int e = cowmem_pool_new(&cfg, &pool, &why);
  if (e != COWMEM_ENOMEM || strstr(why.reason, "address space") == NULL) {
    fprintf(stderr, "pool_new: %s (%s)\n", cowmem_err_name(e), why.reason);
    abort();
  }
  cfg.max_slots = 100; /* 800 GiB + 4 GiB fits */
  e = cowmem_pool_new(&cfg, &pool, &why);
  if (e != 0) {
    fprintf(stderr, "pool_new (100 slots): %s (%s)\n", cowmem_err_name(e), why.reason);
    abort();
  }
  if (cowmem_pool_free(pool) != 0) abort();
}
#endif

TEST_IMPL(default_pool_enomem_named) {
#ifdef UNDER_SANITIZER
  TEST_SKIP("an address-space limit breaks the sanitizer's shadow memory");
#else
  ASSERT_EQ(test_run_in_child(default_pool_over_limit, NULL), 0);
  return 0;
#endif
}

TEST_MAIN(TEST_ENTRY(default_pool_wasm32_reach) TEST_ENTRY(wasm32_preset_reach)
          TEST_ENTRY(slot_new_wasm32_reach) TEST_ENTRY(default_pool_enomem_named))
