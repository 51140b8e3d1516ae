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

/* A slot (see the state invariants in slot.c). Pools embed slots in their
 * own entries; `pool` is then non-NULL and the slot is not freed alone. */
struct cowmem_slot_s {
  uint8_t* base;
  size_t reserve;
  size_t limit;      /* grow stops here (the memory's maximum), <= reserve */
  bool owns_reservation;
  cowmem_slot_state_t state;
  size_t accessible;
  size_t initial;
  cowmem_image_t* image;
  struct cowmem_pool_s* pool;
  /* Mappings (VMAs) the slot adds to the process now: its read-write pieces
   * (cowmem__image_maps) and the split of the PROT_NONE run it sits in.
   * Written by the slot's owner, read by pool metrics from any thread. */
  _Atomic uint32_t maps;
};

/* The most mappings a slot can add (see cowmem_slot_s.maps). */
size_t cowmem__slot_maps_max(void);

/* Initialize an embedded slot over [base, base + reserve). */
void cowmem__slot_init(cowmem_slot_t* slot, void* base, size_t reserve);
/* The checks every reset makes first: 0 when the slot is DIRTY, else the
 * error (EINVAL, EBROKEN, ESTATE). */
int cowmem__slot_resettable(const cowmem_slot_t* slot);
/* End a reset once every page of [0, accessible) was either discarded or
 * restored to image and zeros by copy: close what grew, put back what a
 * discard does not restore (COPY images); DIRTY -> READY. */
int cowmem__slot_finish_reset(cowmem_slot_t* slot);
/* After a failed system call: release to EMPTY (or BROKEN) and return the
 * error as a code. */
int cowmem__slot_fail(cowmem_slot_t* slot, int os_err);

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
