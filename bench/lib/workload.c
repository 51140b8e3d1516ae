/* The request loops' shared parts (bench.h). */
#include <errno.h>
#include <sys/mman.h>

#include "bench.h"

cowmem_pool_t* bench_make_pool(cowmem_reset_strategy_t reset, size_t slots) {
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.max_slots = slots;
  cfg.reset = reset;
  cfg.keep_resident = 64 * KiB;
  cfg.batch_size = 16;
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t why;
  if (cowmem_pool_new(&cfg, &pool, &why) != 0) {
    fprintf(stderr, "pool: %s\n", why.reason);
    exit(1);
  }
  return pool;
}

void bench_must(int err, const char* what) {
  if (err == 0) return;
  fflush(stdout);
  fprintf(stderr, "bench: %s failed: %s\n", what, cowmem_strerror(err));
  exit(1);
}

const bench_strategy_t bench_strategies[] = {
    {"madvise", COWMEM_RESET_MADVISE, false},
    {"keep-resident 64 KiB window", COWMEM_RESET_KEEP_RESIDENT, false},
    {"batched (16/flush)", COWMEM_RESET_BATCHED, false},
    {"adaptive (scan where it pays)", COWMEM_RESET_ADAPTIVE, false},
    {"adaptive, no scan (fallback)", COWMEM_RESET_ADAPTIVE, true},
};
const size_t bench_nstrategies = sizeof bench_strategies / sizeof bench_strategies[0];

cowmem_pool_t* bench_strategy_pool(const bench_strategy_t* st, size_t slots) {
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, st->no_scan);
  return bench_make_pool(st->reset, slots);
}

bench_look_t bench_counts_look(cowmem_pool_t* pool, const cowmem_image_t* img) {
  bench_look_t l;
  cowmem_pool_metrics_t pm;
  bench_must(cowmem_pool_image_metrics(pool, img, &l.im), "cowmem_pool_image_metrics");
  bench_must(cowmem_pool_metrics(pool, &pm), "cowmem_pool_metrics");
  l.flushes = pm.flushes;
  return l;
}

bench_counts_t bench_counts_between(const bench_look_t* from, const bench_look_t* to) {
  bench_counts_t c = {to->im.resets - from->im.resets, 0, 0, 0, 0};
  if (c.resets == 0) return c;
  double n = (double)c.resets;
  c.quiet = (double)(to->im.quiet_resets - from->im.quiet_resets) / n;
  c.scans = (double)(to->im.scans - from->im.scans) / n;
  c.copied = (double)(to->im.copied_pages - from->im.copied_pages) / n;
  c.madvise = (double)(to->im.discard_calls - from->im.discard_calls + to->flushes -
                       from->flushes) / n;
  return c;
}

size_t* bench_layout(size_t k, size_t img, size_t at) {
  size_t ps = cowmem_page_size();
  size_t* p = malloc((k + 1) * sizeof *p);
  if (p == NULL) bench_must(COWMEM_ENOMEM, "bench_layout");
  if (k == 0) return p;
  size_t stack = k / 8 ? k / 8 : 1, globals = k / 4, i = 0;
  if (stack > at / ps) stack = at / ps;
  if (globals > img / ps / 4) globals = img / ps / 4;
  for (size_t s = 0; s < stack && i < k; s++)
    p[i++] = at - (s + 1) * ps;
  for (size_t g = 0; g < globals && i < k; g++)
    p[i++] = at + (g * 4 + 1) * ps;
  for (size_t h = 0; i < k; h++)
    p[i++] = at + img + h * ps;
  return p;
}

static _Atomic uint64_t read_sink;

void bench_work(uint8_t* m, const bench_work_t* w) {
  size_t ps = cowmem_page_size();
  size_t n = (size_t)(w->read * (double)(w->img / ps) + 0.5);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += ((volatile uint8_t*)m)[w->at + i * (w->img / ps) / n * ps + 16];
  if (n) read_sink += sum;
  for (size_t i = 0; i < w->k; i++)
    m[w->pages[i] + 8] += 1;
}

void bench_copy_times(size_t mem, const uint8_t* image, const bench_work_t* w,
                      size_t warm, size_t n, bench_samples_t* s, uint64_t* faults) {
  uint64_t f0 = 0;
  for (size_t i = 0; i < warm + n; i++) {
    if (i == warm) f0 = bench_minor_faults();
    uint64_t t0 = bench_now_ns();
    uint8_t* m = mmap(NULL, mem, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) bench_must(-errno, "mmap (the copy baseline)");
    memcpy(m + w->at, image, w->img);
    bench_work(m, w);
    munmap(m, mem);
    if (i >= warm) bench_add(s, (double)(bench_now_ns() - t0) / 1000.0);
  }
  if (faults != NULL) *faults = bench_minor_faults() - f0;
}

const char* const bench_wt_names[WT_MODES] = {"wasmtime default (madvise all)",
                                              "wasmtime keep_resident 64 KiB",
                                              "wasmtime pagemap_scan, keep 1 MiB"};

void bench_wt_times(int mode, size_t mem, const uint8_t* image, const bench_work_t* w,
                    size_t n, bool reset_only, bench_samples_t* s, uint64_t* faults) {
  wt_mem_t wt;
  bench_must(wt_open(&wt, mem, image, w->img, w->at, 64 * KiB, 1 * MiB) != 0 ? -errno : 0,
             "mapping Wasmtime's layout");
  *faults = 0;
  for (size_t i = 0; i < n / 10 + 300 + n; i++) {
    if (i == n / 10 + 300) *faults = bench_minor_faults();
    uint64_t t0 = bench_now_ns();
    bench_work(wt.base, w);
    uint64_t t1 = bench_now_ns();
    wt_reset(&wt, mode);
    uint64_t t2 = bench_now_ns();
    if (i >= n / 10 + 300) bench_add(s, (double)(t2 - (reset_only ? t1 : t0)) / 1000.0);
  }
  *faults = bench_minor_faults() - *faults;
  wt_close(&wt);
}
