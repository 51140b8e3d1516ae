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

/* Returned by a blind reset given room for its discard: the hot pages are
 * restored, and what is left is to discard the ranges it wrote to defer
 * (they should hold no page; cowmem__os_discard_empty) and then
 * cowmem__slot_finish_reset, or cowmem__slot_fail if the discard fails.
 * Until then the slot is DIRTY. */
#define COWMEM__ADAPTIVE_DEFERRED 2
/* Room for a deferred discard's ranges: the gaps around the listed runs. */
#define COWMEM__ADAPTIVE_DEFER_MAX 65

/* Reset a slot the caller checked is DIRTY: exactly image and zeros
 * afterwards, with the image's hot pages resident. 0 (READY), DECLINED,
 * DEFERRED (only with defer non-NULL: up to COWMEM__ADAPTIVE_DEFER_MAX
 * ranges in defer, their number in *ndefer), or a negative error (the slot
 * was released to EMPTY or is BROKEN). */
int cowmem__adaptive_reset(cowmem__adaptive_t* a, cowmem_slot_t* slot,
                           cowmem__os_range_t* defer, size_t* ndefer);

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
