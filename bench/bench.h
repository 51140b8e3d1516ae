/* Benchmark helpers: a monotonic clock, sample sets, median and p99. */
#ifndef COWMEM_BENCH_H
#define COWMEM_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cowmem.h"

static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct {
  double* v;
  size_t n, cap;
} bench_samples_t;

static inline void bench_add(bench_samples_t* s, double x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 1024;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (s->v == NULL) abort();
  }
  s->v[s->n++] = x;
}

static int bench_cmp_(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* Quantile q in [0,1] (sorts the samples). */
static inline double bench_quantile(bench_samples_t* s, double q) {
  if (s->n == 0) return 0;
  qsort(s->v, s->n, sizeof *s->v, bench_cmp_);
  size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
  return s->v[i];
}

static inline void bench_reset(bench_samples_t* s) { s->n = 0; }
static inline void bench_free(bench_samples_t* s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* Iterations from the environment (COWMEM_BENCH_SCALE multiplies them). */
static inline size_t bench_iters(size_t n) {
  const char* e = getenv("COWMEM_BENCH_SCALE");
  double k = e ? atof(e) : 1.0;
  size_t r = (size_t)((double)n * (k > 0 ? k : 1.0));
  return r ? r : 1;
}

/* A pool as the benchmarks use it: default 4 GiB slots, the given reset,
 * a 64 KiB keep-resident window (Wasmtime's default) and 16 slots per
 * batched flush. Exits on failure. */
static inline cowmem_pool_t* bench_make_pool(cowmem_reset_strategy_t reset,
                                             size_t slots) {
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.max_slots = slots;
  cfg.reset = reset;
  cfg.keep_resident = 64 * 1024;
  cfg.batch_size = 16;
  cowmem_pool_t* pool = NULL;
  const char* why = NULL;
  if (cowmem_pool_new(&cfg, &pool, &why) != 0) {
    fprintf(stderr, "pool: %s\n", why);
    exit(1);
  }
  return pool;
}

#endif
