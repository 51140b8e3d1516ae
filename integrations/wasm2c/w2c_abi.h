/* w2c_abi.h: what differs between the wasm2c runtime ABIs cowmem serves
 * (COWMEM_W2C_ABI, decided in cowmem_wasm2c.h by the wasm-rt.h compiled
 * against), as static functions: which memory kinds a runtime can hold,
 * and what its generated code passes as the maximum of a memory without
 * one. The module loading (cowmem_wasm2c.c) refuses at load what the
 * hooks (w2c_runtime.c) could not serve; both read these. Not installed
 * for programs: part of the integration's sources. */
#ifndef COWMEM_W2C_ABI_H
#define COWMEM_W2C_ABI_H

#include <stdbool.h>
#include <stdint.h>

#include "cowmem_integ.h"
#include "cowmem_wasm2c.h"

#if COWMEM_W2C_ABI >= 1037

/* Every kind of memory the front end reads is served: 32-bit ones in their
 * slot with its guard (generated code forms unchecked addresses), memory64
 * ones bounds-checked by the generated code (the slot is their reservation,
 * so only an initial size beyond it is refused), shared ones like the
 * unshared ones of their kind. Why a memory cannot be served, or NULL. */
static inline const char* cowmem_w2c__refusal(bool is64, bool shared, uint64_t min_pages) {
  (void)shared;
  if (is64 && min_pages > COWMEM_WASM32_SLOT_RESERVE / COWMEM_WASM_PAGE_SIZE)
    return "a memory64 memory with an initial size beyond the 4 GiB slot of "
           "cowmem_wasm2c's pool";
  return NULL;
}

/* What wasm2c >= 1.0.37 passes for a memory without a maximum: the index
 * space's size in pages (2^32 / page size, 2^64 / page size), capped. */
static inline uint64_t cowmem_w2c__no_max(bool is64, uint32_t page_size) {
  if (page_size == 1) return is64 ? UINT64_MAX : UINT32_MAX;
  return is64 ? (UINT64_MAX / page_size) + 1 : ((uint64_t)1 << 32) / page_size;
}

#else /* COWMEM_W2C_ABI 1032 */

/* wabt 1.0.32's wasm_rt_memory_t has 32-bit page counts and sizes and no
 * shared flag: neither memory64 nor shared memories fit it. */
static inline const char* cowmem_w2c__refusal(bool is64, bool shared, uint64_t min_pages) {
  (void)min_pages;
  if (is64)
    return "a memory64 memory: wasm2c 1.0.32's runtime has 32-bit memories "
           "only (wabt >= 1.0.37 has them)";
  if (shared)
    return "a shared memory: wasm2c 1.0.32's runtime has no shared memories "
           "(wabt >= 1.0.37 has them)";
  return NULL;
}

/* wasm2c 1.0.32 passes 65536 for a memory without a maximum. */
static inline uint64_t cowmem_w2c__no_max(bool is64, uint32_t page_size) {
  (void)is64;
  (void)page_size;
  return 65536;
}

#endif
#endif /* COWMEM_W2C_ABI_H */
