/* iwasm_preinit.h: cowmem-iwasm --preinit: the module pre-initialized at
 * load, in memory (memfds, no files written), before the runner opens it. */
#ifndef COWMEM_IWASM_PREINIT_H
#define COWMEM_IWASM_PREINIT_H

#include <stdbool.h>

#include "cowmem_wamr_wasi.h"

typedef struct {
  int wasm_fd, images_fd; /* memfds; -1 when absent */
  char wasm[40], images[40]; /* their /proc/self/fd paths; images "" when
                                absent */
} iwasm_preinit_t;

/* Pre-initialize the module at `path` by calling `func` (after its
 * _initialize when it exports one and func is another), with WASI as w
 * gives it. stock: the pre-initialized module holds its state as data
 * segments, for a runtime that copies them (no images); else the module
 * without them and an image file, for cowmem. 0 with *out filled (close
 * with iwasm_preinit_close), or RUNNER_FAILED after printing why. Uses
 * cowmem's WAMR runtime: call it before runner_open. */
int iwasm_preinit(const char* path, const char* func, bool stock, const cowmem_wamr_wasi_t* w,
                  iwasm_preinit_t* out);
void iwasm_preinit_close(iwasm_preinit_t* p);

#endif
