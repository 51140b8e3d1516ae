/* Core benchmark: instantiate + reset of one slot against the copy baseline
 * that C runtimes use today (reserve fresh memory, memcpy the image, unmap),
 * measured in the same run. Prints medians, p99 and ratios.
 *   bench_core [--quick]   (COWMEM_BENCH_SCALE=k multiplies iterations) */
#include <sys/mman.h>

#include "bench.h"
#include "cowmem.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static size_t PS;

/* The instance's work: one byte written in each of k pages spread over
 * [0, mem); pages holds k entries (bench_work's byte offsets). */
static bench_work_t spread_work(size_t img, size_t mem, size_t k, size_t* pages) {
  size_t n = mem / PS, step = k && n / k ? n / k : 1;
  for (size_t i = 0; i < k; i++) pages[i] = ((i * step) % n) * PS + 56;
  return (bench_work_t){.img = img, .at = 0, .read = 0, .pages = pages, .k = k};
}

static uint8_t* make_data(size_t n, uint8_t salt) {
  uint8_t* d = malloc(n);
  for (size_t i = 0; i < n; i++) d[i] = (uint8_t)(i * 31 + salt) | 1;
  return d;
}

typedef struct {
  double med, p99;
} fig_t;

static fig_t figure(bench_samples_t* s) {
  fig_t f = {bench_quantile(s, 0.5), bench_quantile(s, 0.99)};
  bench_reset(s);
  return f;
}

/* The copy baseline: fresh memory, copy the image, dirty k pages, unmap. */
static fig_t run_baseline(const uint8_t* data, const bench_work_t* w, size_t mem,
                          size_t iters, bench_samples_t* s) {
  bench_copy_times(mem, data, w, iters / 10 + 1, iters, s, NULL);
  return figure(s);
}

/* cowmem: instantiate (same image), dirty k pages, reset. */
static fig_t run_slot(cowmem_slot_t* slot, cowmem_image_t* a, cowmem_image_t* b,
                      size_t mem, const bench_work_t* w, size_t iters, bench_samples_t* s,
                      double* syscalls_per_inst) {
  cowmem_stats_t st0, st1;
  uint64_t inst_calls = 0;
  for (size_t it = 0; it < iters + iters / 10 + 1; it++) {
    cowmem_image_t* img = (b != NULL && (it & 1)) ? b : a;
    uint64_t t0 = bench_now_ns();
    cowmem_stats_get(&st0);
    if (cowmem_slot_instantiate(slot, mem, img) != 0) abort();
    cowmem_stats_get(&st1);
    bench_work(cowmem_slot_base(slot), w);
    if (cowmem_slot_reset(slot) != 0) abort();
    uint64_t t1 = bench_now_ns();
    inst_calls += st1.syscalls_total - st0.syscalls_total;
    if (it > iters / 10) bench_add(s, (double)(t1 - t0) / 1000.0);
  }
  *syscalls_per_inst = (double)inst_calls / (double)(iters + iters / 10 + 1);
  return figure(s);
}

int main(int argc, char** argv) {
  PS = cowmem_page_size();
  int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  size_t sizes[] = {64 * KiB, 1 * MiB, 16 * MiB, 256 * MiB};
  size_t nsizes = quick ? 3 : 4;
  bench_samples_t s = {0};
  printf("cowmem core benchmark: instantiate + reset of one slot vs the copy "
         "baseline\n(mmap fresh memory + memcpy the image + munmap), same run. "
         "Times in microseconds.\n");
  printf("memory = max(2 x image, 2 MiB); dirty pages spread over the memory; "
         "image bytes all non-zero.\n\n");
  printf("%-8s %-22s %10s %10s %9s %12s %9s\n", "image", "case", "median", "p99",
         "sys/inst", "base.median", "speedup");
  for (size_t si = 0; si < nsizes; si++) {
    size_t img = sizes[si], mem = 2 * img > 2 * MiB ? 2 * img : 2 * MiB;
    uint8_t* da = make_data(img, 1);
    uint8_t* db = make_data(img, 2);
    cowmem_image_t *a = NULL, *b = NULL;
    if (cowmem_image_new_from_bytes(da, img, 0, &a) ||
        cowmem_image_new_from_bytes(db, img, 0, &b)) {
      fprintf(stderr, "image creation failed\n");
      return 1;
    }
    cowmem_slot_t* slot = NULL;
    if (cowmem_slot_new(mem + 64 * KiB, &slot)) return 1;
    /* Baselines cost a page fault per copied page: fewer iterations for big
     * images, enough for a stable median. */
    size_t base_iters = bench_iters(img >= 256 * MiB ? 8 : img >= 16 * MiB ? 40 : 400);
    size_t fast_iters = bench_iters(quick ? 2000 : 20000);
    const char* label = img >= MiB ? "MiB" : "KiB";
    size_t shown = img >= MiB ? img / MiB : img / KiB;
    size_t ks[] = {0, 16, 256};
    for (size_t ki = 0; ki < 3; ki++) {
      size_t k = ks[ki];
      double sys = 0;
      size_t pages[256];
      bench_work_t w = spread_work(img, mem, k, pages);
      fig_t base = run_baseline(da, &w, mem, base_iters, &s);
      fig_t f = run_slot(slot, a, NULL, mem, &w, k ? fast_iters / 10 : fast_iters, &s, &sys);
      char name[64];
      snprintf(name, sizeof name, "same image, %zu dirty", k);
      printf("%4zu %-3s %-22s %10.2f %10.2f %9.2f %12.1f %8.0fx\n", shown, label, name,
             f.med, f.p99, sys, base.med, base.med / f.med);
    }
    double sys = 0;
    bench_work_t none = spread_work(img, mem, 0, NULL);
    fig_t base = run_baseline(da, &none, mem, base_iters, &s);
    size_t sw_iters = img >= 256 * MiB ? base_iters * 4 : fast_iters / 20;
    fig_t f = run_slot(slot, a, b, mem, &none, sw_iters, &s, &sys);
    printf("%4zu %-3s %-22s %10.2f %10.2f %9.2f %12.1f %8.0fx\n", shown, label,
           "image switch, 0 dirty", f.med, f.p99, sys, base.med, base.med / f.med);
    cowmem_slot_free(slot);
    cowmem_image_release(a);
    cowmem_image_release(b);
    free(da);
    free(db);
  }
  printf("\nsys/inst: system calls made by cowmem_slot_instantiate per call "
         "(0 = the same image maps nothing).\n");
  bench_free(&s);
  return 0;
}
