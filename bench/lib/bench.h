/* The benchmarks' helper library (bench/lib/): the measurement helpers
 * (measure.h), Wasmtime's reset modes (wasmtime.h), and what the request
 * loops share: the strategies they compare, a pool as they make it, where
 * an instance writes, the copy baseline, and the timing of Wasmtime's
 * modes on the same workload; thread scaling is scale.h. Not part of
 * cowmem. */
#ifndef COWMEM_BENCH_H
#define COWMEM_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cowmem.h"
#include "measure.h"
#include "scale.h"
#include "wasmtime.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* A pool as the benchmarks use it: default 4 GiB slots, the given reset,
 * a 64 KiB keep-resident window (Wasmtime's default) and 16 slots per
 * batched flush. Exits on failure. */
cowmem_pool_t* bench_make_pool(cowmem_reset_strategy_t reset, size_t slots);

/* A failed call ends the benchmark with what failed (stdout flushed). */
void bench_must(int err, const char* what);

/* The strategies a request loop compares: every reset, and ADAPTIVE
 * without PAGEMAP_SCAN (its fallback). */
typedef struct {
  const char* name;
  cowmem_reset_strategy_t reset;
  bool no_scan;
} bench_strategy_t;
extern const bench_strategy_t bench_strategies[];
extern const size_t bench_nstrategies;
/* bench_make_pool with the strategy's PAGEMAP_SCAN option set (the
 * ADAPTIVE defaults: 1 MiB resident budget, one sample in 64). */
cowmem_pool_t* bench_strategy_pool(const bench_strategy_t* st, size_t slots);

/* What ADAPTIVE's resets of one image in a pool did, per reset, between
 * two looks at its metrics (cowmem_pool_image_metrics, and the pool's
 * flushes): the resets that were quiet (only the hot pages copied back:
 * nothing faulted) and that scanned (PAGEMAP_SCAN), the pages copied back,
 * and the madvise / process_madvise calls, the resets' own and the queue's
 * flushes (one call for the discards of many blind resets; the pool must
 * serve this image alone). All 0 when no reset was made in between. */
typedef struct {
  uint64_t resets;
  double quiet, scans, copied, madvise;
} bench_counts_t;
typedef struct {
  cowmem_pool_image_metrics_t im;
  uint64_t flushes;
} bench_look_t;
bench_look_t bench_counts_look(cowmem_pool_t* pool, const cowmem_image_t* img);
bench_counts_t bench_counts_between(const bench_look_t* from, const bench_look_t* to);

/* Page offsets k writes spread like a real program's, for an image of img
 * bytes at offset at: k/8 stack pages below it (at least 1, at most what
 * fits below at), k/4 globals inside it (every 4th page), the rest heap
 * above it. malloc'd, k + 1 entries. */
size_t* bench_layout(size_t k, size_t img, size_t at);

/* The instance's work on memory m: read `read` (0 to 1) of the image's
 * pages (img bytes at at, spread evenly), then write the k pages. */
typedef struct {
  size_t img, at;
  double read;
  const size_t* pages;
  size_t k;
} bench_work_t;
void bench_work(uint8_t* m, const bench_work_t* w);

/* The copy baseline, what C runtimes do today, one request at a time:
 * fresh memory of mem bytes (mmap), the image's w->img bytes copied to
 * w->at, the work, munmap. warm requests untimed, then n timed
 * (microseconds into s); the timed ones' minor faults into *faults (may be
 * NULL). */
void bench_copy_times(size_t mem, const uint8_t* image, const bench_work_t* w,
                      size_t warm, size_t n, bench_samples_t* s, uint64_t* faults);

/* Wasmtime's mode on the same layout, with the image's bytes: n measured
 * iterations after a warm-up (n/10 + 300) of the work and a reset, timed
 * whole or (reset_only) the reset alone; the measured iterations' minor
 * faults in *faults. keep_resident keeps 64 KiB, pagemap_scan 1 MiB. */
void bench_wt_times(int mode, size_t mem, const uint8_t* image, const bench_work_t* w,
                    size_t n, bool reset_only, bench_samples_t* s, uint64_t* faults);
/* The rows' names of Wasmtime's modes. */
extern const char* const bench_wt_names[WT_MODES];

#endif
