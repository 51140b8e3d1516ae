/* preinit_bench.c: the demo's request loop with pre-initialization, in
 * WAMR's fast interpreter (scripts/preinit-table prints it beside QuickJS
 * and SQLite). The module is demo_init.wasm, the demo whose init function
 * builds its dictionary (which demo.wasm builds on each instance's first
 * request). Rows, one process, the same request, loops alternating in
 * blocks so that the machine's load weighs on each alike:
 *   stock          stock WAMR, the original: the dictionary is built on
 *                  every request (each is an instance's first)
 *   stock+wizer    stock WAMR running Wizer's output (--wizer FILE): the
 *                  snapshot is data segments, copied into every instance
 *   cowmem         cowmem WAMR, the original (images, no pre-initialization)
 *   cowmem+preinit cowmem WAMR, the module set cowmem_wamr_module(...
 *                  PREINIT wizer-initialize) built: the snapshot is the
 *                  images, mapped copy-on-write
 * Every row must answer the same report, checked first.
 *
 * Usage: cowmem_wamr_preinit_bench [--iters N] [--warmup N] [--wizer FILE]
 *                                  [--only ROW]
 * --only runs one row's loop and prints nothing else (for callgrind). */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "cowmem_wamr.h"
#include "wamr_util.h"

#define REPORT_CAP 256
#define ROUNDS 10
#define NROWS 4

typedef struct {
  const char* name;
  const wamr_api_t* api;
  cowmem_wamr_module_t* set; /* cowmem rows */
  wasm_module_t module;      /* stock rows */
  uint8_t* bytes;            /* stock rows: the loaded buffer */
  bench_samples_t req;
  uint64_t elapsed_ns, faults, n;
} row_t;

static wasm_module_inst_t instantiate(row_t* r) {
  char err[128];
  if (r->set) return cowmem_wamr_instantiate(r->set, WAMR_STACK, 0, err, sizeof err);
  return r->api->instantiate(r->module, WAMR_STACK, 0, err, sizeof err);
}

static int serve(row_t* r, char* report) {
  wamr_inst_t x;
  if (wamr_inst_wrap(&x, r->api, instantiate(r)) != 0) {
    fprintf(stderr, "%s: instantiation failed\n", r->name);
    return 1;
  }
  wamr_serve(&x, demo_default_request, (uint32_t)strlen(demo_default_request), report,
             REPORT_CAP);
  wamr_inst_free(&x);
  return 0;
}

/* n requests of row r, each timed whole; the report checked. */
static int loop(row_t* r, size_t n, const char* expect, bool record) {
  char report[REPORT_CAP];
  uint64_t f0 = bench_minor_faults(), start = bench_now_ns();
  for (size_t i = 0; i < n; i++) {
    uint64_t t0 = bench_now_ns();
    if (serve(r, report) != 0) return 1;
    if (record) bench_add(&r->req, (double)(bench_now_ns() - t0));
    if (expect && strcmp(report, expect) != 0) {
      fprintf(stderr, "%s: %s", r->name, report);
      return 1;
    }
  }
  if (record) {
    r->elapsed_ns += bench_now_ns() - start;
    r->faults += bench_minor_faults() - f0;
    r->n += n;
  }
  return 0;
}

static int open_stock(row_t* r, const char* path) {
  size_t len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int e = fd < 0 ? -errno : cowmem_module_read(fd, &r->bytes, &len);
  if (fd >= 0) close(fd);
  char err[128] = "";
  if (e != 0 || len == 0 || len > UINT32_MAX ||
      !(r->module = wamr_api_stock.load(r->bytes, (uint32_t)len, err, sizeof err))) {
    fprintf(stderr, "%s: stock WAMR cannot load it: %s%s\n", path,
            e ? cowmem_strerror(e) : "", err);
    return 1;
  }
  return 0;
}

static int open_rows(row_t rows[NROWS], const char* wizer) {
  cowmem_diag_t d;
  rows[0] = (row_t){.name = "stock", .api = &wamr_api_stock};
  rows[1] = (row_t){.name = "stock+wizer", .api = &wamr_api_stock};
  rows[2] = (row_t){.name = "cowmem", .api = &wamr_api_cowmem};
  rows[3] = (row_t){.name = "cowmem+preinit", .api = &wamr_api_cowmem};
  if (open_stock(&rows[0], COWMEM_WAMR_WASM_demo_init) != 0) return 1;
  if (wizer && open_stock(&rows[1], wizer) != 0) return 1;
  int e = cowmem_wamr_module_open(COWMEM_WAMR_WASM_demo_init, &rows[2].set, &d);
  if (e == 0)
    e = cowmem_wamr_module_open_images(COWMEM_WAMR_IMAGES_demo_preinit,
                                       COWMEM_WAMR_STRIPPED_demo_preinit, NULL,
                                       &rows[3].set, &d);
  if (e != 0) fprintf(stderr, "cowmem: %s (%s)\n", cowmem_strerror(e), d.reason);
  return e != 0;
}

static void close_rows(row_t rows[NROWS]) {
  for (int i = 0; i < NROWS; i++) {
    if (rows[i].module) wamr_api_stock.unload(rows[i].module);
    free(rows[i].bytes);
    cowmem_wamr_module_free(rows[i].set);
    bench_free(&rows[i].req);
  }
}

static double rps(const row_t* r) {
  return r->elapsed_ns ? (double)r->n * 1e9 / (double)r->elapsed_ns : 0;
}

static void print(row_t rows[NROWS]) {
  printf("%-15s %11s %9s %9s %10s %8s %8s\n", "", "requests/s", "p50 us", "p99 us",
         "faults/req", "x stock", "x wizer");
  for (int i = 0; i < NROWS; i++) {
    row_t* r = &rows[i];
    if (!r->n) continue;
    printf("%-15s %11.0f %9.2f %9.2f %10.1f %7.1fx", r->name, rps(r),
           bench_quantile(&r->req, 0.5) / 1e3, bench_quantile(&r->req, 0.99) / 1e3,
           (double)r->faults / (double)r->n, rps(r) / rps(&rows[0]));
    if (rows[1].n)
      printf(" %7.1fx\n", rps(r) / rps(&rows[1]));
    else
      printf(" %8s\n", "-");
  }
}

static int parse(int argc, char** argv, size_t* iters, size_t* warmup, const char** wizer,
                 const char** only) {
  for (int i = 1; i < argc; i++) {
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return 1;
    if (!strcmp(argv[i], "--iters")) *iters = strtoul(v, NULL, 10);
    else if (!strcmp(argv[i], "--warmup")) *warmup = strtoul(v, NULL, 10);
    else if (!strcmp(argv[i], "--wizer")) *wizer = v;
    else if (!strcmp(argv[i], "--only")) *only = v;
    else return 1;
    i++;
  }
  return *iters == 0;
}

int main(int argc, char** argv) {
  size_t iters = 2000, warmup = 50;
  const char *wizer = NULL, *only = NULL;
  if (parse(argc, argv, &iters, &warmup, &wizer, &only) != 0) {
    fprintf(stderr, "usage: cowmem_wamr_preinit_bench [--iters N] [--warmup N] "
                    "[--wizer FILE] [--only ROW]\n");
    return 2;
  }
  RuntimeInitArgs args;
  memset(&args, 0, sizeof args);
  args.mem_alloc_type = Alloc_With_System_Allocator;
  cowmem_wamr_config_t cfg;
  cowmem_wamr_config_init(&cfg);
  cfg.max_memories = 4;
  if (!wamr_api_stock.full_init(&args) || !cowmem_wamr_runtime_init(NULL) ||
      cowmem_wamr_init(&cfg, NULL) != 0) {
    fprintf(stderr, "WAMR or cowmem failed to initialize\n");
    return 1;
  }
  row_t rows[NROWS];
  int rc = open_rows(rows, wizer);
  char expect[REPORT_CAP] = "";
  if (rc == 0 && !only) rc = serve(&rows[0], expect);
  for (int i = 0; rc == 0 && i < NROWS; i++) {
    if (!rows[i].module && !rows[i].set) continue;
    if (only && strcmp(only, rows[i].name) != 0) continue;
    rc = loop(&rows[i], only ? iters : warmup, only ? NULL : expect, false);
  }
  for (size_t round = 0; rc == 0 && !only && round < ROUNDS; round++)
    for (int i = 0; rc == 0 && i < NROWS; i++)
      if (rows[i].module || rows[i].set)
        rc = loop(&rows[i], demo_block(iters, round, ROUNDS), expect, true);
  if (rc == 0 && !only) {
    printf("demo (demo_init.wasm) in WAMR's fast interpreter, %zu requests a row\n"
           "report: %s",
           iters, expect);
    print(rows);
  }
  close_rows(rows);
  (void)cowmem_wamr_shutdown();
  wasm_runtime_destroy();
  wamr_api_stock.destroy();
  return rc;
}
