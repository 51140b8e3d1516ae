/* wamr_internal.h: what the module-set code (cowmem_wamr_module.c) and the
 * memory callbacks (cowmem_wamr.c) share: the module set itself. */
#ifndef COWMEM_WAMR_INTERNAL_H
#define COWMEM_WAMR_INTERNAL_H

#include "cowmem_wamr.h"

struct cowmem_wamr_module_s {
  wasm_module_t wamr;    /* the stripped module, loaded */
  uint8_t* bytes;        /* its bytes: WAMR keeps pointers into them (and
                            may write them) until wasm_runtime_unload */
  uint32_t count;        /* memories: 0 or 1 */
  uint64_t min_pages;    /* memory 0's declared initial size */
  cowmem_image_t* image; /* memory 0's image (NULL: zeros or copied) */
  uint64_t image_end;    /* where it ends in linear memory */
};

/* The allocator callbacks cowmem_wamr_runtime_init installs (the tests
 * call them directly with pointers WAMR would never pass). */
void* cowmem_wamr__malloc(mem_alloc_usage_t usage, unsigned int size);
void* cowmem_wamr__realloc(mem_alloc_usage_t usage, bool full_size_mmaped, void* ptr,
                           unsigned int size);
void cowmem_wamr__free(mem_alloc_usage_t usage, void* ptr);

#endif
