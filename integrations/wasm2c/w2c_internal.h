/* w2c_internal.h: what the ABI-independent part of the integration
 * (cowmem_wasm2c.c: pool, slot table, modules, begin/end) offers the
 * ABI-dependent part (w2c_runtime.c: the wrapped wasm_rt_* functions and
 * which memory kinds the compiled-against runtime can take). Nothing here
 * is installed or used by programs. */
#ifndef COWMEM_W2C_INTERNAL_H
#define COWMEM_W2C_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cowmem.h>

typedef struct cowmem_w2c_module_s cowmem_w2c_module_t;

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

enum {
  COWMEM_W2C__ALLOC,
  COWMEM_W2C__GROW,
  COWMEM_W2C__FREE,
  COWMEM_W2C__STOCK_ALLOC,
  COWMEM_W2C__STOCK_GROW,
  COWMEM_W2C__STOCK_FREE,
  COWMEM_W2C__LIVE,
  COWMEM_W2C__NCOUNTERS
};
void cowmem_w2c__count(int counter, int64_t delta);

/* The memory the calling thread's next allocation maps: NULL when no
 * module is set (the stock runtime's). Aborts with a message when the
 * limits passed differ from the module's, or the module has no more. */
const cowmem_w2c__memory_t* cowmem_w2c__next(uint64_t initial, uint64_t max, bool is64,
                                             uint32_t page_size, bool shared);
/* A slot for w at its initial size, handed to the memory struct at mem
 * (which alone may grow and free it); its base. Aborts when none is left. */
uint8_t* cowmem_w2c__acquire(const cowmem_w2c__memory_t* w, const void* mem);
/* The same, returning the error (no slot, no pool) instead of aborting;
 * why (if not NULL) says what failed. */
int cowmem_w2c__try_acquire(const cowmem_w2c__memory_t* w, const void* mem,
                            uint8_t** out, cowmem_diag_t* why);
/* Imported memory i of m, if it is `shared` and this ABI can serve it;
 * else NULL with *err EINVAL (no such import, or the other sharedness) or
 * EUNSUPPORTED (see cowmem_w2c__refusal). */
const cowmem_w2c__memory_t* cowmem_w2c__import(const cowmem_w2c_module_t* m, uint32_t i,
                                               bool shared, int* err);
/* The slot whose base is data, handed to the memory struct at mem (NULL:
 * a stock memory, outside the pool). Aborts with a message naming both
 * pointers when data is in the pool but not a live slot's base (a double
 * free, an interior pointer) or mem is not the struct the slot was handed
 * to (a stale copy of it, its slot now another instance's). */
cowmem_slot_t* cowmem_w2c__find(const void* mem, const void* data);
/* Give the slot at data back to the pool (checked as find does); false if
 * data is no slot's: a stock memory. */
bool cowmem_w2c__release(const void* mem, const void* data);
/* memory.grow of a slot memory of `pages` pages by delta: the old count,
 * or UINT64_MAX (beyond max_pages, the slot, or a failed mprotect). */
uint64_t cowmem_w2c__grow(cowmem_slot_t* slot, uint64_t pages, uint64_t delta,
                          uint64_t max_pages, uint32_t page_size);

/* Defined by w2c_runtime.c, per ABI: why memory `index` cannot be served
 * (a static string with one %u for the index), or NULL. */
const char* cowmem_w2c__refusal(bool is64, bool shared, uint64_t min_pages);
/* What the generated code passes as the maximum of a memory without one. */
uint64_t cowmem_w2c__no_max(bool is64, uint32_t page_size);

#endif
