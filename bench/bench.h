/* Benchmark helpers: the measurement helpers (support/measure.h) and a
 * pool constructor. */
#ifndef COWMEM_BENCH_H
#define COWMEM_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cowmem.h"
#include "measure.h"

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
  cowmem_diag_t why;
  if (cowmem_pool_new(&cfg, &pool, &why) != 0) {
    fprintf(stderr, "pool: %s\n", why.reason);
    exit(1);
  }
  return pool;
}

#endif
