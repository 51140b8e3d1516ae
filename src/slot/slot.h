/* The slot's internal interface: its struct, which pools embed in their
 * entries and the resets read and change, and the steps every reset shares.
 * The state invariants are stated in slot.c. */
#ifndef COWMEM_SLOT_H
#define COWMEM_SLOT_H

#include "internal.h"

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
  /* What the pool's reset strategy keeps for this image, found once per
   * image the slot holds (NULL: not yet; cleared whenever image changes).
   * Alive as long as the slot holds the image. */
  void* reset_state;
  /* What the reset strategy knows of this slot's own pages (0: nothing;
   * cleared with reset_state and whenever the slot's pages are dropped). */
  uint64_t reset_mark;
  /* What the reset strategy knew when it last settled every page: the
   * process's fault count then (cowmem__os_fault_count), a mark of what
   * it settled against (0: nothing known) and the bytes it covered (the
   * accessible size then). Cleared with reset_mark. */
  uint64_t reset_faults, reset_quiet;
  size_t reset_span;
  /* What a queued slot waits for at its queue's flush, besides the
   * discard (COWMEM__WAIT_*; set by the reset that queued it). */
  int reset_wait;
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

#endif
