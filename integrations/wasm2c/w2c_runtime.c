/* w2c_runtime.c: the wrapped memory functions of wasm2c's runtime, for the
 * ABI of the wasm-rt.h this file is compiled against (COWMEM_W2C_ABI in
 * cowmem_wasm2c.h). Each wrapper asks the module side (cowmem_wasm2c.c)
 * for the memory the calling thread's module defines next and the common
 * layer (cowmem_integ.h) for its slot; with no module set it calls the
 * stock runtime (__real_*), so unstripped modules run beside. Calls run
 * one way: down from here. Allocate, grow and free take no lock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem_wasm2c.h"
#include "w2c_abi.h"
#include "w2c_internal.h"

#define INTEG (&cowmem_w2c__integ)

/* The feature test in cowmem_wasm2c.h, double-checked: redeclaring the
 * runtime's functions with the signatures this file assumes is an error
 * if the header declares others (a wabt between 1.0.32 and 1.0.37 that
 * the test would take for either), and so is a struct of another shape. */
#if COWMEM_W2C_ABI >= 1037
void wasm_rt_allocate_memory(wasm_rt_memory_t*, uint64_t, uint64_t, bool, uint32_t);
uint64_t wasm_rt_grow_memory(wasm_rt_memory_t*, uint64_t);
_Static_assert(sizeof(((wasm_rt_memory_t*)0)->pages) == 8, "wasm_rt_memory_t");
#else
void wasm_rt_allocate_memory(wasm_rt_memory_t*, uint32_t, uint32_t);
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t*, uint32_t);
_Static_assert(sizeof(((wasm_rt_memory_t*)0)->pages) == 4, "wasm_rt_memory_t");
#endif

/* What every wrapper below does whatever the ABI and the kind (shared or
 * not) of the memory struct it is given; the wrappers differ only in the
 * struct's fields they fill, which the ABI and the kind decide. */

/* w's slot, handed to the memory struct at mem (which alone may grow and
 * free it), into *data: 0 or the error (why says what failed). */
static int acquire(const cowmem_w2c__memory_t* w, const void* mem, uint8_t** data,
                   cowmem_diag_t* why) {
  /* The slot bounds every memory (checked against the module at load for
   * the initial size); a maximum beyond it only means grow fails there. */
  uint64_t cap = COWMEM_WASM32_SLOT_RESERVE / w->page_size;
  uint64_t max = w->max_pages < cap ? w->max_pages : cap;
  return cowmem_integ_acquire(INTEG, w->image, w->min_pages * w->page_size,
                              max * w->page_size, mem, data, why);
}

/* The memory the calling thread's module defines next, acquired into
 * *data; NULL (counted) if no module is set: the stock runtime's then.
 * wasm_rt_allocate_memory has no error return: the stock runtime aborts
 * too (after a perror) when it cannot reserve memory. */
static const cowmem_w2c__memory_t* allocate(const void* mem, uint64_t initial,
                                            uint64_t max, bool is64, uint32_t page_size,
                                            bool shared, uint8_t** data) {
  const cowmem_w2c__memory_t* w = cowmem_w2c__next(initial, max, is64, page_size, shared);
  if (!w) {
    cowmem_integ_count(INTEG, COWMEM_INTEG_STOCK_ALLOC, 1);
    return NULL;
  }
  cowmem_diag_t why;
  why.reason[0] = 0;
  int r = acquire(w, mem, data, &why);
  if (r != 0) {
    cowmem_integ_count(INTEG, COWMEM_INTEG_REFUSED, 1);
    cowmem_integ_die(INTEG, r, "%s", why.reason[0] ? why.reason : "cannot create the pool");
  }
  return w;
}

/* Imported memory i of m acquired into *data and described by *w:
 * 0, or an error (EINVAL for a NULL mem). */
static int import_into(const cowmem_w2c_module_t* m, uint32_t i, bool shared,
                       const void* mem, const cowmem_w2c__memory_t** w, uint8_t** data) {
  int r = 0;
  *w = mem ? cowmem_w2c__import(m, i, shared, &r) : NULL;
  if (!mem) return COWMEM_EINVAL;
  *data = NULL;
  if (*w) r = acquire(*w, mem, data, NULL);
  return r;
}

/* The slot of the memory struct mem at data; NULL (counted) for the stock
 * runtime's. Aborts on a memory that is the pool's but not mem's. */
static cowmem_slot_t* find(const void* mem, const void* data) {
  const void* other;
  cowmem_slot_t* slot = cowmem_integ_find(INTEG, mem, data, &other);
  cowmem_integ_refuse(INTEG, "grow", mem, data, other);
  if (!slot) cowmem_integ_count(INTEG, COWMEM_INTEG_STOCK_GROW, 1);
  return slot;
}

/* Grow the memory in slot by delta pages, updating its page count and
 * size: the old page count, or UINT64_MAX (beyond its maximum, the slot,
 * or a failed mprotect; nothing changed). Custom page sizes would leave
 * the tail of a host page accessible past `size`: generated code
 * bounds-checks such memories, and the tail is zeros until grown into. */
static uint64_t grow(cowmem_slot_t* slot, uint64_t* pages, uint64_t* size,
                     uint64_t max_pages, uint32_t page_size, uint64_t delta) {
  cowmem_integ_count(INTEG, COWMEM_INTEG_GROW, 1);
  uint64_t old = *pages, to = old + delta;
  if (to < old || to > max_pages || to > COWMEM_WASM32_SLOT_RESERVE / page_size)
    return UINT64_MAX;
  if (delta > 0 && cowmem_integ_grow(INTEG, slot, to * page_size) != 0) return UINT64_MAX;
  *pages = to;
  *size = to * page_size;
  return old;
}

/* Release the memory struct mem at data to the pool: false (counted) if it
 * is the stock runtime's. Aborts on a memory that is the pool's but not
 * mem's. */
static bool release(const void* mem, const void* data) {
  const void* other;
  if (cowmem_integ_release(INTEG, mem, data, &other)) return true;
  cowmem_integ_refuse(INTEG, "free", mem, data, other);
  cowmem_integ_count(INTEG, COWMEM_INTEG_STOCK_FREE, 1);
  return false;
}

#if COWMEM_W2C_ABI >= 1037

void __real_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint64_t, uint64_t, bool,
                                    uint32_t);
uint64_t __real_wasm_rt_grow_memory(wasm_rt_memory_t*, uint64_t);
void __real_wasm_rt_free_memory(wasm_rt_memory_t*);
void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint64_t, uint64_t, bool,
                                    uint32_t);
uint64_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t*, uint64_t);
void __wrap_wasm_rt_free_memory(wasm_rt_memory_t*);

/* The fields both memory structs have, filled the same way. data_end is
 * the end of what is reserved for the memory (the stock runtime: its 8 GiB
 * mapping), the slot and its guard here; only big-endian hosts read it. */
#define FILL(mem, data, w)                                                               \
  do {                                                                                   \
    (mem)->data = (__typeof__((mem)->data))(data);                                       \
    (mem)->data_end = (__typeof__((mem)->data_end))((data) + COWMEM_WASM32_SLOT_RESERVE +      \
                                                    COWMEM_WASM32_GUARD_SIZE);              \
    (mem)->page_size = (w)->page_size;                                                   \
    (mem)->pages = (w)->min_pages;                                                       \
    (mem)->max_pages = (w)->max_pages;                                                   \
    (mem)->size = (w)->min_pages * (w)->page_size;                                       \
    (mem)->is64 = (w)->is64;                                                             \
  } while (0)

void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t* mem, uint64_t initial, uint64_t max,
                                    bool is64, uint32_t page_size) {
  uint8_t* data;
  const cowmem_w2c__memory_t* w = allocate(mem, initial, max, is64, page_size, false, &data);
  if (!w) {
    __real_wasm_rt_allocate_memory(mem, initial, max, is64, page_size);
    return;
  }
  FILL(mem, data, w);
}

int cowmem_w2c_import_memory(const cowmem_w2c_module_t* m, uint32_t i,
                             wasm_rt_memory_t* mem) {
  const cowmem_w2c__memory_t* w;
  uint8_t* data;
  int r = import_into(m, i, false, mem, &w, &data);
  if (r == 0) FILL(mem, data, w);
  return r;
}

uint64_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t* mem, uint64_t delta) {
  cowmem_slot_t* slot = find(mem, mem->data);
  if (!slot) return __real_wasm_rt_grow_memory(mem, delta);
  return grow(slot, &mem->pages, &mem->size, mem->max_pages, mem->page_size, delta);
}

void __wrap_wasm_rt_free_memory(wasm_rt_memory_t* mem) {
  if (!release(mem, mem->data)) {
    __real_wasm_rt_free_memory(mem);
    return;
  }
  memset(mem, 0, sizeof *mem);
}

#ifdef WASM_RT_C11_AVAILABLE
/* Shared memories: the same slot, the same images. A shared memory never
 * moves (a slot does not), which is what threads holding `data` rely on;
 * grow takes the memory's lock as the stock runtime's does, so two threads
 * growing at once see one grow after the other. */
void __real_wasm_rt_allocate_memory_shared(wasm_rt_shared_memory_t*, uint64_t, uint64_t,
                                           bool, uint32_t);
uint64_t __real_wasm_rt_grow_memory_shared(wasm_rt_shared_memory_t*, uint64_t);
void __real_wasm_rt_free_memory_shared(wasm_rt_shared_memory_t*);
void __wrap_wasm_rt_allocate_memory_shared(wasm_rt_shared_memory_t*, uint64_t, uint64_t,
                                           bool, uint32_t);
uint64_t __wrap_wasm_rt_grow_memory_shared(wasm_rt_shared_memory_t*, uint64_t);
void __wrap_wasm_rt_free_memory_shared(wasm_rt_shared_memory_t*);

/* FILL and the lock a shared memory's grow takes. */
static void fill_shared(wasm_rt_shared_memory_t* mem, uint8_t* data,
                        const cowmem_w2c__memory_t* w) {
  FILL(mem, data, w);
#if WASM_RT_USE_PTHREADS
  if (pthread_mutex_init(&mem->mem_lock, NULL) != 0) abort();
#endif
}

void __wrap_wasm_rt_allocate_memory_shared(wasm_rt_shared_memory_t* mem, uint64_t initial,
                                           uint64_t max, bool is64, uint32_t page_size) {
  uint8_t* data;
  const cowmem_w2c__memory_t* w = allocate(mem, initial, max, is64, page_size, true, &data);
  if (!w) {
    __real_wasm_rt_allocate_memory_shared(mem, initial, max, is64, page_size);
    return;
  }
  fill_shared(mem, data, w);
}

int cowmem_w2c_import_memory_shared(const cowmem_w2c_module_t* m, uint32_t i,
                                    wasm_rt_shared_memory_t* mem) {
  const cowmem_w2c__memory_t* w;
  uint8_t* data;
  int r = import_into(m, i, true, mem, &w, &data);
  if (r == 0) fill_shared(mem, data, w);
  return r;
}

uint64_t __wrap_wasm_rt_grow_memory_shared(wasm_rt_shared_memory_t* mem, uint64_t delta) {
  cowmem_slot_t* slot = find(mem, (const uint8_t*)mem->data);
  if (!slot) return __real_wasm_rt_grow_memory_shared(mem, delta);
#if WASM_RT_USE_PTHREADS
  pthread_mutex_lock(&mem->mem_lock);
#endif
  uint64_t old =
      grow(slot, &mem->pages, &mem->size, mem->max_pages, mem->page_size, delta);
#if WASM_RT_USE_PTHREADS
  pthread_mutex_unlock(&mem->mem_lock);
#endif
  return old;
}

void __wrap_wasm_rt_free_memory_shared(wasm_rt_shared_memory_t* mem) {
  if (!release(mem, (const uint8_t*)mem->data)) {
    __real_wasm_rt_free_memory_shared(mem);
    return;
  }
#if WASM_RT_USE_PTHREADS
  pthread_mutex_destroy(&mem->mem_lock);
#endif
  mem->data = NULL;
  mem->pages = mem->size = 0;
}
#endif /* WASM_RT_C11_AVAILABLE */

#else /* COWMEM_W2C_ABI 1032 */

void __real_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint32_t, uint32_t);
uint32_t __real_wasm_rt_grow_memory(wasm_rt_memory_t*, uint32_t);
void __real_wasm_rt_free_memory(wasm_rt_memory_t*);
void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint32_t, uint32_t);
uint32_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t*, uint32_t);
void __wrap_wasm_rt_free_memory(wasm_rt_memory_t*);

/* 1.0.32's struct: 32-bit counts, the size wrapping to 0 for 65536
 * pages as the stock runtime's does. */
static void fill(wasm_rt_memory_t* mem, uint8_t* data, const cowmem_w2c__memory_t* w) {
  mem->data = data;
  mem->pages = (uint32_t)w->min_pages;
  mem->max_pages = (uint32_t)w->max_pages;
  mem->size = (uint32_t)(w->min_pages * COWMEM_WASM_PAGE_SIZE);
}

void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t* mem, uint32_t initial,
                                    uint32_t max) {
  uint8_t* data;
  const cowmem_w2c__memory_t* w =
      allocate(mem, initial, max, false, COWMEM_WASM_PAGE_SIZE, false, &data);
  if (!w) {
    __real_wasm_rt_allocate_memory(mem, initial, max);
    return;
  }
  fill(mem, data, w); /* cowmem_w2c__next checked initial and max against w */
}

int cowmem_w2c_import_memory(const cowmem_w2c_module_t* m, uint32_t i,
                             wasm_rt_memory_t* mem) {
  const cowmem_w2c__memory_t* w;
  uint8_t* data;
  int r = import_into(m, i, false, mem, &w, &data);
  if (r == 0) fill(mem, data, w);
  return r;
}

/* 32-bit page counts and size, through grow()'s 64-bit ones (the size
 * wraps to 0 at 65536 pages as above). */
uint32_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t* mem, uint32_t delta) {
  cowmem_slot_t* slot = find(mem, mem->data);
  if (!slot) return __real_wasm_rt_grow_memory(mem, delta);
  uint64_t pages = mem->pages, size = mem->size;
  uint64_t old = grow(slot, &pages, &size, mem->max_pages, COWMEM_WASM_PAGE_SIZE, delta);
  if (old == UINT64_MAX) return (uint32_t)-1;
  mem->pages = (uint32_t)pages;
  mem->size = (uint32_t)size;
  return (uint32_t)old;
}

void __wrap_wasm_rt_free_memory(wasm_rt_memory_t* mem) {
  if (!release(mem, mem->data)) {
    __real_wasm_rt_free_memory(mem);
    return;
  }
  mem->data = NULL;
  mem->pages = 0;
  mem->size = 0;
}

#endif
