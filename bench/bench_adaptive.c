/* Adaptive reset benchmark: a request loop (acquire, read a part of the
 * image, write K pages, release) on a 16 MiB memory with a 1 MiB image,
 * every reset strategy beside the copy baseline, K = 0, 16, 256 and 320
 * (past the hot set's 1 MiB budget), reading none of the image, 10% or all
 * of it (K = 0 and 16), with minor page faults per request beside each row.
 * The K pages are spread like a real program's: stack pages just below the
 * image (the stack grows down from 128 KiB), globals inside the image
 * (every 4th page), and the start of the heap above it. Also: the floor
 * (copying K pages with no fault), acquire latency of an affine hit and a
 * miss, 1 vs 2 thread throughput (bench/lib/scale.h), and the time of a
 * snapshot. Medians, averages (the median of 32-cycle means: a queue's
 * flush is in them, where a median of single cycles leaves it out) and
 * p99 in microseconds; ratios from the same run, by the averages. */
#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "bench.h"
#include "cowmem.h"

#define MEM (16 * MiB)
#define IMG (1 * MiB)
#define IMG_AT (128 * KiB)

static size_t PS;
static uint8_t* image_bytes;

/* The instance's work: read a fraction of the image's pages (spread
 * evenly; 0 for the threads) and write K pages (bench_layout). */
static bench_work_t work_of(const size_t* pages, size_t k, double read) {
  return (bench_work_t){.img = IMG, .at = IMG_AT, .read = read, .pages = pages, .k = k};
}

static void cycle(cowmem_pool_t* pool, cowmem_image_t* img, const bench_work_t* w) {
  cowmem_slot_t* s;
  bench_must(cowmem_pool_acquire(pool, img, MEM, MEM, &s), "acquire");
  bench_work(cowmem_slot_base(s), w);
  bench_must(cowmem_pool_release(pool, s), "release");
}

/* A row of samples taken in order: returns their average (the block mean
 * bench_block_mean gives). base_avg > 0: the copy baseline's, for the
 * ratio; faults: minor page faults per request, or < 0 for none. */
static double row(const char* name, bench_samples_t* s, double base_avg, double faults) {
  double avg = bench_block_mean(s, BENCH_AVG_BLOCK);
  double med = bench_quantile(s, 0.5), p99 = bench_quantile(s, 0.99);
  char f[16] = "";
  if (faults >= 0) snprintf(f, sizeof f, "%8.2f", faults);
  if (base_avg > 0)
    printf("  %-40s %9.2f %9.2f %9.2f %9.1fx %s\n", name, med, avg, p99, base_avg / avg, f);
  else
    printf("  %-40s %9.2f %9.2f %9.2f %10s %s\n", name, med, avg, p99, "", f);
  bench_reset(s);
  return avg;
}

/* ---- throughput ---- */

/* A worker of the throughput rows: cycles on a pool the workers share, or
 * (pool NULL) Wasmtime's pagemap_scan mode on a memory of the worker's own. */
typedef struct {
  cowmem_pool_t* pool;
  cowmem_image_t* img;
  bench_work_t w;
} thr_ctx_t;

static int pool_cycle(void* p) {
  thr_ctx_t* c = p;
  cycle(c->pool, c->img, &c->w);
  return 0;
}

typedef struct {
  wt_mem_t mem;
  const bench_work_t* w;
} wt_worker_t;

static int wt_worker_open(void* ctx, void** state) {
  thr_ctx_t* c = ctx;
  wt_worker_t* t = malloc(sizeof *t);
  if (t == NULL) return COWMEM_ENOMEM;
  t->w = &c->w;
  if (wt_open(&t->mem, MEM, image_bytes, IMG, IMG_AT, 64 * KiB, 1 * MiB) != 0) {
    int e = -errno;
    free(t);
    return e;
  }
  *state = t;
  return 0;
}
static int wt_worker_cycle(void* state) {
  wt_worker_t* t = state;
  bench_work(t->mem.base, t->w);
  wt_reset(&t->mem, WT_PAGEMAP);
  return 0;
}
static void wt_worker_close(void* state) {
  wt_worker_t* t = state;
  wt_close(&t->mem);
  free(t);
}

/* 1 and 2 threads, best of 3 each, and what the pool's resets did, per
 * reset over all six runs. st NULL: Wasmtime's pagemap_scan mode, each
 * thread on its own memory (no counts). */
static void throughput(const bench_strategy_t* st, cowmem_image_t* img, size_t k,
                       double* one, double* two, bench_counts_t* counts) {
  size_t* pages = bench_layout(k, IMG, IMG_AT);
  thr_ctx_t c = {st != NULL ? bench_strategy_pool(st, 16) : NULL, img,
                 work_of(pages, k, 0)};
  bench_worker_t w = {NULL, pool_cycle, NULL, &c};
  if (st == NULL) w = (bench_worker_t){wt_worker_open, wt_worker_cycle, wt_worker_close, &c};
  /* Runs of about 50 ms, whatever the cycle costs (0.3 us to 150 us here),
   * so that the two threads overlap for nearly all of each and a moment's
   * other load on the machine falls on a small part of it. */
  size_t iters = bench_iters_for(&w, 0.05, 1000);
  *counts = (bench_counts_t){0};
  bench_look_t from = {0};
  if (c.pool != NULL) from = bench_counts_look(c.pool, img);
  bench_scaling(&w, 2, false, iters, one, two);
  if (c.pool != NULL) {
    bench_look_t to = bench_counts_look(c.pool, img);
    *counts = bench_counts_between(&from, &to);
  }
  cowmem_pool_free(c.pool);
  free(pages);
}

/* Acquire latency of one slot: the same image again (the affine hit), and
 * alternating two images (a miss: the slot is remapped). */
static void acquire_latency(cowmem_image_t* img, cowmem_image_t* other, size_t iters,
                            bench_samples_t* s) {
  cowmem_pool_t* pool = bench_make_pool(COWMEM_RESET_MADVISE, 1);
  printf("\n%-42s %9s %9s %9s\n", "acquire latency (madvise, one slot)", "median", "avg",
         "p99");
  for (int miss = 0; miss < 2; miss++) {
    for (size_t i = 0; i < (miss ? iters / 4 : iters); i++) {
      cowmem_slot_t* sl;
      uint64_t t0 = bench_now_ns();
      bench_must(cowmem_pool_acquire(pool, miss && (i & 1) ? other : img, MEM, MEM, &sl),
                 "acquire");
      bench_add(s, (double)(bench_now_ns() - t0) / 1000.0);
      bench_must(cowmem_pool_release(pool, sl), "release");
    }
    row(miss ? "miss (other image: remap)" : "affine hit (same image)", s, 0, -1);
  }
  cowmem_pool_free(pool);
}

int main(void) {
  PS = cowmem_page_size();
  image_bytes = malloc(IMG);
  for (size_t i = 0; i < IMG; i++)
    image_bytes[i] = (uint8_t)(i * 13 + 7) | 1;
  cowmem_image_t *img = NULL, *other = NULL;
  if (cowmem_image_new_from_bytes(image_bytes, IMG, IMG_AT, &img) ||
      cowmem_image_new_from_bytes(image_bytes, IMG / 2, IMG_AT, &other))
    return 1;
  bench_samples_t s = {0};
  size_t iters = bench_iters(20000);

  printf("cowmem adaptive reset benchmark: 16 MiB memory, 1 MiB image at 128 KiB;\n"
         "a request: acquire, read R of the image's 256 pages, write K pages (K/8\n"
         "stack, K/4 globals, rest heap), release; microseconds; faults: minor page\n"
         "faults per request.\n\n");
  /* COWMEM_BENCH_THREADS_ONLY=1: only the throughput part (to repeat it). */
  bool threads_only = getenv("COWMEM_BENCH_THREADS_ONLY") != NULL;
  if (!threads_only)
    printf("%-42s %9s %9s %9s %10s %8s\n", "request loop", "median", "avg", "p99", "vs copy",
           "faults");
  /* 320: more pages than the default 1 MiB budget holds (256). Reads of
   * 10% and 100% of the image with K = 0 and 16. */
  static const struct {
    size_t k;
    double read;
  } ws[] = {{0, 0}, {0, 0.1}, {0, 1}, {16, 0}, {16, 0.1}, {16, 1}, {256, 0}, {320, 0}};
  for (size_t wi = 0; wi < (threads_only ? 0u : sizeof ws / sizeof ws[0]); wi++) {
    size_t k = ws[wi].k;
    double read = ws[wi].read;
    char w[32]; /* the workload's name in the rows */
    if (read > 0)
      snprintf(w, sizeof w, "K=%zu R=%.0f%%", k, read * 100);
    else
      snprintf(w, sizeof w, "K=%zu", k);
    size_t* pages = bench_layout(k, IMG, IMG_AT);
    bench_work_t work = work_of(pages, k, read);
    size_t n = k >= 256 || read >= 1 ? iters / 5 : iters;
    double adaptive_cycle = 1, wt_cycle[WT_MODES];
    /* Copy baseline: fresh memory, copy the image, write K pages, unmap. */
    size_t nb = bench_iters(k >= 256 ? 300 : 1000);
    uint64_t copy_faults;
    bench_copy_times(MEM, image_bytes, &work, 0, nb, &s, &copy_faults);
    double base = bench_block_mean(&s, BENCH_AVG_BLOCK);
    char name[96];
    snprintf(name, sizeof name, "%s copy baseline", w);
    row(name, &s, base, (double)copy_faults / (double)nb);
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
    for (size_t st = 0; st < bench_nstrategies; st++) {
      const bench_strategy_t* sp = &bench_strategies[st];
      cowmem_pool_t* pool = bench_strategy_pool(sp, 32);
      for (size_t i = 0; i < n / 10 + 300; i++)
        cycle(pool, img, &work);
      cowmem_pool_image_metrics_t im0;
      cowmem_pool_metrics_t pm0;
      cowmem_pool_image_metrics(pool, img, &im0);
      cowmem_pool_metrics(pool, &pm0);
      uint64_t f1 = bench_minor_faults();
      for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        cycle(pool, img, &work);
        bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
      }
      double faults = (double)(bench_minor_faults() - f1) / (double)n;
      snprintf(name, sizeof name, "%s %s", w, sp->name);
      double avg = row(name, &s, base, faults);
      if (sp->reset == COWMEM_RESET_ADAPTIVE && !sp->no_scan) adaptive_cycle = avg;
      if (sp->reset == COWMEM_RESET_ADAPTIVE) {
        /* the measured requests' resets only; a queue's flush is one call */
        cowmem_pool_image_metrics_t im;
        cowmem_pool_metrics_t pm;
        cowmem_pool_image_metrics(pool, img, &im);
        cowmem_pool_metrics(pool, &pm);
        double nr = (double)(im.resets - im0.resets);
        printf("      hot set %llu pages, %.1f dirty pages per sampled instance; per "
               "reset: %.2f quiet, %.2f blind, %.2f scanning, %.3f sampled, %.1f "
               "copied, %.2f decommitted, %.3f madvise calls\n",
               (unsigned long long)im.hot_pages,
               im.samples ? (double)im.sampled_dirty_pages / (double)im.samples : 0.0,
               (double)(im.quiet_resets - im0.quiet_resets) / nr,
               (nr - (double)(im.scans - im0.scans) - (double)(im.quiet_resets - im0.quiet_resets)) / nr,
               (double)(im.scans - im0.scans) / nr, (double)(im.samples - im0.samples) / nr,
               (double)(im.copied_pages - im0.copied_pages) / nr,
               (double)(im.discarded_pages - im0.discarded_pages) / nr,
               (double)(im.discard_calls - im0.discard_calls + pm.flushes - pm0.flushes) / nr);
      }
      cowmem_pool_free(pool);
    }
    for (int m = 0; m < WT_MODES; m++) {
      uint64_t faults;
      bench_wt_times(m, MEM, image_bytes, &work, n, false, &s, &faults);
      snprintf(name, sizeof name, "%s %s", w, bench_wt_names[m]);
      wt_cycle[m] = row(name, &s, base, (double)faults / (double)n);
    }
    printf("      adaptive's average cycle vs Wasmtime's: default %.2fx, keep_resident "
           "%.2fx, pagemap_scan %.2fx (above 1: adaptive faster)\n",
           wt_cycle[0] / adaptive_cycle, wt_cycle[1] / adaptive_cycle,
           wt_cycle[2] / adaptive_cycle);
    free(pages);
  }

  if (!threads_only) {
    printf("batched: a release that fills the queue pays for the whole flush (one\n"
           "process_madvise where the kernel has it): see its p99.\n");
    acquire_latency(img, other, iters, &s);
  }

  printf("\nthroughput, cycles/s (one pool, same image; best of 3 runs):\n");
  for (int c = 0; c < 2; c++) {
    double c1, c2;
    bench_scaling(c ? &bench_control_memcpy : &bench_control_arith, 2, false, 100000,
                  &c1, &c2);
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
    for (size_t st = 0; st <= bench_nstrategies; st++) {
      const bench_strategy_t* sp = st < bench_nstrategies ? &bench_strategies[st] : NULL;
      /* BATCHED at K=0 only: what its queue adds to a bare cycle. */
      if (sp && sp->reset == COWMEM_RESET_BATCHED && k != 0) continue;
      double t1, t2;
      bench_counts_t n;
      throughput(sp, img, k, &t1, &t2, &n);
      printf("  K=%-3zu %-30s 1 thread %9.0f  2 threads %9.0f  (%.2fx)\n", k,
             sp ? sp->name : "wasmtime pagemap_scan, own mem", t1, t2, t2 / t1);
      if (n.resets > 0)
        printf("        per reset: %.2f quiet, %.2f scans, %.2f copied pages, %.2f madvise "
               "calls\n",
               n.quiet, n.scans, n.copied, n.madvise);
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
  cowmem_image_release(other);
  free(image_bytes);
  bench_free(&s);
  return 0;
}
