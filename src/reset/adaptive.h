/* The ADAPTIVE strategy's interface to the reset module (reset.c): per
 * image hot sets, learned from the pages instances write. Nothing else
 * includes this. */
#ifndef COWMEM_ADAPTIVE_H
#define COWMEM_ADAPTIVE_H

#include "internal.h"

typedef struct cowmem__adaptive_s cowmem__adaptive_t;

/* resident_budget: bytes a hot set may keep; one reset in sample_every
 * learns. NULL when out of memory. */
cowmem__adaptive_t* cowmem__adaptive_new(size_t resident_budget, size_t sample_every);
void cowmem__adaptive_free(cowmem__adaptive_t* a);

/* Returned when this reset cannot be adaptive (nothing accessible, no view
 * of the image to copy from, no room for its hot set, the scan failed): the
 * slot is unchanged and the caller resets it another way. */
#define COWMEM__ADAPTIVE_DECLINED 1

/* Reset a slot the caller checked is DIRTY: exactly image and zeros
 * afterwards, with the image's hot pages resident. 0 (READY), DECLINED,
 * or a negative error (the slot was released to EMPTY or is BROKEN). */
int cowmem__adaptive_reset(cowmem__adaptive_t* a, cowmem_slot_t* slot);

/* Per-image metrics (zeros for an image never reset here). */
void cowmem__adaptive_image_metrics(cowmem__adaptive_t* a, const cowmem_image_t* image,
                                    cowmem_pool_image_metrics_t* out);
/* Sums over images of copied and discarded pages. */
void cowmem__adaptive_totals(cowmem__adaptive_t* a, uint64_t* copied,
                             uint64_t* discarded);

/* Where a reset's time goes, for bench_adaptive: off by default (one
 * relaxed load per reset then); on, each reset of the calling thread
 * records its phases in nanoseconds, which _last returns. */
enum {
  COWMEM__PHASE_LOOKUP,   /* the image's state, counters */
  COWMEM__PHASE_SCAN,     /* PAGEMAP_SCAN */
  COWMEM__PHASE_BOOK,     /* miss count, sample decision */
  COWMEM__PHASE_SAMPLE,   /* comparing pages, learning */
  COWMEM__PHASE_COPY,     /* restoring hot pages, queueing the rest */
  COWMEM__PHASE_DECOMMIT, /* madvise / process_madvise */
  COWMEM__PHASE_FINISH,   /* the slot's state and protection */
  COWMEM__PHASES
};
void cowmem__adaptive_profile(bool on);

#ifdef COWMEM_TESTING
/* Tests: 0 decides by the hot set's runs and whether another thread is
 * discarding (the default), 1 scans at every reset, 2 resets blind
 * (scanning only to sample). */
void cowmem__adaptive_test_mode(int mode);
#endif
/* The phases of this thread's last adaptive reset; false if it declined. */
bool cowmem__adaptive_profile_last(uint64_t ns[COWMEM__PHASES]);

#endif
