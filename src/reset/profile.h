/* Where an ADAPTIVE reset's time goes, by phase: a test-only interface,
 * compiled into the test library (COWMEM_TESTING) and never into the
 * released one. bench_reset prints it. Off by default (one relaxed load
 * per reset then); on, each reset of the calling thread records its phases
 * in nanoseconds, which _last returns. */
#ifndef COWMEM_RESET_PROFILE_H
#define COWMEM_RESET_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

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

#ifdef COWMEM_TESTING
void cowmem__adaptive_profile(bool on);
/* The phases of this thread's last adaptive reset; false if it declined. */
bool cowmem__adaptive_profile_last(uint64_t ns[COWMEM__PHASES]);
#endif

#endif
