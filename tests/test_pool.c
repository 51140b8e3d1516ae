/* Pool tests: isolation between instances, guard pages on reuse, affinity
 * and the warm cap (through metrics), orphaned images, exhaustion and
 * recovery, configuration errors, and a multi-threaded stress test (also
 * run under TSan). */
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>

#include "cowmem.h"
#include "internal.h"
#include "test.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static size_t PS;

static cowmem_pool_t* small_pool(cowmem_reset_strategy_t reset, size_t slots, size_t warm) {
  PS = cowmem_page_size();
  cowmem__os_inject_clear();
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.max_slots = slots;
  cfg.slot_reserve = 64 * PS;
  cfg.guard_size = 16 * PS;
  cfg.max_warm_slots = warm;
  cfg.reset = reset;
  cfg.keep_resident = 8 * PS;
  cfg.batch_size = 2;
  cfg.resident_budget = 16 * PS; /* ADAPTIVE: within the slot */
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t why;
  int r = cowmem_pool_new(&cfg, &pool, &why);
  if (r != 0) fprintf(stderr, "pool: %s: %s\n", cowmem_err_name(r), why.reason);
  return pool;
}

/* An image with distinct bytes on every page of [off, off+len). */
static cowmem_image_t* pattern_image(size_t off, size_t len, uint8_t salt) {
  uint8_t* b = malloc(len);
  for (size_t i = 0; i < len; i++) b[i] = (uint8_t)((i / 7) + salt) | 1;
  cowmem_image_t* img = NULL;
  if (cowmem_image_new_from_bytes(b, len, off, &img) != 0) img = NULL;
  free(b);
  return img;
}

static int expect_exact(cowmem_slot_t* s, cowmem_image_t* img) {
  size_t n = cowmem_slot_accessible(s);
  uint8_t* want = calloc(1, n);
  if (img != NULL) cowmem_image_read(img, 0, want, n);
  const uint8_t* p = cowmem_slot_base(s);
  size_t bad = n;
  for (size_t i = 0; i < n && bad == n; i++)
    if (p[i] != want[i]) bad = i;
  if (bad != n)
    fprintf(stderr, "byte %zu is 0x%02x, expected 0x%02x\n", bad, p[bad], want[bad]);
  free(want);
  return bad != n;
}

static int leak_scenario(cowmem_reset_strategy_t reset) {
  cowmem_pool_t* pool = small_pool(reset, 3, 3);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* a = pattern_image(2 * PS, 6 * PS, 0x10);
  cowmem_image_t* b = pattern_image(0, 3 * PS + 17, 0x40);
  cowmem_image_t* order[] = {a, b, NULL, a, a, NULL, b};
  for (size_t round = 0; round < 2 * sizeof order / sizeof order[0]; round++) {
    cowmem_image_t* img = order[round % (sizeof order / sizeof order[0])];
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, img, 16 * PS, 64 * PS, &s));
    CHECK(expect_exact(s, img));
    ASSERT_OK(cowmem_slot_grow(s, 40 * PS));
    memset(cowmem_slot_base(s), 0xee, 40 * PS); /* the "secret" */
    ASSERT_OK(cowmem_pool_release(pool, s));
    if (round == 5) ASSERT_OK(cowmem_pool_flush(pool));
  }
  /* A failed acquire (the image switch's mmap fails) leaves nothing behind. */
  if (cowmem__os_has_memfd()) {
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, a, 16 * PS, 64 * PS, &s));
    memset(cowmem_slot_base(s), 0xdd, 16 * PS);
    ASSERT_OK(cowmem_pool_release(pool, s));
    ASSERT_OK(cowmem_pool_flush(pool));
    cowmem_slot_t* held[3];
    for (int i = 0; i < 3; i++) ASSERT_OK(cowmem_pool_acquire(pool, b, 16 * PS, 64 * PS, &held[i]));
    for (int i = 0; i < 3; i++) ASSERT_OK(cowmem_pool_release(pool, held[i]));
    ASSERT_OK(cowmem_pool_flush(pool));
    cowmem__os_inject_fail(COWMEM__OS_mmap, 0, ENOMEM);
    ASSERT_ERR(cowmem_pool_acquire(pool, a, 16 * PS, 64 * PS, &s), COWMEM_ENOMEM);
    ASSERT_OK(cowmem_pool_acquire(pool, NULL, 16 * PS, 64 * PS, &s));
    CHECK(expect_exact(s, NULL));
    ASSERT_OK(cowmem_pool_release(pool, s));
  }
  cowmem_image_release(a);
  cowmem_image_release(b);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

TEST_IMPL(no_leak_madvise) { return leak_scenario(COWMEM_RESET_MADVISE); }
TEST_IMPL(no_leak_keep_resident) { return leak_scenario(COWMEM_RESET_KEEP_RESIDENT); }
TEST_IMPL(no_leak_batched) { return leak_scenario(COWMEM_RESET_BATCHED); }

static volatile uint8_t* probe_addr;
static void probe(void* arg) {
  (void)arg;
  *probe_addr = 1;
}

static int oob_scenario(cowmem_reset_strategy_t reset) {
  cowmem_pool_t* pool = small_pool(reset, 1, 1);
  ASSERT_NOT_NULL(pool);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 5 * PS, 64 * PS, &s));
  ASSERT_OK(cowmem_slot_grow(s, 20 * PS));
  memset(cowmem_slot_base(s), 1, 20 * PS);
  ASSERT_OK(cowmem_pool_release(pool, s));
  ASSERT_OK(cowmem_pool_flush(pool));
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 5 * PS, 64 * PS, &s));
  uint8_t* base = cowmem_slot_base(s);
  probe_addr = base + 5 * PS - 1;
  ASSERT_EQ(test_run_in_child(probe, NULL), 0);
  probe_addr = base + 5 * PS;
  ASSERT_EQ(test_run_in_child(probe, NULL), SIGSEGV);
  probe_addr = base + 19 * PS;
  ASSERT_EQ(test_run_in_child(probe, NULL), SIGSEGV);
  probe_addr = base - 1; /* the guard before the first slot */
  ASSERT_EQ(test_run_in_child(probe, NULL), SIGSEGV);
  probe_addr = base + 64 * PS; /* the guard after it */
  ASSERT_EQ(test_run_in_child(probe, NULL), SIGSEGV);
  /* max_size is the grow limit. */
  ASSERT_ERR(cowmem_slot_grow(s, 65 * PS), COWMEM_ERANGE);
  ASSERT_OK(cowmem_pool_release(pool, s));
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 5 * PS, 10 * PS, &s));
  ASSERT_ERR(cowmem_slot_grow(s, 11 * PS), COWMEM_ERANGE);
  ASSERT_OK(cowmem_slot_grow(s, 10 * PS));
  ASSERT_OK(cowmem_pool_release(pool, s));
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

TEST_IMPL(oob_on_reuse_madvise) { return oob_scenario(COWMEM_RESET_MADVISE); }
TEST_IMPL(oob_on_reuse_keep_resident) { return oob_scenario(COWMEM_RESET_KEEP_RESIDENT); }
TEST_IMPL(oob_on_reuse_batched) { return oob_scenario(COWMEM_RESET_BATCHED); }

TEST_IMPL(affinity_and_warm_cap) {
  cowmem_pool_t* pool = small_pool(COWMEM_RESET_MADVISE, 3, 2);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* a = pattern_image(0, 4 * PS, 1);
  cowmem_image_t* b = pattern_image(0, 4 * PS, 2);
  cowmem_image_t* c = pattern_image(0, 4 * PS, 3);
  cowmem_slot_t *s1, *s2, *s3;
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_acquire(pool, a, 8 * PS, 8 * PS, &s1));
  ASSERT_OK(cowmem_pool_release(pool, s1));
  /* Same image: the same slot, and no system call. */
  cowmem_stats_t st0, st1;
  cowmem_stats_get(&st0);
  ASSERT_OK(cowmem_pool_acquire(pool, a, 8 * PS, 8 * PS, &s2));
  cowmem_stats_get(&st1);
  ASSERT_PTR_EQ(s2, s1);
  ASSERT_UEQ(st1.syscalls_total, st0.syscalls_total);
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.affinity_hits, 1);
  ASSERT_UEQ(m.affinity_misses, 1);
  ASSERT_UEQ(m.in_use, 1);
  ASSERT_UEQ(m.never_used, 2);
  /* Another image: a never-used slot, not a's. */
  ASSERT_OK(cowmem_pool_acquire(pool, b, 8 * PS, 8 * PS, &s3));
  ASSERT_PTR_NE(s3, s1);
  ASSERT_OK(cowmem_pool_release(pool, s2));
  ASSERT_OK(cowmem_pool_release(pool, s3));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.warm, 2);
  ASSERT_GT(m.idle_resident_bytes, 0);
  /* c: the last never-used slot; on release the warm cap (2) decommits it. */
  ASSERT_OK(cowmem_pool_acquire(pool, c, 8 * PS, 8 * PS, &s3));
  ASSERT_OK(cowmem_pool_release(pool, s3));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.warm, 2);
  ASSERT_UEQ(m.cold, 1);
  ASSERT_UEQ(m.decommits, 1);
  ASSERT_UEQ(m.never_used, 0);
  /* c again: the cold slot, before stealing a warm one. */
  ASSERT_OK(cowmem_pool_acquire(pool, c, 8 * PS, 8 * PS, &s3));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.cold, 0);
  ASSERT_UEQ(m.steals, 0);
  CHECK(expect_exact(s3, c));
  /* Still c with every other slot warm: steal the least recently used (a's). */
  cowmem_slot_t* s4;
  ASSERT_OK(cowmem_pool_acquire(pool, c, 8 * PS, 8 * PS, &s4));
  ASSERT_PTR_EQ(s4, s1);
  CHECK(expect_exact(s4, c));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.steals, 1);
  ASSERT_OK(cowmem_pool_release(pool, s3));
  ASSERT_OK(cowmem_pool_release(pool, s4));
  /* Trim: every idle slot decommitted, nothing resident. */
  ASSERT_OK(cowmem_pool_trim(pool));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.warm, 0);
  ASSERT_UEQ(m.cold, 3);
  ASSERT_UEQ(m.idle_resident_bytes, 0);
  cowmem_image_release(a);
  cowmem_image_release(b);
  cowmem_image_release(c);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

static uint64_t images_live(void) {
  cowmem_stats_t st;
  cowmem_stats_get(&st);
  return st.images_live;
}

/* An image the caller frees while idle slots map it goes away (its memfd
 * closes) at the pool's next acquire or release; slots in use keep theirs. */
TEST_IMPL(orphaned_image_leaves_idle_slots) {
  cowmem_pool_t* pool = small_pool(COWMEM_RESET_MADVISE, 4, 4);
  ASSERT_NOT_NULL(pool);
  uint64_t live0 = images_live();
  cowmem_image_t* a = pattern_image(0, 4 * PS, 1);
  cowmem_image_t* b = pattern_image(0, 4 * PS, 2);
  cowmem_slot_t *s1, *s2, *s3;
  ASSERT_OK(cowmem_pool_acquire(pool, a, 8 * PS, 8 * PS, &s1));
  ASSERT_OK(cowmem_pool_acquire(pool, a, 8 * PS, 8 * PS, &s2));
  ASSERT_OK(cowmem_pool_acquire(pool, b, 8 * PS, 8 * PS, &s3));
  ASSERT_OK(cowmem_pool_release(pool, s1));
  cowmem_image_release(a); /* s2 still runs a */
  cowmem_image_release(b); /* s3 still runs b */
  ASSERT_UEQ(images_live(), live0 + 2);
  CHECK(expect_exact(s2, cowmem_slot_image(s2)));
  ASSERT_OK(cowmem_pool_release(pool, s2)); /* now only idle slots hold a */
  cowmem_pool_metrics_t m;
  cowmem_slot_t* s4;
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 8 * PS, 8 * PS, &s4));
  ASSERT_UEQ(images_live(), live0 + 1); /* a is gone, b in use */
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.decommits, 2);
  ASSERT_OK(cowmem_pool_release(pool, s3));
  ASSERT_OK(cowmem_pool_release(pool, s4));
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 8 * PS, 8 * PS, &s4));
  ASSERT_UEQ(images_live(), live0);
  ASSERT_OK(cowmem_pool_release(pool, s4));
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* Pool slots hold every reference of an image once its caller's is gone,
 * whether they are idle or one still runs it: nobody can acquire it again,
 * so its idle slots go at the pool's next call without waiting for the
 * running one, which keeps its memory; that one goes after its release. */
static int orphan_while_running(cowmem_reset_strategy_t reset) {
  cowmem_pool_t* pool = small_pool(reset, 8, 8);
  ASSERT_NOT_NULL(pool);
  uint64_t live0 = images_live();
  cowmem_image_t* a = pattern_image(0, 4 * PS, 3);
  ASSERT_NOT_NULL(a);
  cowmem_slot_t *s1, *s2, *s3, *s4;
  ASSERT_OK(cowmem_pool_acquire(pool, a, 8 * PS, 8 * PS, &s1));
  ASSERT_OK(cowmem_pool_acquire(pool, a, 8 * PS, 8 * PS, &s2));
  memset(cowmem_slot_base(s2) + 6 * PS, 0x5a, PS); /* s2's instance wrote */
  ASSERT_OK(cowmem_pool_release(pool, s1));
  ASSERT_OK(cowmem_pool_flush(pool)); /* s1 idle, whatever the strategy */
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  uint64_t d0 = m.decommits;
  ASSERT_UEQ(m.warm, 1);
  cowmem_image_release(a); /* s2 still runs a */
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 8 * PS, 8 * PS, &s3));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.decommits, d0 + 1); /* s1's slot, by the sweep */
  ASSERT_UEQ(m.warm, 0);
  ASSERT_UEQ(images_live(), live0 + 1); /* s2 keeps a */
  ASSERT_TRUE(cowmem_slot_image(s2) != NULL);
  ASSERT_UEQ(((uint8_t*)cowmem_slot_base(s2))[6 * PS], 0x5a);
  ASSERT_UEQ(((uint8_t*)cowmem_slot_base(s2))[7 * PS - 1], 0x5a);
  ASSERT_OK(cowmem_pool_release(pool, s2));
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 8 * PS, 8 * PS, &s4));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.decommits, d0 + 2);
  ASSERT_UEQ(images_live(), live0); /* a is gone */
  ASSERT_OK(cowmem_pool_release(pool, s3));
  ASSERT_OK(cowmem_pool_release(pool, s4));
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}
TEST_IMPL(orphan_while_running_madvise) {
  return orphan_while_running(COWMEM_RESET_MADVISE);
}
TEST_IMPL(orphan_while_running_batched) {
  return orphan_while_running(COWMEM_RESET_BATCHED);
}
TEST_IMPL(orphan_while_running_adaptive) {
  return orphan_while_running(COWMEM_RESET_ADAPTIVE);
}

typedef struct {
  cowmem_pool_t* pool;
  cowmem_slot_t* slot;
  int delay_ms;
} releaser_t;

static void* release_later(void* arg) {
  releaser_t* r = arg;
  struct timespec ts = {0, r->delay_ms * 1000000L};
  nanosleep(&ts, NULL);
  cowmem_pool_release(r->pool, r->slot);
  return NULL;
}

TEST_IMPL(exhaustion_and_recovery) {
  cowmem_pool_t* pool = small_pool(COWMEM_RESET_MADVISE, 2, 2);
  ASSERT_NOT_NULL(pool);
  cowmem_slot_t *s1, *s2, *s3 = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 4 * PS, 8 * PS, &s1));
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 4 * PS, 8 * PS, &s2));
  ASSERT_ERR(cowmem_pool_acquire(pool, NULL, 4 * PS, 8 * PS, &s3), COWMEM_EEXHAUSTED);
  ASSERT_ERR(cowmem_pool_acquire_wait(pool, NULL, 4 * PS, 8 * PS, 30, &s3), COWMEM_ETIMEDOUT);
  ASSERT_NULL(s3);
  releaser_t rel = {pool, s1, 30};
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, NULL, release_later, &rel), 0);
  ASSERT_OK(cowmem_pool_acquire_wait(pool, NULL, 4 * PS, 8 * PS, 5000, &s3));
  pthread_join(t, NULL);
  ASSERT_PTR_EQ(s3, s1);
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_GE(m.exhausted, 2);
  /* The system refusing memory (as with vm.max_map_count reached): the
   * acquire fails with the error, the slot returns to the pool, and once
   * memory is there again everything works. */
  ASSERT_OK(cowmem_pool_release(pool, s3));
  ASSERT_OK(cowmem_pool_release(pool, s2));
  cowmem_image_t* a = pattern_image(0, 2 * PS, 5);
  cowmem__os_inject_fail(COWMEM__OS_mprotect, 0, ENOMEM);
  ASSERT_ERR(cowmem_pool_acquire(pool, a, 6 * PS, 8 * PS, &s1), COWMEM_ENOMEM);
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.failures, 1);
  ASSERT_UEQ(m.in_use, 0);
  ASSERT_OK(cowmem_pool_acquire(pool, a, 4 * PS, 8 * PS, &s1));
  ASSERT_OK(cowmem_pool_acquire(pool, a, 4 * PS, 8 * PS, &s2));
  CHECK(expect_exact(s1, a));
  CHECK(expect_exact(s2, a));
  ASSERT_OK(cowmem_pool_release(pool, s1));
  ASSERT_OK(cowmem_pool_release(pool, s2));
  cowmem_image_release(a);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* In a child with RLIMIT_AS just above what it uses: a pool that needs more
 * fails with ENOMEM and says which fields; a small one still works. */
TEST_IMPL(address_space_limit) {
  PS = cowmem_page_size();
#ifdef UNDER_SANITIZER
  TEST_SKIP("sanitizers reserve terabytes of shadow memory: RLIMIT_AS cannot be set low");
#endif
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit rl = {(rlim_t)1 << 31, (rlim_t)1 << 31}; /* 2 GiB */
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(10);
    cowmem_pool_config_t cfg;
    cowmem_pool_config_init(&cfg);
    cfg.max_slots = 4; /* 4 x 8 GiB */
    cowmem_pool_t* pool = NULL;
    cowmem_diag_t why;
    int r = cowmem_pool_new(&cfg, &pool, &why);
    if (r != COWMEM_ENOMEM) {
      fprintf(stderr, "pool_new under RLIMIT_AS: %s\n", cowmem_err_name(r));
      _exit(11);
    }
    if (strstr(why.reason, "max_slots") == NULL) _exit(12);
    cfg.slot_reserve = 16 * PS;
    cfg.guard_size = 16 * PS;
    if (cowmem_pool_new(&cfg, &pool, &why) != 0) _exit(13);
    cowmem_slot_t* s;
    if (cowmem_pool_acquire(pool, NULL, 4 * PS, 16 * PS, &s) != 0) _exit(14);
    if (cowmem_pool_release(pool, s) != 0 || cowmem_pool_free(pool) != 0) _exit(15);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  return 0;
}

static const char* config_case(int i, cowmem_pool_config_t* c) {
  switch (i) {
    case 0: c->max_slots = 0; return "max_slots";
    case 1: c->slot_reserve = 0; return "slot_reserve";
    case 2: c->slot_reserve = PS + 1; return "slot_reserve";
    case 3: c->guard_size = 100; return "guard_size";
    case 4: c->max_slots = 0; c->max_warm_slots = 0; return "max_slots";
    case 5: c->reset = (cowmem_reset_strategy_t)9; return "reset";
    case 6: c->reset = COWMEM_RESET_KEEP_RESIDENT; c->keep_resident = 7; return "keep_resident";
    case 7: c->reset = COWMEM_RESET_BATCHED; c->batch_size = 0; return "batch_size";
    case 8: c->slot_reserve = (size_t)1 << 62; c->max_slots = 8; c->max_warm_slots = 0; return "max_slots x";
    case 9: c->version = 99; return "cfg";
    default: return NULL;
  }
}

TEST_IMPL(config_errors) {
  PS = cowmem_page_size();
  const char* field;
  cowmem_pool_config_t cfg;
  for (int i = 0; cowmem_pool_config_init(&cfg), (field = config_case(i, &cfg)) != NULL; i++) {
    cowmem_pool_t* pool = NULL;
    cowmem_diag_t why;
    ASSERT_ERR(cowmem_pool_new(&cfg, &pool, &why), COWMEM_EINVAL);
    ASSERT_NULL(pool);
    fprintf(stderr, "%s\n", why.reason);
    ASSERT_EQ(strncmp(why.reason, field, strlen(field)), 0);
  }
  return 0;
}

/* slot_of finds a handed-out slot from any address of its reservation and
 * nothing else: not an idle slot, not an address outside the pool. */
TEST_IMPL(slot_of) {
  cowmem_pool_t* pool = small_pool(COWMEM_RESET_MADVISE, 3, 3);
  ASSERT_NOT_NULL(pool);
  cowmem_slot_t *a = NULL, *b = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 4 * PS, 8 * PS, &a));
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 4 * PS, 8 * PS, &b));
  uint8_t* base = cowmem_slot_base(b);
  ASSERT_PTR_EQ(cowmem_pool_slot_of(pool, base), b);
  ASSERT_PTR_EQ(cowmem_pool_slot_of(pool, base + 64 * PS - 1), b);      /* end of slot */
  ASSERT_PTR_EQ(cowmem_pool_slot_of(pool, base + 80 * PS - 1), b);      /* its guard */
  ASSERT_PTR_EQ(cowmem_pool_slot_of(pool, (uint8_t*)cowmem_slot_base(a)), a);
  ASSERT_NULL(cowmem_pool_slot_of(pool, (uint8_t*)cowmem_slot_base(a) - 1)); /* first guard */
  ASSERT_NULL(cowmem_pool_slot_of(pool, base + 80 * PS)); /* slot 2: never used */
  ASSERT_NULL(cowmem_pool_slot_of(pool, base + 2 * 80 * PS)); /* past the pool */
  ASSERT_NULL(cowmem_pool_slot_of(pool, &pool));               /* not the pool's */
  ASSERT_NULL(cowmem_pool_slot_of(NULL, base));
  ASSERT_OK(cowmem_pool_release(pool, b));
  ASSERT_NULL(cowmem_pool_slot_of(pool, base)); /* idle now */
  /* contains: the whole reservation, idle slots and guards included. */
  uint8_t* first = (uint8_t*)cowmem_slot_base(a);
  ASSERT_TRUE(cowmem_pool_contains(pool, base));
  ASSERT_TRUE(cowmem_pool_contains(pool, base + 3));
  ASSERT_TRUE(cowmem_pool_contains(pool, first - 1));           /* first guard */
  ASSERT_TRUE(cowmem_pool_contains(pool, base + 2 * 80 * PS - 1)); /* last guard */
  ASSERT_FALSE(cowmem_pool_contains(pool, base + 2 * 80 * PS)); /* past the pool */
  ASSERT_FALSE(cowmem_pool_contains(pool, first - 16 * PS - 1)); /* before it */
  ASSERT_FALSE(cowmem_pool_contains(pool, &pool));
  ASSERT_FALSE(cowmem_pool_contains(NULL, base));
  ASSERT_OK(cowmem_pool_release(pool, a));
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

TEST_IMPL(misuse) {
  cowmem_pool_t* p1 = small_pool(COWMEM_RESET_MADVISE, 2, 2);
  cowmem_pool_t* p2 = small_pool(COWMEM_RESET_MADVISE, 2, 2);
  cowmem_slot_t* s = NULL;
  ASSERT_ERR(cowmem_pool_acquire(p1, NULL, 8 * PS, 4 * PS, &s), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_pool_acquire(p1, NULL, 4 * PS, 65 * PS, &s), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_pool_acquire(p1, NULL, 4 * PS + 1, 8 * PS, &s), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_pool_acquire(NULL, NULL, 4 * PS, 8 * PS, &s), COWMEM_EINVAL);
  cowmem_image_t* big = pattern_image(0, 6 * PS, 1);
  ASSERT_ERR(cowmem_pool_acquire(p1, big, 4 * PS, 8 * PS, &s), COWMEM_EINVAL);
  ASSERT_NULL(s);
  ASSERT_OK(cowmem_pool_acquire(p1, NULL, 4 * PS, 8 * PS, &s));
  ASSERT_ERR(cowmem_slot_free(s), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_pool_release(p2, s), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_pool_free(p1), COWMEM_EBUSY);
  ASSERT_OK(cowmem_pool_release(p1, s));
  ASSERT_ERR(cowmem_pool_release(p1, s), COWMEM_ESTATE);
  cowmem_slot_t* mine = NULL;
  ASSERT_OK(cowmem_slot_new(8 * PS, &mine));
  ASSERT_ERR(cowmem_pool_release(p1, mine), COWMEM_EINVAL);
  ASSERT_OK(cowmem_slot_free(mine));
  /* A slot the caller reset or released itself still goes back cleanly. */
  ASSERT_OK(cowmem_pool_acquire(p1, big, 8 * PS, 8 * PS, &s));
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_OK(cowmem_pool_release(p1, s));
  ASSERT_OK(cowmem_pool_acquire(p1, big, 8 * PS, 8 * PS, &s));
  CHECK(expect_exact(s, big));
  ASSERT_OK(cowmem_slot_decommit(s));
  ASSERT_OK(cowmem_pool_release(p1, s));
  ASSERT_OK(cowmem_pool_acquire(p1, big, 8 * PS, 8 * PS, &s));
  CHECK(expect_exact(s, big));
  ASSERT_OK(cowmem_pool_release(p1, s));
  cowmem_image_release(big);
  ASSERT_OK(cowmem_pool_free(p1));
  ASSERT_OK(cowmem_pool_free(p2));
  ASSERT_OK(cowmem_pool_free(NULL));
  return 0;
}

TEST_IMPL(ten_thousand_default_slots) {
#ifdef UNDER_SANITIZER
  TEST_SKIP("sanitizer shadow memory leaves no room for 80 TiB of reservations");
#endif
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.max_slots = 10000;
  cfg.max_warm_slots = 10000;
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t why;
  int r = cowmem_pool_new(&cfg, &pool, &why);
  if (r != 0) fprintf(stderr, "%s\n", why.reason);
  ASSERT_OK(r);
  cowmem_slot_t* s[3];
  for (int i = 0; i < 3; i++) {
    ASSERT_OK(cowmem_pool_acquire(pool, NULL, 64 * KiB, (size_t)4 << 30, &s[i]));
    ((uint8_t*)cowmem_slot_base(s[i]))[0] = 1;
  }
  /* Slots are 8 GiB apart (a 4 GiB slot and its 4 GiB guard). */
  ASSERT_UEQ((uint64_t)((uint8_t*)cowmem_slot_base(s[1]) - (uint8_t*)cowmem_slot_base(s[0])),
             (uint64_t)8 << 30);
  for (int i = 0; i < 3; i++) ASSERT_OK(cowmem_pool_release(pool, s[i]));
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* Threads acquire, write, verify and release for a while; every acquire
 * must see exactly its image. */
typedef struct {
  cowmem_pool_t* pool;
  cowmem_image_t** imgs;
  uint8_t** want; /* each image's first 16 pages */
  unsigned seed;
  double seconds;
  long cycles;
  int failed;
} stress_arg_t;

static void* stress_thread(void* p) {
  stress_arg_t* a = p;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned x = a->seed;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > a->seconds) break;
    x = x * 1103515245u + 12345u;
    int k = (int)((x >> 16) % 4); /* 3 images or none */
    cowmem_slot_t* s = NULL;
    int r = cowmem_pool_acquire_wait(a->pool, k < 3 ? a->imgs[k] : NULL, 16 * PS, 32 * PS, -1, &s);
    if (r != 0) {
      a->failed = 1;
      break;
    }
    uint8_t* m = cowmem_slot_base(s);
    if (memcmp(m, k < 3 ? a->want[k] : a->want[3], 16 * PS) != 0) {
      fprintf(stderr, "thread saw foreign bytes (image %d)\n", k);
      a->failed = 1;
    }
    if ((x >> 8) & 1) cowmem_slot_grow(s, 24 * PS);
    memset(m + ((x >> 4) % 16) * PS, 0xab, PS);
    if (cowmem_pool_release(a->pool, s) != 0) a->failed = 1;
    a->cycles++;
    if (a->failed) break;
  }
  return NULL;
}

static int stress(cowmem_reset_strategy_t reset, double seconds) {
  cowmem_pool_t* pool = small_pool(reset, 6, 4);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* imgs[3];
  uint8_t* want[4];
  for (int i = 0; i < 3; i++) {
    imgs[i] = pattern_image((size_t)i * PS, 8 * PS, (uint8_t)(i * 50));
    want[i] = calloc(1, 16 * PS);
    cowmem_image_read(imgs[i], 0, want[i], 16 * PS);
  }
  want[3] = calloc(1, 16 * PS);
  enum { N = 4 };
  pthread_t th[N];
  stress_arg_t args[N];
  for (int i = 0; i < N; i++) {
    args[i] = (stress_arg_t){pool, imgs, want, (unsigned)(i * 7919 + 1), seconds, 0, 0};
    pthread_create(&th[i], NULL, stress_thread, &args[i]);
  }
  long total = 0;
  int failed = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    total += args[i].cycles;
    failed |= args[i].failed;
  }
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  printf("stress: %ld cycles in %.1f s on %d threads; hits %llu, misses %llu, steals %llu\n",
         total, seconds, N, (unsigned long long)m.affinity_hits,
         (unsigned long long)m.affinity_misses, (unsigned long long)m.steals);
  ASSERT_FALSE(failed);
  ASSERT_GT(total, 0);
  ASSERT_UEQ(m.in_use, 0);
  ASSERT_OK(cowmem_pool_free(pool));
  for (int i = 0; i < 3; i++) {
    cowmem_image_release(imgs[i]);
    free(want[i]);
  }
  free(want[3]);
  return 0;
}

/* More threads than slots under BATCHED, all through acquire_wait: a waiter's
 * retry finds only queued slots and flushes them, and the flush wakes the
 * waiters (itself among them). CI once hung here when the retry ran under
 * the wait lock. */
typedef struct {
  cowmem_pool_t* pool;
  int cycles;
  int failed;
} waiter_arg_t;

static void* waiter_thread(void* p) {
  waiter_arg_t* a = p;
  for (int i = 0; i < a->cycles && !a->failed; i++) {
    cowmem_slot_t* s = NULL;
    int r = cowmem_pool_acquire_wait(a->pool, NULL, 2 * PS, 4 * PS, 10000, &s);
    if (r != 0) {
      fprintf(stderr, "acquire_wait: %s\n", cowmem_err_name(r));
      a->failed = 1;
      break;
    }
    uint8_t* m = cowmem_slot_base(s);
    if (m[0] != 0 || m[PS] != 0) a->failed = 1;
    m[0] = m[PS] = 0x5a;
    if (cowmem_pool_release(a->pool, s) != 0) a->failed = 1;
  }
  return NULL;
}

TEST_IMPL(wait_flushes_batched) {
  cowmem_pool_t* pool = small_pool(COWMEM_RESET_BATCHED, 2, 2);
  ASSERT_NOT_NULL(pool);
  enum { N = 4 };
  pthread_t th[N];
  waiter_arg_t args[N];
  for (int i = 0; i < N; i++) {
    args[i] = (waiter_arg_t){pool, 1500, 0};
    ASSERT_EQ(pthread_create(&th[i], NULL, waiter_thread, &args[i]), 0);
  }
  int failed = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    failed |= args[i].failed;
  }
  ASSERT_FALSE(failed);
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.in_use, 0);
  ASSERT_UEQ(m.releases, (uint64_t)N * 1500);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

TEST_IMPL(threads_stress_madvise) { return stress(COWMEM_RESET_MADVISE, 2.0); }
TEST_IMPL(threads_stress_keep_resident) { return stress(COWMEM_RESET_KEEP_RESIDENT, 1.5); }
TEST_IMPL(threads_stress_batched) { return stress(COWMEM_RESET_BATCHED, 1.5); }

TEST_MAIN(TEST_ENTRY(no_leak_madvise) TEST_ENTRY(no_leak_keep_resident)
          TEST_ENTRY(no_leak_batched) TEST_ENTRY(oob_on_reuse_madvise)
          TEST_ENTRY(oob_on_reuse_keep_resident) TEST_ENTRY(oob_on_reuse_batched)
          TEST_ENTRY(affinity_and_warm_cap) TEST_ENTRY(orphaned_image_leaves_idle_slots)
          TEST_ENTRY(orphan_while_running_madvise) TEST_ENTRY(orphan_while_running_batched)
          TEST_ENTRY(orphan_while_running_adaptive)
          TEST_ENTRY(exhaustion_and_recovery) TEST_ENTRY(address_space_limit)
          TEST_ENTRY(config_errors) TEST_ENTRY(slot_of) TEST_ENTRY(misuse) TEST_ENTRY(ten_thousand_default_slots)
          TEST_ENTRY(threads_stress_madvise) TEST_ENTRY(threads_stress_keep_resident)
          TEST_ENTRY(threads_stress_batched) TEST_ENTRY(wait_flushes_batched))
