/* The reset module: every strategy's reset of a pooled slot, and its state.
 * The slot (slot.c) keeps its own state transitions: a strategy checks the
 * slot is resettable, brings every page of [0, accessible) back to the
 * image and zeros (by discarding it, or by copying), and lets the slot
 * finish. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "reset/adaptive.h"
#include "image/image.h"
#include "reset/reset.h"

/* Slots waiting for one discard of all their ranges: BATCHED's (each
 * slot's accessible bytes; one queue for the pool), and ADAPTIVE's blind
 * resets' (the gaps between hot runs, which should hold no page; the hot
 * pages were restored at release; a queue per thread stripe, so that a
 * flush hands a thread's slots back to its own idle lists and two threads
 * share no lock). */
typedef struct {
  _Alignas(64) pthread_mutex_t lock;
  cowmem_slot_t** items; /* ADAPTIVE: made at the stripe's first push */
  cowmem__os_range_t* ranges;
  size_t n, nr;
  uint64_t pushes, seen; /* pushes ever, and at the last starved look */
} queue_t;

/* ADAPTIVE: slots a thread's queue flushes at, one thread queueing. A
 * flush of 8 blind resets' discards in one process_madvise cost 1.4 us a
 * slot against 2.7 us for a call each (576 KiB memories, 8 written pages
 * each, Zen 5 VM); more saves little and keeps more slots waiting.
 *
 * Threads that queue share the pool's idle slots: a queue flushes at the
 * pool's current size, which shrinks by one each time an acquire finds no
 * idle slot at all and has to flush (cowmem__reset_starved; at least 2;
 * an acquire that finds only other images' is not one) and grows
 * by one after GROW_AFTER flushes at that size with no such acquire. With
 * one thread it stays at 8 (in a pool of 16 or more); with t threads it
 * settles where their queues together leave the pool a slot to take. And a
 * flush is a discard of what should hold no page, which takes turns with
 * other threads' (cowmem__os_discard_empty: two at once make the kernel
 * flush every CPU's TLBs): a queue that reaches its size while another
 * thread's discard is under way keeps queueing, up to half as much again,
 * and flushes at a release that finds the turn free (or at that bound). */
#define DEFER_SLOTS 8
#define DEFER_ROOM(cap) ((cap) + (cap) / 2) /* slots a queue holds */
#define GROW_AFTER 64

struct cowmem__reset_s {
  cowmem_reset_strategy_t strategy;
  size_t keep_resident;
  queue_t* queues; /* nqueues of them; NULL: nothing is queued */
  size_t nqueues;
  size_t cap;          /* slots a queue flushes at, at most */
  size_t hard, rcap;   /* slots and ranges a queue holds */
  _Atomic size_t size; /* slots a queue flushes at now (ADAPTIVE: DEFER_SLOTS) */
  _Atomic size_t calm; /* ADAPTIVE: flushes at that size since it last changed */
  _Atomic uint64_t flushes; /* queues flushed with a discard call */
  bool empty; /* ADAPTIVE: the ranges should hold no page: the discard takes turns */
  cowmem__adaptive_t* adaptive; /* ADAPTIVE */
};

static int queues_new(cowmem__reset_t* r, size_t n, size_t cap, size_t hard, size_t rcap,
                      bool now) {
  r->queues = cowmem__alloc_lines(n, sizeof *r->queues);
  if (r->queues == NULL) return COWMEM_ENOMEM;
  r->nqueues = n;
  r->cap = cap;
  r->size = cap;
  r->hard = hard;
  r->rcap = rcap;
  for (size_t i = 0; i < n; i++)
    pthread_mutex_init(&r->queues[i].lock, NULL);
  for (size_t i = 0; now && i < n; i++) {
    queue_t* q = &r->queues[i];
    q->items = malloc(hard * sizeof *q->items);
    q->ranges = malloc(rcap * sizeof *q->ranges);
    if (q->items == NULL || q->ranges == NULL) return COWMEM_ENOMEM;
  }
  return 0;
}

int cowmem__reset_new(const cowmem_pool_config_t* cfg, cowmem__reset_t** out) {
  cowmem__reset_t* r = calloc(1, sizeof *r);
  if (r == NULL) return COWMEM_ENOMEM;
  r->strategy = cfg->reset;
  r->keep_resident = cfg->keep_resident;
  int err = 0;
  if (cfg->reset == COWMEM_RESET_BATCHED) {
    err = queues_new(r, 1, cfg->batch_size, cfg->batch_size, cfg->batch_size, true);
  } else if (cfg->reset == COWMEM_RESET_ADAPTIVE && cowmem__os_discards_batch()) {
    /* Queued slots come back idle together: at most half the pool, and no
     * more than stay warm (past max_warm_slots they would be decommitted),
     * half as much again while the turn is taken. A queue of one would
     * only add its lock to every reset. */
    size_t cap = cfg->max_slots / 2;
    if (cap > cfg->max_warm_slots) cap = cfg->max_warm_slots;
    if (cap > DEFER_SLOTS) cap = DEFER_SLOTS;
    size_t hard = DEFER_ROOM(cap);
    if (hard > cfg->max_warm_slots) hard = cfg->max_warm_slots;
    if (cap >= 2)
      err = queues_new(r, COWMEM__STRIPES, cap, hard, hard * COWMEM__ADAPTIVE_DEFER_MAX,
                       false);
    r->empty = true;
  }
  if (err == 0 && cfg->reset == COWMEM_RESET_ADAPTIVE) {
    r->adaptive =
        cowmem__adaptive_new(cfg->resident_budget, cfg->sample_every, r->queues != NULL);
    if (r->adaptive == NULL) err = COWMEM_ENOMEM;
  }
  if (err != 0) {
    cowmem__reset_free(r);
    return err;
  }
  *out = r;
  return 0;
}

void cowmem__reset_free(cowmem__reset_t* r) {
  if (r == NULL) return;
  cowmem__adaptive_free(r->adaptive);
  for (size_t i = 0; i < r->nqueues; i++) {
    pthread_mutex_destroy(&r->queues[i].lock);
    free(r->queues[i].items);
    free(r->queues[i].ranges);
  }
  free(r->queues);
  free(r);
}

bool cowmem__reset_queues(const cowmem__reset_t* r) {
  return r->queues != NULL;
}

/* Slots a queue flushes at (see DEFER_SLOTS). */
static size_t queue_cap(const cowmem__reset_t* r) {
  return atomic_load_explicit(&r->size, memory_order_relaxed);
}

/* A flush at the queue's size: after GROW_AFTER of them, one more slot. */
static void queue_calm(cowmem__reset_t* r, size_t cap) {
  if (!r->empty || cap >= r->cap) return;
  if (atomic_fetch_add_explicit(&r->calm, 1, memory_order_relaxed) + 1 < GROW_AFTER) return;
  atomic_store_explicit(&r->calm, 0, memory_order_relaxed);
  atomic_compare_exchange_strong_explicit(&r->size, &cap, cap + 1, memory_order_relaxed,
                                          memory_order_relaxed);
}

/* The calling thread's queue. */
static queue_t* queue_own(cowmem__reset_t* r) {
  return &r->queues[r->nqueues == 1 ? 0 : (size_t)cowmem__os_stripe()];
}

/* KEEP_RESIDENT: [0, keep) is restored by copying, so those pages stay
 * resident; the rest is discarded. An image that cannot be read (a mapped
 * image without its view) has everything discarded; a restore that fails
 * (the image's file shrank) drops the slot. */
static int reset_keep(cowmem_slot_t* slot, size_t keep) {
  int r = cowmem__slot_resettable(slot);
  if (r != 0) return r;
  keep = cowmem__page_floor(keep < slot->initial ? keep : slot->initial);
  if (!cowmem__image_readable(slot->image)) keep = 0;
  int e = keep > 0 ? cowmem__image_restore(slot->image, slot->base, 0, keep, false) : 0;
  if (e == 0 && slot->accessible > keep)
    e = cowmem__os_discard(slot->base + keep, slot->accessible - keep);
  if (e) return cowmem__slot_fail(slot, e);
  return cowmem__slot_finish_reset(slot);
}

/* Queue the slot with the k ranges its reset leaves to discard in this
 * thread's queue; -1 when it could not be queued (a push onto a full queue
 * happens only while a flush runs; no memory for a new queue): it is reset
 * at once then. FLUSH from the queue's size on, unless the discard would
 * wait for another thread's and there is room (DEFER_SLOTS). An orphan's
 * slot (image.h) is announced again when it arrives, under the queue's
 * lock: the pool's next sweep flushes it out. */
static int queue_push(cowmem__reset_t* r, cowmem_slot_t* slot,
                      const cowmem__os_range_t* ranges, size_t k) {
  queue_t* q = queue_own(r);
  pthread_mutex_lock(&q->lock);
  int res = -1;
  if (q->items == NULL) {
    q->items = malloc(r->hard * sizeof *q->items);
    q->ranges = malloc(r->rcap * sizeof *q->ranges);
    if (q->items == NULL || q->ranges == NULL) {
      free(q->items);
      free(q->ranges);
      q->items = NULL;
      q->ranges = NULL;
    }
  }
  if (q->items != NULL && q->n < r->hard && q->nr + k <= r->rcap) {
    cowmem__image_landed(slot->image);
    q->items[q->n++] = slot;
    q->pushes++;
    memcpy(q->ranges + q->nr, ranges, k * sizeof *ranges);
    q->nr += k;
    size_t cap = queue_cap(r);
    /* Room for one more: each push brings at most DEFER_MAX ranges, and
     * rcap holds that many for each of hard slots. */
    bool queued = q->n < cap || (r->empty && q->n < DEFER_ROOM(cap) && q->n < r->hard &&
                                 cowmem__os_discard_busy());
    res = queued ? COWMEM__RESET_QUEUED : COWMEM__RESET_FLUSH;
    if (res == COWMEM__RESET_FLUSH) queue_calm(r, cap);
  }
  pthread_mutex_unlock(&q->lock);
  return res;
}

/* ADAPTIVE, and the queue for the blind resets that leave their discard to
 * it; a reset it declines is a MADVISE one. */
static int reset_adaptive(cowmem__reset_t* r, cowmem_slot_t* slot) {
  cowmem__os_range_t d[COWMEM__ADAPTIVE_DEFER_MAX];
  size_t nd = 0;
  int res = cowmem__adaptive_reset(r->adaptive, slot, r->queues ? d : NULL, &nd);
  if (res == COWMEM__ADAPTIVE_DECLINED) return cowmem_slot_reset(slot);
  if (res != COWMEM__ADAPTIVE_DEFERRED) return res;
  res = queue_push(r, slot, d, nd);
  if (res >= 0) return res;
  uint64_t faults = 0;
  bool counted = cowmem__adaptive_flush_count(&slot, 1, &faults);
  int e = nd > 0 ? cowmem__os_discard_empty(d, nd) : 0;
  return cowmem__adaptive_flushed(r->adaptive, slot, e, counted, faults);
}

int cowmem__reset(cowmem__reset_t* r, cowmem_slot_t* slot) {
  int res = cowmem__slot_resettable(slot);
  if (res != 0) return res;
  switch (r->strategy) {
  case COWMEM_RESET_KEEP_RESIDENT: return reset_keep(slot, r->keep_resident);
  case COWMEM_RESET_BATCHED: {
    cowmem__os_range_t all = {slot->base, slot->accessible};
    res = queue_push(r, slot, &all, slot->accessible > 0);
    if (res >= 0) return res;
    break;
  }
  case COWMEM_RESET_ADAPTIVE: return reset_adaptive(r, slot);
  default: break;
  }
  return cowmem_slot_reset(slot); /* MADVISE, and every fallback */
}

#ifdef COWMEM_TESTING
size_t cowmem__reset_queue_size(const cowmem__reset_t* r) {
  return r->queues != NULL ? queue_cap(r) : 0;
}

static void (*_Atomic flush_hook)(void* arg);
static void* flush_hook_arg;

void cowmem__reset_flush_inject(void (*fn)(void* arg), void* arg) {
  flush_hook_arg = arg;
  atomic_store(&flush_hook, fn);
}
#endif

static int queue_flush(cowmem__reset_t* r, queue_t* q,
                       void (*done)(void* arg, cowmem_slot_t* slot, int result),
                       void* arg) {
  /* ADAPTIVE's queue fits here; BATCHED's may not. */
  cowmem_slot_t* local_items[DEFER_ROOM(DEFER_SLOTS)];
  cowmem__os_range_t local_ranges[DEFER_SLOTS * COWMEM__ADAPTIVE_DEFER_MAX];
  pthread_mutex_lock(&q->lock);
  size_t n = q->n, nr = q->nr;
  cowmem_slot_t** items = local_items;
  cowmem__os_range_t* ranges = local_ranges;
  if (n > DEFER_ROOM(DEFER_SLOTS)) items = malloc(n * sizeof *items);
  if (nr > sizeof local_ranges / sizeof local_ranges[0])
    ranges = malloc(nr * sizeof *ranges);
  bool took = n > 0 && items != NULL && ranges != NULL;
  if (took) {
    memcpy(items, q->items, n * sizeof *items);
    memcpy(ranges, q->ranges, nr * sizeof *ranges);
    q->n = q->nr = 0;
  }
  pthread_mutex_unlock(&q->lock);
  if (took) {
    if (nr > 0) atomic_fetch_add_explicit(&r->flushes, 1, memory_order_relaxed);
#ifdef COWMEM_TESTING
    void (*hook)(void*) = atomic_exchange(&flush_hook, NULL);
    if (hook != NULL) hook(flush_hook_arg);
#endif
    /* ADAPTIVE: the count its slots wait for, read before the discard. */
    uint64_t faults = 0;
    bool counted = r->adaptive != NULL && cowmem__adaptive_flush_count(items, n, &faults);
    int e = nr == 0    ? 0
            : r->empty ? cowmem__os_discard_empty(ranges, nr)
                       : cowmem__os_discard_many(ranges, nr);
    for (size_t i = 0; i < n; i++) {
      int res = r->adaptive != NULL
                    ? cowmem__adaptive_flushed(r->adaptive, items[i], e, counted, faults)
                : e ? cowmem__slot_fail(items[i], e)
                    : cowmem__slot_finish_reset(items[i]);
      done(arg, items[i], res);
    }
  }
  /* Without memory to copy the queue, it waits for a later flush. */
  if (items != local_items) free(items);
  if (ranges != local_ranges) free(ranges);
  return took ? (int)n : 0;
}

/* Has the queue had no push since the last starved look? (Its thread may
 * have exited, or stopped releasing; a queue being pushed to is not.) */
static bool queue_stale(queue_t* q) {
  pthread_mutex_lock(&q->lock);
  bool stale = q->n > 0 && q->pushes == q->seen;
  q->seen = q->pushes;
  pthread_mutex_unlock(&q->lock);
  return stale;
}

void cowmem__reset_starved(cowmem__reset_t* r) {
  if (r->queues == NULL || !r->empty) return;
  size_t cap = atomic_load_explicit(&r->size, memory_order_relaxed);
  atomic_store_explicit(&r->calm, 0, memory_order_relaxed);
  if (cap > 2)
    atomic_compare_exchange_strong_explicit(&r->size, &cap, cap - 1, memory_order_relaxed,
                                            memory_order_relaxed);
}

/* An acquire found no idle slot of its image: its own queue, and any that
 * holds slots for nobody. */
static int queues_missed(cowmem__reset_t* r, void (*done)(void*, cowmem_slot_t*, int),
                         void* arg) {
  queue_t* own = queue_own(r);
  int n = queue_flush(r, own, done, arg);
  for (size_t i = 0; i < r->nqueues; i++)
    if (&r->queues[i] != own && queue_stale(&r->queues[i]))
      n += queue_flush(r, &r->queues[i], done, arg);
  return n;
}

int cowmem__reset_flush(cowmem__reset_t* r, cowmem__reset_which_t which,
                        void (*done)(void* arg, cowmem_slot_t* slot, int result),
                        void* arg) {
  if (r->queues == NULL) return 0;
  if (which == COWMEM__FLUSH_OWN) return queue_flush(r, queue_own(r), done, arg);
  if (which == COWMEM__FLUSH_MISSED) return queues_missed(r, done, arg);
  int n = 0;
  for (size_t i = 0; i < r->nqueues; i++)
    n += queue_flush(r, &r->queues[i], done, arg);
  return n;
}

void cowmem__reset_metrics(cowmem__reset_t* r, cowmem_pool_metrics_t* out) {
  out->pending = 0;
  out->flushes = atomic_load_explicit(&r->flushes, memory_order_relaxed);
  for (size_t i = 0; i < r->nqueues; i++) {
    pthread_mutex_lock(&r->queues[i].lock);
    out->pending += r->queues[i].n;
    pthread_mutex_unlock(&r->queues[i].lock);
  }
  cowmem__adaptive_totals(r->adaptive, &out->copied_pages, &out->discarded_pages);
}

void cowmem__reset_image_metrics(cowmem__reset_t* r, const cowmem_image_t* image,
                                 cowmem_pool_image_metrics_t* out) {
  cowmem__adaptive_image_metrics(r->adaptive, image, out);
}
