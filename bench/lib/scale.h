/* Thread and process scaling for the benchmarks (bench_adaptive, `cowmem
 * bench --threads/--processes`): the same cycle run by 1 and by n workers,
 * the best of 3 of each (other load only ever slows a run down), and two
 * controls that show what the machine gives n workers at all. Part of the
 * benchmarks' helper library (bench/lib/). */
#ifndef COWMEM_BENCH_SCALE_H
#define COWMEM_BENCH_SCALE_H

#include <stdbool.h>
#include <stddef.h>

/* What each worker runs. open (may be NULL) makes the worker's state from
 * ctx (its own memory or pool, or a share of the caller's); cycle runs one
 * cycle; close (may be NULL) frees the state. open and cycle return 0 or a
 * negative COWMEM_E* code. */
typedef struct {
  int (*open)(void* ctx, void** state);
  int (*cycle)(void* state);
  void (*close)(void* state);
  void* ctx;
} bench_worker_t;

/* Cycles per second of n workers summed: each runs iters / 10 cycles
 * untimed, then iters timed. Workers are threads, or with procs forked
 * processes that report through a pipe. 0 when a worker failed (*err, if
 * not NULL, gets its error). n is at most 64. */
double bench_rate(const bench_worker_t* w, int n, bool procs, size_t iters, int* err);

/* Iterations of w's cycle that one worker runs in about `seconds`: the rate
 * of a first run of probe cycles, times seconds, times COWMEM_BENCH_SCALE;
 * never fewer than probe. */
size_t bench_iters_for(const bench_worker_t* w, double seconds, size_t probe);

/* The best of 3 runs of 1 worker and of n workers, into *one and *many. */
void bench_scaling(const bench_worker_t* w, int n, bool procs, size_t iters, double* one,
                   double* many);

/* The controls: a cycle of arithmetic only (200 multiply-adds), and one of
 * a 64 KiB copy between private, cache-resident buffers (what a 16-page
 * copy-back does). Below n times, the machine did not give the workers n
 * CPUs during the run. */
extern const bench_worker_t bench_control_arith;
extern const bench_worker_t bench_control_memcpy;

#endif
