/* Where a reset's time goes, by memory size: memories of 1 to 64 MiB, an
 * image of mem/16 (at most 1 MiB) at 128 KiB, K pages written as
 * bench_layout spreads them. For each: the floor (copy the K pages + one
 * kernel call, what a reset that knew the written pages would still pay),
 * the release (the reset) of every strategy but BATCHED and of Wasmtime's
 * modes, and ADAPTIVE's phases (median ns of each, from the reset's own
 * clock). The phases come from the test library's profiler (reset/
 * profile.h), which the released library does not carry: this program
 * links the test library (its one extra load per system call, the failure
 * injection's, is in every row alike). Medians and p99 in microseconds. */
#include <sys/mman.h>

#include "bench.h"
#include "cowmem.h"
#include "reset/profile.h"

#define IMG (1 * MiB)

static size_t PS;

/* Release times of one strategy (acquire and writes untimed). With ph,
 * also ADAPTIVE's phases and the release around them, a sample each. */
static void release_times(const bench_strategy_t* st, cowmem_image_t* img, size_t mem,
                          const bench_work_t* w, size_t n, bench_samples_t* s,
                          bench_samples_t* ph) {
  cowmem_pool_t* pool = bench_strategy_pool(st, 4);
  for (size_t i = 0; i < n / 10 + 300 + n; i++) {
    cowmem_slot_t* sl;
    bench_must(cowmem_pool_acquire(pool, img, mem, mem, &sl), "acquire");
    bench_work(cowmem_slot_base(sl), w);
    uint64_t t0 = bench_now_ns();
    bench_must(cowmem_pool_release(pool, sl), "release");
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

static void sweep(const uint8_t* image_bytes, bench_samples_t* s, size_t iters) {
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
    size_t sw_at = 128 * KiB, sw_img = mem / 16 < IMG ? mem / 16 : IMG;
    cowmem_image_t* img = NULL;
    if (cowmem_image_new_from_bytes(image_bytes, sw_img, sw_at, &img)) abort();
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
      size_t k = ks[ki];
      size_t* pages = bench_layout(k, sw_img, sw_at);
      bench_work_t w = {.img = sw_img, .at = sw_at, .read = 0, .pages = pages, .k = k};
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
      for (size_t st = 0; st < bench_nstrategies; st++) {
        const bench_strategy_t* sp = &bench_strategies[st];
        if (sp->reset == COWMEM_RESET_BATCHED) continue;
        bool exact_adaptive = sp->reset == COWMEM_RESET_ADAPTIVE && !sp->no_scan;
        release_times(sp, img, mem, &w, n, s, NULL);
        if (exact_adaptive) {
          /* The phases in a run of their own: the profile's clock reads
           * (eight a reset) would add 0.2 us to the row's own times. */
          bench_samples_t scratch = {0};
          cowmem__adaptive_profile(true);
          release_times(sp, img, mem, &w, n, &scratch, phase);
          cowmem__adaptive_profile(false);
          bench_free(&scratch);
        }
        double med = bench_quantile(s, 0.5), p99 = bench_quantile(s, 0.99);
        printf("  %3zu MiB %-4zu %-28.28s %9.2f %9.2f %7.2fx %8.2f\n", mem / MiB, k,
               sp->name, med, p99, med / floor_med, p99 / med);
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
        bench_wt_times(m, mem, image_bytes, &w, n, true, s, &faults);
        double med = bench_quantile(s, 0.5), p99 = bench_quantile(s, 0.99);
        wt_med[m] = med;
        printf("  %3zu MiB %-4zu %-28.28s %9.2f %9.2f %7.2fx %8.2f\n", mem / MiB, k,
               bench_wt_names[m], med, p99, med / floor_med, p99 / med);
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

int main(void) {
  PS = cowmem_page_size();
  uint8_t* image_bytes = malloc(IMG);
  if (image_bytes == NULL) return 1;
  for (size_t i = 0; i < IMG; i++)
    image_bytes[i] = (uint8_t)(i * 13 + 7) | 1;
  bench_samples_t s = {0};
  sweep(image_bytes, &s, bench_iters(20000));
  free(image_bytes);
  bench_free(&s);
  return 0;
}
