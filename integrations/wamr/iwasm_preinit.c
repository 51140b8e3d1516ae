/* iwasm_preinit.c: see iwasm_preinit.h. */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cowmem_wamr_preinit.h"
#include "iwasm_preinit.h"
#include "iwasm_runner.h"

static int failed(const char* path, const char* what, const char* why) {
  fprintf(stderr, "cowmem-iwasm: %s: %s%s\n", path, what, why);
  return RUNNER_FAILED;
}

static cowmem_module_t* parse(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    failed(path, "cannot read: ", strerror(errno));
    return NULL;
  }
  uint8_t* bytes = NULL;
  size_t len = 0;
  int e = cowmem_module_read(fd, &bytes, &len);
  close(fd);
  if (e) {
    failed(path, "cannot read: ", cowmem_strerror(e));
    return NULL;
  }
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  /* Imported memories fresh per instance, as the runner's module set
   * (cowmem_wamr_module_open) takes them. */
  e = cowmem_module_parse(bytes, len, COWMEM_MODULE_FRESH_IMPORTS, &m, &d);
  free(bytes);
  if (e) failed(path, "not a module: ", d.reason);
  return e ? NULL : m;
}

void iwasm_preinit_close(iwasm_preinit_t* p) {
  if (p->wasm_fd >= 0) close(p->wasm_fd);
  if (p->images_fd >= 0) close(p->images_fd);
  p->wasm_fd = p->images_fd = -1;
}

int iwasm_preinit(const char* path, const char* func, bool stock, const cowmem_wamr_wasi_t* w,
                  iwasm_preinit_t* out) {
  memset(out, 0, sizeof *out);
  out->wasm_fd = out->images_fd = -1;
  cowmem_module_t* m = parse(path);
  if (!m) return RUNNER_FAILED;
  if (!stock && (out->images_fd = memfd_create("cowmem-preinit.cwimg", MFD_CLOEXEC)) < 0) {
    cowmem_module_free(m);
    return failed(path, "memfd: ", strerror(errno));
  }
  if (!cowmem_wamr_runtime_init(NULL)) {
    cowmem_module_free(m);
    iwasm_preinit_close(out);
    return failed(path, "WAMR failed to initialize", "");
  }
  cowmem_wamr_preinit_t o;
  cowmem_wamr_preinit_init(&o);
  o.init_func = func;
  o.flags = stock ? COWMEM_PREINIT_SEGMENTS : COWMEM_PREINIT_IMAGES;
  o.wasi = w;
  uint8_t* wasm = NULL;
  size_t len = 0;
  char err[768];
  int e = cowmem_wamr_preinit(m, &o, &wasm, &len, out->images_fd, NULL, err, sizeof err);
  /* The runner initializes the runtime again, for its own module. */
  wasm_runtime_destroy();
  cowmem_module_free(m);
  if (e == 0 && (e = cowmem_wamr_wasi_buffer_fd(wasm, len, &out->wasm_fd)) != 0)
    snprintf(err, sizeof err, "memfd: %s", cowmem_strerror(e));
  free(wasm);
  if (e) {
    iwasm_preinit_close(out);
    return failed(path, "--preinit: ", err);
  }
  snprintf(out->wasm, sizeof out->wasm, "/proc/self/fd/%d", out->wasm_fd);
  if (out->images_fd >= 0)
    snprintf(out->images, sizeof out->images, "/proc/self/fd/%d", out->images_fd);
  return 0;
}
