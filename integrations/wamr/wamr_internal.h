/* wamr_internal.h: what the module-set code (cowmem_wamr_module.c), the
 * memory callbacks (cowmem_wamr.c) and the instances
 * (cowmem_wamr_instance.c) share: the module set itself. */
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
  struct cowmem_wamr_envs_s* envs; /* execution environments to reuse */
};

/* The cache of a module set's execution environments
 * (cowmem_wamr_instance.c): NULL when out of memory. _free destroys the
 * environments it holds (before the module is unloaded); NULL ignored. */
struct cowmem_wamr_envs_s* cowmem_wamr__envs_new(void);
void cowmem_wamr__envs_free(struct cowmem_wamr_envs_s* c);
/* The environments made and reused since the process started. */
void cowmem_wamr__envs_counts(uint64_t* created, uint64_t* reused);

/* The allocator callbacks cowmem_wamr_runtime_init installs (the tests
 * call them directly with pointers WAMR would never pass). */
void* cowmem_wamr__malloc(mem_alloc_usage_t usage, unsigned int size);
void* cowmem_wamr__realloc(mem_alloc_usage_t usage, bool full_size_mmaped, void* ptr,
                           unsigned int size);
void cowmem_wamr__free(mem_alloc_usage_t usage, void* ptr);

#endif
