/* Internal declarations shared by the core's files. Not installed. */
#ifndef COWMEM_INTERNAL_H
#define COWMEM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* A run of pages of an image that hold non-zero bytes, relative to the
 * image's mem_offset. Copies restore only these; holes stay untouched. */
typedef struct {
  uint64_t off;
  uint64_t len;
} cowmem__run_t;

struct cowmem_image_s {
  /* References (bits 32-63), the orphan flag (bit 31) and the references
   * held by idle pool slots (bits 0-30) in one word. When idle slots hold
   * every reference, nobody can instantiate the image again: it is an
   * orphan, and pools decommit its idle slots so that its memory is freed.
   * One word, so that the update that makes the image an orphan (a free, or
   * a slot becoming idle) sees it in its own read-modify-write: with two
   * counters, a free and a release racing could each miss the other's. */
  _Atomic uint64_t refs;
  cowmem_image_kind_t kind;
  uint64_t mem_offset;
  uint64_t len;
  uint64_t source_offset;
  uint64_t data_pages;
  int fd;            /* MEMFD and FILE; -1 for COPY */
  uint8_t* bytes;    /* COPY: an anonymous mapping of len bytes (sparse) */
  cowmem__run_t* runs; /* non-zero page runs, in order */
  size_t nruns;
  /* MEMFD/FILE: the ranges mapped from the fd, runs joined across small
   * holes (see image_plan_maps); the large holes between them stay
   * anonymous memory in a slot, because a read fault on a hole of a private
   * shmem mapping allocates a page in the memfd. */
  cowmem__run_t* maps;
  size_t nmaps;
  uint64_t id;       /* unique for the process's life (pools key on it) */
  _Atomic(uint8_t*) view; /* cowmem__image_view's mapping, or NULL */
};

/* Bumped whenever an image becomes an orphan; pools compare it with the
 * epoch they last swept at. */
extern _Atomic uint64_t cowmem__orphan_epoch;
/* A pool slot holding the image became idle (add) or was taken out of the
 * idle lists (sub). The caller holds the slot's reference throughout, and
 * calls both under the lock of the list that keeps the slot: once that lock
 * is released, another thread may take the slot and drop the reference,
 * the image's last one. add marks the image orphaned when idle slots now
 * hold every reference. */
void cowmem__image_idle_add(cowmem_image_t* image);
void cowmem__image_idle_sub(cowmem_image_t* image);
bool cowmem__image_orphaned(const cowmem_image_t* image);

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
};

/* Initialize an embedded slot over [base, base + reserve). */
void cowmem__slot_init(cowmem_slot_t* slot, void* base, size_t reserve);
/* End an instance whose accessible range the caller already discarded:
 * close what grew and restore COPY images; DIRTY -> READY. */
int cowmem__slot_finish_reset(cowmem_slot_t* slot);
/* Reset restoring [0, keep) by copying (image bytes and zeros) instead of
 * discarding, so those pages stay resident; the rest is discarded. */
int cowmem__slot_reset_keep(cowmem_slot_t* slot, size_t keep);
/* After a failed system call: release to EMPTY (or BROKEN) and return the
 * error as a code. */
int cowmem__slot_fail(cowmem_slot_t* slot, int os_err);

/* A read-only view of the image's bytes at [mem_offset, mem_offset + len),
 * mapped on first use; NULL if it cannot be mapped. */
const uint8_t* cowmem__image_view(cowmem_image_t* image);

/* Copy an image's non-zero runs to dst, which is the memory at
 * image->mem_offset. Other bytes of dst are not touched. */
void cowmem__image_copy_into(const cowmem_image_t* image, uint8_t* dst);

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
