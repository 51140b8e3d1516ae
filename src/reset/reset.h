/* Resetting pooled slots: the reset module's interface to the pool. It owns
 * every strategy (see cowmem_reset_strategy_t) and its state: MADVISE and
 * KEEP_RESIDENT and the BATCHED queue in reset.c, ADAPTIVE's hot sets
 * behind adaptive.h. The pool hands it DIRTY slots and learns
 * whether each is clean now or queued; it never sees a strategy's state. A
 * new strategy is a case in reset.c and, if it keeps state, a file here. */
#ifndef COWMEM_RESET_H
#define COWMEM_RESET_H

#include "slot/slot.h"

typedef struct cowmem__reset_s cowmem__reset_t;

/* For the pool's configuration (checked by the pool). ENOMEM. */
int cowmem__reset_new(const cowmem_pool_config_t* cfg, cowmem__reset_t** out);
/* Queued slots must have been flushed. */
void cowmem__reset_free(cowmem__reset_t* r);

enum { COWMEM__RESET_DONE = 0, COWMEM__RESET_QUEUED = 1, COWMEM__RESET_FLUSH = 2 };

/* Reset a DIRTY slot. Returns DONE (the slot is READY), QUEUED (BATCHED, or
 * an ADAPTIVE reset whose discard waits for other slots': it waits for a
 * flush), FLUSH (queued, and the queue is full: the caller flushes), or a
 * negative error (the slot was released to EMPTY or is BROKEN). */
int cowmem__reset(cowmem__reset_t* r, cowmem_slot_t* slot);

/* May cowmem__reset queue slots? */
bool cowmem__reset_queues(const cowmem__reset_t* r);

/* Which queued resets a flush finishes (ADAPTIVE queues per thread,
 * BATCHED has one queue): those the calling thread queued; those and any
 * queue no thread has pushed to since the last such flush (its thread may
 * have exited), for an acquire that found no idle slot of its image; or
 * all. */
typedef enum {
  COWMEM__FLUSH_OWN,
  COWMEM__FLUSH_MISSED,
  COWMEM__FLUSH_ALL
} cowmem__reset_which_t;

/* An acquire found no idle slot at all while slots waited in the queues:
 * ADAPTIVE's queues flush one slot sooner from now on (see reset.c). */
void cowmem__reset_starved(cowmem__reset_t* r);

/* Finish the queued resets `which` says and report each slot to
 * done(arg, slot, result) (result as cowmem__reset's DONE or error).
 * Returns how many. */
int cowmem__reset_flush(cowmem__reset_t* r, cowmem__reset_which_t which,
                        void (*done)(void* arg, cowmem_slot_t* slot, int result),
                        void* arg);

#ifdef COWMEM_TESTING
/* (pool.c) The size the pool's queues flush at now; 0 without queues. */
size_t cowmem__pool_queue_size(cowmem_pool_t* pool);
/* The size r's queues flush at now; 0 without queues. */
size_t cowmem__reset_queue_size(const cowmem__reset_t* r);
/* The next flush that takes slots from the queue calls fn(arg) when it
 * holds them, before resetting them: what another thread may do then. */
void cowmem__reset_flush_inject(void (*fn)(void* arg), void* arg);
#endif

/* The pool metrics this module keeps: pending, flushes (a queue's each),
 * copied_pages, discarded_pages (other fields untouched). */
void cowmem__reset_metrics(cowmem__reset_t* r, cowmem_pool_metrics_t* out);
/* What a strategy learned about one image (zeros: nothing). */
void cowmem__reset_image_metrics(cowmem__reset_t* r, const cowmem_image_t* image,
                                 cowmem_pool_image_metrics_t* out);

#endif
