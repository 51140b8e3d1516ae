/* demo_main.c: the bundled demo program (examples/demo/demo.c, compiled to
 * wasm32 by clang, then to C by wasm2c) served as a request loop, twice in
 * one process:
 *   cowmem  the stripped module (cowdemo), memories from a cowmem pool
 *           mapped copy-on-write from the original module's image;
 *   stock   the unstripped module (demo) with the stock runtime, which
 *           reserves 8 GiB and copies the data segments per instance.
 * Built once per wabt: cowmem_wasm2c_demo (1.0.32), cowmem_wasm2c_demo39
 * (>= 1.0.37, whose stock runtime unmaps its whole reservation on free).
 * Each request instantiates, writes the input, calls run, copies the report
 * out, and frees. Prints requests per second and latency percentiles for
 * both and the ratio, then instantiate+free against the pool's bare cycle
 * (acquire + release of a slot with the same pages dirtied as a request
 * dirties), which is the floor the integration can reach.
 *
 * Usage: cowmem_wasm2c_demo [--iters N] [--stock-iters N] [--warmup N]
 *                           [--reset madvise|keep_resident|adaptive]
 * wabt 1.0.32's stock runtime leaks 8 GiB of address space per instance
 * (NOTES.md), so there --stock-iters is capped at 10000.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#include "cowdemo.h"
#include "cowmem_wasm2c.h"
#include "demo.h"
#include "demo_w.h"
#include "measure.h"
#include "w2c_util.h"
#include "wasm-rt-impl.h"

W2C_DEFINE_SERVE(demo)
W2C_DEFINE_SERVE(cowdemo)

#define REPORT_CAP 256
#define MAX_DIRTY 4096
#define ROUNDS 10

typedef struct {
  uint64_t elapsed_ns;         /* wall time of the recorded requests */
  size_t done;                 /* recorded requests */
  long vm_kb, rss_kb;          /* VmSize, VmRSS change over the recorded blocks */
  uint64_t faults;             /* minor page faults over the recorded blocks */
  uint64_t *req_ns, *cycle_ns; /* per request: all of it; instantiate+free */
} loop_t;

static const char* g_req = demo_default_request;
static uint32_t g_req_len;

/* Defines loop_<mod>(m, warmup, iters, expect, out): the request loop over
 * instances of the wasm2c module <mod>, timing each request whole and its
 * instantiate+free part; `instantiate` makes `inst` and is 0 on success (m,
 * the cowmem module, is for the loop that maps images). */
#define DEFINE_LOOP(mod, label, instantiate)                                             \
  static int loop_##mod(const cowmem_w2c_module_t* m, size_t warmup, size_t iters,       \
                        const char* expect, loop_t* out) {                               \
    (void)m;                                                                             \
    char report[REPORT_CAP];                                                             \
    uint64_t start = 0;                                                                  \
    for (size_t i = 0; i < warmup + iters; i++) {                                        \
      if (i == warmup) start = bench_now_ns();                                           \
      W2C_T(mod) inst;                                                                   \
      uint64_t t0 = bench_now_ns();                                                      \
      if ((instantiate) != 0) return 1;                                                  \
      uint64_t t1 = bench_now_ns();                                                      \
      w2c_serve_##mod(&inst, g_req, g_req_len, report, sizeof report);                   \
      uint64_t t2 = bench_now_ns();                                                      \
      W2C_FN(mod, free)(&inst);                                                          \
      uint64_t t3 = bench_now_ns();                                                      \
      if (strcmp(report, expect) != 0) {                                                 \
        fprintf(stderr, label " request %zu: %s", i, report);                            \
        return 1;                                                                        \
      }                                                                                  \
      if (i >= warmup) {                                                                 \
        out->req_ns[out->done] = t3 - t0;                                                \
        out->cycle_ns[out->done++] = (t1 - t0) + (t3 - t2);                              \
      }                                                                                  \
    }                                                                                    \
    if (iters) out->elapsed_ns += bench_now_ns() - start;                                \
    return 0;                                                                            \
  }

DEFINE_LOOP(cowdemo, "cowmem",
            COWMEM_W2C_INSTANTIATE(m, W2C_FN(cowdemo, instantiate), &inst))
DEFINE_LOOP(demo, "stock", (W2C_FN(demo, instantiate)(&inst), 0))

/* Every input through both runtimes, on fresh instances: same reports. */
static int check_same(const cowmem_w2c_module_t* m) {
  for (size_t i = 0; i < DEMO_NREQUESTS; i++) {
    char a[REPORT_CAP], b[REPORT_CAP];
    uint32_t len = (uint32_t)strlen(demo_requests[i]);
    W2C_T(demo) s;
    W2C_T(cowdemo) c;
    W2C_FN(demo, instantiate)(&s);
    w2c_serve_demo(&s, demo_requests[i], len, a, sizeof a);
    W2C_FN(demo, free)(&s);
    if (COWMEM_W2C_INSTANTIATE(m, W2C_FN(cowdemo, instantiate), &c) != 0) return 1;
    w2c_serve_cowdemo(&c, demo_requests[i], len, b, sizeof b);
    W2C_FN(cowdemo, free)(&c);
    if (strcmp(a, b) != 0) {
      fprintf(stderr, "input %zu: stock %scowmem %s", i, a, b);
      return 1;
    }
  }
  return 0;
}

/* Pages of [base, base + len) the process wrote since they were mapped:
 * present, exclusively mapped, and anonymous (a copy-on-write copy, or a
 * written zero page), from /proc/self/pagemap. Offsets into pages[]. */
static size_t dirty_pages(const uint8_t* base, size_t len, size_t* pages, size_t cap) {
  size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = 0;
  int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) return 0;
  for (size_t off = 0; off < len && n < cap; off += ps) {
    uint64_t e;
    off_t at = (off_t)(((uintptr_t)base + off) / ps * 8);
    if (pread(fd, &e, 8, at) != 8) break;
    bool present = e >> 63 & 1, file = e >> 61 & 1, excl = e >> 56 & 1;
    if (present && excl && !file) pages[n++] = off;
  }
  close(fd);
  return n;
}

/* The pool's own cycle with the same image and the same pages dirtied:
 * acquire + release timed, the writes in between not. */
static void bare_cycle(cowmem_image_t* image, size_t initial, size_t max,
                       const size_t* pages, size_t k, size_t warmup, size_t iters,
                       uint64_t* ns, uint64_t* faults) {
  cowmem_pool_t* pool = cowmem_w2c_pool();
  for (size_t i = 0; i < warmup + iters; i++) {
    if (i == warmup) *faults = bench_minor_faults();
    cowmem_slot_t* slot;
    uint64_t t0 = bench_now_ns();
    if (cowmem_pool_acquire(pool, image, initial, max, &slot) != 0) abort();
    uint64_t t1 = bench_now_ns();
    volatile uint8_t* p = cowmem_slot_base(slot);
    for (size_t j = 0; j < k; j++)
      p[pages[j]] = (uint8_t)(p[pages[j]] + 1);
    uint64_t t2 = bench_now_ns();
    cowmem_pool_release(pool, slot);
    uint64_t t3 = bench_now_ns();
    if (i >= warmup) ns[i - warmup] = (t1 - t0) + (t3 - t2);
  }
  *faults = bench_minor_faults() - *faults;
}

static void print_row(const char* name, loop_t* l, size_t n) {
  double rps = (double)n * 1e9 / (double)l->elapsed_ns;
  double p50 = bench_quantile_ns_us(l->req_ns, n, 0.50);
  double p90 = bench_quantile_ns_us(l->req_ns, n, 0.90);
  double p99 = bench_quantile_ns_us(l->req_ns, n, 0.99);
  double p999 = bench_quantile_ns_us(l->req_ns, n, 0.999);
  printf("%-14s %12.0f %9.2f %9.2f %9.2f %9.2f\n", name, rps, p50, p90, p99, p999);
}

int main(int argc, char** argv) {
  cowmem_w2c_config_t cfg;
  cowmem_w2c_config_init(&cfg);
  cfg.max_memories = 16;
  demo_options_t o;
  if (demo_parse_args(argc, argv, " (<= 10000)", &cfg.reset, &o) != 0) return 2;
  size_t iters = o.iters, stock_iters = o.stock_iters, warmup = o.warmup;
  if (COWMEM_W2C_ABI == 1032 && stock_iters + warmup > 10000) {
    fprintf(stderr, "--stock-iters + --warmup: at most 10000 (the stock "
                    "runtime leaks 8 GiB of address space per instance)\n");
    return 2;
  }
  g_req_len = (uint32_t)strlen(g_req);

  cowmem_diag_t why;
  int r = cowmem_w2c_init(&cfg, &why);
  if (r != 0) {
    fprintf(stderr, "cowmem_w2c_init: %s (%s)\n", cowmem_strerror(r), why.reason);
    return 1;
  }
  cowmem_w2c_module_t* m;
  cowmem_diag_t diag;
#ifdef COWMEM_W2C_IMAGES_cowdemo /* `cowmem compile`'s image file */
  const char* images = COWMEM_W2C_IMAGES_cowdemo;
  r = cowmem_w2c_module_open_images(images, NULL, &m, &diag);
#else /* built without the cowmem command: images from the module */
  const char* images = COWMEM_W2C_WASM_cowdemo;
  r = cowmem_w2c_module_open(images, &m, &diag);
#endif
  if (r != 0) {
    fprintf(stderr, "%s: %s: %s\n", images, cowmem_strerror(r), diag.reason);
    return 1;
  }
  wasm_rt_init();
  COWMEM_W2C_INIT_MODULE(demo);
  COWMEM_W2C_INIT_MODULE(cowdemo);

  /* The expected report, and the pages one request dirties (measured on
   * the pool's first, never-used slot: nothing resident from before). */
  char expect[REPORT_CAP];
  cowmem_image_t* image = cowmem_w2c_module_image(m, 0);
  static size_t pages[MAX_DIRTY];
  W2C_T(cowdemo) inst;
  if (COWMEM_W2C_INSTANTIATE(m, W2C_FN(cowdemo, instantiate), &inst) != 0) return 1;
  w2c_serve_cowdemo(&inst, g_req, g_req_len, expect, sizeof expect);
  wasm_rt_memory_t* mem = W2C_X(cowdemo, memory)(&inst);
  size_t initial = (size_t)mem->pages * COWMEM_WASM_PAGE_SIZE;
  size_t max = (size_t)mem->max_pages * COWMEM_WASM_PAGE_SIZE;
  size_t k = dirty_pages(mem->data, initial, pages, MAX_DIRTY);
  W2C_FN(cowdemo, free)(&inst);

  if (check_same(m) != 0) return 1;

  cowmem_image_info_t ii = {0};
  if (image) cowmem_image_info(image, &ii);
  printf("wasm2c demo (runtime ABI of wabt %s): %s\nimages: %s\n",
         COWMEM_W2C_ABI == 1032 ? "1.0.32" : ">= 1.0.37", COWMEM_W2C_WASM_cowdemo,
         images);
  printf("memory %zu KiB (max %zu MiB), image %llu KiB (%s), reset %s\n", initial >> 10,
         max >> 20, (unsigned long long)ii.len >> 10, demo_image_kind(&ii), o.reset_name);
  printf("check: %zu inputs, stock and cowmem reports identical\n",
         (size_t)DEMO_NREQUESTS);
  printf("request (%u bytes) -> %s", g_req_len, expect);
  printf("pages a request dirties: %zu of %zu (%zu KiB)\n", k,
         initial / (size_t)sysconf(_SC_PAGESIZE), k * 4);

  loop_t c = {0, 0, 0, 0, 0, calloc(iters, 8), calloc(iters, 8)};
  loop_t s = {0, 0, 0, 0, 0, calloc(stock_iters, 8), calloc(stock_iters, 8)};
  uint64_t* bare = calloc(iters, 8);
  if (!c.req_ns || !c.cycle_ns || !s.req_ns || !s.cycle_ns || !bare) return 1;
  /* Fault the timing arrays in now: calloc's pages are untouched, and the
   * loops filling them would count them as the loops' RSS (32 KiB a block
   * of 2000 requests). Volatile stores: a memset of calloc'd memory may be
   * elided. */
  uint64_t* arrays[] = {c.req_ns, c.cycle_ns, s.req_ns, s.cycle_ns};
  size_t lens[] = {iters, iters, stock_iters, stock_iters};
  for (size_t a = 0; a < 4; a++)
    for (size_t i = 0; i < lens[a]; i += 512)
      ((volatile uint64_t*)arrays[a])[i] = 0;
  /* The two loops alternate in ROUNDS blocks, so that whatever else the
   * machine does (other processes, frequency changes) weighs on both. */
  if (loop_cowdemo(m, warmup, 0, expect, &c) != 0) return 1;
  if (loop_demo(m, warmup, 0, expect, &s) != 0) return 1;
  cowmem_pool_image_metrics_t rc = {0};
  for (size_t round = 0; round < ROUNDS; round++) {
    size_t nc = demo_block(iters, round, ROUNDS),
           ns = demo_block(stock_iters, round, ROUNDS);
    long vm0 = (long)demo_status_kb("VmSize"), rss0 = (long)demo_status_kb("VmRSS");
    cowmem_pool_image_metrics_t r0 = demo_reset_counts(cowmem_w2c_pool(), image);
    uint64_t f0 = bench_minor_faults();
    if (loop_cowdemo(m, 0, nc, expect, &c) != 0) return 1;
    uint64_t f1 = bench_minor_faults();
    cowmem_pool_image_metrics_t r1 = demo_reset_counts(cowmem_w2c_pool(), image);
    long vm1 = (long)demo_status_kb("VmSize"), rss1 = (long)demo_status_kb("VmRSS");
    if (loop_demo(m, 0, ns, expect, &s) != 0) return 1;
    s.faults += bench_minor_faults() - f1;
    c.faults += f1 - f0;
    demo_reset_counts_add(&rc, &r0, &r1); /* the cowmem blocks only */
    c.vm_kb += vm1 - vm0;
    s.vm_kb += (long)demo_status_kb("VmSize") - vm1;
    c.rss_kb += rss1 - rss0;
    s.rss_kb += (long)demo_status_kb("VmRSS") - rss1;
  }
  uint64_t bare_faults = 0;
  bare_cycle(image, initial, max, pages, k, warmup, iters, bare, &bare_faults);

  printf("\nrequest loop (instantiate, run, read result, free), latency in us\n");
  printf("%-14s %12s %9s %9s %9s %9s\n", "", "requests/s", "p50", "p90", "p99", "p99.9");
  print_row("cowmem", &c, iters);
  print_row("stock wasm2c", &s, stock_iters);
  double ratio = ((double)iters / (double)c.elapsed_ns) /
                 ((double)stock_iters / (double)s.elapsed_ns);
  printf("ratio cowmem / stock: %.1fx requests per second (target >= 10x: "
         "%s)\n",
         ratio, ratio >= 10 ? "met" : "MISSED");

  printf("address space (VmSize) over the loops: cowmem %+.3f GiB, stock "
         "%+.3f GiB (%.3f GiB per instance%s)\n",
         (double)c.vm_kb / 1048576.0, (double)s.vm_kb / 1048576.0,
         (double)s.vm_kb / 1048576.0 / (double)stock_iters,
         COWMEM_W2C_ABI == 1032 ? ": its free unmaps only the accessible part"
                                : ": its free unmaps the whole reservation");
  printf("resident (VmRSS) over the loops: cowmem %+ld KiB, stock %+ld KiB\n", c.rss_kb,
         s.rss_kb);
  printf("minor faults per request: cowmem %.2f, stock %.2f; pool bare cycle %.2f\n",
         (double)c.faults / (double)iters, (double)s.faults / (double)stock_iters,
         (double)bare_faults / (double)iters);
  demo_print_reset_counts(&rc, iters);

  double ci = bench_quantile_ns_us(c.cycle_ns, iters, 0.5);
  double si = bench_quantile_ns_us(s.cycle_ns, stock_iters, 0.5);
  double bi = bench_quantile_ns_us(bare, iters, 0.5);
  printf("\ninstantiate+free, median (p99) in us\n");
  printf("  cowmem wasm2c            %8.2f (%.2f)\n", ci,
         bench_quantile_ns_us(c.cycle_ns, iters, 0.99));
  printf("  stock wasm2c             %8.2f (%.2f)\n", si,
         bench_quantile_ns_us(s.cycle_ns, stock_iters, 0.99));
  printf("  pool bare cycle, %3zu pages dirtied: %.2f (%.2f)\n", k, bi,
         bench_quantile_ns_us(bare, iters, 0.99));
  printf("ratio cowmem wasm2c / bare cycle: %.2fx (target <= 1.2x: %s)\n", ci / bi,
         ci <= 1.2 * bi ? "met" : "MISSED");

  /* What the pool's adaptive reset saw, as a cross-check of the pagemap
   * count above (the bare cycle's resets are included: same pages). */
  demo_print_adaptive(cowmem_w2c_pool(), image, cfg.reset);

  cowmem_w2c_counters_t n;
  cowmem_w2c_counters(&n);
  printf("\nmemory calls: cowmem %llu allocate, %llu free; stock %llu "
         "allocate, %llu free\n",
         (unsigned long long)n.cowmem_allocs, (unsigned long long)n.cowmem_frees,
         (unsigned long long)n.stock_allocs, (unsigned long long)n.stock_frees);
  free(c.req_ns);
  free(c.cycle_ns);
  free(s.req_ns);
  free(s.cycle_ns);
  free(bare);
  cowmem_w2c_module_free(m);
  wasm_rt_free();
  r = cowmem_w2c_shutdown();
  if (r != 0) fprintf(stderr, "cowmem_w2c_shutdown: %s\n", cowmem_strerror(r));
  return r != 0;
}
