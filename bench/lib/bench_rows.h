/* bench_rows.h: rows of request loops compared in one process (the
 * pre-initialization benchmarks of both integrations): each row serves a
 * request on a fresh instance through its own function; loops alternate
 * in blocks, each request timed whole, and the table puts every row beside
 * the first two (the baselines: stock, and stock running Wizer's output). */
#ifndef COWMEM_BENCH_ROWS_H
#define COWMEM_BENCH_ROWS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure.h"

#define ROW_REPORT_CAP 256

typedef struct bench_row_s bench_row_t;
struct bench_row_s {
  const char* name;
  int (*serve)(bench_row_t* r, char* report); /* 0, or 1 (printed) */
  void* ctx;                                  /* the serve function's */
  bench_samples_t req;
  uint64_t elapsed_ns, faults, n;
};

/* n requests of row r; with record, each timed and the faults counted.
 * Each report must be expect (when not NULL). 0, or 1 (printed). */
static inline int bench_row_loop(bench_row_t* r, size_t n, const char* expect, bool record) {
  char report[ROW_REPORT_CAP];
  uint64_t f0 = bench_minor_faults(), start = bench_now_ns();
  for (size_t i = 0; i < n; i++) {
    uint64_t t0 = bench_now_ns();
    if (r->serve(r, report) != 0) return 1;
    if (record) bench_add(&r->req, (double)(bench_now_ns() - t0));
    if (expect && strcmp(report, expect) != 0) {
      fprintf(stderr, "%s: %s", r->name, report);
      return 1;
    }
  }
  if (record) {
    r->elapsed_ns += bench_now_ns() - start;
    r->faults += bench_minor_faults() - f0;
    r->n += n;
  }
  return 0;
}

static inline double bench_row_rps(const bench_row_t* r) {
  return r->elapsed_ns ? (double)r->n * 1e9 / (double)r->elapsed_ns : 0;
}

/* The table: requests/s, p50, p99 (us), faults per request, and the ratios
 * against rows[0] and rows[1] ("-" for a row or baseline not run). */
static inline void bench_rows_print(bench_row_t* rows, int n) {
  printf("%-15s %11s %9s %9s %10s %8s %8s\n", "", "requests/s", "p50 us", "p99 us",
         "faults/req", "x stock", "x wizer");
  for (int i = 0; i < n; i++) {
    bench_row_t* r = &rows[i];
    if (!r->n) continue;
    printf("%-15s %11.0f %9.2f %9.2f %10.1f", r->name, bench_row_rps(r),
           bench_quantile(&r->req, 0.5) / 1e3, bench_quantile(&r->req, 0.99) / 1e3,
           (double)r->faults / (double)r->n);
    for (int b = 0; b < 2; b++)
      if (rows[b].n)
        printf(" %7.1fx", bench_row_rps(r) / bench_row_rps(&rows[b]));
      else
        printf(" %8s", "-");
    printf("\n");
  }
}

/* Warm up each row (or run only the row named `only`, unrecorded), then
 * `rounds` blocks of each row in turn: iters requests a row in all. */
static inline int bench_rows_run(bench_row_t* rows, int n, size_t warmup, size_t iters,
                                 size_t rounds, const char* only, const char* expect) {
  int rc = 0;
  for (int i = 0; rc == 0 && i < n; i++) {
    if (!rows[i].serve || (only && strcmp(only, rows[i].name) != 0)) continue;
    rc = bench_row_loop(&rows[i], only ? iters : warmup, only ? NULL : expect, false);
  }
  for (size_t round = 0; rc == 0 && !only && round < rounds; round++)
    for (int i = 0; rc == 0 && i < n; i++)
      if (rows[i].serve)
        rc = bench_row_loop(&rows[i], iters * (round + 1) / rounds - iters * round / rounds,
                            expect, true);
  return rc;
}

/* --iters N, --warmup N, --only ROW and (when file_opt is not NULL) the
 * option file_opt FILE: 0, or 1 on a bad argument. */
static inline int bench_rows_args(int argc, char** argv, size_t* iters, size_t* warmup,
                                  const char** only, const char* file_opt, const char** file) {
  for (int i = 1; i < argc; i += 2) {
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return 1;
    if (!strcmp(argv[i], "--iters")) *iters = strtoul(v, NULL, 10);
    else if (!strcmp(argv[i], "--warmup")) *warmup = strtoul(v, NULL, 10);
    else if (!strcmp(argv[i], "--only")) *only = v;
    else if (file_opt && !strcmp(argv[i], file_opt)) *file = v;
    else return 1;
  }
  return *iters == 0;
}

#endif
