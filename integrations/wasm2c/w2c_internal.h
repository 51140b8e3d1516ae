/* w2c_internal.h: what the module side of the integration (cowmem_wasm2c.c:
 * module sets, the module being instantiated, the pool's state) offers the
 * runtime adapter (w2c_runtime.c: the wrapped wasm_rt_* functions). Calls
 * run one way: the adapter calls the module side and the common layer
 * (cowmem_integ.h); the module side calls only the common layer. Nothing
 * here is installed for programs. */
#ifndef COWMEM_W2C_INTERNAL_H
#define COWMEM_W2C_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cowmem_integ.h"
#include "cowmem_wasm2c.h"

/* One memory of a module, as the generated code allocates it: the limits
 * it passes (no maximum: what wasm2c passes instead) and the image. An
 * imported memory the host takes from the pool (cowmem_w2c_import_memory)
 * is described the same way: the memory the module declares. */
typedef struct cowmem_w2c__memory_s {
  uint64_t min_pages, max_pages;
  uint32_t page_size; /* bytes: 65536 unless custom-page-sizes */
  bool is64, shared;
  cowmem_image_t* image; /* NULL: zeros, or copied by wasm2c */
} cowmem_w2c__memory_t;

/* The integration's pool and counters. */
extern cowmem_integ_t cowmem_w2c__integ;

/* The memory the calling thread's next allocation maps: NULL when no
 * module is set (the stock runtime's). Aborts with a message when the
 * limits passed differ from the module's, the module has no more, or the
 * module set was refused (cowmem_w2c_begin_id). */
const cowmem_w2c__memory_t* cowmem_w2c__next(uint64_t initial, uint64_t max, bool is64,
                                             uint32_t page_size, bool shared);
/* Imported memory i of m, if it is `shared` and this ABI can serve it;
 * else NULL with *err EINVAL (no such import, or the other sharedness) or
 * EUNSUPPORTED (see cowmem_w2c__refusal in w2c_abi.h). */
const cowmem_w2c__memory_t* cowmem_w2c__import(const cowmem_w2c_module_t* m, uint32_t i,
                                               bool shared, int* err);

#endif
