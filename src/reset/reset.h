/* Reset strategies for pooled slots (see cowmem_reset_strategy_t). The pool
 * hands a DIRTY slot to cowmem__reset_slot and learns whether it is clean
 * now or queued; a new strategy is one more case there (and its state, if
 * any, beside the queue), without reshaping the pool. */
#ifndef COWMEM_RESET_H
#define COWMEM_RESET_H

#include <pthread.h>

#include "internal.h"

/* ADAPTIVE: per-image hot sets of one pool (adaptive.c). */
typedef struct cowmem__adaptive_s cowmem__adaptive_t;

/* BATCHED: slots waiting for one discard of all their ranges. */
typedef struct {
  pthread_mutex_t lock;
  cowmem_slot_t** items;
  size_t n;
  size_t cap; /* the batch size; 0 when the strategy is not BATCHED */
  _Atomic(cowmem__adaptive_t*) adaptive; /* ADAPTIVE: made on first use */
} cowmem__reset_queue_t;

int cowmem__reset_queue_init(cowmem__reset_queue_t* q, size_t batch);
void cowmem__reset_queue_destroy(cowmem__reset_queue_t* q);
size_t cowmem__reset_queue_length(cowmem__reset_queue_t* q);
/* Discard every queued slot's accessible range in one call (where the OS
 * can), finish each reset, and report each slot to done(arg, slot, result).
 * Returns how many slots were flushed. */
int cowmem__reset_queue_flush(cowmem__reset_queue_t* q,
                              void (*done)(void* arg, cowmem_slot_t* slot, int r),
                              void* arg);

enum { COWMEM__RESET_DONE = 0, COWMEM__RESET_QUEUED = 1, COWMEM__RESET_FLUSH = 2 };

/* Reset a DIRTY slot the pool's way. Returns DONE (the slot is READY),
 * QUEUED (BATCHED: it waits), FLUSH (queued, and the queue is full: the
 * caller flushes), or a negative error (the slot was released to EMPTY or
 * is BROKEN). */
int cowmem__reset_slot(const cowmem_pool_config_t* cfg, cowmem__reset_queue_t* q,
                       cowmem_slot_t* slot);

/* ---- ADAPTIVE (adaptive.c) ---- */

cowmem__adaptive_t* cowmem__adaptive_new(void);
void cowmem__adaptive_free(cowmem__adaptive_t* a);
/* Reset a DIRTY slot: exactly image and zeros afterwards, with the image's
 * hot pages resident. 0 (READY) or a negative error (released to EMPTY or
 * BROKEN, as cowmem_slot_reset). a == NULL: a plain cowmem_slot_reset. */
int cowmem__adaptive_reset(cowmem__adaptive_t* a, const cowmem_pool_config_t* cfg,
                           cowmem_slot_t* slot);
/* Per-image metrics (zeros for an image never reset here). */
void cowmem__adaptive_image_metrics(cowmem__adaptive_t* a, const cowmem_image_t* image,
                                    cowmem_pool_image_metrics_t* out);
/* Sums over images of copied and discarded pages. */
void cowmem__adaptive_totals(cowmem__adaptive_t* a, uint64_t* copied,
                             uint64_t* discarded);

#endif
