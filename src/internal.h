/* Internal declarations shared by the core's files. Not installed. */
#ifndef COWMEM_INTERNAL_H
#define COWMEM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem.h"
#include "os/os.h"

/* errno value from the OS layer -> COWMEM_E* code. */
static inline int cowmem__err_from_os(int e) { return e == 0 ? 0 : -e; }

static inline bool cowmem__is_page_multiple(uint64_t v) {
  return (v & (cowmem__os_page_size() - 1)) == 0;
}
static inline uint64_t cowmem__page_floor(uint64_t v) {
  return v & ~(uint64_t)(cowmem__os_page_size() - 1);
}
/* Round up; false on overflow. */
static inline bool cowmem__page_ceil(uint64_t v, uint64_t* out) {
  uint64_t m = cowmem__os_page_size() - 1;
  if (v > UINT64_MAX - m) return false;
  *out = (v + m) & ~m;
  return true;
}

/* n zeroed objects of size bytes on cache lines of their own: aligned to
 * 64 bytes and rounded up to a multiple of 64, so that what threads write
 * there shares no line with other allocations. free() frees it. NULL when
 * out of memory or n * size overflows. */
static inline void* cowmem__alloc_lines(size_t n, size_t size) {
  if (size != 0 && n > (SIZE_MAX - 63) / size) return NULL;
  size_t bytes = (n * size + 63) & ~(size_t)63;
  if (bytes == 0) bytes = 64;
  void* p = aligned_alloc(64, bytes);
  if (p != NULL) memset(p, 0, bytes);
  return p;
}

/* Statistics kept by the core (system call counters live in the OS layer). */
extern _Atomic uint64_t cowmem__stat_images_live;
extern _Atomic uint64_t cowmem__stat_image_copies;

#define COWMEM__STAT_INC(c) atomic_fetch_add_explicit(&(c), 1, memory_order_relaxed)
#define COWMEM__STAT_DEC(c) atomic_fetch_sub_explicit(&(c), 1, memory_order_relaxed)

/* Print a line when COWMEM_VERBOSE is set. */
void cowmem__verbose(const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
