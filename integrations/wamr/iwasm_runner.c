/* iwasm_runner.c: see iwasm_runner.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iwasm_runner.h"
#include "wamr_wasi_stock.h"

static uint8_t* read_file(const char* path, uint32_t* size) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cowmem-iwasm: cannot read %s: %s\n", path, strerror(errno));
    return NULL;
  }
  uint8_t* buf = NULL;
  long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (n >= 0 && n <= (long)UINT32_MAX && fseek(f, 0, SEEK_SET) == 0 &&
      (buf = malloc(n ? (size_t)n : 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
    *size = (uint32_t)n;
  } else {
    fprintf(stderr, "cowmem-iwasm: cannot read %s: %s\n", path,
            errno ? strerror(errno) : "too large");
    free(buf);
    buf = NULL;
  }
  fclose(f);
  return buf;
}

static int open_stock(runner_t* r, const char* path) {
  RuntimeInitArgs args;
  memset(&args, 0, sizeof args);
  args.mem_alloc_type = Alloc_With_System_Allocator;
  if (!r->api->full_init(&args)) {
    fprintf(stderr, "cowmem-iwasm: stock WAMR failed to initialize\n");
    return RUNNER_FAILED;
  }
  uint32_t size;
  char err[128];
  if (!(r->bytes = read_file(path, &size))) goto fail;
  if (!(r->module = r->api->load(r->bytes, size, err, sizeof err))) {
    fprintf(stderr, "cowmem-iwasm: %s: not a module WAMR can load: %s\n", path, err);
    goto fail;
  }
  return 0;
fail:
  free(r->bytes);
  r->api->destroy();
  return RUNNER_FAILED;
}

static int open_cowmem(runner_t* r, const char* path, const char* images, size_t slots) {
  /* As many slots as instances live at once: each reserves 8 GiB of
   * address space, which valgrind and TSan cannot give 256 times. */
  cowmem_wamr_config_t cfg;
  cowmem_wamr_config_init(&cfg);
  cfg.max_memories = slots;
  cowmem_diag_t diag = {0};
  int e = cowmem_wamr_init(&cfg, &diag);
  if (e) {
    fprintf(stderr, "cowmem-iwasm: no pool of %zu memories: %s\n", slots,
            diag.reason[0] ? diag.reason : cowmem_strerror(e));
    return RUNNER_FAILED;
  }
  if (!cowmem_wamr_runtime_init(NULL)) {
    fprintf(stderr, "cowmem-iwasm: WAMR failed to initialize\n");
    (void)cowmem_wamr_shutdown();
    return RUNNER_FAILED;
  }
  e = images ? cowmem_wamr_module_open_images(images, path, NULL, &r->set, &diag)
                 : cowmem_wamr_module_open(path, &r->set, &diag);
  if (e == 0) return 0;
  if (e == COWMEM_ENOENT || e == COWMEM_EACCES)
    fprintf(stderr, "cowmem-iwasm: cannot read %s: %s\n", images ? images : path,
            cowmem_strerror(e));
  else
    fprintf(stderr, "cowmem-iwasm: %s: %s%s%s\n", images ? images : path, cowmem_strerror(e),
          diag.reason[0] ? ": " : "", diag.reason);
  wasm_runtime_destroy();
  (void)cowmem_wamr_shutdown();
  return RUNNER_FAILED;
}

int runner_open(runner_t* r, bool stock, const char* path, const char* images,
                size_t slots) {
  memset(r, 0, sizeof *r);
  r->stock = stock;
  r->api = stock ? &wamr_api_stock : &wamr_api_cowmem;
  return stock ? open_stock(r, path) : open_cowmem(r, path, images, slots);
}

void runner_close(runner_t* r) {
  if (r->stock) {
    r->api->unload(r->module);
    free(r->bytes);
    r->api->destroy();
  } else {
    cowmem_wamr_module_free(r->set);
    wasm_runtime_destroy();
    (void)cowmem_wamr_shutdown();
  }
  memset(r, 0, sizeof *r);
}

int runner_instantiate(runner_t* r, const cowmem_wamr_wasi_t* w, uint32_t stack_size,
                       uint32_t heap_size, wamr_inst_t* out) {
  cowmem_diag_t diag = {0};
  int e;
  if (r->stock) {
    char err[128] = "";
    e = cowmem_stock_wamr_wasi_set(r->module, w, &diag);
    wasm_module_inst_t inst =
        e ? NULL : r->api->instantiate(r->module, stack_size, heap_size, err, sizeof err);
    cowmem_stock_wamr_wasi_clear(r->module);
    if (!e && !inst) {
      fprintf(stderr, "cowmem-iwasm: instantiation failed: %s\n", err);
      return RUNNER_FAILED;
    }
    memset(out, 0, sizeof *out);
    out->api = r->api;
    out->inst = inst;
  } else {
    cowmem_wamr_instance_t* x = NULL;
    e = cowmem_wamr_wasi_instance_new(r->set, w, stack_size, heap_size, &x, &diag);
    (void)wamr_inst_of(out, x);
  }
  if (e) {
    fprintf(stderr, "cowmem-iwasm: %s\n", diag.reason[0] ? diag.reason : cowmem_strerror(e));
    return RUNNER_FAILED;
  }
  return 0;
}

int runner_run(runner_t* r, const wamr_inst_t* x, const char* function, int argc,
               char** argv) {
  cowmem_diag_t diag = {0};
  int code = 0, e;
  if (function)
    e = r->stock
            ? cowmem_stock_wamr_wasi_call(x->inst, function, argc, argv, &code, &diag)
            : cowmem_wamr_wasi_instance_call(x->owner, function, argc, argv, &code, &diag);
  else
    e = r->stock ? cowmem_stock_wamr_wasi_run_main(x->inst, &code, &diag)
                 : cowmem_wamr_wasi_instance_run_main(x->owner, &code, &diag);
  if (e == 0) return code;
  printf("%s\n", diag.reason);
  return RUNNER_TRAPPED;
}

/* Pss: and Rss: of /proc/self/smaps_rollup, in KiB (0 when unreadable). */
static void memory_kb(unsigned long* pss, unsigned long* rss) {
  char line[256];
  *pss = *rss = 0;
  FILE* f = fopen("/proc/self/smaps_rollup", "r");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "Pss:", 4)) *pss = strtoul(line + 4, NULL, 10);
    if (!strncmp(line, "Rss:", 4)) *rss = strtoul(line + 4, NULL, 10);
  }
  fclose(f);
}

int runner_live(runner_t* r, const cowmem_wamr_wasi_t* w, uint32_t stack_size,
                uint32_t heap_size, const char* function, int argc, char** argv,
                unsigned long n) {
  wamr_inst_t* live = calloc(n, sizeof *live);
  if (!live) return RUNNER_FAILED;
  unsigned long pss0, rss0, pss1, rss1, made = 0;
  memory_kb(&pss0, &rss0);
  int code = 0;
  for (; made < n; made++) {
    if (w->stdin_fd >= 0) (void)lseek(w->stdin_fd, 0, SEEK_SET); /* each reads it all */
    if ((code = runner_instantiate(r, w, stack_size, heap_size, &live[made]))) break;
    code = runner_run(r, &live[made], function, argc, argv);
    fflush(stdout);
  }
  memory_kb(&pss1, &rss1);
  fprintf(stderr,
          "cowmem-iwasm: %lu live instances through %s: PSS %lu KiB (+%lu), "
          "RSS %lu KiB (+%lu); %.1f KiB PSS each\n",
          made, r->api->name, pss1, pss1 - pss0, rss1, rss1 - rss0,
          made ? (double)(pss1 - pss0) / (double)made : 0.0);
  for (unsigned long i = 0; i < made; i++) wamr_inst_free(&live[i]);
  free(live);
  return code;
}
