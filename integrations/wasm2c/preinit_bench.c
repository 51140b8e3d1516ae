/* preinit_bench.c: the demo's request loop with pre-initialization, in
 * wasm2c (scripts/preinit-table prints it beside WAMR's). One process, the
 * same request, loops alternating in blocks so that the machine's load
 * weighs on each alike; every row must answer the same report:
 *   stock          demo.wasm with the stock runtime: the dictionary is
 *                  built on every request (each is an instance's first)
 *   stock+wizer    Wizer's output of demo_init.wasm (whose init builds the
 *                  dictionary) with the stock runtime: the snapshot is data
 *                  segments, copied into every instance
 *   cowmem         demo.wasm with cowmem (images, no pre-initialization)
 *   cowmem+preinit cowmem_wasm2c_module(... PREINIT wizer-initialize) of
 *                  demo_init.wasm: the snapshot is the images, mapped
 *                  copy-on-write
 * Usage: cowmem_w2c_preinit_bench [--iters N] [--warmup N] [--only ROW]
 * --only runs one row's loop and prints nothing else (for callgrind). */
#include "bench_rows.h"
#include "cowdemo.h"
#include "cowmem_wasm2c.h"
#include "demo.h"
#include "demo_w.h"
#include "demopre.h"
#include "demowz.h"
#include "w2c_util.h"
#include "wasm-rt-impl.h"

W2C_DEFINE_SERVE(demo)
W2C_DEFINE_SERVE(demowz)
W2C_DEFINE_SERVE(cowdemo)
W2C_DEFINE_SERVE(demopre)

#define ROUNDS 10
#define NROWS 4

/* serve_<mod>(r, report): one request on a fresh instance of <mod> (r->ctx:
 * the cowmem module set, for cowmem rows). */
#define DEFINE_ROW(mod, instantiate)                                                     \
  static int serve_##mod(bench_row_t* r, char* report) {                                 \
    W2C_T(mod) inst;                                                                     \
    (void)r;                                                                             \
    if ((instantiate) != 0) return 1;                                                    \
    w2c_serve_##mod(&inst, demo_default_request, (uint32_t)strlen(demo_default_request), \
                    report, ROW_REPORT_CAP);                                             \
    W2C_FN(mod, free)(&inst);                                                            \
    return 0;                                                                            \
  }
DEFINE_ROW(demo, (W2C_FN(demo, instantiate)(&inst), 0))
DEFINE_ROW(demowz, (W2C_FN(demowz, instantiate)(&inst), 0))
DEFINE_ROW(cowdemo, COWMEM_W2C_INSTANTIATE(r->ctx, W2C_FN(cowdemo, instantiate), &inst))
DEFINE_ROW(demopre, COWMEM_W2C_INSTANTIATE(r->ctx, W2C_FN(demopre, instantiate), &inst))

int main(int argc, char** argv) {
  size_t iters = 2000, warmup = 50;
  const char* only = NULL;
  if (bench_rows_args(argc, argv, &iters, &warmup, &only, NULL, NULL) != 0) {
    fprintf(stderr, "usage: cowmem_w2c_preinit_bench [--iters N] [--warmup N] [--only ROW]\n");
    return 2;
  }
  cowmem_w2c_config_t cfg;
  cowmem_w2c_config_init(&cfg);
  cfg.max_memories = 4;
  cowmem_diag_t d;
  cowmem_w2c_module_t *cow = NULL, *pre = NULL;
  int rc = cowmem_w2c_init(&cfg, &d);
  if (rc == 0) rc = cowmem_w2c_module_open_images(COWMEM_W2C_IMAGES_cowdemo, NULL, &cow, &d);
  if (rc == 0) rc = cowmem_w2c_module_open_images(COWMEM_W2C_IMAGES_demopre, NULL, &pre, &d);
  if (rc != 0) {
    fprintf(stderr, "cowmem: %s (%s)\n", cowmem_strerror(rc), d.reason);
    return 1;
  }
  bench_row_t rows[NROWS] = {{.name = "stock", .serve = serve_demo},
                             {.name = "stock+wizer", .serve = serve_demowz},
                             {.name = "cowmem", .serve = serve_cowdemo, .ctx = cow},
                             {.name = "cowmem+preinit", .serve = serve_demopre, .ctx = pre}};
  wasm_rt_init();
  COWMEM_W2C_INIT_MODULE(demo);
  COWMEM_W2C_INIT_MODULE(demowz);
  COWMEM_W2C_INIT_MODULE(cowdemo);
  COWMEM_W2C_INIT_MODULE(demopre);
  char expect[ROW_REPORT_CAP] = "";
  if (!only) rc = serve_demo(&rows[0], expect);
  if (rc == 0) rc = bench_rows_run(rows, NROWS, warmup, iters, ROUNDS, only, expect);
  if (rc == 0 && !only) {
    printf("demo in wasm2c (wasm-rt ABI %d), %zu requests a row\nreport: %s",
           cowmem_w2c_abi(), iters, expect);
    bench_rows_print(rows, NROWS);
  }
  for (int i = 0; i < NROWS; i++) bench_free(&rows[i].req);
  cowmem_w2c_module_free(cow);
  cowmem_w2c_module_free(pre);
  (void)cowmem_w2c_shutdown();
  return rc;
}
