/* The ADAPTIVE strategy's interface to the reset module (reset.c): per
 * image hot sets, learned from the pages instances write. Nothing else
 * includes this. */
#ifndef COWMEM_ADAPTIVE_H
#define COWMEM_ADAPTIVE_H

#include "slot/slot.h"

typedef struct cowmem__adaptive_s cowmem__adaptive_t;

/* resident_budget: bytes a hot set may keep; one reset in sample_every
 * learns; defers: the caller can queue a blind reset's discard (see
 * COWMEM__ADAPTIVE_DEFERRED). NULL when out of memory. */
cowmem__adaptive_t* cowmem__adaptive_new(size_t resident_budget, size_t sample_every,
                                         bool defers);
void cowmem__adaptive_free(cowmem__adaptive_t* a);

/* Returned when this reset cannot be adaptive (nothing accessible, no view
 * of the image to copy from, no room for its hot set, the scan failed): the
 * slot is unchanged and the caller resets it another way. */
#define COWMEM__ADAPTIVE_DECLINED 1

/* Returned by a reset given room to defer: the hot pages are restored,
 * and what is left is a flush, which may serve many slots: read the count
 * once (cowmem__adaptive_flush_count), discard the ranges the resets
 * wrote to defer (they should hold no page; cowmem__os_discard_empty),
 * then cowmem__adaptive_flushed for each slot. A blind reset leaves its
 * discard; a quiet one none (*ndefer 0), only the check that nothing
 * faulted since the slot was last settled. Until then the slot is DIRTY. */
#define COWMEM__ADAPTIVE_DEFERRED 2
/* What a slot a reset deferred waits for besides the discard
 * (slot->reset_wait): nothing, the count to stamp it with (the next reset
 * can be quiet), or the count to check (a quiet reset). */
enum { COWMEM__WAIT_NONE = 0, COWMEM__WAIT_STAMP = 1, COWMEM__WAIT_VERIFY = 2 };
/* Room for a deferred discard's ranges: the gaps around the listed runs. */
#define COWMEM__ADAPTIVE_DEFER_MAX 65

/* Reset a slot the caller checked is DIRTY: exactly image and zeros
 * afterwards, with the image's hot pages resident. 0 (READY), DECLINED,
 * DEFERRED (only with defer non-NULL: up to COWMEM__ADAPTIVE_DEFER_MAX
 * ranges in defer, their number in *ndefer), or a negative error (the slot
 * was released to EMPTY or is BROKEN). */
int cowmem__adaptive_reset(cowmem__adaptive_t* a, cowmem_slot_t* slot,
                           cowmem__os_range_t* defer, size_t* ndefer);
/* A flush of n deferred slots, before its discard: the process's fault
 * count into *faults, read once if any slot waits for it; true if read. */
bool cowmem__adaptive_flush_count(cowmem_slot_t* const* slots, size_t n,
                                  uint64_t* faults);
/* Finish a deferred slot after the flush's discard (err: its error, 0 if
 * none or there was nothing to discard) and count (counted, faults): a
 * quiet reset whose count moved settles every page now. Returns what
 * cowmem__slot_finish_reset does, or a negative error. */
int cowmem__adaptive_flushed(cowmem__adaptive_t* a, cowmem_slot_t* slot, int err,
                             bool counted, uint64_t faults);

/* Per-image metrics (zeros for an image never reset here). */
void cowmem__adaptive_image_metrics(cowmem__adaptive_t* a, const cowmem_image_t* image,
                                    cowmem_pool_image_metrics_t* out);
/* Sums over images of copied and discarded pages. */
void cowmem__adaptive_totals(cowmem__adaptive_t* a, uint64_t* copied,
                             uint64_t* discarded);

#ifdef COWMEM_TESTING
/* Tests: 0 decides by the hot set's runs and whether another thread is
 * discarding (the default), 1 scans at every reset, 2 resets blind
 * (scanning only to sample); neither is ever quiet. 3 is quiet wherever
 * the fault count allows, blind otherwise. */
void cowmem__adaptive_test_mode(int mode);
#endif

#endif
