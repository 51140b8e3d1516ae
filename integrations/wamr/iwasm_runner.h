/* iwasm_runner.h: one WASI module run through either runtime of a program
 * that links both (the hooked one through cowmem_wamr, the stock one
 * renamed: wamr_api.h), as cowmem-iwasm and the WASI tests do. */
#ifndef COWMEM_IWASM_RUNNER_H
#define COWMEM_IWASM_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "cowmem_wamr_wasi.h"
#include "wamr_api.h"
#include "wamr_util.h"

/* What a failure to read, load or instantiate returns (iwasm's -1). */
#define RUNNER_FAILED 255
/* What a trap returns (iwasm's). */
#define RUNNER_TRAPPED 1

typedef struct {
  const wamr_api_t* api;
  bool stock;
  cowmem_wamr_module_t* set; /* cowmem: the module set */
  wasm_module_t module;      /* stock: the module as loaded */
  uint8_t* bytes;            /* stock: its bytes (WAMR points into them) */
} runner_t;

/* Initialize the runtime (stock or cowmem: a pool of `slots` memories
 * alive at once) and load `path` (with `images`, a .cwimg, for cowmem:
 * path is then the stripped module). 0, or RUNNER_FAILED after printing
 * why on stderr (nothing left to close). */
int runner_open(runner_t* r, bool stock, const char* path, const char* images,
                size_t slots);
/* Unload and destroy the runtime. */
void runner_close(runner_t* r);
/* A fresh instance with w's WASI arguments: 0, or RUNNER_FAILED (printed).
 * cowmem's has its execution environment, reused from the module set's
 * cache (cowmem_wamr_wasi_instance_new); stock's gets the one WAMR makes
 * for an instance on its first call, as stock iwasm's does. Freed with
 * wamr_inst_free. */
int runner_instantiate(runner_t* r, const cowmem_wamr_wasi_t* w, uint32_t stack_size,
                       uint32_t heap_size, wamr_inst_t* out);
/* Run _start (function NULL) or call `function` with argc text arguments:
 * the program's exit code, or RUNNER_TRAPPED with the exception printed on
 * stdout (as iwasm does). */
int runner_run(runner_t* r, const wamr_inst_t* x, const char* function, int argc,
               char** argv);
/* n instances, each run once and kept alive; prints the process's PSS
 * and resident set before and with them on stderr. Exit code of the last. */
int runner_live(runner_t* r, const cowmem_wamr_wasi_t* w, uint32_t stack_size,
                uint32_t heap_size, const char* function, int argc, char** argv,
                unsigned long n);

#endif
