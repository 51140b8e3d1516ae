/* Measurement helpers for the programs that time things (bench/ and the
 * cowmem command's `bench`): a monotonic clock, sample sets, quantiles and
 * an iteration scale. Header-only; not part of the library. */
#ifndef COWMEM_MEASURE_H
#define COWMEM_MEASURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct {
  double* v;
  size_t n, cap;
} bench_samples_t;

/* Minor page faults of the process so far (getrusage): the difference over
 * a loop is the pages its requests mapped in (first touches, copy-on-write
 * copies, and pages a reset dropped that the next request needed again). */
static inline uint64_t bench_minor_faults(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (uint64_t)ru.ru_minflt;
}

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

/* The rank of quantile q in [0,1] among n sorted values: the nearest of
 * q * (n - 1). Every program that prints a quantile uses it, so their p99s
 * compare. */
static inline size_t bench_rank(size_t n, double q) {
  return n == 0 ? 0 : (size_t)(q * (double)(n - 1) + 0.5);
}

/* Quantile q in [0,1] (sorts the samples). */
static inline double bench_quantile(bench_samples_t* s, double q) {
  if (s->n == 0) return 0;
  qsort(s->v, s->n, sizeof *s->v, bench_cmp_);
  return s->v[bench_rank(s->n, q)];
}

/* The median of the means of consecutive blocks of `block` samples, in the
 * order they were taken (call it before a quantile sorts them): what work
 * costs when some of it is deferred and done for many at once (a queue's
 * flush), which a median of single samples leaves out, without letting one
 * preempted sample move the figure as a plain mean would. */
static inline double bench_block_mean(const bench_samples_t* s, size_t block) {
  if (s->n == 0) return 0;
  if (block == 0 || block > s->n) block = s->n; /* fewer samples: their mean */
  size_t nb = s->n / block;
  bench_samples_t means = {0};
  for (size_t b = 0; b < nb; b++) {
    double sum = 0;
    for (size_t i = 0; i < block; i++)
      sum += s->v[b * block + i];
    bench_add(&means, sum / (double)block);
  }
  double m = bench_quantile(&means, 0.5);
  free(means.v);
  return m;
}

/* Cycles per block of a row's average (bench_block_mean): 4 of the ADAPTIVE
 * queue's flushes at most. */
#define BENCH_AVG_BLOCK 32

static int bench_cmp_u64_(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

/* Quantile q of n nanosecond counts, in microseconds (sorts them). */
static inline double bench_quantile_ns_us(uint64_t* v, size_t n, double q) {
  if (n == 0) return 0;
  qsort(v, n, sizeof *v, bench_cmp_u64_);
  return (double)v[bench_rank(n, q)] / 1e3;
}

static inline void bench_reset(bench_samples_t* s) {
  s->n = 0;
}
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

#endif
