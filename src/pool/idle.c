/* The idle-slot store (idle.h). Warm slots are kept in buckets that are
 * also shards: SHARDS per-thread groups x BUCKETS by image, each a list
 * with its own lock, newest first (the tail is the least recently used). A
 * thread puts a slot into its own shard and looks there first, then in the
 * other shards' bucket of the same image. The slow paths (cold list, never
 * used slots, stealing, the orphan sweep) take their own locks or none. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "pool/idle.h"
#include "image/image.h"

#define BUCKETS 16
#define LISTS (COWMEM__SHARDS * BUCKETS)

typedef cowmem__entry_t entry_t;

typedef struct {
  _Atomic bool lock; /* list_lock */
  entry_t* head;
  entry_t* tail;
  _Atomic size_t n;
} list_t;

/* Counters, one set per shard on cache lines of its own, summed when read
 * (see COWMEM__SHARDS). */
typedef struct {
  _Alignas(64) _Atomic uint64_t hits, misses, steals, decommits, failures;
  _Atomic uint64_t warm; /* slots made warm minus taken, in this shard
                            (mod 2^64: summed as signed) */
} idle_stats_t;

struct cowmem__idle_s {
  idle_stats_t stats[COWMEM__SHARDS];
  entry_t* entries;
  size_t n;
  size_t max_warm;
  bool warm_capped; /* max_warm < n: keep warm_total */
  _Atomic size_t warm_total;
  _Atomic size_t next_fresh;
  list_t buckets[LISTS];
  list_t cold;
  _Atomic uint64_t swept_epoch;
  pthread_mutex_t sweep_lock;
  /* Moves (idle.h): written by sweeps, trims and flushes, read only by an
   * acquire that found nothing, so the hot paths never touch this line. */
  _Alignas(64) _Atomic uint64_t moves_started;
  _Atomic uint64_t moves_done;
};

/* The calling thread's own moves, which its looks leave out. */
static _Thread_local uint64_t own_started, own_done;

#define STAT_ADD(idle, field, v)                                                         \
  do {                                                                                   \
    int s_ = cowmem__os_stripe();                                                        \
    cowmem__stripe_add(s_, &(idle)->stats[s_].field, (uint64_t)(v));                     \
  } while (0)

/* The LRU order comes from the clock, not a shared counter (one line every
 * thread would write): the coarse one, which a read of CLOCK_MONOTONIC
 * cost 14 ns more than, made strictly increasing within a thread so that
 * one thread's releases keep their order inside a tick. Across threads a
 * tick's releases tie, and a steal takes one of them (nearly the oldest,
 * as it was). */
static _Thread_local uint64_t last_tick __attribute__((tls_model("initial-exec")));

static uint64_t lru_tick(void) {
  uint64_t t = cowmem__os_coarse_ns();
  if (t <= last_tick) t = last_tick + 1;
  last_tick = t;
  return t;
}

static size_t bucket_of(uint64_t key) {
  return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 60) % BUCKETS;
}

/* ---- lists ---- */

static void list_init(list_t* l) {
  atomic_init(&l->lock, false);
  l->head = l->tail = NULL;
  atomic_init(&l->n, 0);
}

/* A list's lock: an exchange to take it, a store to give it back. What it
 * guards is a few pointer writes (a metrics call's walk at most), and an
 * acquire and a release take one each: a pthread mutex's lock and unlock
 * cost about 75 instructions a pair there (callgrind), this about 25. A
 * holder that was preempted is waited for by yielding, not by spinning. */
static void list_lock(list_t* l) {
  while (atomic_exchange_explicit(&l->lock, true, memory_order_acquire))
    while (atomic_load_explicit(&l->lock, memory_order_relaxed))
      sched_yield();
}

static void list_unlock(list_t* l) {
  atomic_store_explicit(&l->lock, false, memory_order_release);
}

/* The count changes only under the list's lock, so a load and a store keep
 * it exact (a locked add here cost each acquire and release one more
 * barrier); list_empty reads it without the lock, as a hint. */
static void list_count(list_t* l, size_t delta) {
  size_t n = atomic_load_explicit(&l->n, memory_order_relaxed);
  atomic_store_explicit(&l->n, n + delta, memory_order_relaxed);
}

static void list_push_head(list_t* l, entry_t* e) {
  e->prev = NULL;
  e->next = l->head;
  if (l->head)
    l->head->prev = e;
  else
    l->tail = e;
  l->head = e;
  list_count(l, 1);
}

static void list_unlink(list_t* l, entry_t* e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    l->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    l->tail = e->prev;
  e->prev = e->next = NULL;
  list_count(l, (size_t)-1);
}

static bool list_empty(list_t* l) {
  return atomic_load_explicit(&l->n, memory_order_relaxed) == 0;
}

/* An entry's state is a label of who holds it, written by that holder
 * under a list's lock or with the slot in hand; no reader orders other
 * memory by it but through those locks, so a release store does (a
 * sequentially consistent one is a locked exchange on x86, twice a cycle).
 * pool.c's release compares and exchanges it, strongly. */
static void entry_set(entry_t* e, int state) {
  atomic_store_explicit(&e->state, state, memory_order_release);
}

/* ---- the store ---- */

int cowmem__idle_new(entry_t* entries, size_t n, size_t max_warm, cowmem__idle_t** out) {
  /* The per-shard counters on cache lines of their own. */
  cowmem__idle_t* idle = cowmem__alloc_lines(1, sizeof *idle);
  if (idle == NULL) return COWMEM_ENOMEM;
  idle->entries = entries;
  idle->n = n;
  idle->max_warm = max_warm;
  idle->warm_capped = max_warm < n;
  for (size_t i = 0; i < LISTS; i++)
    list_init(&idle->buckets[i]);
  list_init(&idle->cold);
  pthread_mutex_init(&idle->sweep_lock, NULL);
  atomic_init(&idle->swept_epoch, atomic_load(&cowmem__orphan_epoch));
  *out = idle;
  return 0;
}

void cowmem__idle_free(cowmem__idle_t* idle) {
  if (idle == NULL) return;
  pthread_mutex_destroy(&idle->sweep_lock);
  free(idle);
}

/* Take a WARM entry out of its list, for a caller (IN_USE) or a move
 * (MOVING): the caller holds the list's lock. */
static void warm_take_locked(cowmem__idle_t* idle, list_t* l, entry_t* e, int to) {
  list_unlink(l, e);
  STAT_ADD(idle, warm, -1);
  if (idle->warm_capped) atomic_fetch_sub(&idle->warm_total, 1);
  entry_set(e, to);
}

void cowmem__idle_put_cold(cowmem__idle_t* idle, entry_t* e) {
  if (cowmem_slot_state(&e->slot) != COWMEM_SLOT_EMPTY) {
    STAT_ADD(idle, decommits, 1);
    if (cowmem_slot_decommit(&e->slot) != 0) STAT_ADD(idle, failures, 1);
  }
  entry_set(e, COWMEM__ENTRY_COLD);
  list_lock(&idle->cold);
  list_push_head(&idle->cold, e);
  list_unlock(&idle->cold);
}

void cowmem__idle_put(cowmem__idle_t* idle, entry_t* e) {
  if (idle->warm_capped && atomic_fetch_add(&idle->warm_total, 1) >= idle->max_warm) {
    atomic_fetch_sub(&idle->warm_total, 1);
    cowmem__idle_put_cold(idle, e);
    return;
  }
  STAT_ADD(idle, warm, 1);
  cowmem_image_t* img = e->slot.image;
  e->key = cowmem__image_key(img);
  e->tick = lru_tick();
  entry_set(e, COWMEM__ENTRY_WARM);
  list_t* l = &idle->buckets[(size_t)cowmem__os_stripe() * BUCKETS + bucket_of(e->key)];
  list_lock(l);
  list_push_head(l, e);
  /* An orphan's slot arriving is announced again: the sweep that the
   * image's becoming an orphan caused may have run while the slot was in
   * use or resetting. Under the list's lock (see image.h): once it is
   * released, a trim, a sweep or another thread's acquire may take the slot
   * and drop its reference, the image's last one. */
  cowmem__image_landed(img);
  list_unlock(l);
}

static entry_t* take_affine(cowmem__idle_t* idle, uint64_t key) {
  size_t b = bucket_of(key), me = (size_t)cowmem__os_stripe();
  for (size_t k = 0; k < COWMEM__SHARDS; k++) {
    list_t* l = &idle->buckets[((me + k) % COWMEM__SHARDS) * BUCKETS + b];
    if (list_empty(l)) continue;
    list_lock(l);
    for (entry_t* e = l->head; e != NULL; e = e->next) {
      if (e->key == key) {
        warm_take_locked(idle, l, e, COWMEM__ENTRY_IN_USE);
        list_unlock(l);
        return e;
      }
    }
    list_unlock(l);
  }
  return NULL;
}

static entry_t* take_fresh(cowmem__idle_t* idle) {
  size_t i = atomic_load_explicit(&idle->next_fresh, memory_order_relaxed);
  while (i < idle->n) {
    if (atomic_compare_exchange_weak(&idle->next_fresh, &i, i + 1)) {
      entry_t* e = &idle->entries[i];
      entry_set(e, COWMEM__ENTRY_IN_USE);
      return e;
    }
  }
  return NULL;
}

static entry_t* take_cold(cowmem__idle_t* idle) {
  if (list_empty(&idle->cold)) return NULL;
  list_lock(&idle->cold);
  entry_t* e = idle->cold.head;
  if (e != NULL) {
    list_unlink(&idle->cold, e);
    entry_set(e, COWMEM__ENTRY_IN_USE);
  }
  list_unlock(&idle->cold);
  return e;
}

entry_t* cowmem__idle_take(cowmem__idle_t* idle, uint64_t key, bool count, bool cold) {
  entry_t* e = take_affine(idle, key);
  if (count) {
    if (e != NULL)
      STAT_ADD(idle, hits, 1);
    else
      STAT_ADD(idle, misses, 1);
  }
  if (e == NULL && (e = take_fresh(idle)) == NULL && cold) e = take_cold(idle);
  return e;
}

/* The tails are compared one lock at a time, so under contention this is
 * nearly, not exactly, the oldest; a tail that moved meanwhile makes us
 * look again. */
entry_t* cowmem__idle_steal(cowmem__idle_t* idle) {
  for (int attempt = 0; attempt < 4; attempt++) {
    list_t* best = NULL;
    uint64_t best_tick = UINT64_MAX;
    for (size_t i = 0; i < LISTS; i++) {
      list_t* l = &idle->buckets[i];
      if (list_empty(l)) continue;
      list_lock(l);
      if (l->tail != NULL && l->tail->tick < best_tick) {
        best_tick = l->tail->tick;
        best = l;
      }
      list_unlock(l);
    }
    if (best == NULL) return NULL;
    list_lock(best);
    entry_t* e = best->tail;
    if (e != NULL && e->tick == best_tick) {
      warm_take_locked(idle, best, e, COWMEM__ENTRY_IN_USE);
      list_unlock(best);
      STAT_ADD(idle, steals, 1);
      return e;
    }
    list_unlock(best);
  }
  /* Still racing other threads' takes and puts: any idle slot rather than
   * none, since NULL is reported as an exhausted pool. */
  for (size_t i = 0; i < LISTS; i++) {
    list_t* l = &idle->buckets[i];
    if (list_empty(l)) continue;
    list_lock(l);
    entry_t* e = l->tail;
    if (e != NULL) warm_take_locked(idle, l, e, COWMEM__ENTRY_IN_USE);
    list_unlock(l);
    if (e != NULL) {
      STAT_ADD(idle, steals, 1);
      return e;
    }
  }
  return NULL;
}

#ifdef COWMEM_TESTING
static void (*_Atomic move_hook)(void* arg);
static void* move_hook_arg;

void cowmem__idle_move_inject(void (*fn)(void* arg), void* arg) {
  move_hook_arg = arg;
  atomic_store(&move_hook, fn);
}

static void move_meanwhile(void) {
  void (*hook)(void*) = atomic_exchange(&move_hook, NULL);
  if (hook != NULL) hook(move_hook_arg);
}
#else
static void move_meanwhile(void) {}
#endif

/* ---- moves ---- */

void cowmem__idle_move_begin(cowmem__idle_t* idle) {
  own_started++;
  atomic_fetch_add(&idle->moves_started, 1);
}

void cowmem__idle_move_end(cowmem__idle_t* idle) {
  own_done++;
  atomic_fetch_add(&idle->moves_done, 1);
}

void cowmem__idle_look_begin(cowmem__idle_t* idle, cowmem__idle_look_t* look) {
  look->own_done = own_done;
  look->done = atomic_load(&idle->moves_done);
}

/* done is read before started, and a move counts as started before it
 * finishes, so started - done never undercounts the moves in flight. */
int cowmem__idle_look_end(cowmem__idle_t* idle, const cowmem__idle_look_t* look) {
  uint64_t done = atomic_load(&idle->moves_done);
  uint64_t started = atomic_load(&idle->moves_started);
  if ((int64_t)(started - done) - (int64_t)(own_started - own_done) > 0)
    return COWMEM__LOOK_MOVING;
  if (done - look->done != own_done - look->own_done) return COWMEM__LOOK_MOVED;
  return COWMEM__LOOK_SETTLED;
}

void cowmem__idle_sweep(cowmem__idle_t* idle) {
  uint64_t epoch = atomic_load_explicit(&cowmem__orphan_epoch, memory_order_relaxed);
  if (atomic_load_explicit(&idle->swept_epoch, memory_order_relaxed) == epoch) return;
  if (pthread_mutex_trylock(&idle->sweep_lock) != 0) return;
  atomic_store(&idle->swept_epoch, epoch);
  /* The orphans' slots are in no list from their take to their landing in
   * the cold list: a move, which an acquire that misses meanwhile (its own
   * sweep found the lock taken) waits for. */
  cowmem__idle_move_begin(idle);
  for (size_t i = 0; i < LISTS; i++) {
    list_t* l = &idle->buckets[i];
    if (list_empty(l)) continue;
    entry_t* found = NULL;
    list_lock(l);
    for (entry_t *e = l->head, *next; e != NULL; e = next) {
      next = e->next;
      if (e->slot.image != NULL && cowmem__image_orphaned(e->slot.image)) {
        warm_take_locked(idle, l, e, COWMEM__ENTRY_MOVING);
        e->next = found;
        found = e;
      }
    }
    list_unlock(l);
    if (found != NULL) move_meanwhile();
    while (found != NULL) { /* the slots hold their references until here */
      entry_t* e = found;
      found = e->next;
      e->next = NULL;
      cowmem__idle_put_cold(idle, e);
    }
  }
  cowmem__idle_move_end(idle);
  pthread_mutex_unlock(&idle->sweep_lock);
}

void cowmem__idle_trim(cowmem__idle_t* idle) {
  for (size_t i = 0; i < LISTS; i++) {
    list_t* l = &idle->buckets[i];
    while (!list_empty(l)) { /* a move per slot: acquires wait for one */
      cowmem__idle_move_begin(idle);
      list_lock(l);
      entry_t* e = l->tail;
      if (e != NULL) warm_take_locked(idle, l, e, COWMEM__ENTRY_MOVING);
      list_unlock(l);
      if (e != NULL) {
        move_meanwhile();
        cowmem__idle_put_cold(idle, e);
      }
      cowmem__idle_move_end(idle);
    }
  }
}

/* Warm slots: the shards' counts summed (each a difference, mod 2^64, so
 * a shard's may be negative); 0 when the sum is not positive. */
static uint64_t warm_count(cowmem__idle_t* idle) {
  uint64_t sum = 0;
  for (int i = 0; i < COWMEM__SHARDS; i++)
    sum += atomic_load_explicit(&idle->stats[i].warm, memory_order_relaxed);
  return (int64_t)sum > 0 ? sum : 0;
}

bool cowmem__idle_warm_any(cowmem__idle_t* idle) {
  return warm_count(idle) > 0;
}

void cowmem__idle_metrics(cowmem__idle_t* idle, cowmem_pool_metrics_t* out) {
  out->warm = warm_count(idle);
  for (int i = 0; i < COWMEM__SHARDS; i++) {
    idle_stats_t* st = &idle->stats[i];
    out->affinity_hits += atomic_load(&st->hits);
    out->affinity_misses += atomic_load(&st->misses);
    out->steals += atomic_load(&st->steals);
    out->decommits += atomic_load(&st->decommits);
    out->failures += atomic_load(&st->failures);
  }
  out->cold = atomic_load(&idle->cold.n);
  size_t fresh = atomic_load(&idle->next_fresh);
  out->never_used = idle->n - (fresh < idle->n ? fresh : idle->n);
  for (size_t i = 0; i < LISTS; i++) {
    list_t* l = &idle->buckets[i];
    if (list_empty(l)) continue;
    list_lock(l);
    for (entry_t* e = l->head; e != NULL; e = e->next) {
      size_t bytes = 0;
      if (e->slot.accessible > 0 &&
          cowmem__os_resident(e->slot.base, e->slot.accessible, &bytes) == 0)
        out->idle_resident_bytes += bytes;
    }
    list_unlock(l);
  }
}
