/* Pools: many slots in one reservation, reused by image affinity. This
 * file is the pool API: configuration, the reservation, acquire (waiting
 * too) and release. Where idle slots wait and in which order they are found
 * is the idle store's (idle.c); how a released slot is reset is the reset
 * module's (reset/). */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool/idle.h"
#include "image/image.h"
#include "reset/reset.h"

typedef cowmem__entry_t entry_t;

#define METRICS(XX) XX(acquires) XX(exhausted) XX(releases) XX(failures)

enum {
#define POOL_METRIC_ENUM(name) M_##name,
  METRICS(POOL_METRIC_ENUM)
#undef POOL_METRIC_ENUM
      M_COUNT
};

/* Counters, one set per shard, each on its own cache lines, summed when
 * read: a counter shared by all threads and written on every acquire and
 * release moves its cache line between CPUs each time; a shard's stays with
 * the thread that uses it. (On the 2-core VM the 2-thread K=0 cycle is
 * bounded by the kernel instead: madvise and PAGEMAP_SCAN share the mm's
 * lock and TLB state; see bench_adaptive's throughput.) */
typedef struct {
  _Alignas(64) _Atomic uint64_t m[M_COUNT];
  _Atomic uint64_t resets[COWMEM_RESET_COUNT_];
  _Atomic uint64_t in_use; /* acquires minus releases made in this shard
                              (mod 2^64: summed as signed) */
  _Atomic uint64_t landed; /* releases whose slot is back where an acquire
                              looks (see releases_look_end) */
} shard_stats_t;

struct cowmem_pool_s {
  shard_stats_t stats[COWMEM__SHARDS];
  cowmem_pool_config_t cfg;
  uint8_t* base;
  size_t reserve_len;
  size_t stride;
  entry_t* entries;
  cowmem__idle_t* idle;
  cowmem__reset_t* reset;
  pthread_mutex_t wait_lock;
  pthread_cond_t wait_cond;
  _Atomic int waiters;
  _Atomic uint64_t release_seq;
  _Atomic uint64_t flushed_epoch; /* cowmem__orphan_epoch at the last
                                     flush of the queue for orphans */
  bool queues;  /* the reset may queue slots (cowmem__reset_queues) */
};

#define SHARD_ADD(pool, field, v)                                                        \
  do {                                                                                   \
    int s_ = cowmem__os_stripe();                                                        \
    cowmem__stripe_add(s_, &(pool)->stats[s_].field, (uint64_t)(v));                     \
  } while (0)
#define METRIC_INC(pool, name) SHARD_ADD(pool, m[M_##name], 1)

/* A shard counter summed over the shards (mod 2^64). */
static uint64_t shard_sum(cowmem_pool_t* pool, size_t offset) {
  uint64_t n = 0;
  for (int i = 0; i < COWMEM__SHARDS; i++)
    n += atomic_load((_Atomic uint64_t*)((char*)&pool->stats[i] + offset));
  return n;
}
#define SHARD_SUM(pool, field) shard_sum(pool, offsetof(shard_stats_t, field))

static entry_t* entry_of(cowmem_slot_t* slot) {
  return (entry_t*)((char*)slot - offsetof(entry_t, slot));
}

/* ---- configuration ---- */

void cowmem_pool_config_init(cowmem_pool_config_t* cfg) {
  if (cfg == NULL) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->version = COWMEM_POOL_CONFIG_VERSION;
  cfg->max_slots = 1000;
  /* The wasm32 layout: a 2 GiB guard let base + u32 + u32 reach the next
   * slot's accessible bytes (its stride was 6 GiB, the reach 8 GiB). */
  cfg->slot_reserve = COWMEM_WASM32_SLOT_RESERVE;
  cfg->guard_size = COWMEM_WASM32_GUARD_SIZE;
  cfg->max_warm_slots = SIZE_MAX; /* all of them */
  cfg->reset = COWMEM_RESET_MADVISE;
  cfg->keep_resident = 64 * 1024;
  cfg->batch_size = 32;
  cfg->resident_budget = (size_t)1 << 20;
  cfg->sample_every = 64;
}

void cowmem_pool_config_init_wasm32(cowmem_pool_config_t* cfg) {
  cowmem_pool_config_init(cfg);
  if (cfg == NULL) return;
  cfg->slot_reserve = COWMEM_WASM32_SLOT_RESERVE;
  cfg->guard_size = COWMEM_WASM32_GUARD_SIZE;
}

static const char* pool_config_check(const cowmem_pool_config_t* c, size_t* total) {
  if (c == NULL || c->version != COWMEM_POOL_CONFIG_VERSION)
    return "cfg: NULL or not filled by cowmem_pool_config_init";
  if (c->max_slots == 0) return "max_slots: must be at least 1";
  if (c->max_slots > UINT32_MAX) return "max_slots: more than 2^32 - 1 slots";
  if (c->slot_reserve == 0 || !cowmem__is_page_multiple(c->slot_reserve))
    return "slot_reserve: must be a non-zero multiple of the page size";
  if (!cowmem__is_page_multiple(c->guard_size))
    return "guard_size: must be a multiple of the page size";
  if ((unsigned)c->reset >= COWMEM_RESET_COUNT_) return "reset: unknown strategy";
  if (c->reset == COWMEM_RESET_KEEP_RESIDENT &&
      (!cowmem__is_page_multiple(c->keep_resident) || c->keep_resident > c->slot_reserve))
    return "keep_resident: must be a multiple of the page size, at most slot_reserve";
  if (c->reset == COWMEM_RESET_BATCHED && (c->batch_size == 0 || c->batch_size > 1 << 20))
    return "batch_size: must be between 1 and 2^20";
  if (c->reset == COWMEM_RESET_ADAPTIVE &&
      (!cowmem__is_page_multiple(c->resident_budget) ||
       c->resident_budget > c->slot_reserve))
    return "resident_budget: must be a multiple of the page size, at most slot_reserve";
  if (c->reset == COWMEM_RESET_ADAPTIVE &&
      (c->sample_every == 0 || c->sample_every > 1 << 30))
    return "sample_every: must be between 1 and 2^30";
  if ((c->flags & ~(unsigned)COWMEM_POOL_STRICT_LIMITS) != 0)
    return "flags: unknown bits";
  size_t stride = c->slot_reserve + c->guard_size;
  if (stride < c->slot_reserve || stride > (SIZE_MAX - c->guard_size) / c->max_slots)
    return "max_slots x (slot_reserve + guard_size): overflows the address space";
  *total = stride * c->max_slots + c->guard_size;
  return NULL;
}

/* Fill diag (if any) and return code. */
static int pool_fail(cowmem_diag_t* diag, int code, const char* reason) {
  if (diag != NULL) {
    diag->code = code;
    snprintf(diag->reason, sizeof diag->reason, "%s", reason);
  }
  return code;
}

/* Could a full pool take more mappings than vm.max_map_count leaves the
 * process? (The issue that made this: 10,000 slots of 7 mappings each
 * stopped at 9,358 with a bare ENOMEM.) Said in diag with code 0, or with
 * STRICT_LIMITS refused. Costs a read of /proc/self/maps, once per pool. */
static int pool_map_check(const cowmem_pool_config_t* c, cowmem_diag_t* diag) {
  uint64_t limit = 0, count = 0;
  if (cowmem__os_map_limit(&limit) != 0 || cowmem__os_map_count(&count) != 0) return 0;
  uint64_t per = cowmem__slot_maps_max(), need = (uint64_t)c->max_slots * per + 1;
  if (count + need <= limit) return 0;
  bool strict = (c->flags & COWMEM_POOL_STRICT_LIMITS) != 0;
  char why[128];
  snprintf(why, sizeof why,
           "max_slots: a full pool may need %llu mappings (%llu a slot), %llu left "
           "of vm.max_map_count %llu",
           (unsigned long long)need, (unsigned long long)per,
           (unsigned long long)(limit > count ? limit - count : 0),
           (unsigned long long)limit);
  cowmem__verbose("%s", why);
  if (diag != NULL) snprintf(diag->reason, sizeof diag->reason, "%s", why);
  return strict ? pool_fail(diag, COWMEM_EMAPLIMIT, why) : 0;
}

int cowmem_pool_new(const cowmem_pool_config_t* cfg, cowmem_pool_t** out,
                    cowmem_diag_t* diag) {
  if (diag != NULL) memset(diag, 0, sizeof *diag);
  size_t total = 0;
  const char* bad = pool_config_check(cfg, &total);
  if (bad != NULL || out == NULL)
    return pool_fail(diag, COWMEM_EINVAL, bad ? bad : "out: NULL");
  int limits = pool_map_check(cfg, diag);
  if (limits != 0) return limits;
  /* On cache lines of their own: the per-shard counters, and each slot's
   * entry (see entry_t). */
  cowmem_pool_t* pool = cowmem__alloc_lines(1, sizeof *pool);
  entry_t* entries = pool ? cowmem__alloc_lines(cfg->max_slots, sizeof *entries) : NULL;
  int r = entries == NULL ? COWMEM_ENOMEM : 0;
  if (r == 0)
    r = cowmem__idle_new(entries, cfg->max_slots, cfg->max_warm_slots, &pool->idle);
  if (r == 0) r = cowmem__reset_new(cfg, &pool->reset);
  if (r != 0) {
    if (pool != NULL) {
      cowmem__idle_free(pool->idle);
      free(pool);
    }
    free(entries);
    return pool_fail(diag, r, "out of memory for the pool's bookkeeping");
  }
  void* base = NULL;
  int e = cowmem__os_reserve(total, &base);
  if (e) {
    cowmem__reset_free(pool->reset);
    cowmem__idle_free(pool->idle);
    free(entries);
    free(pool);
    return pool_fail(diag, cowmem__err_from_os(e),
                     "max_slots x (slot_reserve + guard_size) + guard_size: more "
                     "address space than the process can reserve");
  }
  pool->cfg = *cfg;
  pool->base = base;
  pool->reserve_len = total;
  pool->stride = cfg->slot_reserve + cfg->guard_size;
  pool->entries = entries;
  pool->queues = cowmem__reset_queues(pool->reset);
  for (size_t i = 0; i < cfg->max_slots; i++) {
    entry_t* en = &entries[i];
    cowmem__slot_init(&en->slot, pool->base + cfg->guard_size + i * pool->stride,
                      cfg->slot_reserve);
    en->slot.pool = pool;
    atomic_init(&en->state, COWMEM__ENTRY_NEVER);
  }
  pthread_mutex_init(&pool->wait_lock, NULL);
  pthread_cond_init(&pool->wait_cond, NULL);
  *out = pool;
  return 0;
}

static int flush_queue(cowmem_pool_t* pool, cowmem__reset_which_t which);

/* Decommit idle slots of orphaned images. A queued slot may hold an
 * orphan too, keeping its memfd until the queue fills: flush it first when
 * images became orphans since the last time (rare: an image replaced), so
 * that the sweep finds them idle. */
static void pool_sweep(cowmem_pool_t* pool) {
  if (pool->queues) {
    uint64_t ep = atomic_load_explicit(&cowmem__orphan_epoch, memory_order_relaxed);
    if (atomic_load_explicit(&pool->flushed_epoch, memory_order_relaxed) != ep &&
        atomic_exchange(&pool->flushed_epoch, ep) != ep)
      flush_queue(pool, COWMEM__FLUSH_ALL);
  }
  cowmem__idle_sweep(pool->idle);
}

int cowmem_pool_free(cowmem_pool_t* pool) {
  if (pool == NULL) return 0;
  if (SHARD_SUM(pool, in_use) != 0) return COWMEM_EBUSY;
  /* Slots still queued hold images: let them go too. */
  flush_queue(pool, COWMEM__FLUSH_ALL);
  cowmem__idle_free(pool->idle);
  for (size_t i = 0; i < pool->cfg.max_slots; i++) {
    cowmem_slot_t* s = &pool->entries[i].slot;
    cowmem__image_pool_drop(s->image);
    s->image = NULL;
  }
  cowmem__os_unmap(pool->base, pool->reserve_len);
  pthread_mutex_destroy(&pool->wait_lock);
  pthread_cond_destroy(&pool->wait_cond);
  cowmem__reset_free(pool->reset);
  free(pool->entries);
  free(pool);
  return 0;
}

/* ---- acquire and release ---- */

#ifdef COWMEM_TESTING
size_t cowmem__pool_queue_size(cowmem_pool_t* pool) {
  return cowmem__reset_queue_size(pool->reset);
}

static void (*_Atomic look_hook)(void* arg, int where);
static void* look_hook_arg;

void cowmem__pool_look_inject(void (*fn)(void* arg, int where), void* arg) {
  look_hook_arg = arg;
  atomic_store(&look_hook, fn);
}

static void look_meanwhile(int where) {
  void (*hook)(void*, int) = atomic_load(&look_hook);
  if (hook != NULL) hook(look_hook_arg, where);
}
#else
static void look_meanwhile(int where) {
  (void)where;
}
#endif

static entry_t* find_slot(cowmem_pool_t* pool, uint64_t key, bool count) {
  /* Queued slots become idle on a flush; one of them may even be of this
   * image. ADAPTIVE's are: its blind resets queue what is left of them,
   * a discard that is one system call for all, much less than mapping the
   * image into a decommitted slot, so the flush comes first. */
  bool flush_first = pool->queues && pool->cfg.reset == COWMEM_RESET_ADAPTIVE;
  entry_t* e = cowmem__idle_take(pool->idle, key, count, !flush_first);
  if (e == NULL && pool->queues) {
    /* This thread's own queue first (its slots come back to its shard),
     * with any that no thread pushes to any more; then all. No idle slot
     * of any image: the queues hold too many (reset.c). */
    if (flush_first && !cowmem__idle_warm_any(pool->idle))
      cowmem__reset_starved(pool->reset);
    int n = flush_first ? flush_queue(pool, COWMEM__FLUSH_MISSED) : 0;
    if (n == 0) n = flush_queue(pool, COWMEM__FLUSH_ALL);
    if (n > 0 || flush_first) e = cowmem__idle_take(pool->idle, key, false, true);
  }
  if (e == NULL) look_meanwhile(COWMEM__POOL_LOOK_STEAL);
  if (e == NULL) e = cowmem__idle_steal(pool->idle);
  return e;
}

/* A look's view of releases: started is the releases metric (counted once
 * the slot is the pool's), landed counted once the slot is in the queue or
 * the idle store. Read landed first: a release counted as landed has
 * counted as started, so started - landed never undercounts. */
static int releases_look_end(cowmem_pool_t* pool, uint64_t landed_before) {
  atomic_thread_fence(memory_order_seq_cst);
  uint64_t landed = SHARD_SUM(pool, landed);
  uint64_t started = SHARD_SUM(pool, m[M_releases]);
  if (started != landed) return COWMEM__LOOK_MOVING;
  if (landed != landed_before) return COWMEM__LOOK_MOVED;
  return COWMEM__LOOK_SETTLED;
}

/* After a miss. The look visits the places a slot can be one at a time, so
 * it can miss a free slot that changes place meanwhile: another thread's
 * sweep, trim or flush holding it between two places (off a warm list, not
 * yet on the cold one), or a release landing a slot in a place the look
 * has passed (the reset queue, say) while the same thread's next acquire
 * takes the slot the look was about to reach. A host that cannot fail an
 * allocation dies of such a miss. So the pool is exhausted only after a
 * look during which no other thread's move or release was in flight or
 * finished: then no slot arrived anywhere, and every slot free at the
 * look's end was free and in one place all along, where the look saw it.
 * A move or release in flight is finite work that never waits for an
 * acquire (a decommit, a batch's discard, list locks), so waiting for it
 * is bounded by it; a look that raced a finished one is simply repeated.
 * Costs nothing until a miss. */
static entry_t* find_slot_settled(cowmem_pool_t* pool, uint64_t key) {
  for (;;) {
    look_meanwhile(COWMEM__POOL_LOOK_BEGIN);
    cowmem__idle_look_t look;
    cowmem__idle_look_begin(pool->idle, &look);
    uint64_t landed = SHARD_SUM(pool, landed);
    entry_t* e = find_slot(pool, key, false);
    if (e != NULL) return e;
    int m = cowmem__idle_look_end(pool->idle, &look);
    if (m == COWMEM__LOOK_SETTLED) m = releases_look_end(pool, landed);
    if (m == COWMEM__LOOK_SETTLED) return NULL;
    if (m == COWMEM__LOOK_MOVING) sched_yield();
  }
}

int cowmem_pool_acquire(cowmem_pool_t* pool, cowmem_image_t* image, size_t initial_size,
                        size_t max_size, cowmem_slot_t** out) {
  if (pool == NULL || out == NULL) return COWMEM_EINVAL;
  if (!cowmem__is_page_multiple(initial_size) || !cowmem__is_page_multiple(max_size) ||
      initial_size > max_size || max_size > pool->cfg.slot_reserve)
    return COWMEM_EINVAL;
  if (cowmem__image_end(image) > initial_size) return COWMEM_EINVAL;
  pool_sweep(pool);
  METRIC_INC(pool, acquires);
  uint64_t key = cowmem__image_key(image);
  entry_t* e = find_slot(pool, key, true);
  if (e == NULL) e = find_slot_settled(pool, key);
  if (e == NULL) {
    METRIC_INC(pool, exhausted);
    return COWMEM_EEXHAUSTED;
  }
  cowmem_slot_t* s = &e->slot;
  int r = 0;
  if (s->state == COWMEM_SLOT_BROKEN) r = cowmem_slot_decommit(s);
  s->limit = max_size;
  if (r == 0) r = cowmem_slot_instantiate(s, initial_size, image);
  if (r != 0) {
    /* The slot is EMPTY (or BROKEN): back to the pool, decommitted. A
     * move, as a release would be: a look elsewhere may have passed the
     * cold list. */
    METRIC_INC(pool, failures);
    cowmem__idle_move_begin(pool->idle);
    cowmem__idle_put_cold(pool->idle, e);
    cowmem__idle_move_end(pool->idle);
    return r;
  }
  SHARD_ADD(pool, in_use, 1);
  *out = s;
  return 0;
}
int cowmem_pool_acquire_wait(cowmem_pool_t* pool, cowmem_image_t* image,
                             size_t initial_size, size_t max_size, long timeout_ms,
                             cowmem_slot_t** out) {
  if (pool == NULL) return COWMEM_EINVAL;
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  if (timeout_ms >= 0) {
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  for (;;) {
    int r = cowmem_pool_acquire(pool, image, initial_size, max_size, out);
    if (r != COWMEM_EEXHAUSTED) return r;
    /* Releases bump release_seq only when they see a waiter. Registered now,
     * look once more: a release that did not see us made its slot available
     * before it looked (both sides fence), so this try finds it. The try runs
     * without wait_lock: it may flush a reset queue (BATCHED, ADAPTIVE), and
     * the flush wakes waiters, which takes wait_lock (non-recursive). */
    atomic_fetch_add(&pool->waiters, 1);
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t seq = atomic_load(&pool->release_seq);
    r = cowmem_pool_acquire(pool, image, initial_size, max_size, out);
    int w = 0;
    if (r == COWMEM_EEXHAUSTED) {
      /* release_seq moves under wait_lock, so a release after our load is
       * seen here or wakes the wait. */
      pthread_mutex_lock(&pool->wait_lock);
      while (w == 0 && atomic_load(&pool->release_seq) == seq) {
        if (timeout_ms < 0)
          w = pthread_cond_wait(&pool->wait_cond, &pool->wait_lock);
        else
          w = pthread_cond_timedwait(&pool->wait_cond, &pool->wait_lock, &deadline);
      }
      pthread_mutex_unlock(&pool->wait_lock);
    }
    atomic_fetch_sub(&pool->waiters, 1);
    if (r != COWMEM_EEXHAUSTED) return r;
    if (w != 0 && atomic_load(&pool->release_seq) == seq) return COWMEM_ETIMEDOUT;
  }
}

static void wake_waiters(cowmem_pool_t* pool) {
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&pool->waiters, memory_order_relaxed) > 0) {
    pthread_mutex_lock(&pool->wait_lock);
    atomic_fetch_add(&pool->release_seq, 1);
    pthread_cond_broadcast(&pool->wait_cond);
    pthread_mutex_unlock(&pool->wait_lock);
  }
}

/* Reset flushed slots become idle; failed ones were released to EMPTY. */
static void after_reset(cowmem_pool_t* pool, entry_t* e, int r) {
  SHARD_ADD(pool, resets[pool->cfg.reset], 1);
  if (r == 0 && e->slot.state == COWMEM_SLOT_READY) {
    cowmem__idle_put(pool->idle, e);
  } else {
    if (r != 0) METRIC_INC(pool, failures);
    cowmem__idle_put_cold(pool->idle, e);
  }
}

static void flushed_one(void* arg, cowmem_slot_t* slot, int r) {
  after_reset(arg, entry_of(slot), r);
}

/* The flushed slots become idle, and an image that only they held becomes
 * an orphan there: sweep it now, not at the next call (one load when no
 * image did). */
static int flush_queue(cowmem_pool_t* pool, cowmem__reset_which_t which) {
  /* The queued slots are released, so free: from the flush's take of the
   * queue to their landing in the idle store they are a move (idle.h). */
  cowmem__idle_move_begin(pool->idle);
  int n = cowmem__reset_flush(pool->reset, which, flushed_one, pool);
  cowmem__idle_move_end(pool->idle);
  if (n > 0) {
    cowmem__idle_sweep(pool->idle);
    wake_waiters(pool);
  }
  return n;
}

/* The release's slot is in the queue or the idle store. The fence orders
 * that before the count (a plain store on an owned stripe), so a look that
 * reads the count also sees the slot where it landed. */
static void release_landed(int shard, shard_stats_t* st) {
  atomic_thread_fence(memory_order_release);
  cowmem__stripe_add(shard, &st->landed, 1);
}

int cowmem_pool_release(cowmem_pool_t* pool, cowmem_slot_t* slot) {
  if (pool == NULL || slot == NULL || slot->pool != pool) return COWMEM_EINVAL;
  entry_t* e = entry_of(slot);
  int expected = COWMEM__ENTRY_IN_USE;
  if (!atomic_compare_exchange_strong(&e->state, &expected, COWMEM__ENTRY_PENDING))
    return COWMEM_ESTATE;
  int shard = cowmem__os_stripe();
  shard_stats_t* st = &pool->stats[shard];
  cowmem__stripe_add(shard, &st->in_use, (uint64_t)-1);
  pool_sweep(pool);
  /* From releases to landed the slot is in flight: an acquire that misses
   * meanwhile waits (releases_look_end). Nothing in between calls out or
   * flushes, so this thread's own acquires (a test's flush hook in the
   * sweep above) never wait for it. */
  cowmem__stripe_add(shard, &st->m[M_releases], 1);
  int r = 0;
  cowmem_slot_state_t state = slot->state;
  if (state == COWMEM_SLOT_DIRTY) {
    r = cowmem__reset(pool->reset, slot);
    if (r == COWMEM__RESET_QUEUED || r == COWMEM__RESET_FLUSH) {
      release_landed(shard, st);
      if (r == COWMEM__RESET_FLUSH) flush_queue(pool, COWMEM__FLUSH_OWN); /* else later */
      return 0;
    }
    after_reset(pool, e, r);
  } else if (state == COWMEM_SLOT_READY) {
    cowmem__idle_put(pool->idle, e); /* the caller reset it already */
  } else {
    cowmem__idle_put_cold(pool->idle, e);
  }
  release_landed(shard, st);
  wake_waiters(pool);
  return r;
}

int cowmem_pool_flush(cowmem_pool_t* pool) {
  if (pool == NULL) return COWMEM_EINVAL;
  flush_queue(pool, COWMEM__FLUSH_ALL);
  return 0;
}

int cowmem_pool_trim(cowmem_pool_t* pool) {
  if (pool == NULL) return COWMEM_EINVAL;
  flush_queue(pool, COWMEM__FLUSH_ALL);
  cowmem__idle_trim(pool->idle);
  return 0;
}

cowmem_slot_t* cowmem_pool_slot_of(cowmem_pool_t* pool, const void* addr) {
  if (pool == NULL || addr == NULL) return NULL;
  /* Slots sit at a fixed stride after the first guard: one division. */
  uintptr_t a = (uintptr_t)addr, first = (uintptr_t)pool->base + pool->cfg.guard_size;
  if (a < first) return NULL;
  size_t i = (size_t)((a - first) / pool->stride);
  if (i >= pool->cfg.max_slots) return NULL;
  entry_t* e = &pool->entries[i];
  if (atomic_load_explicit(&e->state, memory_order_acquire) != COWMEM__ENTRY_IN_USE)
    return NULL;
  return &e->slot;
}

bool cowmem_pool_contains(const cowmem_pool_t* pool, const void* addr) {
  if (pool == NULL) return false;
  uintptr_t a = (uintptr_t)addr, b = (uintptr_t)pool->base;
  return a >= b && a - b < pool->reserve_len;
}

int cowmem_pool_metrics(cowmem_pool_t* pool, cowmem_pool_metrics_t* out) {
  if (pool == NULL || out == NULL) return COWMEM_EINVAL;
  memset(out, 0, sizeof *out);
  out->version = COWMEM_POOL_METRICS_VERSION;
  out->slots = pool->cfg.max_slots;
  uint64_t sum = 0; /* of differences mod 2^64 */
  for (int i = 0; i < COWMEM__SHARDS; i++) {
    shard_stats_t* st = &pool->stats[i];
    sum += atomic_load(&st->in_use);
#define POOL_METRIC_READ(name) out->name += atomic_load(&st->m[M_##name]);
    METRICS(POOL_METRIC_READ)
#undef POOL_METRIC_READ
    for (int k = 0; k < COWMEM_RESET_COUNT_; k++)
      out->resets[k] += atomic_load(&st->resets[k]);
  }
  int64_t in_use = (int64_t)sum;
  out->in_use = in_use > 0 ? (uint64_t)in_use : 0;
  cowmem__idle_metrics(pool->idle, out);
  cowmem__reset_metrics(pool->reset, out);
  if (cowmem__os_map_limit(&out->map_limit) != 0) out->map_limit = 0;
  if (cowmem__os_map_count(&out->maps_process) != 0) out->maps_process = 0;
  out->maps_in_use = 1; /* the reservation */
  for (size_t i = 0; i < pool->cfg.max_slots; i++)
    out->maps_in_use +=
        atomic_load_explicit(&pool->entries[i].slot.maps, memory_order_relaxed);
  out->maps_per_slot_max = cowmem__slot_maps_max();
  out->maps_full = out->maps_per_slot_max * pool->cfg.max_slots + 1;
  return 0;
}

int cowmem_pool_image_metrics(cowmem_pool_t* pool, const cowmem_image_t* image,
                              cowmem_pool_image_metrics_t* out) {
  if (pool == NULL || out == NULL) return COWMEM_EINVAL;
  cowmem__reset_image_metrics(pool->reset, image, out);
  return 0;
}
