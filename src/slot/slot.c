/* Slots: one linear memory's address range, instantiated with an image,
 * grown, reset and released.
 *
 * Invariants (checked by slot_check in debug builds):
 *   EMPTY   accessible == 0, image == NULL, the whole range is anonymous
 *           PROT_NONE memory.
 *   READY   accessible == initial; [0, initial) is read-write and holds
 *           exactly the image at its offset and zeros elsewhere; the image
 *           (if any) ends at or below initial; the rest is PROT_NONE and
 *           reads as zeros once made accessible.
 *   DIRTY   accessible >= initial; [0, accessible) read-write, written by
 *           the instance; the rest PROT_NONE.
 *   BROKEN  unknown contents; only release (and free) are accepted.
 * For MEMFD and FILE images, the image's map ranges are private mappings of
 * the image's fd; everything else (holes, COPY images) is anonymous memory. */
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "internal.h"
#include "slot/slot.h"

#ifndef NDEBUG
#include <assert.h>
static void slot_check(const cowmem_slot_t* s) {
  switch (s->state) {
  case COWMEM_SLOT_EMPTY: assert(s->accessible == 0 && s->image == NULL); break;
  case COWMEM_SLOT_READY:
    assert(s->accessible == s->initial);
    assert(cowmem__image_end(s->image) <= s->initial);
    break;
  case COWMEM_SLOT_DIRTY: assert(s->accessible >= s->initial); break;
  default: break;
  }
  assert(s->accessible <= s->reserve);
}
#else
#define slot_check(s) ((void)0)
#endif

/* Whatever the reset strategy knew of the slot's pages no longer holds. */
static void slot_forget_pages(cowmem_slot_t* slot) {
  slot->reset_mark = 0;
  slot->reset_faults = slot->reset_quiet = 0;
  slot->reset_span = 0;
  slot->reset_wait = 0;
}

void cowmem__slot_init(cowmem_slot_t* slot, void* base, size_t reserve) {
  memset(slot, 0, sizeof *slot);
  slot->base = base;
  slot->reserve = reserve;
  slot->limit = reserve;
  slot->state = COWMEM_SLOT_EMPTY;
}

static int slot_init(void* base, size_t reserve, bool owns, cowmem_slot_t** out) {
  cowmem_slot_t* s = malloc(sizeof *s);
  if (s == NULL) return COWMEM_ENOMEM;
  cowmem__slot_init(s, base, reserve);
  s->owns_reservation = owns;
  *out = s;
  return 0;
}

int cowmem_slot_new(size_t reserve, cowmem_slot_t** out) {
  if (out == NULL || reserve == 0 || !cowmem__is_page_multiple(reserve))
    return COWMEM_EINVAL;
  void* base = NULL;
  int e = cowmem__os_reserve(reserve, &base);
  if (e) return cowmem__err_from_os(e);
  int r = slot_init(base, reserve, true, out);
  if (r != 0) cowmem__os_unmap(base, reserve);
  return r;
}

int cowmem_slot_new_at(void* base, size_t reserve, cowmem_slot_t** out) {
  if (out == NULL || base == NULL || reserve == 0 || !cowmem__is_page_multiple(reserve) ||
      !cowmem__is_page_multiple((uintptr_t)base))
    return COWMEM_EINVAL;
  return slot_init(base, reserve, false, out);
}

/* Keep slot->maps: what the read-write range and the split around it
 * take now (0 when nothing is accessible: the slot is one PROT_NONE run
 * with its neighbours). */
static void slot_count_maps(cowmem_slot_t* slot) {
  size_t n = slot->accessible ? cowmem__image_maps(slot->image, slot->accessible) + 1 : 0;
  atomic_store_explicit(&slot->maps, (uint32_t)n, memory_order_relaxed);
}

size_t cowmem__slot_maps_max(void) {
  return cowmem__image_maps_max() + 1;
}

/* The slot's reference to its image: a pool's slot's counts in the pools'
 * share, which tells an orphan (image.h). */
static cowmem_image_t* slot_hold(const cowmem_slot_t* slot, cowmem_image_t* image) {
  return slot->pool != NULL ? cowmem__image_pool_hold(image) : cowmem_image_retain(image);
}
static void slot_drop(const cowmem_slot_t* slot, cowmem_image_t* image) {
  if (slot->pool != NULL)
    cowmem__image_pool_drop(image);
  else
    cowmem_image_release(image);
}

int cowmem_slot_decommit(cowmem_slot_t* slot) {
  if (slot == NULL) return COWMEM_EINVAL;
  if (slot->state == COWMEM_SLOT_EMPTY) return 0;
  int e = cowmem__os_map_anon(slot->base, slot->reserve, COWMEM__PROT_NONE);
  if (e) {
    slot->state = COWMEM_SLOT_BROKEN;
    return cowmem__err_from_os(e);
  }
  slot_drop(slot, slot->image);
  slot->image = NULL;
  slot->reset_state = NULL;
  slot_forget_pages(slot);
  slot->accessible = 0;
  slot->initial = 0;
  slot->state = COWMEM_SLOT_EMPTY;
  slot_count_maps(slot);
  return 0;
}

int cowmem_slot_free(cowmem_slot_t* slot) {
  if (slot == NULL) return 0;
  if (slot->pool != NULL) return COWMEM_EINVAL; /* cowmem_pool_release it */
  int r = 0;
  if (slot->owns_reservation) {
    r = cowmem__err_from_os(cowmem__os_unmap(slot->base, slot->reserve));
  } else {
    r = cowmem_slot_decommit(slot);
  }
  cowmem_image_release(slot->image);
  free(slot);
  return r;
}

/* A system call failed half-way: fall back to EMPTY, which release reaches
 * from any state, and report the original error. */
int cowmem__slot_fail(cowmem_slot_t* slot, int os_err) {
  slot->state = COWMEM_SLOT_BROKEN;
  cowmem_slot_decommit(slot);
  return cowmem__err_from_os(os_err);
}

/* Make [0, size) accessible and the rest of what was accessible not. */
static int slot_set_accessible(cowmem_slot_t* slot, size_t size) {
  int e = 0;
  if (size > slot->accessible)
    e = cowmem__os_protect(slot->base + slot->accessible, size - slot->accessible,
                           COWMEM__PROT_RW);
  else if (size < slot->accessible)
    e = cowmem__os_protect(slot->base + size, slot->accessible - size, COWMEM__PROT_NONE);
  if (e == 0) slot->accessible = size;
  return e;
}

int cowmem_slot_instantiate(cowmem_slot_t* slot, size_t initial_size,
                            cowmem_image_t* image) {
  if (slot == NULL) return COWMEM_EINVAL;
  if (slot->state == COWMEM_SLOT_DIRTY) return COWMEM_ESTATE;
  if (slot->state == COWMEM_SLOT_BROKEN) return COWMEM_EBROKEN;
  if (!cowmem__is_page_multiple(initial_size) || initial_size > slot->reserve)
    return COWMEM_EINVAL;
  if (cowmem__image_end(image) > initial_size) return COWMEM_EINVAL;
  if (cowmem__image_key(image) == 0) image = NULL; /* all zeros */
  if (cowmem__image_changed(image)) return COWMEM_ECHANGED;
  slot_check(slot);

  int e = 0;
  /* The same image over the same size (a pool's slot reused): what it
   * maps, and so its count of mappings, stays as it is. */
  bool same = image == slot->image && initial_size == slot->accessible;
  if (image == slot->image && (e = cowmem__image_verify_reuse(image)) != 0)
    return cowmem__slot_fail(slot, e);
  if (image != slot->image && slot->image != NULL) {
    /* Take the old image out: its range lies inside [0, accessible), so
     * fresh read-write zero pages keep the READY invariant below it. */
    cowmem_image_t* old = slot->image;
    e = cowmem__image_remove(old, slot->base);
    if (e) return cowmem__slot_fail(slot, e);
    slot->image = NULL;
    slot->reset_state = NULL;
    slot_forget_pages(slot);
    slot_drop(slot, old);
  }
  e = slot_set_accessible(slot, initial_size);
  if (e) return cowmem__slot_fail(slot, e);
  if (image != slot->image) {
    e = cowmem__image_place(image, slot->base);
    if (e) return cowmem__slot_fail(slot, e);
    slot->image = slot_hold(slot, image);
    slot->reset_state = NULL;
    slot_forget_pages(slot);
  }
  slot->initial = initial_size;
  slot->state = COWMEM_SLOT_DIRTY;
  if (!same) slot_count_maps(slot);
  return 0;
}

int cowmem_slot_grow(cowmem_slot_t* slot, size_t new_size) {
  if (slot == NULL) return COWMEM_EINVAL;
  if (slot->state == COWMEM_SLOT_BROKEN) return COWMEM_EBROKEN;
  if (slot->state != COWMEM_SLOT_DIRTY) return COWMEM_ESTATE;
  if (!cowmem__is_page_multiple(new_size) || new_size < slot->accessible)
    return COWMEM_EINVAL;
  if (new_size > slot->limit) return COWMEM_ERANGE;
  if (new_size == slot->accessible) return 0;
  size_t old = slot->accessible;
  int e = cowmem__os_protect(slot->base + old, new_size - old, COWMEM__PROT_RW);
  if (e) {
    /* mprotect may have changed part of the range before failing: close it
     * again, or nothing above the heap limit is guaranteed to fault. */
    if (cowmem__os_protect(slot->base + old, new_size - old, COWMEM__PROT_NONE))
      slot->state = COWMEM_SLOT_BROKEN;
    return cowmem__err_from_os(e);
  }
  slot->accessible = new_size;
  slot_count_maps(slot);
  return 0;
}

int cowmem__slot_resettable(const cowmem_slot_t* slot) {
  if (slot == NULL) return COWMEM_EINVAL;
  if (slot->state == COWMEM_SLOT_BROKEN) return COWMEM_EBROKEN;
  if (slot->state != COWMEM_SLOT_DIRTY) return COWMEM_ESTATE;
  slot_check(slot);
  return 0;
}

int cowmem__slot_finish_reset(cowmem_slot_t* slot) {
  bool grown = slot->accessible != slot->initial;
  int e = grown ? slot_set_accessible(slot, slot->initial) : 0;
  if (e) return cowmem__slot_fail(slot, e);
  cowmem__image_after_discard(slot->image, slot->base);
  slot->state = COWMEM_SLOT_READY;
  if (grown) slot_count_maps(slot);
  return 0;
}

int cowmem_slot_reset(cowmem_slot_t* slot) {
  int r = cowmem__slot_resettable(slot);
  if (r != 0) return r;
  /* Discarding restores image pages from the fd and zeros elsewhere. */
  int e = slot->accessible ? cowmem__os_discard(slot->base, slot->accessible) : 0;
  slot_forget_pages(slot); /* no page is the slot's own now */
  if (e) return cowmem__slot_fail(slot, e);
  return cowmem__slot_finish_reset(slot);
}

cowmem_slot_state_t cowmem_slot_state(const cowmem_slot_t* slot) {
  return slot == NULL ? COWMEM_SLOT_BROKEN : slot->state;
}
cowmem_image_t* cowmem_slot_image(const cowmem_slot_t* slot) {
  return slot == NULL ? NULL : slot->image;
}
size_t cowmem_slot_accessible(const cowmem_slot_t* slot) {
  return slot == NULL ? 0 : slot->accessible;
}
size_t cowmem_slot_reserve(const cowmem_slot_t* slot) {
  return slot == NULL ? 0 : slot->reserve;
}
void* cowmem_slot_base(const cowmem_slot_t* slot) {
  return slot == NULL ? NULL : slot->base;
}
