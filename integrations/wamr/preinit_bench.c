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

#include "bench_rows.h"
#include "cowmem_wamr.h"
#include "wamr_util.h"

#define ROUNDS 10
#define NROWS 4

typedef struct {
  const wamr_api_t* api;
  cowmem_wamr_module_t* set; /* cowmem rows */
  wasm_module_t module;      /* stock rows */
  uint8_t* bytes;            /* stock rows: the loaded buffer */
} module_t;

static int serve(bench_row_t* r, char* report) {
  module_t* m = r->ctx;
  char err[128] = "";
  wamr_inst_t x;
  /* cowmem rows: the instance API (execution environments reused); stock
   * rows: one created per instance, as stock hosts do. */
  if (wamr_inst_new(&x, m->set, m->api, m->module, err, sizeof err) != 0) {
    fprintf(stderr, "%s: instantiation failed: %s\n", r->name, err);
    return 1;
  }
  wamr_serve(&x, demo_default_request, (uint32_t)strlen(demo_default_request), report,
             ROW_REPORT_CAP);
  wamr_inst_free(&x);
  return 0;
}

static int open_stock(module_t* m, const char* path) {
  size_t len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int e = fd < 0 ? -errno : cowmem_module_read(fd, &m->bytes, &len);
  if (fd >= 0) close(fd);
  char err[128] = "";
  if (e != 0 || len == 0 || len > UINT32_MAX ||
      !(m->module = wamr_api_stock.load(m->bytes, (uint32_t)len, err, sizeof err))) {
    fprintf(stderr, "%s: stock WAMR cannot load it: %s%s\n", path,
            e ? cowmem_strerror(e) : "", err);
    return 1;
  }
  return 0;
}

static int open_modules(module_t mods[NROWS], const char* wizer) {
  cowmem_diag_t d;
  for (int i = 0; i < NROWS; i++)
    mods[i] = (module_t){.api = i < 2 ? &wamr_api_stock : &wamr_api_cowmem};
  if (open_stock(&mods[0], COWMEM_WAMR_WASM_demo_init) != 0) return 1;
  if (wizer && open_stock(&mods[1], wizer) != 0) return 1;
  int e = cowmem_wamr_module_open(COWMEM_WAMR_WASM_demo_init, &mods[2].set, &d);
  if (e == 0)
    e = cowmem_wamr_module_open_images(COWMEM_WAMR_IMAGES_demo_preinit,
                                       COWMEM_WAMR_STRIPPED_demo_preinit, NULL,
                                       &mods[3].set, &d);
  if (e != 0) fprintf(stderr, "cowmem: %s (%s)\n", cowmem_strerror(e), d.reason);
  return e != 0;
}

int main(int argc, char** argv) {
  size_t iters = 2000, warmup = 50;
  const char *wizer = NULL, *only = NULL;
  if (bench_rows_args(argc, argv, &iters, &warmup, &only, "--wizer", &wizer) != 0) {
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
  module_t mods[NROWS];
  static const char* const names[NROWS] = {"stock", "stock+wizer", "cowmem",
                                           "cowmem+preinit"};
  bench_row_t rows[NROWS];
  int rc = open_modules(mods, wizer);
  for (int i = 0; i < NROWS; i++)
    rows[i] = (bench_row_t){.name = names[i], .ctx = &mods[i],
                            .serve = mods[i].module || mods[i].set ? serve : NULL};
  char expect[ROW_REPORT_CAP] = "";
  if (rc == 0 && !only) rc = serve(&rows[0], expect);
  if (rc == 0) rc = bench_rows_run(rows, NROWS, warmup, iters, ROUNDS, only, expect);
  if (rc == 0 && !only) {
    printf("demo (demo_init.wasm) in WAMR's fast interpreter, %zu requests a row\n"
           "report: %s",
           iters, expect);
    bench_rows_print(rows, NROWS);
  }
  for (int i = 0; i < NROWS; i++) {
    if (mods[i].module) wamr_api_stock.unload(mods[i].module);
    free(mods[i].bytes);
    cowmem_wamr_module_free(mods[i].set);
    bench_free(&rows[i].req);
  }
  (void)cowmem_wamr_shutdown();
  wasm_runtime_destroy();
  wamr_api_stock.destroy();
  return rc;
}
