/* The pre-initialization runner of `cowmem preinit`: WAMR's classic
 * interpreter, with every linear memory a slot of cowmem_wamr's pool.
 *
 * It instantiates a module instrumented by cowmem_preinit_instrument, calls
 * the functions it is given in order, and reads the state the reserved
 * exports show: each memory's size and contents (a snapshot of its slot:
 * only the pages the instance wrote are read) and each mutable defined
 * global's value. No host function is provided: a call to any imported
 * function traps, naming the import's module and field.
 *
 * Not thread-safe: one run at a time per process (WAMR's runtime is
 * initialized once, on the first run, and kept). */
#ifndef COWMEM_TOOLS_PREINIT_RUN_H
#define COWMEM_TOOLS_PREINIT_RUN_H

#include <stddef.h>
#include <stdint.h>

#include <cowmem.h>

typedef struct preinit_state_s {
  cowmem_preinit_memory_t* memories; /* images are references: released by
                                        preinit_state_free */
  uint32_t nmemories;
  cowmem_preinit_global_t* globals;
  uint32_t nglobals;
  uint64_t* results; /* per call: its first result's bits (0: none) */
} preinit_state_t;

/* Run the instrumented module `inst` (inst_len bytes, made from m, the
 * original module as parsed) and call calls[0..ncalls) by export name, each
 * taking no parameter. On success fills *out (free with preinit_state_free)
 * and returns 0; on failure returns a COWMEM_E* code with the reason in err
 * (WAMR's message for a load, instantiation or trap, the start function's
 * trap included). */
int preinit_run(const cowmem_module_t* m, const uint8_t* inst, size_t inst_len,
                const char* const* calls, size_t ncalls, preinit_state_t* out,
                char* err, size_t errlen);

void preinit_state_free(preinit_state_t* s);

#endif
