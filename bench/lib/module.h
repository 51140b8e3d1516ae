/* One module's memory given to instances every way (`cowmem bench`): the
 * copy baselines as C runtimes do it today (wasm2c's 8 GiB reservation and
 * a copy of the active segments; the same copy into memory kept between
 * instances), a cowmem slot (image from the module and from its compiled
 * image file), a pool per reset strategy, and Wasmtime's reset modes. Each
 * row times instantiate, reset and the whole cycle (instantiate + the
 * instance reading a fraction of the image's pages and writing K pages +
 * reset) and counts its minor page faults. Part of the benchmarks' helper
 * library (bench/lib/). */
#ifndef COWMEM_BENCH_MODULE_H
#define COWMEM_BENCH_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "cowmem.h"
#include "measure.h"

typedef struct {
  const uint8_t* data;
  uint64_t offset;
  uint64_t len;
} bench_seg_t;

typedef struct {
  cowmem_module_t* m;
  uint32_t mem;
  size_t size; /* initial bytes */
  bench_seg_t* segs; /* active segments of the memory (baselines copy them) */
  size_t nsegs;
  uint64_t copy_bytes;
  cowmem_image_t* image;      /* from the module */
  cowmem_image_t* file_image; /* from the compiled .cwimg */
  bool apply_left;            /* segments the image does not cover */
  size_t dirty;
  size_t lines;               /* 64-byte lines written in each of those pages (1 if 0) */
  double read;                /* fraction of the image's pages read */
  size_t read_lo, read_hi;    /* the image's pages, [lo, hi) */
  unsigned flags;             /* module parse flags (--fresh-imports) */
  size_t iters, warm;
  bench_samples_t open_ns;
} bench_mod_t;

typedef struct {
  char name[32];
  const char* covers;
  bench_samples_t inst, reset, cycle;
  double cycle_avg; /* bench_block_mean of cycle (BENCH_AVG_BLOCK), set by the caller */
  uint64_t faults; /* minor faults over the measured cycles */
  bench_counts_t counts; /* pool-adaptive: per measured reset */
  bool failed;
} bench_row_t;

/* Fill c (zeroed, with dirty, lines, read, flags, iters and warm set) for memory
 * mem of module m (the first defined one unless mem_given); c takes m. 0,
 * or an error with its reason in why (why_len bytes). */
int bench_mod_setup(bench_mod_t* c, cowmem_module_t* m, bool mem_given, uint64_t mem,
                    char* why, size_t why_len);
void bench_mod_free(bench_mod_t* c);
/* The image pages each instance reads. */
size_t bench_mod_reads(const bench_mod_t* c);

/* The rows: each runs c->warm + c->iters cycles, the last c->iters
 * measured into r (nanoseconds). 0 or an error code. */
int bench_mod_copy_fresh(const bench_mod_t* c, bench_row_t* r);
int bench_mod_copy_reuse(const bench_mod_t* c, bench_row_t* r);
int bench_mod_slot(const bench_mod_t* c, cowmem_image_t* img, bench_row_t* r);
int bench_mod_pool(const bench_mod_t* c, cowmem_reset_strategy_t strat, bench_row_t* r);
int bench_mod_wasmtime(const bench_mod_t* c, int mode, bench_row_t* r);

/* pool-adaptive's cycle against Wasmtime's pagemap_scan mode's, taking
 * turns: rounds of block cycles of each (which goes first alternates),
 * after c->warm of each; per round, the ratio of Wasmtime's time for its block
 * to the pool's (above 1: the pool faster). A host whose speed drifts moves
 * both sides of a round alike, where rows measured one after the other
 * can differ by a third. The median, lowest and highest round into *median,
 * *lo, *hi. 0 or an error code. */
int bench_mod_duel(const bench_mod_t* c, size_t rounds, size_t block, double* median,
                   double* lo, double* hi);

/* Scaling (scale.h) of one row kind: strat a reset strategy, or
 * BENCH_MOD_ARITH / BENCH_MOD_MEMCPY (the controls) or BENCH_MOD_WASMTIME
 * (Wasmtime's pagemap_scan mode on a memory of each worker's own). Threads
 * share one pool; processes make their own. Best of 3 cycles/s of 1
 * worker and of n into *one and *many. */
enum { BENCH_MOD_ARITH = -1, BENCH_MOD_MEMCPY = -2, BENCH_MOD_WASMTIME = -3 };
void bench_mod_scaling(const bench_mod_t* c, int strat, int n, bool procs, double* one,
                       double* many);

/* The short name of a reset strategy ("madvise", "keep-resident", ...). */
const char* bench_reset_name(int s);

#endif
