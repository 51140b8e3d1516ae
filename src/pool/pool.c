/* Pools: many slots in one reservation, reused by image affinity.
 *
 * Every slot is an entry in one of these places, and its state says which:
 *   NEVER    not touched since the pool was made (taken by next_fresh);
 *   IN_USE   acquired by the caller;
 *   WARM     idle, image mapped and clean (READY), in a bucket list;
 *   COLD     idle, decommitted (EMPTY, or BROKEN awaiting a retry), in `cold`;
 *   PENDING  released under BATCHED, DIRTY until the next flush.
 * Buckets are shards: SHARDS per-thread groups x BUCKETS by image, each a
 * list with its own lock, newest first (the tail is the least recently
 * used). A thread releases into its own shard and looks there first, so two
 * threads running request loops do not share a lock; it then looks in the
 * other shards' bucket of the same image. The slow paths (cold list,
 * stealing, waiting, the BATCHED queue) take their own locks. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "reset.h"

#define SHARDS 16
#define BUCKETS 16

enum { ENTRY_NEVER, ENTRY_IN_USE, ENTRY_WARM, ENTRY_COLD, ENTRY_PENDING };

typedef struct entry_s {
  cowmem_slot_t slot;
  struct entry_s* prev;
  struct entry_s* next;
  uint64_t image_id; /* while WARM: the image it holds (0: zeros) */
  uint64_t tick;     /* while WARM: when it was released */
  _Atomic int state;
} entry_t;

typedef struct {
  pthread_mutex_t lock;
  entry_t* head;
  entry_t* tail;
  _Atomic size_t n;
} list_t;

#define METRICS(XX)                                                            \
  XX(acquires) XX(affinity_hits) XX(affinity_misses) XX(steals) XX(exhausted)  \
  XX(releases) XX(decommits) XX(flushes) XX(failures)

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
 * lock and TLB state; see bench_pool.) */
typedef struct {
  _Alignas(64) _Atomic uint64_t m[M_COUNT];
  _Atomic uint64_t resets[COWMEM_RESET_COUNT_];
  _Atomic int64_t in_use; /* acquires minus releases made in this shard */
  _Atomic int64_t warm;   /* slots made warm minus taken, in this shard */
} shard_stats_t;

struct cowmem_pool_s {
  cowmem_pool_config_t cfg;
  uint8_t* base;
  size_t reserve_len;
  size_t stride;
  entry_t* entries;
  list_t buckets[SHARDS * BUCKETS];
  list_t cold;
  _Atomic size_t next_fresh;
  bool warm_capped;       /* max_warm_slots < max_slots: keep warm_total */
  _Atomic size_t warm_total;
  _Atomic uint64_t swept_epoch;
  pthread_mutex_t sweep_lock;
  cowmem__reset_queue_t queue; /* BATCHED */
  pthread_mutex_t wait_lock;
  pthread_cond_t wait_cond;
  _Atomic int waiters;
  _Atomic uint64_t release_seq;
  shard_stats_t stats[SHARDS];
};

static int my_shard(void);
#define SHARD_ADD(pool, field, v)                                              \
  atomic_fetch_add_explicit(&(pool)->stats[my_shard()].field, (v), memory_order_relaxed)
#define METRIC_INC(pool, name) SHARD_ADD(pool, m[M_##name], 1)

static int64_t shard_sum_in_use(cowmem_pool_t* pool) {
  int64_t n = 0;
  for (int i = 0; i < SHARDS; i++) n += atomic_load(&pool->stats[i].in_use);
  return n;
}

static entry_t* entry_of(cowmem_slot_t* slot) {
  return (entry_t*)((char*)slot - offsetof(entry_t, slot));
}

/* ---- lists ---- */

static void list_push_head(list_t* l, entry_t* e) {
  e->prev = NULL;
  e->next = l->head;
  if (l->head) l->head->prev = e;
  else l->tail = e;
  l->head = e;
  atomic_fetch_add_explicit(&l->n, 1, memory_order_relaxed);
}

static void list_unlink(list_t* l, entry_t* e) {
  if (e->prev) e->prev->next = e->next;
  else l->head = e->next;
  if (e->next) e->next->prev = e->prev;
  else l->tail = e->prev;
  e->prev = e->next = NULL;
  atomic_fetch_sub_explicit(&l->n, 1, memory_order_relaxed);
}

static void list_init(list_t* l) {
  pthread_mutex_init(&l->lock, NULL);
  l->head = l->tail = NULL;
  atomic_init(&l->n, 0);
}

/* ---- shards ---- */

static _Thread_local int tl_shard = -1;
static _Atomic int next_shard;

static int my_shard(void) {
  if (tl_shard < 0) tl_shard = atomic_fetch_add(&next_shard, 1) % SHARDS;
  return tl_shard;
}

static size_t bucket_of(uint64_t image_id) {
  return (size_t)((image_id * 0x9e3779b97f4a7c15ull) >> 60) % BUCKETS;
}

static uint64_t affinity_id(const cowmem_image_t* image) {
  return image == NULL || image->len == 0 ? 0 : image->id;
}

/* ---- idle slots ---- */

/* Take a WARM entry out of its list: the caller holds the list's lock. */
static void warm_take_locked(cowmem_pool_t* pool, list_t* l, entry_t* e) {
  list_unlink(l, e);
  SHARD_ADD(pool, warm, -1);
  if (pool->warm_capped) atomic_fetch_sub(&pool->warm_total, 1);
  if (e->slot.image != NULL) cowmem__image_idle_sub(e->slot.image);
  atomic_store(&e->state, ENTRY_IN_USE);
}

static void cold_push(cowmem_pool_t* pool, entry_t* e) {
  atomic_store(&e->state, ENTRY_COLD);
  pthread_mutex_lock(&pool->cold.lock);
  list_push_head(&pool->cold, e);
  pthread_mutex_unlock(&pool->cold.lock);
}

/* Decommit an idle (or failed) slot and keep it cold. */
static void decommit(cowmem_pool_t* pool, entry_t* e) {
  if (cowmem_slot_state(&e->slot) != COWMEM_SLOT_EMPTY) {
    METRIC_INC(pool, decommits);
    if (cowmem_slot_release(&e->slot) != 0) METRIC_INC(pool, failures);
  }
  cold_push(pool, e);
}

/* A clean (READY) slot becomes idle: warm in this thread's shard, or cold
 * past the warm cap. */
static void make_idle(cowmem_pool_t* pool, entry_t* e) {
  if (pool->warm_capped &&
      atomic_fetch_add(&pool->warm_total, 1) >= pool->cfg.max_warm_slots) {
    atomic_fetch_sub(&pool->warm_total, 1);
    decommit(pool, e);
    return;
  }
  SHARD_ADD(pool, warm, 1);
  cowmem_image_t* img = e->slot.image;
  e->image_id = affinity_id(img);
  /* The LRU order comes from the clock, not a shared counter. */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  e->tick = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  atomic_store(&e->state, ENTRY_WARM);
  list_t* l = &pool->buckets[(size_t)my_shard() * BUCKETS + bucket_of(e->image_id)];
  pthread_mutex_lock(&l->lock);
  list_push_head(l, e);
  /* Checked under the list's lock: once it is released, a trim, a sweep or
   * another thread's acquire may take the slot and drop its reference, the
   * image's last one. */
  if (img != NULL) cowmem__image_idle_add(img);
  pthread_mutex_unlock(&l->lock);
}

/* An idle slot of the same image: this thread's shard first, then the
 * other shards' bucket for the image. */
static entry_t* take_affine(cowmem_pool_t* pool, uint64_t id) {
  size_t b = bucket_of(id), me = (size_t)my_shard();
  for (size_t k = 0; k < SHARDS; k++) {
    list_t* l = &pool->buckets[((me + k) % SHARDS) * BUCKETS + b];
    if (atomic_load_explicit(&l->n, memory_order_relaxed) == 0) continue;
    pthread_mutex_lock(&l->lock);
    for (entry_t* e = l->head; e != NULL; e = e->next) {
      if (e->image_id == id) {
        warm_take_locked(pool, l, e);
        pthread_mutex_unlock(&l->lock);
        return e;
      }
    }
    pthread_mutex_unlock(&l->lock);
  }
  return NULL;
}

static entry_t* take_fresh(cowmem_pool_t* pool) {
  size_t i = atomic_load_explicit(&pool->next_fresh, memory_order_relaxed);
  while (i < pool->cfg.max_slots) {
    if (atomic_compare_exchange_weak(&pool->next_fresh, &i, i + 1)) {
      entry_t* e = &pool->entries[i];
      atomic_store(&e->state, ENTRY_IN_USE);
      return e;
    }
  }
  return NULL;
}

static entry_t* take_cold(cowmem_pool_t* pool) {
  if (atomic_load_explicit(&pool->cold.n, memory_order_relaxed) == 0) return NULL;
  pthread_mutex_lock(&pool->cold.lock);
  entry_t* e = pool->cold.head;
  if (e != NULL) {
    list_unlink(&pool->cold, e);
    atomic_store(&e->state, ENTRY_IN_USE);
  }
  pthread_mutex_unlock(&pool->cold.lock);
  return e;
}

/* The least recently used idle slot of any image. The tails are compared
 * one lock at a time, so under contention this is nearly, not exactly, the
 * oldest; a tail that moved meanwhile makes us look again. */
static entry_t* take_lru(cowmem_pool_t* pool) {
  for (int attempt = 0; attempt < 4; attempt++) {
    list_t* best = NULL;
    uint64_t best_tick = UINT64_MAX;
    for (size_t i = 0; i < SHARDS * BUCKETS; i++) {
      list_t* l = &pool->buckets[i];
      if (atomic_load_explicit(&l->n, memory_order_relaxed) == 0) continue;
      pthread_mutex_lock(&l->lock);
      if (l->tail != NULL && l->tail->tick < best_tick) {
        best_tick = l->tail->tick;
        best = l;
      }
      pthread_mutex_unlock(&l->lock);
    }
    if (best == NULL) return NULL;
    pthread_mutex_lock(&best->lock);
    entry_t* e = best->tail;
    if (e != NULL && e->tick == best_tick) {
      warm_take_locked(pool, best, e);
      pthread_mutex_unlock(&best->lock);
      return e;
    }
    pthread_mutex_unlock(&best->lock);
  }
  return NULL;
}

/* Decommit the idle slots of images nobody can instantiate any more. Runs
 * when the global orphan epoch moved since this pool last looked. */
static void sweep_orphans(cowmem_pool_t* pool) {
  uint64_t epoch = atomic_load_explicit(&cowmem__orphan_epoch, memory_order_relaxed);
  if (atomic_load_explicit(&pool->swept_epoch, memory_order_relaxed) == epoch) return;
  if (pthread_mutex_trylock(&pool->sweep_lock) != 0) return;
  atomic_store(&pool->swept_epoch, epoch);
  for (size_t i = 0; i < SHARDS * BUCKETS; i++) {
    list_t* l = &pool->buckets[i];
    if (atomic_load_explicit(&l->n, memory_order_relaxed) == 0) continue;
    entry_t* found = NULL;
    pthread_mutex_lock(&l->lock);
    for (entry_t *e = l->head, *next; e != NULL; e = next) {
      next = e->next;
      if (e->slot.image != NULL && cowmem__image_orphaned(e->slot.image)) {
        warm_take_locked(pool, l, e);
        e->next = found;
        found = e;
      }
    }
    pthread_mutex_unlock(&l->lock);
    while (found != NULL) {
      entry_t* e = found;
      found = e->next;
      e->next = NULL;
      decommit(pool, e);
    }
  }
  pthread_mutex_unlock(&pool->sweep_lock);
}

/* ---- configuration ---- */

void cowmem_pool_config_init(cowmem_pool_config_t* cfg) {
  if (cfg == NULL) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->version = COWMEM_POOL_CONFIG_VERSION;
  cfg->max_slots = 1000;
  cfg->slot_size = (size_t)4 << 30;
  cfg->guard_size = (size_t)2 << 30;
  cfg->max_warm_slots = SIZE_MAX; /* all of them */
  cfg->reset = COWMEM_RESET_MADVISE;
  cfg->keep_resident = 64 * 1024;
  cfg->batch_size = 32;
  cfg->resident_budget = (size_t)1 << 20;
  cfg->sample_every = 64;
}

static const char* pool_config_check(const cowmem_pool_config_t* c, size_t* total) {
  if (c == NULL || c->version != COWMEM_POOL_CONFIG_VERSION)
    return "cfg: NULL or not filled by cowmem_pool_config_init";
  if (c->max_slots == 0) return "max_slots: must be at least 1";
  if (c->max_slots > UINT32_MAX) return "max_slots: more than 2^32 - 1 slots";
  if (c->slot_size == 0 || !cowmem__is_page_multiple(c->slot_size))
    return "slot_size: must be a non-zero multiple of the page size";
  if (!cowmem__is_page_multiple(c->guard_size))
    return "guard_size: must be a multiple of the page size";
  if ((unsigned)c->reset >= COWMEM_RESET_COUNT_) return "reset: unknown strategy";
  if (c->reset == COWMEM_RESET_KEEP_RESIDENT &&
      (!cowmem__is_page_multiple(c->keep_resident) || c->keep_resident > c->slot_size))
    return "keep_resident: must be a multiple of the page size, at most slot_size";
  if (c->reset == COWMEM_RESET_BATCHED && (c->batch_size == 0 || c->batch_size > 1 << 20))
    return "batch_size: must be between 1 and 2^20";
  if (c->reset == COWMEM_RESET_ADAPTIVE &&
      (!cowmem__is_page_multiple(c->resident_budget) || c->resident_budget > c->slot_size))
    return "resident_budget: must be a multiple of the page size, at most slot_size";
  if (c->reset == COWMEM_RESET_ADAPTIVE && (c->sample_every == 0 || c->sample_every > 1 << 30))
    return "sample_every: must be between 1 and 2^30";
  size_t stride = c->slot_size + c->guard_size;
  if (stride < c->slot_size || stride > (SIZE_MAX - c->guard_size) / c->max_slots)
    return "max_slots x (slot_size + guard_size): overflows the address space";
  *total = stride * c->max_slots + c->guard_size;
  return NULL;
}

int cowmem_pool_new(const cowmem_pool_config_t* cfg, cowmem_pool_t** out,
                    const char** why) {
  const char* dummy;
  if (why == NULL) why = &dummy;
  *why = "";
  size_t total = 0;
  const char* bad = pool_config_check(cfg, &total);
  if (bad != NULL || out == NULL) {
    *why = bad ? bad : "out: NULL";
    return COWMEM_EINVAL;
  }
  /* Aligned: the per-shard counters sit on cache lines of their own. */
  size_t pool_size = (sizeof(cowmem_pool_t) + 63) & ~(size_t)63;
  cowmem_pool_t* pool = aligned_alloc(64, pool_size);
  if (pool != NULL) memset(pool, 0, pool_size);
  entry_t* entries = pool ? calloc(cfg->max_slots, sizeof *entries) : NULL;
  if (entries == NULL) {
    free(pool);
    *why = "out of memory for the pool's bookkeeping";
    return COWMEM_ENOMEM;
  }
  void* base = NULL;
  int e = cowmem__os_reserve(total, &base);
  if (e) {
    free(entries);
    free(pool);
    *why = "max_slots x (slot_size + guard_size) + guard_size: more address "
           "space than the process can reserve";
    return cowmem__err_from_os(e);
  }
  int r = cowmem__reset_queue_init(&pool->queue, cfg->reset == COWMEM_RESET_BATCHED
                                                     ? cfg->batch_size : 0);
  if (r != 0) {
    cowmem__os_unmap(base, total);
    free(entries);
    free(pool);
    *why = "out of memory for the reset queue";
    return r;
  }
  pool->cfg = *cfg;
  pool->warm_capped = cfg->max_warm_slots < cfg->max_slots;
  pool->base = base;
  pool->reserve_len = total;
  pool->stride = cfg->slot_size + cfg->guard_size;
  pool->entries = entries;
  for (size_t i = 0; i < cfg->max_slots; i++) {
    entry_t* en = &entries[i];
    cowmem__slot_init(&en->slot, pool->base + cfg->guard_size + i * pool->stride,
                      cfg->slot_size);
    en->slot.pool = pool;
    atomic_init(&en->state, ENTRY_NEVER);
  }
  for (size_t i = 0; i < SHARDS * BUCKETS; i++) list_init(&pool->buckets[i]);
  list_init(&pool->cold);
  pthread_mutex_init(&pool->sweep_lock, NULL);
  pthread_mutex_init(&pool->wait_lock, NULL);
  pthread_cond_init(&pool->wait_cond, NULL);
  atomic_init(&pool->swept_epoch, atomic_load(&cowmem__orphan_epoch));
  *out = pool;
  return 0;
}

int cowmem_pool_free(cowmem_pool_t* pool) {
  if (pool == NULL) return 0;
  if (shard_sum_in_use(pool) != 0) return COWMEM_EBUSY;
  /* Slots still queued by BATCHED hold images: let them go too. */
  cowmem_pool_flush(pool);
  for (size_t i = 0; i < pool->cfg.max_slots; i++) {
    cowmem_slot_t* s = &pool->entries[i].slot;
    if (s->image != NULL) cowmem__image_idle_sub(s->image);
    cowmem_image_free(s->image);
    s->image = NULL;
  }
  cowmem__os_unmap(pool->base, pool->reserve_len);
  for (size_t i = 0; i < SHARDS * BUCKETS; i++) pthread_mutex_destroy(&pool->buckets[i].lock);
  pthread_mutex_destroy(&pool->cold.lock);
  pthread_mutex_destroy(&pool->sweep_lock);
  pthread_mutex_destroy(&pool->wait_lock);
  pthread_cond_destroy(&pool->wait_cond);
  cowmem__reset_queue_destroy(&pool->queue);
  free(pool->entries);
  free(pool);
  return 0;
}

/* ---- acquire and release ---- */

static int flush_queue(cowmem_pool_t* pool);

static entry_t* find_slot(cowmem_pool_t* pool, uint64_t id) {
  entry_t* e = take_affine(pool, id);
  if (e != NULL) {
    METRIC_INC(pool, affinity_hits);
    return e;
  }
  METRIC_INC(pool, affinity_misses);
  if ((e = take_fresh(pool)) != NULL || (e = take_cold(pool)) != NULL) return e;
  /* BATCHED: queued slots become idle on a flush; one of them may even be
   * of this image. */
  if (pool->cfg.reset == COWMEM_RESET_BATCHED && flush_queue(pool) > 0) {
    if ((e = take_affine(pool, id)) != NULL || (e = take_cold(pool)) != NULL)
      return e;
  }
  if ((e = take_lru(pool)) != NULL) METRIC_INC(pool, steals);
  return e;
}

int cowmem_pool_acquire(cowmem_pool_t* pool, cowmem_image_t* image,
                        size_t initial_size, size_t max_size, cowmem_slot_t** out) {
  if (pool == NULL || out == NULL) return COWMEM_EINVAL;
  if (!cowmem__is_page_multiple(initial_size) || !cowmem__is_page_multiple(max_size) ||
      initial_size > max_size || max_size > pool->cfg.slot_size)
    return COWMEM_EINVAL;
  if (image != NULL && image->mem_offset + image->len > initial_size) return COWMEM_EINVAL;
  sweep_orphans(pool);
  METRIC_INC(pool, acquires);
  entry_t* e = find_slot(pool, affinity_id(image));
  if (e == NULL) {
    METRIC_INC(pool, exhausted);
    return COWMEM_EEXHAUSTED;
  }
  cowmem_slot_t* s = &e->slot;
  int r = 0;
  if (cowmem_slot_state(s) == COWMEM_SLOT_BROKEN) r = cowmem_slot_release(s);
  s->limit = max_size;
  if (r == 0) r = cowmem_slot_instantiate(s, initial_size, image);
  if (r != 0) {
    /* The slot is EMPTY (or BROKEN): back to the pool, decommitted. */
    METRIC_INC(pool, failures);
    decommit(pool, e);
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
     * without wait_lock: under BATCHED it may flush the queue, and the flush
     * wakes waiters, which takes wait_lock (non-recursive). */
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
  if (r == 0 && cowmem_slot_state(&e->slot) == COWMEM_SLOT_READY) {
    make_idle(pool, e);
  } else {
    if (r != 0) METRIC_INC(pool, failures);
    decommit(pool, e);
  }
}

static void flushed_one(void* arg, cowmem_slot_t* slot, int r) {
  after_reset(arg, entry_of(slot), r);
}

static int flush_queue(cowmem_pool_t* pool) {
  int n = cowmem__reset_queue_flush(&pool->queue, flushed_one, pool);
  if (n > 0) {
    METRIC_INC(pool, flushes);
    wake_waiters(pool);
  }
  return n;
}

int cowmem_pool_release(cowmem_pool_t* pool, cowmem_slot_t* slot) {
  if (pool == NULL || slot == NULL || slot->pool != pool) return COWMEM_EINVAL;
  entry_t* e = entry_of(slot);
  int expected = ENTRY_IN_USE;
  if (!atomic_compare_exchange_strong(&e->state, &expected, ENTRY_PENDING))
    return COWMEM_ESTATE;
  SHARD_ADD(pool, in_use, -1);
  METRIC_INC(pool, releases);
  sweep_orphans(pool);
  int r = 0;
  cowmem_slot_state_t st = cowmem_slot_state(slot);
  if (st == COWMEM_SLOT_DIRTY) {
    r = cowmem__reset_slot(&pool->cfg, &pool->queue, slot);
    if (r == COWMEM__RESET_QUEUED) return 0; /* flushed later */
    if (r == COWMEM__RESET_FLUSH) {
      flush_queue(pool);
      return 0;
    }
    after_reset(pool, e, r);
  } else if (st == COWMEM_SLOT_READY) {
    make_idle(pool, e); /* the caller reset it already */
  } else {
    decommit(pool, e);
  }
  wake_waiters(pool);
  return r;
}

int cowmem_pool_flush(cowmem_pool_t* pool) {
  if (pool == NULL) return COWMEM_EINVAL;
  flush_queue(pool);
  return 0;
}

int cowmem_pool_trim(cowmem_pool_t* pool) {
  if (pool == NULL) return COWMEM_EINVAL;
  flush_queue(pool);
  for (size_t i = 0; i < SHARDS * BUCKETS; i++) {
    list_t* l = &pool->buckets[i];
    for (;;) {
      pthread_mutex_lock(&l->lock);
      entry_t* e = l->tail;
      if (e != NULL) warm_take_locked(pool, l, e);
      pthread_mutex_unlock(&l->lock);
      if (e == NULL) break;
      decommit(pool, e);
    }
  }
  return 0;
}

int cowmem_pool_metrics(cowmem_pool_t* pool, cowmem_pool_metrics_t* out) {
  if (pool == NULL || out == NULL) return COWMEM_EINVAL;
  memset(out, 0, sizeof *out);
  out->version = COWMEM_POOL_METRICS_VERSION;
  out->slots = pool->cfg.max_slots;
  int64_t in_use = 0, warm = 0;
  for (int i = 0; i < SHARDS; i++) {
    in_use += atomic_load(&pool->stats[i].in_use);
    warm += atomic_load(&pool->stats[i].warm);
  }
  out->in_use = in_use > 0 ? (uint64_t)in_use : 0;
  out->warm = warm > 0 ? (uint64_t)warm : 0;
  out->cold = atomic_load(&pool->cold.n);
  size_t fresh = atomic_load(&pool->next_fresh);
  out->never_used = pool->cfg.max_slots - (fresh < pool->cfg.max_slots ? fresh : pool->cfg.max_slots);
  out->pending = cowmem__reset_queue_length(&pool->queue);
#define POOL_METRIC_READ(name)                                                 \
  for (int i = 0; i < SHARDS; i++) out->name += atomic_load(&pool->stats[i].m[M_##name]);
  METRICS(POOL_METRIC_READ)
#undef POOL_METRIC_READ
  for (int k = 0; k < COWMEM_RESET_COUNT_; k++)
    for (int i = 0; i < SHARDS; i++) out->resets[k] += atomic_load(&pool->stats[i].resets[k]);
  for (size_t i = 0; i < SHARDS * BUCKETS; i++) {
    list_t* l = &pool->buckets[i];
    if (atomic_load_explicit(&l->n, memory_order_relaxed) == 0) continue;
    pthread_mutex_lock(&l->lock);
    for (entry_t* e = l->head; e != NULL; e = e->next) {
      size_t bytes = 0;
      if (e->slot.accessible > 0 &&
          cowmem__os_resident(e->slot.base, e->slot.accessible, &bytes) == 0)
        out->idle_resident_bytes += bytes;
    }
    pthread_mutex_unlock(&l->lock);
  }
  cowmem__adaptive_totals(atomic_load(&pool->queue.adaptive), &out->copied_pages,
                          &out->discarded_pages);
  return 0;
}

int cowmem_pool_image_metrics(cowmem_pool_t* pool, const cowmem_image_t* image,
                              cowmem_pool_image_metrics_t* out) {
  if (pool == NULL || out == NULL) return COWMEM_EINVAL;
  cowmem__adaptive_image_metrics(atomic_load(&pool->queue.adaptive), image, out);
  return 0;
}
