/* Adaptive reset benchmark: a request loop (acquire, read a part of the
 * image, write K pages, release) on a 16 MiB memory with a 1 MiB image,
 * every reset strategy beside the copy baseline, K = 0, 16, 256 and 320
 * (past the hot set's 1 MiB budget), reading none of the image, 10% or all
 * of it (K = 0 and 16), with minor page faults per request beside each row.
 * The K pages are spread like a real program's: stack pages just below the
 * image (the stack grows down from 128 KiB), globals inside the image
 * (every 4th page), and the start of the heap above it. Also: the floor
 * (copying K pages with no fault), 1 vs 2 thread throughput, and the time
 * of a snapshot. Medians and p99 in microseconds; ratios from the same
 * run. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "adaptive.h" /* the per-phase profile (internal) */
#include "bench.h"
#include "cowmem.h"
#include "wasmtime.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define MEM (16 * MiB)
#define IMG (1 * MiB)
#define IMG_AT (128 * KiB)

static size_t PS;
static uint8_t* image_bytes;

typedef struct {
  const char* name;
  cowmem_reset_strategy_t reset;
  bool no_scan;
} strategy_t;

static const strategy_t strategies[] = {
    {"madvise", COWMEM_RESET_MADVISE, false},
    {"keep-resident 64 KiB window", COWMEM_RESET_KEEP_RESIDENT, false},
    {"batched (16/flush)", COWMEM_RESET_BATCHED, false},
    {"adaptive (scan where it pays)", COWMEM_RESET_ADAPTIVE, false},
    {"adaptive, no scan (fallback)", COWMEM_RESET_ADAPTIVE, true},
};
#define NSTRAT (sizeof strategies / sizeof strategies[0])

static cowmem_pool_t* make_pool(const strategy_t* st, size_t slots) {
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, st->no_scan);
  /* resident_budget and sample_every: the defaults (1 MiB, 64) */
  return bench_make_pool(st->reset, slots);
}

/* Page offsets the instance writes: K/8 stack pages (at least 1; at most
 * the 32 below the image), K/4 globals (at most the image's 64 4th pages),
 * the rest heap. */
static size_t* layout(size_t k) {
  size_t* p = malloc((k + 1) * sizeof *p);
  if (k == 0) return p;
  size_t stack = k / 8 ? k / 8 : 1, globals = k / 4, i = 0;
  if (stack > IMG_AT / PS) stack = IMG_AT / PS;
  if (globals > IMG / PS / 4) globals = IMG / PS / 4;
  for (size_t s = 0; s < stack && i < k; s++)
    p[i++] = IMG_AT - (s + 1) * PS;
  for (size_t g = 0; g < globals && i < k; g++)
    p[i++] = IMG_AT + (g * 4 + 1) * PS;
  for (size_t h = 0; i < k; h++)
    p[i++] = IMG_AT + IMG + h * PS;
  return p;
}

/* The fraction of the image's pages each instance of the request loop reads
 * (spread evenly) before writing its K pages: a program reading its data.
 * 0 elsewhere (the size sweep, threads). */
static double g_read;
static _Atomic uint64_t read_sink;

static void dirty(uint8_t* m, const size_t* pages, size_t k) {
  size_t n = (size_t)(g_read * (double)(IMG / PS) + 0.5);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += ((volatile uint8_t*)m)[IMG_AT + i * (IMG / PS) / n * PS + 16];
  if (n) read_sink += sum;
  for (size_t i = 0; i < k; i++)
    m[pages[i] + 8] += 1;
}

/* A failed call ends the benchmark with what failed (stdout flushed). */
static void must(int err, const char* what) {
  if (err == 0) return;
  fflush(stdout);
  fprintf(stderr, "bench_adaptive: %s failed: %s\n", what, cowmem_strerror(err));
  exit(1);
}

static void cycle(cowmem_pool_t* pool, cowmem_image_t* img, const size_t* pages,
                  size_t k) {
  cowmem_slot_t* s;
  must(cowmem_pool_acquire(pool, img, MEM, MEM, &s), "acquire");
  dirty(cowmem_slot_base(s), pages, k);
  must(cowmem_pool_release(pool, s), "release");
}

/* faults: minor page faults per request, or < 0 for none. */
static void row(const char* name, bench_samples_t* s, double base_med, double faults) {
  double med = bench_quantile(s, 0.5), p99 = bench_quantile(s, 0.99);
  char f[16] = "";
  if (faults >= 0) snprintf(f, sizeof f, "%8.2f", faults);
  if (base_med > 0)
    printf("  %-40s %9.2f %9.2f %9.1fx %s\n", name, med, p99, base_med / med, f);
  else
    printf("  %-40s %9.2f %9.2f %10s %s\n", name, med, p99, "", f);
  bench_reset(s);
}

/* ---- Wasmtime's reset modes (support/wasmtime.h) ---- */
static const char* const wt_names[WT_MODES] = {
    "wasmtime default (madvise all)", "wasmtime keep_resident 64 KiB",
    "wasmtime pagemap_scan, keep 1 MiB"};

/* Wasmtime's layout of a memory of mem bytes with the image (img bytes
 * at at), keeping 64 KiB (keep_resident) or 1 MiB (pagemap_scan). */
static void wt_map(wt_mem_t* w, size_t mem, size_t img, size_t at) {
  must(wt_open(w, mem, image_bytes, img, at, 64 * KiB, 1 * MiB) != 0 ? -errno : 0,
       "mapping Wasmtime's layout");
}

/* Cycles (writes + reset) or resets alone of one mode, n measured; the
 * measured cycles' minor faults in *faults. */
static void wt_times(int mode, size_t mem, size_t img, size_t at, const size_t* pages,
                     size_t k, size_t n, bool reset_only, bench_samples_t* s,
                     uint64_t* faults) {
  wt_mem_t w;
  wt_map(&w, mem, img, at);
  *faults = 0;
  for (size_t i = 0; i < n / 10 + 300 + n; i++) {
    if (i == n / 10 + 300) *faults = bench_minor_faults();
    uint64_t t0 = bench_now_ns();
    dirty(w.base, pages, k);
    uint64_t t1 = bench_now_ns();
    wt_reset(&w, mode);
    uint64_t t2 = bench_now_ns();
    if (i >= n / 10 + 300) bench_add(s, (double)(t2 - (reset_only ? t1 : t0)) / 1000.0);
  }
  *faults = bench_minor_faults() - *faults;
  wt_close(&w);
}

/* ---- where a reset's time goes, by memory size ----
 *
 * Memories of 1 to 64 MiB, an image of mem/16 (at most 1 MiB) at 128 KiB,
 * K pages written as layout() spreads them. For each: the floor (copy the
 * K pages + one kernel call, what a reset that knew the written pages
 * would still pay), the release (the reset) of MADVISE and ADAPTIVE, and
 * ADAPTIVE's phases (mean ns of each, from the reset's own clock). */

static size_t sw_img, sw_at;

static size_t* layout_at(size_t k, size_t img, size_t at) {
  size_t* p = malloc((k + 1) * sizeof *p);
  size_t stack = k / 8 ? k / 8 : 1, globals = k / 4, i = 0;
  if (k == 0) return p;
  if (stack > at / PS) stack = at / PS;
  if (globals > img / PS / 4) globals = img / PS / 4;
  for (size_t s = 0; s < stack && i < k; s++)
    p[i++] = at - (s + 1) * PS;
  for (size_t g = 0; g < globals && i < k; g++)
    p[i++] = at + (g * 4 + 1) * PS;
  for (size_t h = 0; i < k; h++)
    p[i++] = at + img + h * PS;
  return p;
}

/* Release times of one strategy (acquire and writes untimed). With ph,
 * also ADAPTIVE's phases and the release around them, a sample each. */
static void release_times(const strategy_t* st, cowmem_image_t* img, size_t mem,
                          const size_t* pages, size_t k, size_t n, bench_samples_t* s,
                          bench_samples_t* ph) {
  cowmem_pool_t* pool = make_pool(st, 4);
  for (size_t i = 0; i < n / 10 + 300 + n; i++) {
    cowmem_slot_t* sl;
    must(cowmem_pool_acquire(pool, img, mem, mem, &sl), "acquire");
    dirty(cowmem_slot_base(sl), pages, k);
    uint64_t t0 = bench_now_ns();
    must(cowmem_pool_release(pool, sl), "release");
    uint64_t t = bench_now_ns() - t0;
    if (i < n / 10 + 300) continue;
    bench_add(s, (double)t / 1000.0);
    uint64_t ns[COWMEM__PHASES];
    if (ph && cowmem__adaptive_profile_last(ns)) {
      uint64_t in = 0;
      for (int j = 0; j < COWMEM__PHASES; j++) {
        bench_add(&ph[j], (double)ns[j]);
        in += ns[j];
      }
      bench_add(&ph[COWMEM__PHASES], (double)(t > in ? t - in : 0));
    }
  }
  cowmem_pool_free(pool);
}

static void sweep(bench_samples_t* s, size_t iters) {
  static const char* phase_names[COWMEM__PHASES + 1] = {
      "lookup", "scan", "book", "sample", "copy", "decommit", "finish", "pool"};
  size_t mems[] = {1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB}, ks[] = {0, 8, 64};
  printf("\nreset (release) by memory size: image mem/16 (<= 1 MiB) at 128 KiB; "
         "median, p99, ratio to the floor of the same size and K\n");
  printf("  %-6s %-4s %-28s %9s %9s %8s %8s\n", "memory", "K", "row", "median", "p99",
         "x floor", "p99/med");
  uint8_t* probe = mmap(NULL, PS, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  for (size_t mi = 0; mi < sizeof mems / sizeof mems[0]; mi++) {
    size_t mem = mems[mi];
    sw_at = 128 * KiB;
    sw_img = mem / 16 < IMG ? mem / 16 : IMG;
    cowmem_image_t* img = NULL;
    if (cowmem_image_new_from_bytes(image_bytes, sw_img, sw_at, &img)) abort();
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
      size_t k = ks[ki];
      size_t* pages = layout_at(k, sw_img, sw_at);
      size_t n = iters / 8;
      /* The floor: copy the K pages from the image, one kernel call. */
      uint8_t* dst = malloc((k ? k : 1) * PS);
      memset(dst, 1, (k ? k : 1) * PS);
      for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        for (size_t j = 0; j < k; j++)
          memcpy(dst + j * PS, image_bytes + (j * PS) % sw_img, PS);
        madvise(probe, PS, MADV_DONTNEED);
        bench_add(s, (double)(bench_now_ns() - t0) / 1000.0);
      }
      free(dst);
      double floor_med = bench_quantile(s, 0.5);
      printf("  %3zu MiB %-4zu %-28s %9.2f %9.2f %8s %8.2f\n", mem / MiB, k,
             "floor: copy K + 1 syscall", floor_med, bench_quantile(s, 0.99), "",
             bench_quantile(s, 0.99) / floor_med);
      bench_reset(s);
      double adaptive_med = 0, wt_med[WT_MODES];
      bench_samples_t phase[COWMEM__PHASES + 1];
      memset(phase, 0, sizeof phase);
      for (size_t st = 0; st < NSTRAT; st++) {
        if (strategies[st].reset == COWMEM_RESET_BATCHED) continue;
        bool exact_adaptive =
            strategies[st].reset == COWMEM_RESET_ADAPTIVE && !strategies[st].no_scan;
        release_times(&strategies[st], img, mem, pages, k, n, s, NULL);
        if (exact_adaptive) {
          /* The phases in a run of their own: the profile's clock reads
           * (eight a reset) would add 0.2 us to the row's own times. */
          bench_samples_t scratch = {0};
          cowmem__adaptive_profile(true);
          release_times(&strategies[st], img, mem, pages, k, n, &scratch, phase);
          cowmem__adaptive_profile(false);
          bench_free(&scratch);
        }
        double med = bench_quantile(s, 0.5), p99 = bench_quantile(s, 0.99);
        printf("  %3zu MiB %-4zu %-28.28s %9.2f %9.2f %7.2fx %8.2f\n", mem / MiB, k,
               strategies[st].name, med, p99, med / floor_med, p99 / med);
        bench_reset(s);
        if (exact_adaptive) adaptive_med = med;
        if (exact_adaptive) {
          printf("  %14s phases, median ns (p99):", "");
          for (int j = 0; j <= COWMEM__PHASES; j++) {
            printf(" %s %.0f (%.0f)", phase_names[j], bench_quantile(&phase[j], 0.5),
                   bench_quantile(&phase[j], 0.99));
            bench_free(&phase[j]);
          }
          printf("\n");
        }
      }
      for (int m = 0; m < WT_MODES; m++) {
        uint64_t faults;
        wt_times(m, mem, sw_img, sw_at, pages, k, n, true, s, &faults);
        double med = bench_quantile(s, 0.5), p99 = bench_quantile(s, 0.99);
        wt_med[m] = med;
        printf("  %3zu MiB %-4zu %-28.28s %9.2f %9.2f %7.2fx %8.2f\n", mem / MiB, k,
               wt_names[m], med, p99, med / floor_med, p99 / med);
        bench_reset(s);
      }
      printf("  %14s adaptive's reset vs Wasmtime's: default %.2fx, keep_resident "
             "%.2fx, pagemap_scan %.2fx (above 1: adaptive faster)\n",
             "", wt_med[0] / adaptive_med, wt_med[1] / adaptive_med,
             wt_med[2] / adaptive_med);
      free(pages);
    }
    cowmem_image_release(img);
  }
  munmap(probe, PS);
}

/* ---- throughput ---- */

typedef struct {
  cowmem_pool_t* pool; /* NULL: Wasmtime's pagemap_scan mode on a memory of
                          the thread's own */
  cowmem_image_t* img;
  const size_t* pages;
  size_t k, iters;
  double secs;
} thr_arg_t;

static void* thr_loop(void* p) {
  thr_arg_t* a = p;
  wt_mem_t w;
  if (a->pool == NULL) wt_map(&w, MEM, IMG, IMG_AT);
  uint64_t t0 = 0;
  for (size_t i = 0; i < a->iters + a->iters / 10; i++) {
    if (i == a->iters / 10) t0 = bench_now_ns();
    if (a->pool != NULL) {
      cycle(a->pool, a->img, a->pages, a->k);
    } else {
      dirty(w.base, a->pages, a->k);
      wt_reset(&w, WT_PAGEMAP);
    }
  }
  a->secs = (double)(bench_now_ns() - t0) / 1e9;
  if (a->pool == NULL) wt_close(&w);
  return NULL;
}

/* The control: two threads that share nothing (arithmetic only). Below 2x,
 * the machine itself did not give two threads two CPUs during the run. */
static _Atomic uint64_t spin_sink;
static void* spin(void* p) {
  double* secs = p;
  volatile uint64_t x = 0;
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < 20000000; i++)
    x += i * i;
  *secs = (double)(bench_now_ns() - t0) / 1e9;
  spin_sink += x;
  return NULL;
}

/* The other control: each thread copies 16 pages (64 KiB) between its own
 * cache-resident buffers, what a K=16 copy-restore does. */
static void* copy_loop(void* p) {
  double* secs = p;
  uint8_t* src = malloc(64 * KiB);
  uint8_t* dst = malloc(64 * KiB);
  memset(src, 3, 64 * KiB);
  memset(dst, 4, 64 * KiB);
  uint64_t t0 = bench_now_ns();
  for (int i = 0; i < 100000; i++) {
    memcpy(dst, src, 64 * KiB);
    src[i & 63] = dst[(i * 7) & 63];
  }
  *secs = (double)(bench_now_ns() - t0) / 1e9;
  spin_sink += dst[5];
  free(src);
  free(dst);
  return NULL;
}

static double control_run(void* (*fn)(void*), int nthreads) {
  pthread_t th[2];
  double secs[2], ops = 0;
  for (int i = 0; i < nthreads; i++)
    pthread_create(&th[i], NULL, fn, &secs[i]);
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    ops += 1.0 / secs[i];
  }
  return ops;
}

/* st NULL: Wasmtime's pagemap_scan mode, each thread on its own memory. */
static double throughput(const strategy_t* st, cowmem_image_t* img, size_t k,
                         int nthreads, size_t iters) {
  cowmem_pool_t* pool = st != NULL ? make_pool(st, 16) : NULL;
  size_t* pages = layout(k);
  pthread_t th[2];
  thr_arg_t a[2];
  for (int i = 0; i < nthreads; i++) {
    a[i] = (thr_arg_t){pool, img, pages, k, iters, 0};
    pthread_create(&th[i], NULL, thr_loop, &a[i]);
  }
  double ops = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    ops += (double)iters / a[i].secs;
  }
  cowmem_pool_free(pool);
  free(pages);
  return ops;
}

int main(void) {
  PS = cowmem_page_size();
  image_bytes = malloc(IMG);
  for (size_t i = 0; i < IMG; i++)
    image_bytes[i] = (uint8_t)(i * 13 + 7) | 1;
  cowmem_image_t* img = NULL;
  if (cowmem_image_new_from_bytes(image_bytes, IMG, IMG_AT, &img)) return 1;
  bench_samples_t s = {0};
  size_t iters = bench_iters(20000);

  printf("cowmem adaptive reset benchmark: 16 MiB memory, 1 MiB image at 128 KiB;\n"
         "a request: acquire, read R of the image's 256 pages, write K pages (K/8\n"
         "stack, K/4 globals, rest heap), release; microseconds; faults: minor page\n"
         "faults per request.\n\n");
  /* COWMEM_BENCH_THREADS_ONLY=1: only the throughput part (to repeat it);
   * COWMEM_BENCH_SWEEP_ONLY=1: only the size sweep and its breakdown. */
  bool threads_only = getenv("COWMEM_BENCH_THREADS_ONLY") != NULL;
  if (getenv("COWMEM_BENCH_SWEEP_ONLY") != NULL) {
    sweep(&s, iters);
    goto out;
  }
  if (!threads_only)
    printf("%-42s %9s %9s %10s %8s\n", "request loop", "median", "p99", "vs copy",
           "faults");
  /* 320: more pages than the default 1 MiB budget holds (256). Reads of
   * 10% and 100% of the image with K = 0 and 16. */
  static const struct {
    size_t k;
    double read;
  } ws[] = {{0, 0}, {0, 0.1}, {0, 1}, {16, 0}, {16, 0.1}, {16, 1}, {256, 0}, {320, 0}};
  for (size_t wi = 0; wi < (threads_only ? 0u : sizeof ws / sizeof ws[0]); wi++) {
    size_t k = ws[wi].k;
    g_read = ws[wi].read;
    char w[32]; /* the workload's name in the rows */
    if (g_read > 0)
      snprintf(w, sizeof w, "K=%zu R=%.0f%%", k, g_read * 100);
    else
      snprintf(w, sizeof w, "K=%zu", k);
    size_t* pages = layout(k);
    size_t n = k >= 256 || g_read >= 1 ? iters / 5 : iters;
    double adaptive_cycle = 1, wt_cycle[WT_MODES];
    /* Copy baseline: fresh memory, copy the image, write K pages, unmap. */
    size_t nb = bench_iters(k >= 256 ? 300 : 1000);
    uint64_t f0 = bench_minor_faults();
    for (size_t i = 0; i < nb; i++) {
      uint64_t t0 = bench_now_ns();
      uint8_t* m = mmap(NULL, MEM, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      memcpy(m + IMG_AT, image_bytes, IMG);
      dirty(m, pages, k);
      munmap(m, MEM);
      bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
    }
    double base = bench_quantile(&s, 0.5);
    char name[96];
    snprintf(name, sizeof name, "%s copy baseline", w);
    row(name, &s, base, (double)(bench_minor_faults() - f0) / (double)nb);
    /* The floor: copy exactly K resident pages back, no fault. */
    if (k > 0) {
      uint8_t* dst = malloc(k * PS);
      memset(dst, 1, k * PS);
      for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        for (size_t j = 0; j < k; j++)
          memcpy(dst + j * PS, image_bytes + (j * PS) % IMG, PS);
        bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
      }
      snprintf(name, sizeof name, "%s floor: copy K pages, no fault", w);
      row(name, &s, base, -1);
      free(dst);
    }
    for (size_t st = 0; st < NSTRAT; st++) {
      cowmem_pool_t* pool = make_pool(&strategies[st], 32);
      for (size_t i = 0; i < n / 10 + 300; i++)
        cycle(pool, img, pages, k);
      cowmem_pool_image_metrics_t im0;
      cowmem_pool_image_metrics(pool, img, &im0);
      uint64_t f1 = bench_minor_faults();
      for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        cycle(pool, img, pages, k);
        bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
      }
      double faults = (double)(bench_minor_faults() - f1) / (double)n;
      snprintf(name, sizeof name, "%s %s", w, strategies[st].name);
      if (strategies[st].reset == COWMEM_RESET_ADAPTIVE && !strategies[st].no_scan)
        adaptive_cycle = bench_quantile(&s, 0.5);
      row(name, &s, base, faults);
      if (strategies[st].reset == COWMEM_RESET_ADAPTIVE) {
        /* the measured requests' resets only */
        cowmem_pool_image_metrics_t im;
        cowmem_pool_image_metrics(pool, img, &im);
        double nr = (double)(im.resets - im0.resets);
        printf("      hot set %llu pages, %.1f dirty pages per sampled instance; per "
               "reset: %.2f blind, %.2f scanning, %.3f sampled, %.1f copied, %.2f "
               "decommitted, %.3f madvise calls\n",
               (unsigned long long)im.hot_pages,
               im.samples ? (double)im.sampled_dirty_pages / (double)im.samples : 0.0,
               (nr - (double)(im.scans - im0.scans)) / nr,
               (double)(im.scans - im0.scans) / nr, (double)(im.samples - im0.samples) / nr,
               (double)(im.copied_pages - im0.copied_pages) / nr,
               (double)(im.discarded_pages - im0.discarded_pages) / nr,
               (double)(im.discard_calls - im0.discard_calls) / nr);
      }
      cowmem_pool_free(pool);
    }
    for (int m = 0; m < WT_MODES; m++) {
      uint64_t faults;
      wt_times(m, MEM, IMG, IMG_AT, pages, k, n, false, &s, &faults);
      wt_cycle[m] = bench_quantile(&s, 0.5);
      snprintf(name, sizeof name, "%s %s", w, wt_names[m]);
      row(name, &s, base, (double)faults / (double)n);
    }
    printf("      adaptive's cycle vs Wasmtime's: default %.2fx, keep_resident %.2fx, "
           "pagemap_scan %.2fx (above 1: adaptive faster)\n",
           wt_cycle[0] / adaptive_cycle, wt_cycle[1] / adaptive_cycle,
           wt_cycle[2] / adaptive_cycle);
    free(pages);
  }
  g_read = 0; /* the sweep and the threads read nothing */

  if (!threads_only) sweep(&s, iters);

  printf("\nthroughput, cycles/s (one pool, same image; best of 3 runs):\n");
  for (int c = 0; c < 2; c++) {
    double c1 = 0, c2 = 0;
    for (int rep = 0; rep < 3; rep++) {
      double a1 = control_run(c ? copy_loop : spin, 1),
             a2 = control_run(c ? copy_loop : spin, 2);
      if (a1 > c1) c1 = a1;
      if (a2 > c2) c2 = a2;
    }
    printf("  control: %-40s 2 threads vs 1: %.2fx\n",
           c ? "memcpy 64 KiB, private buffers" : "arithmetic only", c2 / c1);
  }
  /* The last row of each K: Wasmtime's pagemap_scan mode, each thread on
   * its own memory and no pool, so a scan per reset and nothing shared but
   * the process's address space: what the kernel lets a reset that asks
   * it about every instance scale to. */
  static const size_t thread_ks[] = {0, 16};
  for (size_t ki = 0; ki < 2; ki++) {
    size_t k = thread_ks[ki];
    /* Runs of about 50 ms (K=0 cycles take 0.4 us, K=16 2 us), so that the
     * two threads overlap for nearly all of them. */
    size_t tn = bench_iters(k == 0 ? 100000 : 25000);
    for (size_t st = 0; st <= NSTRAT; st++) {
      if (st < NSTRAT && strategies[st].reset == COWMEM_RESET_BATCHED) continue;
      const strategy_t* sp = st < NSTRAT ? &strategies[st] : NULL;
      /* Best of 3: the machine is shared, and other load only ever slows a
       * run down. */
      double t1 = 0, t2 = 0;
      for (int rep = 0; rep < 3; rep++) {
        double a1 = throughput(sp, img, k, 1, tn);
        double a2 = throughput(sp, img, k, 2, tn);
        if (a1 > t1) t1 = a1;
        if (a2 > t2) t2 = a2;
      }
      printf("  K=%-3zu %-30s 1 thread %9.0f  2 threads %9.0f  (%.2fx)\n", k,
             sp ? sp->name : "wasmtime pagemap_scan, own mem", t1, t2, t2 / t1);
    }
  }

  if (threads_only) goto out;
  /* Snapshot: a 16 MiB memory with 1 MiB written (the heap above the image,
   * as an initialization would leave it). */
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, 0);
  printf("\nsnapshot of a 16 MiB memory, 1 MiB image, 1 MiB written above it:\n");
  for (int mode = 0; mode < 2; mode++) {
    cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, mode);
    cowmem_slot_t* sl = NULL;
    if (cowmem_slot_new(MEM, &sl) || cowmem_slot_instantiate(sl, MEM, img)) return 1;
    uint8_t* m = cowmem_slot_base(sl);
    for (size_t i = 0; i < MiB; i += 64)
      m[IMG_AT + IMG + i] = (uint8_t)(i | 1);
    size_t nsnap = bench_iters(50);
    for (size_t i = 0; i < nsnap; i++) {
      cowmem_image_t* snap = NULL;
      uint64_t t0 = bench_now_ns();
      if (cowmem_snapshot(sl, &snap) != 0) return 1;
      bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
      cowmem_image_release(snap);
    }
    row(mode ? "cowmem_snapshot (no scan: pagemap)" : "cowmem_snapshot (PAGEMAP_SCAN)",
        &s, 0, -1);
    cowmem_slot_free(sl);
  }
out:
  cowmem_image_release(img);
  free(image_bytes);
  bench_free(&s);
  return 0;
}
