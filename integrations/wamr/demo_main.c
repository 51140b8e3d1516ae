/* demo_main.c: the bundled demo program (examples/demo/demo.c, compiled to
 * wasm32 by clang) served as a request loop by WAMR's fast interpreter,
 * twice in one process:
 *   cowmem  the stripped module in the runtime built with the allocator
 *           hook, its memory a cowmem slot mapped copy-on-write from the
 *           original module's image (cowmem_wamr.h);
 *   stock   the original module in the stock runtime (its symbols renamed,
 *           cowmem_wamr.cmake), which reserves 8 GiB, mprotects the
 *           initial size and copies the data segments per instance.
 * Each request instantiates (with an execution environment), writes the
 * input, calls run, copies the report out, and deinstantiates. Prints
 * requests per second and latency percentiles for both, the ratio, and the
 * instantiate + deinstantiate medians.
 *
 * Usage: cowmem_wamr_demo [--iters N] [--stock-iters N] [--warmup N]
 *                         [--reset madvise|keep_resident|adaptive]
 */
#include "cowmem_wamr.h"
#include "measure.h"
#include "wamr_util.h"

#define REPORT_CAP 256
#define ROUNDS 10

typedef struct {
  uint64_t elapsed_ns;        /* wall time of the recorded requests */
  bench_samples_t req, cycle; /* per request, ns: all of it; instantiate +
                                 deinstantiate */
} loop_t;

static const char* g_req = wamr_default_request;
static uint32_t g_req_len;
static cowmem_wamr_module_t* g_mod; /* the cowmem side */
static wasm_module_t g_stock;       /* the stock side */

static wasm_module_inst_t instantiate(const wamr_api_t* api) {
  char err[128];
  if (api == &wamr_api_cowmem)
    return cowmem_wamr_instantiate(g_mod, WAMR_STACK, 0, err, sizeof err);
  return api->instantiate(g_stock, WAMR_STACK, 0, err, sizeof err);
}

/* The request loop over instances of one runtime, timing each request
 * whole and its instantiate + deinstantiate part. */
static int loop(const wamr_api_t* api, size_t warmup, size_t iters, const char* expect,
                loop_t* out) {
  char report[REPORT_CAP];
  uint64_t start = 0;
  for (size_t i = 0; i < warmup + iters; i++) {
    if (i == warmup) start = bench_now_ns();
    wamr_inst_t x;
    uint64_t t0 = bench_now_ns();
    if (wamr_inst_wrap(&x, api, instantiate(api)) != 0) {
      fprintf(stderr, "%s: instantiation %zu failed\n", api->name, i);
      return 1;
    }
    uint64_t t1 = bench_now_ns();
    wamr_serve(&x, g_req, g_req_len, report, sizeof report);
    uint64_t t2 = bench_now_ns();
    wamr_inst_free(&x);
    uint64_t t3 = bench_now_ns();
    if (strcmp(report, expect) != 0) {
      fprintf(stderr, "%s request %zu: %s", api->name, i, report);
      return 1;
    }
    if (i >= warmup) {
      bench_add(&out->req, (double)(t3 - t0));
      bench_add(&out->cycle, (double)((t1 - t0) + (t3 - t2)));
    }
  }
  if (iters) out->elapsed_ns += bench_now_ns() - start;
  return 0;
}

/* Every input through both runtimes, on fresh instances: same reports and
 * the same memory afterwards. */
static int check_same(void) {
  for (size_t i = 0; i < WAMR_NREQUESTS; i++) {
    char a[REPORT_CAP], b[REPORT_CAP];
    uint32_t len = (uint32_t)strlen(wamr_requests[i]);
    wamr_inst_t s, c;
    if (wamr_inst_wrap(&s, &wamr_api_stock, instantiate(&wamr_api_stock)) != 0 ||
        wamr_inst_wrap(&c, &wamr_api_cowmem, instantiate(&wamr_api_cowmem)) != 0)
      return 1;
    wamr_serve(&s, wamr_requests[i], len, a, sizeof a);
    wamr_serve(&c, wamr_requests[i], len, b, sizeof b);
    uint64_t ps, pc;
    wamr_memory(&s, &ps);
    wamr_memory(&c, &pc);
    uint32_t hs = wamr_call1(&s, "checksum", 2, 0, (uint32_t)ps * 65536u);
    uint32_t hc = wamr_call1(&c, "checksum", 2, 0, (uint32_t)pc * 65536u);
    wamr_inst_free(&s);
    wamr_inst_free(&c);
    if (strcmp(a, b) != 0 || ps != pc || hs != hc) {
      fprintf(stderr, "input %zu: stock %s (%llu pages, %08x), cowmem %s (%llu, %08x)\n",
              i, a, (unsigned long long)ps, hs, b, (unsigned long long)pc, hc);
      return 1;
    }
  }
  return 0;
}

static double us(bench_samples_t* v, double q) {
  return bench_quantile(v, q) / 1e3;
}

static double print_row(const char* name, loop_t* l) {
  double rps = (double)l->req.n * 1e9 / (double)l->elapsed_ns;
  printf("%-14s %12.0f %9.2f %9.2f %9.2f %9.2f\n", name, rps, us(&l->req, 0.5),
         us(&l->req, 0.9), us(&l->req, 0.99), us(&l->req, 0.999));
  return rps;
}

static int parse_reset(const char* s, cowmem_reset_strategy_t* r) {
  static const char* names[] = {"madvise", "keep_resident", "batched", "adaptive"};
  for (int i = 0; i < COWMEM_RESET_COUNT_; i++)
    if (strcmp(s, names[i]) == 0 && i != COWMEM_RESET_BATCHED) {
      *r = (cowmem_reset_strategy_t)i;
      return 0;
    }
  return -1;
}

static int setup(const cowmem_wamr_config_t* cfg, const char** images) {
  RuntimeInitArgs args;
  memset(&args, 0, sizeof args);
  args.mem_alloc_type = Alloc_With_System_Allocator;
  if (!wamr_api_stock.full_init(&args) || !cowmem_wamr_runtime_init(NULL)) {
    fprintf(stderr, "WAMR runtime init failed\n");
    return 1;
  }
  cowmem_diag_t diag = {0};
  int r = cowmem_wamr_init(cfg, &diag);
  if (r != 0) {
    fprintf(stderr, "cowmem_wamr_init: %s (%s)\n", cowmem_strerror(r), diag.reason);
    return 1;
  }
#ifdef COWMEM_WAMR_IMAGES_demo /* `cowmem compile`'s image file */
  *images = COWMEM_WAMR_IMAGES_demo;
  r = cowmem_wamr_module_open_images(*images, COWMEM_WAMR_STRIPPED_demo, NULL, &g_mod,
                                     &diag);
#else /* built without the cowmem command: images from the module */
  *images = COWMEM_WAMR_WASM_demo;
  r = cowmem_wamr_module_open(*images, &g_mod, &diag);
#endif
  if (r != 0) {
    fprintf(stderr, "%s: %s: %s\n", *images, cowmem_strerror(r), diag.reason);
    return 1;
  }
  /* The stock runtime loads the original module; WAMR keeps (and may
   * write) the buffer until unload, so it lives as long as the process. */
  static uint8_t* bytes;
  FILE* f = fopen(COWMEM_WAMR_WASM_demo, "rb");
  long len = -1;
  if (f && fseek(f, 0, SEEK_END) == 0) len = ftell(f);
  if (len > 0 && fseek(f, 0, SEEK_SET) == 0 && (bytes = malloc((size_t)len)) &&
      fread(bytes, 1, (size_t)len, f) != (size_t)len)
    len = -1;
  if (f) fclose(f);
  char err[128] = "";
  if (len <= 0 || !bytes ||
      !(g_stock = wamr_api_stock.load(bytes, (uint32_t)len, err, sizeof err))) {
    fprintf(stderr, "%s: stock WAMR cannot load it: %s\n", COWMEM_WAMR_WASM_demo, err);
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  size_t iters = 20000, stock_iters = 2000, warmup = 200;
  cowmem_wamr_config_t cfg;
  cowmem_wamr_config_init(&cfg);
  cfg.max_memories = 16;
  const char* reset_name = "adaptive"; /* the integration's default */
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (strcmp(a, "--iters") == 0 && i + 1 < argc)
      iters = strtoul(argv[++i], 0, 10);
    else if (strcmp(a, "--stock-iters") == 0 && i + 1 < argc)
      stock_iters = strtoul(argv[++i], 0, 10);
    else if (strcmp(a, "--warmup") == 0 && i + 1 < argc)
      warmup = strtoul(argv[++i], 0, 10);
    else if (strcmp(a, "--reset") == 0 && i + 1 < argc &&
             parse_reset(argv[i + 1], &cfg.reset) == 0)
      reset_name = argv[++i];
    else {
      fprintf(stderr,
              "usage: %s [--iters N] [--stock-iters N] [--warmup N] "
              "[--reset madvise|keep_resident|adaptive]\n",
              argv[0]);
      return 2;
    }
  }
  if (iters == 0) iters = 1;
  if (stock_iters == 0) stock_iters = 1;
  g_req_len = (uint32_t)strlen(g_req);
  const char* images;
  if (setup(&cfg, &images) != 0) return 1;

  char expect[REPORT_CAP];
  wamr_inst_t x;
  if (wamr_inst_wrap(&x, &wamr_api_cowmem, instantiate(&wamr_api_cowmem)) != 0) return 1;
  wamr_serve(&x, g_req, g_req_len, expect, sizeof expect);
  uint64_t pages;
  wamr_memory(&x, &pages);
  wamr_inst_free(&x);
  if (check_same() != 0) return 1;

  cowmem_image_info_t ii = {0};
  cowmem_image_t* image = cowmem_wamr_module_image(g_mod, 0);
  if (image) cowmem_image_info(image, &ii);
  uint32_t major, minor, patch;
  wasm_runtime_get_version(&major, &minor, &patch);
  printf("WAMR %u.%u.%u demo (fast interpreter): %s\nimages: %s\n", major, minor, patch,
         COWMEM_WAMR_WASM_demo, images);
  printf("memory %llu KiB, image %llu KiB (%s), reset %s\n",
         (unsigned long long)pages * 64, (unsigned long long)ii.len >> 10,
         ii.kind == COWMEM_IMAGE_MEMFD  ? "memfd"
         : ii.kind == COWMEM_IMAGE_COPY ? "copy"
                                        : "file",
         reset_name);
  printf("check: %zu inputs, stock and cowmem reports and memory checksums "
         "identical\n",
         (size_t)WAMR_NREQUESTS);
  printf("request (%u bytes) -> %s", g_req_len, expect);

  loop_t c = {0}, s = {0};
  /* The two loops alternate in ROUNDS blocks, so that whatever else the
   * machine does (other processes, frequency changes) weighs on both. */
  if (loop(&wamr_api_cowmem, warmup, 0, expect, &c) != 0) return 1;
  if (loop(&wamr_api_stock, warmup, 0, expect, &s) != 0) return 1;
  for (size_t round = 0; round < ROUNDS; round++) {
    size_t nc = iters * (round + 1) / ROUNDS - iters * round / ROUNDS;
    size_t ns = stock_iters * (round + 1) / ROUNDS - stock_iters * round / ROUNDS;
    if (loop(&wamr_api_cowmem, 0, nc, expect, &c) != 0) return 1;
    if (loop(&wamr_api_stock, 0, ns, expect, &s) != 0) return 1;
  }

  printf("\nrequest loop (instantiate, run, read result, deinstantiate), "
         "latency in us\n");
  printf("%-14s %12s %9s %9s %9s %9s\n", "", "requests/s", "p50", "p90", "p99", "p99.9");
  double rc = print_row("cowmem WAMR", &c);
  double rs = print_row("stock WAMR", &s);
  printf("ratio cowmem / stock: %.1fx requests per second (target >= 3x: %s)\n", rc / rs,
         rc >= 3 * rs ? "met" : "MISSED");

  double ci = us(&c.cycle, 0.5), si = us(&s.cycle, 0.5);
  printf("\ninstantiate + deinstantiate (with an execution environment), "
         "median (p99) in us\n");
  printf("  cowmem WAMR  %8.2f (%.2f)\n", ci, us(&c.cycle, 0.99));
  printf("  stock WAMR   %8.2f (%.2f)\n", si, us(&s.cycle, 0.99));
  printf("ratio stock / cowmem: %.1fx (target >= 20x: %s)\n", si / ci,
         si >= 20 * ci ? "met" : "MISSED");

  /* What the pool's adaptive reset saw: the pages a request writes, which
   * each reset restores by copy. */
  cowmem_pool_image_metrics_t im = {0};
  if (cfg.reset == COWMEM_RESET_ADAPTIVE && image &&
      cowmem_pool_image_metrics(cowmem_wamr_pool(), image, &im) == 0 && im.samples)
    printf("adaptive reset: %.1f pages written per instance (%llu sampled "
           "resets), hot set %llu pages, %llu resets\n",
           (double)im.sampled_dirty_pages / (double)im.samples,
           (unsigned long long)im.samples, (unsigned long long)im.hot_pages,
           (unsigned long long)im.resets);

  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  printf("\nlinear memories: %llu from images, %llu plain, %llu refused, %llu "
         "freed\n",
         (unsigned long long)n.image_allocs, (unsigned long long)n.plain_allocs,
         (unsigned long long)n.refused_allocs, (unsigned long long)n.frees);
  bench_free(&c.req);
  bench_free(&c.cycle);
  bench_free(&s.req);
  bench_free(&s.cycle);
  cowmem_wamr_module_free(g_mod);
  wamr_api_stock.unload(g_stock);
  int r = cowmem_wamr_shutdown();
  if (r != 0) fprintf(stderr, "cowmem_wamr_shutdown: %s\n", cowmem_strerror(r));
  wasm_runtime_destroy();
  wamr_api_stock.destroy();
  return r != 0;
}
