/* demo_main.c: the bundled demo program (examples/demo/demo.c, compiled to
 * wasm32 by clang) served as a request loop by WAMR's fast interpreter,
 * twice in one process:
 *   cowmem  the stripped module in the runtime built with the allocator
 *           hook, its memory a cowmem slot mapped copy-on-write from the
 *           original module's image (cowmem_wamr.h);
 *   stock   the original module in the stock runtime (its symbols renamed,
 *           cowmem_wamr.cmake), which reserves 8 GiB, mprotects the
 *           initial size and copies the data segments per instance.
 * Each request instantiates (with an execution environment: cowmem's
 * reused from the module set's cache by cowmem_wamr_instance_new, stock's
 * created and destroyed per instance, as stock hosts do), writes the
 * input, calls run, copies the report out, and deinstantiates. Prints
 * requests per second and latency percentiles for both, the ratio, and the
 * instantiate + deinstantiate medians.
 *
 * Usage: cowmem_wamr_demo [--iters N] [--stock-iters N] [--warmup N]
 *                         [--reset madvise|keep_resident|adaptive]
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "cowmem_wamr.h"
#include "demo.h"
#include "wamr_util.h"

#define REPORT_CAP 256
#define ROUNDS 10

typedef struct {
  uint64_t elapsed_ns;        /* wall time of the recorded requests */
  bench_samples_t req, cycle; /* per request, ns: all of it; instantiate +
                                 deinstantiate */
  uint64_t faults;            /* minor page faults over the recorded blocks */
} loop_t;

static const char* g_req = demo_default_request;
static uint32_t g_req_len;
static cowmem_wamr_module_t* g_mod; /* the cowmem side */
static wasm_module_t g_stock;       /* the stock side */

/* An instance with its execution environment (wamr_inst_new): on the
 * cowmem side from the instance API, on the stock side created per
 * instance. 0 or -1. */
static int instantiate(wamr_inst_t* x, const wamr_api_t* api) {
  char err[128] = "";
  int r = wamr_inst_new(x, api == &wamr_api_cowmem ? g_mod : NULL, api, g_stock, err,
                        sizeof err);
  if (r != 0) fprintf(stderr, "%s: %s\n", api->name, err);
  return r;
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
    if (instantiate(&x, api) != 0) {
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
  for (size_t i = 0; i < DEMO_NREQUESTS; i++) {
    char a[REPORT_CAP], b[REPORT_CAP];
    uint32_t len = (uint32_t)strlen(demo_requests[i]);
    wamr_inst_t s, c;
    if (instantiate(&s, &wamr_api_stock) != 0) return 1;
    if (instantiate(&c, &wamr_api_cowmem) != 0) {
      wamr_inst_free(&s);
      return 1;
    }
    wamr_serve(&s, demo_requests[i], len, a, sizeof a);
    wamr_serve(&c, demo_requests[i], len, b, sizeof b);
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
  size_t len = 0;
  int fd = open(COWMEM_WAMR_WASM_demo, O_RDONLY | O_CLOEXEC);
  r = fd < 0 ? -errno : cowmem_module_read(fd, &bytes, &len);
  if (fd >= 0) close(fd);
  char err[128] = "";
  if (r != 0 || len == 0 || len > UINT32_MAX ||
      !(g_stock = wamr_api_stock.load(bytes, (uint32_t)len, err, sizeof err))) {
    fprintf(stderr, "%s: stock WAMR cannot load it: %s\n", COWMEM_WAMR_WASM_demo, err);
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  cowmem_wamr_config_t cfg;
  cowmem_wamr_config_init(&cfg);
  cfg.max_memories = 16;
  demo_options_t o;
  if (demo_parse_args(argc, argv, "", &cfg.reset, &o) != 0) return 2;
  g_req_len = (uint32_t)strlen(g_req);
  const char* images;
  if (setup(&cfg, &images) != 0) return 1;

  char expect[REPORT_CAP];
  wamr_inst_t x;
  if (instantiate(&x, &wamr_api_cowmem) != 0) return 1;
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
         demo_image_kind(&ii), o.reset_name);
  printf("check: %zu inputs, stock and cowmem reports and memory checksums "
         "identical\n",
         (size_t)DEMO_NREQUESTS);
  printf("request (%u bytes) -> %s", g_req_len, expect);

  loop_t c = {0}, s = {0};
  /* The two loops alternate in ROUNDS blocks, so that whatever else the
   * machine does (other processes, frequency changes) weighs on both. */
  if (loop(&wamr_api_cowmem, o.warmup, 0, expect, &c) != 0) return 1;
  if (loop(&wamr_api_stock, o.warmup, 0, expect, &s) != 0) return 1;
  cowmem_pool_image_metrics_t counts = {0};
  for (size_t round = 0; round < ROUNDS; round++) {
    cowmem_pool_image_metrics_t r0 = demo_reset_counts(cowmem_wamr_pool(), image);
    uint64_t f0 = bench_minor_faults();
    if (loop(&wamr_api_cowmem, 0, demo_block(o.iters, round, ROUNDS), expect, &c) != 0)
      return 1;
    uint64_t f1 = bench_minor_faults();
    cowmem_pool_image_metrics_t r1 = demo_reset_counts(cowmem_wamr_pool(), image);
    if (loop(&wamr_api_stock, 0, demo_block(o.stock_iters, round, ROUNDS), expect, &s) !=
        0)
      return 1;
    c.faults += f1 - f0;
    s.faults += bench_minor_faults() - f1;
    demo_reset_counts_add(&counts, &r0, &r1); /* the cowmem blocks only */
  }

  printf("\nrequest loop (instantiate, run, read result, deinstantiate), "
         "latency in us\n");
  printf("%-14s %12s %9s %9s %9s %9s\n", "", "requests/s", "p50", "p90", "p99", "p99.9");
  double rc = print_row("cowmem WAMR", &c);
  double rs = print_row("stock WAMR", &s);
  printf("ratio cowmem / stock: %.1fx requests per second (target >= 3x: %s)\n", rc / rs,
         rc >= 3 * rs ? "met" : "MISSED");
  printf("minor faults per request: cowmem %.2f, stock %.2f\n",
         (double)c.faults / (double)o.iters, (double)s.faults / (double)o.stock_iters);
  demo_print_reset_counts(&counts, o.iters);

  double ci = us(&c.cycle, 0.5), si = us(&s.cycle, 0.5);
  printf("\ninstantiate + deinstantiate (with an execution environment), "
         "median (p99) in us\n");
  printf("  cowmem WAMR  %8.2f (%.2f)\n", ci, us(&c.cycle, 0.99));
  printf("  stock WAMR   %8.2f (%.2f)\n", si, us(&s.cycle, 0.99));
  printf("ratio stock / cowmem: %.1fx (target >= 25x: %s)\n", si / ci,
         si >= 25 * ci ? "met" : "MISSED");

  demo_print_adaptive(cowmem_wamr_pool(), image, cfg.reset);

  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  printf("\nlinear memories: %llu from images, %llu plain, %llu refused, %llu "
         "freed\n",
         (unsigned long long)n.image_allocs, (unsigned long long)n.plain_allocs,
         (unsigned long long)n.refused_allocs, (unsigned long long)n.frees);
  printf("execution environments: %llu created, %llu reused\n",
         (unsigned long long)n.envs_created, (unsigned long long)n.envs_reused);
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
