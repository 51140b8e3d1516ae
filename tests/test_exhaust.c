/* An acquire never reports the pool exhausted while a slot is free: not
 * while another thread's orphan sweep, trim or BATCHED flush holds idle
 * slots between two lists. The stress tests run as many threads as slots,
 * each holding at most one slot and acquiring without waiting, so every
 * EEXHAUSTED is a false one. The *_seen tests stop a move half-way (an
 * injection hook in the idle store or the reset module) and acquire from
 * another thread meanwhile; release_behind_look stops an acquire's look
 * (the pool's hook) while another thread releases and acquires. Run under
 * TSan and ASan too (label threads). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cowmem.h"
#include "pool/idle.h"
#include "reset/reset.h"
#include "test.h"

enum { SLOTS = 3, PAGES = 8 };

static size_t PS;

static cowmem_pool_t* make_pool(cowmem_reset_strategy_t reset, size_t slots) {
  PS = cowmem_page_size();
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.max_slots = slots;
  cfg.slot_reserve = 2 * PAGES * PS;
  cfg.guard_size = 4 * PS;
  cfg.reset = reset;
  cfg.batch_size = 4;
  cfg.keep_resident = 2 * PS;
  cfg.resident_budget = 4 * PS;
  cfg.sample_every = 4;
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t diag;
  int r = cowmem_pool_new(&cfg, &pool, &diag);
  if (r != 0) fprintf(stderr, "pool: %s: %s\n", cowmem_err_name(r), diag.reason);
  return pool;
}

/* Two pages of bytes derived from salt (never zero), at page 1. */
static cowmem_image_t* make_image(uint8_t salt) {
  size_t len = 2 * PS;
  uint8_t* b = malloc(len);
  if (b == NULL) return NULL;
  for (size_t i = 0; i < len; i++) b[i] = (uint8_t)(i / 3 + salt) | 1;
  cowmem_image_t* img = NULL;
  if (cowmem_image_new_from_bytes(b, len, PS, &img) != 0) img = NULL;
  free(b);
  return img;
}

/* The memory holds the image of salt and zeros (a few probes). */
static int memory_is(const uint8_t* m, uint8_t salt) {
  size_t probes[] = {0, PS - 1, PS, PS + 7, 3 * PS - 1, 3 * PS, PAGES * PS - 1};
  for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
    size_t i = probes[k];
    uint8_t want = i >= PS && i < 3 * PS ? (uint8_t)((i - PS) / 3 + salt) | 1 : 0;
    if (m[i] != want) {
      fprintf(stderr, "salt %u: byte %zu is 0x%02x, expected 0x%02x\n", salt, i, m[i],
              want);
      return 0;
    }
  }
  return 1;
}

/* ---- the stress: SLOTS threads, at most one slot each ---- */

typedef struct {
  cowmem_pool_t* pool;
  cowmem_image_t* steady[SLOTS];
  double seconds;
  long max_cycles;
  _Atomic int stop;
  _Atomic int failed;
  _Atomic long cycles;
  _Atomic long orphans;
  _Atomic long trims;
} stress_t;

typedef struct {
  stress_t* st;
  int id;
} worker_arg_t;

static double since(const struct timespec* t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* An acquire failed: say what the pool held then. */
static void report(stress_t* st, int r) {
  cowmem_pool_metrics_t m;
  cowmem_pool_metrics(st->pool, &m);
  fprintf(stderr,
          "acquire: %s with at most %d of %d slots held by the other threads "
          "(in_use %llu warm %llu cold %llu pending %llu)\n",
          cowmem_err_name(r), SLOTS - 1, SLOTS, (unsigned long long)m.in_use,
          (unsigned long long)m.warm, (unsigned long long)m.cold,
          (unsigned long long)m.pending);
}

/* One instance: acquire (never waiting), check, dirty, release. */
static int cycle(stress_t* st, cowmem_image_t* img, uint8_t salt) {
  cowmem_slot_t* s = NULL;
  int r = cowmem_pool_acquire(st->pool, img, PAGES * PS, 2 * PAGES * PS, &s);
  if (r != 0) {
    report(st, r);
    return 1;
  }
  uint8_t* m = cowmem_slot_base(s);
  int ok = memory_is(m, salt);
  memset(m, 0xee, 4 * PS);
  r = cowmem_pool_release(st->pool, s);
  if (r != 0) fprintf(stderr, "release: %s\n", cowmem_err_name(r));
  return !ok || r != 0;
}

/* Worker 0 makes an image per instance and drops it while the instance
 * lives: its slot goes idle with an orphan, which the next sweep (any
 * thread's acquire or release) takes off the warm lists and decommits. The
 * others run instances of an image that lives throughout. */
static void* worker(void* p) {
  worker_arg_t* a = p;
  stress_t* st = a->st;
  while (!atomic_load(&st->stop) && !atomic_load(&st->failed)) {
    int bad;
    if (a->id == 0) {
      uint8_t salt = (uint8_t)(0x40 + atomic_load(&st->orphans) % 64);
      cowmem_image_t* img = make_image(salt);
      if (img == NULL) {
        fprintf(stderr, "make_image failed\n");
        bad = 1;
      } else {
        cowmem_slot_t* s = NULL;
        bad = cowmem_pool_acquire(st->pool, img, PAGES * PS, 2 * PAGES * PS, &s);
        if (bad != 0) {
          report(st, bad);
          cowmem_image_release(img);
        } else {
          cowmem_image_release(img); /* the live slot holds the last reference */
          bad = !memory_is(cowmem_slot_base(s), salt);
          bad |= cowmem_pool_release(st->pool, s) != 0;
          atomic_fetch_add(&st->orphans, 1);
        }
      }
    } else {
      bad = cycle(st, st->steady[a->id], (uint8_t)(0x10 * a->id));
    }
    if (bad) atomic_store(&st->failed, 1);
    if (atomic_fetch_add(&st->cycles, 1) + 1 >= st->max_cycles) atomic_store(&st->stop, 1);
  }
  return NULL;
}

/* Holds no slot: trims now and then, moving warm slots to the cold list. */
static void* trimmer(void* p) {
  stress_t* st = p;
  while (!atomic_load(&st->stop) && !atomic_load(&st->failed)) {
    if (cowmem_pool_trim(st->pool) != 0) atomic_store(&st->failed, 1);
    atomic_fetch_add(&st->trims, 1);
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static int stress(cowmem_reset_strategy_t reset, bool trim) {
  stress_t st;
  memset(&st, 0, sizeof st);
  st.pool = make_pool(reset, SLOTS);
  ASSERT_NOT_NULL(st.pool);
  for (int i = 1; i < SLOTS; i++) {
    st.steady[i] = make_image((uint8_t)(0x10 * i));
    ASSERT_NOT_NULL(st.steady[i]);
  }
  /* A few seconds at most on a loaded machine, under sanitizers too. */
  st.seconds = 1.5;
  st.max_cycles = 200000;
  pthread_t t[SLOTS + 1];
  worker_arg_t args[SLOTS];
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < SLOTS; i++) {
    args[i] = (worker_arg_t){&st, i};
    ASSERT_EQ(pthread_create(&t[i], NULL, worker, &args[i]), 0);
  }
  if (trim) ASSERT_EQ(pthread_create(&t[SLOTS], NULL, trimmer, &st), 0);
  while (!atomic_load(&st.stop) && !atomic_load(&st.failed) && since(&t0) < st.seconds) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  atomic_store(&st.stop, 1);
  for (int i = 0; i < SLOTS + (trim ? 1 : 0); i++) ASSERT_EQ(pthread_join(t[i], NULL), 0);
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(st.pool, &m));
  fprintf(stderr, "%ld cycles, %ld orphans, %ld trims; exhausted %llu\n",
          atomic_load(&st.cycles), atomic_load(&st.orphans), atomic_load(&st.trims),
          (unsigned long long)m.exhausted);
  int failed = atomic_load(&st.failed);
  long orphans = atomic_load(&st.orphans);
  ASSERT_EQ(failed, 0);
  ASSERT_UEQ(m.exhausted, 0);
  ASSERT_UEQ(m.in_use, 0);
  ASSERT_GT(orphans, 0);
  for (int i = 1; i < SLOTS; i++) cowmem_image_release(st.steady[i]);
  ASSERT_OK(cowmem_pool_free(st.pool));
  cowmem_stats_t s;
  cowmem_stats_get(&s);
  ASSERT_UEQ(s.images_live, 0);
  return 0;
}

TEST_IMPL(orphans_madvise) { return stress(COWMEM_RESET_MADVISE, false); }
TEST_IMPL(orphans_keep_resident) { return stress(COWMEM_RESET_KEEP_RESIDENT, false); }
TEST_IMPL(orphans_batched) { return stress(COWMEM_RESET_BATCHED, false); }
TEST_IMPL(orphans_adaptive) { return stress(COWMEM_RESET_ADAPTIVE, false); }
TEST_IMPL(orphans_trims_madvise) { return stress(COWMEM_RESET_MADVISE, true); }
TEST_IMPL(orphans_trims_batched) { return stress(COWMEM_RESET_BATCHED, true); }

/* ---- one move stopped half-way ---- */

typedef struct {
  cowmem_pool_t* pool;
  cowmem_image_t* image;
  pthread_t thread;
  _Atomic int done;
  int result;
  cowmem_slot_t* slot;
} meanwhile_t;

static void* acquire_thread(void* p) {
  meanwhile_t* w = p;
  w->result = cowmem_pool_acquire(w->pool, w->image, PAGES * PS, PAGES * PS, &w->slot);
  atomic_store(&w->done, 1);
  return NULL;
}

/* Called by the mover with slots off every list: another thread acquires.
 * A correct pool keeps it waiting for the move; give it 100 ms to report
 * (wrongly) that there is no slot. */
static void acquire_from_another_thread(void* p) {
  meanwhile_t* w = p;
  if (pthread_create(&w->thread, NULL, acquire_thread, w) != 0) abort();
  for (int i = 0; i < 100 && !atomic_load(&w->done); i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

/* After the move: the other thread got the slot, with the image and
 * zeros, and the pool never said it was exhausted. */
static int meanwhile_check(meanwhile_t* w, uint8_t salt) {
  ASSERT_EQ(pthread_join(w->thread, NULL), 0);
  ASSERT_OK(w->result);
  ASSERT_TRUE(memory_is(cowmem_slot_base(w->slot), salt));
  ASSERT_OK(cowmem_pool_release(w->pool, w->slot));
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(w->pool, &m));
  ASSERT_UEQ(m.exhausted, 0);
  cowmem_image_release(w->image);
  ASSERT_OK(cowmem_pool_free(w->pool));
  return 0;
}

/* A pool of two slots: the first idle with an image nobody holds any
 * more (the next sweep's), the second in use, returned in *held. */
static cowmem_pool_t* orphan_pool(cowmem_slot_t** idle, cowmem_slot_t** held) {
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_MADVISE, 2);
  cowmem_image_t* orphan = pool ? make_image(0x31) : NULL;
  if (orphan == NULL ||
      cowmem_pool_acquire(pool, orphan, PAGES * PS, PAGES * PS, idle) != 0 ||
      cowmem_pool_acquire(pool, NULL, PAGES * PS, PAGES * PS, held) != 0) {
    fprintf(stderr, "orphan_pool: setup failed\n");
    abort();
  }
  cowmem_image_release(orphan);
  if (cowmem_pool_release(pool, *idle) != 0) abort();
  return pool;
}

/* A sweep holds an orphan's slot, the only free one, while the thread that
 * runs it releases another (not yet back). */
TEST_IMPL(sweep_move_seen) {
  cowmem_slot_t *a, *b;
  meanwhile_t w = {.pool = orphan_pool(&a, &b), .image = make_image(0x52)};
  ASSERT_NOT_NULL(w.image);
  cowmem__idle_move_inject(acquire_from_another_thread, &w);
  ASSERT_OK(cowmem_pool_release(w.pool, b)); /* its sweep takes a */
  return meanwhile_check(&w, 0x52);
}

/* The only slot, idle (warm, or queued under BATCHED), is moved by a trim
 * or a flush. */
static int one_slot_moved(cowmem_reset_strategy_t reset) {
  meanwhile_t w = {.pool = make_pool(reset, 1), .image = make_image(0x52)};
  ASSERT_NOT_NULL(w.pool);
  ASSERT_NOT_NULL(w.image);
  cowmem_slot_t* a;
  ASSERT_OK(cowmem_pool_acquire(w.pool, w.image, PAGES * PS, PAGES * PS, &a));
  memset(cowmem_slot_base(a), 0xee, PS);
  ASSERT_OK(cowmem_pool_release(w.pool, a));
  if (reset == COWMEM_RESET_BATCHED) {
    cowmem__reset_flush_inject(acquire_from_another_thread, &w);
    ASSERT_OK(cowmem_pool_flush(w.pool));
  } else {
    cowmem__idle_move_inject(acquire_from_another_thread, &w);
    ASSERT_OK(cowmem_pool_trim(w.pool));
  }
  return meanwhile_check(&w, 0x52);
}

TEST_IMPL(trim_move_seen) { return one_slot_moved(COWMEM_RESET_MADVISE); }
TEST_IMPL(flush_move_seen) { return one_slot_moved(COWMEM_RESET_BATCHED); }

/* ---- a release behind the look ---- */

/* A BATCHED pool of two slots, both held by the test: s (image a) and u.
 * Then an acquire of image b, stopped twice by the look hook:
 *   before its look: another thread releases s, which waits in the queue;
 *   in the look, after the look's own flush made s warm (the wrong image)
 *   and before the steal: another thread releases u into the queue (a
 *   place the look has passed), then acquires image a and gets s.
 * u is free all along the look's end, so EEXHAUSTED would be false. */
typedef struct {
  cowmem_pool_t* pool;
  cowmem_image_t* a;
  cowmem_slot_t* s;
  cowmem_slot_t* u;
  pthread_t acquirer;
  int phase;
  int result[2];
  cowmem_slot_t* got; /* the other thread's acquire of a */
} behind_t;

static void* behind_release_s(void* p) {
  behind_t* b = p;
  b->result[0] = cowmem_pool_release(b->pool, b->s);
  return NULL;
}

static void* behind_swap(void* p) {
  behind_t* b = p;
  b->result[0] = cowmem_pool_release(b->pool, b->u);
  b->result[1] = cowmem_pool_acquire(b->pool, b->a, PAGES * PS, PAGES * PS, &b->got);
  return NULL;
}

static void behind_run(behind_t* b, void* (*fn)(void*)) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, b) != 0 || pthread_join(t, NULL) != 0) abort();
  if (b->result[0] != 0 || b->result[1] != 0) {
    fprintf(stderr, "behind: the other thread's release/acquire: %s/%s\n",
            cowmem_err_name(b->result[0]), cowmem_err_name(b->result[1]));
    abort();
  }
}

static void behind_hook(void* p, int where) {
  behind_t* b = p;
  if (!pthread_equal(pthread_self(), b->acquirer)) return;
  if (b->phase == 0 && where == COWMEM__POOL_LOOK_BEGIN) {
    b->phase = 1;
    behind_run(b, behind_release_s);
  } else if (b->phase == 1 && where == COWMEM__POOL_LOOK_STEAL) {
    b->phase = 2;
    behind_run(b, behind_swap);
  }
}

TEST_IMPL(release_behind_look) {
  behind_t b = {.pool = make_pool(COWMEM_RESET_BATCHED, 2), .a = make_image(0x61)};
  cowmem_image_t* other = make_image(0x62);
  ASSERT_NOT_NULL(b.pool);
  ASSERT_NOT_NULL(b.a);
  ASSERT_NOT_NULL(other);
  ASSERT_OK(cowmem_pool_acquire(b.pool, b.a, PAGES * PS, PAGES * PS, &b.s));
  ASSERT_OK(cowmem_pool_acquire(b.pool, NULL, PAGES * PS, PAGES * PS, &b.u));
  memset(cowmem_slot_base(b.s), 0xee, 4 * PS);
  memset(cowmem_slot_base(b.u), 0xee, 4 * PS);
  b.acquirer = pthread_self();
  cowmem__pool_look_inject(behind_hook, &b);
  cowmem_slot_t* mine = NULL;
  int r = cowmem_pool_acquire(b.pool, other, PAGES * PS, PAGES * PS, &mine);
  cowmem__pool_look_inject(NULL, NULL);
  ASSERT_EQ(b.phase, 2); /* both stops were reached */
  ASSERT_OK(r);
  ASSERT_PTR_EQ(mine, b.u);
  ASSERT_TRUE(memory_is(cowmem_slot_base(mine), 0x62));
  ASSERT_PTR_EQ(b.got, b.s);
  ASSERT_TRUE(memory_is(cowmem_slot_base(b.got), 0x61));
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(b.pool, &m));
  ASSERT_UEQ(m.exhausted, 0);
  ASSERT_OK(cowmem_pool_release(b.pool, mine));
  ASSERT_OK(cowmem_pool_release(b.pool, b.got));
  cowmem_image_release(b.a);
  cowmem_image_release(other);
  ASSERT_OK(cowmem_pool_free(b.pool));
  return 0;
}

/* A slot a sweep holds is nobody's: a stale release of it is refused, and
 * it is not found as a live slot. */
typedef struct {
  cowmem_pool_t* pool;
  cowmem_slot_t* slot;
  int release;
  cowmem_slot_t* found;
} stale_t;

static void release_stale(void* p) {
  stale_t* s = p;
  s->found = cowmem_pool_slot_of(s->pool, cowmem_slot_base(s->slot));
  s->release = cowmem_pool_release(s->pool, s->slot);
}

TEST_IMPL(stale_release_during_sweep) {
  cowmem_slot_t *a, *b;
  cowmem_pool_t* pool = orphan_pool(&a, &b);
  stale_t s = {.pool = pool, .slot = a, .release = 1};
  cowmem__idle_move_inject(release_stale, &s);
  ASSERT_OK(cowmem_pool_release(pool, b)); /* its sweep takes a */
  ASSERT_ERR(s.release, COWMEM_ESTATE);
  ASSERT_NULL(s.found);
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.in_use, 0);
  ASSERT_UEQ(m.cold + m.warm, 2);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

TEST_MAIN(TEST_ENTRY(orphans_madvise) TEST_ENTRY(orphans_keep_resident)
              TEST_ENTRY(orphans_batched) TEST_ENTRY(orphans_adaptive)
                  TEST_ENTRY(orphans_trims_madvise) TEST_ENTRY(orphans_trims_batched)
                      TEST_ENTRY(sweep_move_seen) TEST_ENTRY(trim_move_seen)
                          TEST_ENTRY(flush_move_seen)
                              TEST_ENTRY(stale_release_during_sweep)
                                  TEST_ENTRY(release_behind_look))
