/* Pool benchmark: acquire+release throughput on 1 and 2 threads, affine hit
 * vs miss latency, and a request loop (acquire, dirty K pages, release) for
 * each reset strategy beside the copy baseline, on a 16 MiB memory with a
 * 1 MiB image. Medians and p99 in microseconds; ratios in the same run. */
#include <pthread.h>
#include <sys/mman.h>

#include "bench.h"
#include "cowmem.h"

#define MEM (16 * MiB)
#define IMG (1 * MiB)

static size_t PS;
static uint8_t* image_bytes;

/* The instance writes K pages: the first K pages of memory (the image's
 * start: stack and globals in a typical module). */
static void dirty(uint8_t* m, size_t k) {
  for (size_t i = 0; i < k; i++) m[i * PS + 8] += 1;
}

static void cycle(cowmem_pool_t* pool, cowmem_image_t* img, size_t k) {
  cowmem_slot_t* s;
  if (cowmem_pool_acquire(pool, img, MEM, MEM, &s) != 0) abort();
  dirty(cowmem_slot_base(s), k);
  if (cowmem_pool_release(pool, s) != 0) abort();
}

typedef struct {
  cowmem_pool_t* pool;
  cowmem_image_t* img;
  size_t iters;
  double secs;
} thr_arg_t;

static void* thr_loop(void* p) {
  thr_arg_t* a = p;
  for (size_t i = 0; i < a->iters / 10; i++) cycle(a->pool, a->img, 0);
  uint64_t t0 = bench_now_ns();
  for (size_t i = 0; i < a->iters; i++) cycle(a->pool, a->img, 0);
  a->secs = (double)(bench_now_ns() - t0) / 1e9;
  return NULL;
}

static double throughput(cowmem_reset_strategy_t reset, cowmem_image_t* img,
                         int nthreads, size_t iters) {
  cowmem_pool_t* pool = bench_make_pool(reset, 64);
  pthread_t th[8];
  thr_arg_t a[8];
  for (int i = 0; i < nthreads; i++) {
    a[i] = (thr_arg_t){pool, img, iters, 0};
    pthread_create(&th[i], NULL, thr_loop, &a[i]);
  }
  double ops = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    ops += (double)iters / a[i].secs;
  }
  cowmem_pool_free(pool);
  return ops;
}

static void row(const char* name, bench_samples_t* s, double base_med) {
  double med = bench_quantile(s, 0.5), p99 = bench_quantile(s, 0.99);
  if (base_med > 0)
    printf("  %-34s %9.2f %9.2f %9.1fx\n", name, med, p99, base_med / med);
  else
    printf("  %-34s %9.2f %9.2f\n", name, med, p99);
  bench_reset(s);
}

int main(void) {
  PS = cowmem_page_size();
  image_bytes = malloc(IMG);
  for (size_t i = 0; i < IMG; i++) image_bytes[i] = (uint8_t)(i * 13 + 7) | 1;
  cowmem_image_t *img = NULL, *other = NULL;
  if (cowmem_image_new_from_bytes(image_bytes, IMG, 0, &img) ||
      cowmem_image_new_from_bytes(image_bytes, IMG / 2, 0, &other))
    return 1;
  bench_samples_t s = {0};
  size_t iters = bench_iters(20000);

  printf("cowmem pool benchmark: 16 MiB memory, 1 MiB image; microseconds.\n\n");
  static const char* const strat[COWMEM_RESET_COUNT_] = {
      "madvise", "keep-resident 64 KiB", "batched (16/flush)", "adaptive"};
  printf("acquire+release throughput, K=0, same image (cycles/s):\n");
  printf("  %-22s %12s %12s %8s\n", "strategy", "1 thread", "2 threads", "ratio");
  for (int st = 0; st < COWMEM_RESET_COUNT_; st++) {
    double t1 = throughput((cowmem_reset_strategy_t)st, img, 1, iters);
    double t2 = throughput((cowmem_reset_strategy_t)st, img, 2, iters);
    printf("  %-22s %12.0f %12.0f %7.2fx\n", strat[st], t1, t2, t2 / t1);
  }
  printf("\n");

  /* Affine hit vs miss: one slot; alternating two images forces a remap. */
  cowmem_pool_t* pool = bench_make_pool(COWMEM_RESET_MADVISE, 1);
  printf("%-36s %9s %9s\n", "acquire latency", "median", "p99");
  for (size_t i = 0; i < iters; i++) {
    cowmem_slot_t* sl;
    uint64_t t0 = bench_now_ns();
    cowmem_pool_acquire(pool, img, MEM, MEM, &sl);
    bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
    cowmem_pool_release(pool, sl);
  }
  row("affine hit (same image)", &s, 0);
  for (size_t i = 0; i < iters / 4; i++) {
    cowmem_slot_t* sl;
    uint64_t t0 = bench_now_ns();
    cowmem_pool_acquire(pool, (i & 1) ? other : img, MEM, MEM, &sl);
    bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
    cowmem_pool_release(pool, sl);
  }
  row("miss (other image: remap)", &s, 0);
  cowmem_pool_free(pool);

  printf("\nrequest loop: acquire, dirty K pages, release (the first K pages)\n");
  printf("%-36s %9s %9s %10s\n", "", "median", "p99", "vs copy");
  size_t ks[] = {0, 16, 256};
  for (size_t ki = 0; ki < 3; ki++) {
    size_t k = ks[ki];
    size_t n = k == 256 ? iters / 10 : iters;
    /* Copy baseline: fresh memory, copy the image, dirty K, unmap. */
    size_t nb = bench_iters(k == 256 ? 300 : 1000);
    for (size_t i = 0; i < nb; i++) {
      uint64_t t0 = bench_now_ns();
      uint8_t* m = mmap(NULL, MEM, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      memcpy(m, image_bytes, IMG);
      dirty(m, k);
      munmap(m, MEM);
      bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
    }
    double base = bench_quantile(&s, 0.5);
    char name[64];
    snprintf(name, sizeof name, "K=%zu copy baseline", k);
    row(name, &s, base);
    for (int st = 0; st < COWMEM_RESET_COUNT_; st++) {
      pool = bench_make_pool((cowmem_reset_strategy_t)st, 32);
      for (size_t i = 0; i < n / 10 + 32; i++) cycle(pool, img, k);
      for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        cycle(pool, img, k);
        bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
      }
      snprintf(name, sizeof name, "K=%zu %s", k, strat[st]);
      row(name, &s, base);
      cowmem_pool_free(pool);
    }
  }
  printf("\nbatched: a release that fills the queue pays for the whole flush "
         "(one process_madvise where the kernel has it): see its p99.\n");
  cowmem_image_release(img);
  cowmem_image_release(other);
  free(image_bytes);
  bench_free(&s);
  return 0;
}
