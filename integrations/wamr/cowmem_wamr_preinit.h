/* cowmem_wamr_preinit.h: pre-initialization (cowmem.h's cowmem_preinit_*)
 * with WAMR's interpreter as the runner, linear memories from cowmem_wamr's
 * pool. Used by `cowmem preinit` and by `cowmem-iwasm --preinit`.
 *
 *   cowmem_wamr_runtime_init(NULL);       // a runtime built with WASI
 *   cowmem_wamr_preinit_t o;
 *   cowmem_wamr_preinit_init(&o);
 *   o.init_func = "_initialize";           // a reactor's own start-up
 *   o.wasi = &w;                           // NULL: no import at all
 *   o.flags = COWMEM_PREINIT_IMAGES;       // images to images_fd
 *   cowmem_wamr_preinit(m, &o, &out, &out_len, images_fd, &res, err, sizeof err);
 *   wasm_runtime_destroy();
 *
 * The runtime linked must be built by cowmem_wamr_runtime(... WASI)
 * (cowmem_wamr.cmake): with MULTI_MEMORY and CLASSIC it pre-initializes
 * modules of several memories, and with EXACT_MEMORY it sees every memory
 * as declared (WAMR otherwise shrinks a memory that a module cannot grow
 * to its data's end, and the snapshot is then that size, raised to the
 * declared minimum).
 *
 * Imports: with wasi NULL every call to an imported function traps, and
 * the error names the import (WASI's included: the runtime's WASI
 * functions are hidden for the run by trapping ones). With wasi set, the
 * module gets WASI preview 1 with those arguments (directories,
 * environment, argv; the standard streams -1: the process's own); other
 * imports still trap. A module importing WASI that exports _initialize
 * has it run by WAMR while it is instantiated, as it does for any WASI
 * reactor; it is not called a second time.
 *
 * Not thread-safe: one run at a time per process, and no other instance
 * of cowmem_wamr alive during it (a run creates the pool of cowmem_wamr
 * and shuts it down: ESTATE when one exists).
 */
#ifndef COWMEM_WAMR_PREINIT_H
#define COWMEM_WAMR_PREINIT_H

#include <stddef.h>
#include <stdint.h>

#include "cowmem_wamr_wasi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a run read: each memory's size and contents, each mutable defined
 * global's value, and each call's first result. */
typedef struct cowmem_wamr_preinit_state_s {
  cowmem_preinit_memory_t* memories; /* images are references: released by
                                        cowmem_wamr_preinit_state_free */
  uint32_t nmemories;
  cowmem_preinit_global_t* globals;
  uint32_t nglobals;
  uint64_t* results; /* per call: its first result's bits (0: none or not
                        called, see above) */
} cowmem_wamr_preinit_state_t;

/* Run `inst` (inst_len bytes: cowmem_preinit_instrument of m, the original
 * module as parsed) and call calls[0..ncalls) by export name, each taking
 * no parameter ("_initialize" skipped when WAMR ran it, see above). On
 * success fills *out (free with cowmem_wamr_preinit_state_free) and
 * returns 0; on failure a COWMEM_E* code with the reason in err (WAMR's
 * message for a load, instantiation or trap, the start function's and
 * _initialize's traps included; an import called without WASI named). */
int cowmem_wamr_preinit_run(const cowmem_module_t* m, const uint8_t* inst, size_t inst_len,
                            const char* const* calls, size_t ncalls,
                            const cowmem_wamr_wasi_t* wasi,
                            cowmem_wamr_preinit_state_t* out, char* err, size_t errlen);
void cowmem_wamr_preinit_state_free(cowmem_wamr_preinit_state_t* s);

#define COWMEM_WAMR_PREINIT_VERSION 1
typedef struct cowmem_wamr_preinit_s {
  uint32_t version;            /* set by cowmem_wamr_preinit_init */
  const char* init_func;       /* NULL: wizer-initialize, else
                                  wizer.initialize (the one exported) */
  unsigned flags;              /* cowmem_preinit_flag_t: 0 (segments) */
  const char* const* renames;  /* "dst=src", as cowmem_preinit_rewrite */
  size_t nrenames;             /* 0 */
  const cowmem_wamr_wasi_t* wasi; /* NULL: no WASI */
} cowmem_wamr_preinit_t;

void cowmem_wamr_preinit_init(cowmem_wamr_preinit_t* o);

typedef struct cowmem_wamr_preinit_result_s {
  const char* init_func; /* the one called (o's, or a default's name) */
  uint32_t memories, globals; /* pre-initialized */
} cowmem_wamr_preinit_result_t;

/* The whole of `cowmem preinit` on m (parsed with the flags its instances
 * get, e.g. COWMEM_MODULE_FRESH_IMPORTS): validate, instrument, run
 * _initialize (when exported and not the init function) then the init
 * function, rewrite. *out (malloc'd, *out_len bytes) is the pre-initialized
 * module; with COWMEM_PREINIT_IMAGES in o->flags the images are written to
 * images_fd (incomplete after an error: remove it). res may be NULL.
 * Errors, with the reason in err: EUNSUPPORTED or EMALFORMED (what a
 * snapshot cannot carry, "at byte N: why"), EINVAL (no such init function;
 * bad options), EINVALID (the run failed: a trap, an import called), the
 * errors of cowmem_wamr_preinit_run and cowmem_preinit_rewrite. */
int cowmem_wamr_preinit(const cowmem_module_t* m, const cowmem_wamr_preinit_t* o,
                        uint8_t** out, size_t* out_len, int images_fd,
                        cowmem_wamr_preinit_result_t* res, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* COWMEM_WAMR_PREINIT_H */
