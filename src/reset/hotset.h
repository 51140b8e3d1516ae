/* The hot set of one image: which pages its instances write, learned from
 * sampled resets by comparing contents with the image (hotset.c). The
 * ADAPTIVE reset (adaptive.c) reads it without a lock at every reset;
 * one sample at a time rewrites it. Nothing else includes this. */
#ifndef COWMEM_HOTSET_H
#define COWMEM_HOTSET_H

#include <pthread.h>

#include "internal.h"

/* Runs of hot pages a hot set lists (at most this many; more, and only the
 * bitmap says which pages are hot). */
#define COWMEM__HOTSET_LISTED 64

typedef struct {
  size_t npages;             /* pages [0, npages) may be hot */
  _Atomic uint64_t* hot;     /* npages bits */
  uint8_t* score;            /* a byte per page, rounded up to 64; under lock */
  size_t score_lo, score_hi; /* pages outside [lo, hi) score 0; under lock */
  pthread_mutex_t lock;      /* samples */
  _Atomic uint64_t pages;    /* hot pages */
  _Atomic uint64_t runs;     /* runs of hot pages (a blind reset's decommits) */
  /* The runs in order, each [lo, hi) as lo << 32 | hi, when runs <=
   * COWMEM__HOTSET_LISTED: a reset walks them instead of the bitmap. Read
   * without a lock like the bitmap: a torn read gives wrong runs, which a
   * reader clamps to its range, so it costs speed, never correctness. */
  _Atomic uint64_t listed[COWMEM__HOTSET_LISTED];
  _Atomic uint64_t samples, sampled_dirty;
  /* Bumped by each sample that changes which pages are hot: what a reset
   * knew of a slot's hot pages holds while it stays the same. Odd while a
   * sample rewrites the bitmap and the runs (a sequence lock: a reader that
   * reads the same even version before and after, with an acquire fence
   * before the second read, read one hot set whole). */
  _Atomic uint64_t version;
  _Atomic uint64_t interval; /* resets between samples (cowmem__hotset_due) */
} cowmem__hotset_t;

/* An empty hot set over npages pages; ENOMEM. */
int cowmem__hotset_init(cowmem__hotset_t* hs, size_t npages);
void cowmem__hotset_destroy(cowmem__hotset_t* hs);

static inline bool cowmem__hotset_has(const cowmem__hotset_t* hs, size_t page) {
  if (page >= hs->npages) return false;
  uint64_t w = atomic_load_explicit(&hs->hot[page / 64], memory_order_relaxed);
  return (w >> (page % 64)) & 1;
}

/* The i-th listed run, [*lo, *hi) (i < runs <= COWMEM__HOTSET_LISTED). */
static inline void cowmem__hotset_listed(const cowmem__hotset_t* hs, size_t i, size_t* lo,
                                         size_t* hi) {
  uint64_t r = atomic_load_explicit(&hs->listed[i], memory_order_relaxed);
  *lo = (size_t)(r >> 32);
  *hi = (size_t)(r & 0xffffffffu);
}

/* The end of the run of pages from i (below hi) that are hot if h, or not
 * hot if !h; no page at or above limit is hot. Always past i. */
size_t cowmem__hotset_run_end(const cowmem__hotset_t* hs, size_t i, size_t hi,
                              size_t limit, bool h);

/* Is a sample due at a thread's n-th reset of the image, `since` resets
 * after its last sample, with `misses` pages written outside the hot set
 * (known only with a scan)? */
bool cowmem__hotset_due(const cowmem__hotset_t* hs, uint64_t n, uint64_t since,
                        size_t every, uint64_t misses);

/* Learn from the instance in the slot at base (the image's slot, pages of
 * ps bytes, pages below limit can be hot): compare the candidate pages
 * with the image and rebuild the hot set, at most budget pages. The
 * candidates are the ranges given (a scan's: every page absent at the last
 * reset), or with ranges NULL the anonymous pages pagemap shows below
 * limit. False when nothing was learnt: another thread is sampling, or
 * out of memory. */
bool cowmem__hotset_sample(cowmem__hotset_t* hs, const cowmem_image_t* img, uint8_t* base,
                           size_t ps, size_t limit, const cowmem__os_range_t* ranges,
                           size_t n, size_t budget, size_t every);

#endif
