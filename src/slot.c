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

#include "internal.h"


#ifndef NDEBUG
#include <assert.h>
static void slot_check(const cowmem_slot_t* s) {
  switch (s->state) {
    case COWMEM_SLOT_EMPTY: assert(s->accessible == 0 && s->image == NULL); break;
    case COWMEM_SLOT_READY:
      assert(s->accessible == s->initial);
      assert(s->image == NULL || s->image->mem_offset + s->image->len <= s->initial);
      break;
    case COWMEM_SLOT_DIRTY: assert(s->accessible >= s->initial); break;
    default: break;
  }
  assert(s->accessible <= s->reserve);
}
#else
#define slot_check(s) ((void)0)
#endif

static bool image_mapped(const cowmem_image_t* img) {
  return img != NULL && img->len > 0 && img->kind != COWMEM_IMAGE_COPY;
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
  if (out == NULL || base == NULL || reserve == 0 ||
      !cowmem__is_page_multiple(reserve) ||
      !cowmem__is_page_multiple((uintptr_t)base))
    return COWMEM_EINVAL;
  return slot_init(base, reserve, false, out);
}

int cowmem_slot_release(cowmem_slot_t* slot) {
  if (slot == NULL) return COWMEM_EINVAL;
  if (slot->state == COWMEM_SLOT_EMPTY) return 0;
  int e = cowmem__os_map_anon(slot->base, slot->reserve, COWMEM__PROT_NONE);
  if (e) {
    slot->state = COWMEM_SLOT_BROKEN;
    return cowmem__err_from_os(e);
  }
  cowmem_image_free(slot->image);
  slot->image = NULL;
  slot->accessible = 0;
  slot->initial = 0;
  slot->state = COWMEM_SLOT_EMPTY;
  return 0;
}

int cowmem_slot_free(cowmem_slot_t* slot) {
  if (slot == NULL) return 0;
  if (slot->pool != NULL) return COWMEM_EINVAL; /* cowmem_pool_release it */
  int r = 0;
  if (slot->owns_reservation) {
    r = cowmem__err_from_os(cowmem__os_unmap(slot->base, slot->reserve));
  } else {
    r = cowmem_slot_release(slot);
  }
  cowmem_image_free(slot->image);
  free(slot);
  return r;
}

/* A system call failed half-way: fall back to EMPTY, which release reaches
 * from any state, and report the original error. */
int cowmem__slot_fail(cowmem_slot_t* slot, int os_err) {
  slot->state = COWMEM_SLOT_BROKEN;
  cowmem_slot_release(slot);
  return cowmem__err_from_os(os_err);
}

/* Make [0, size) accessible and the rest of what was accessible not. */
static int slot_set_accessible(cowmem_slot_t* slot, size_t size) {
  int e = 0;
  if (size > slot->accessible)
    e = cowmem__os_protect(slot->base + slot->accessible, size - slot->accessible,
                           COWMEM__PROT_RW);
  else if (size < slot->accessible)
    e = cowmem__os_protect(slot->base + size, slot->accessible - size,
                           COWMEM__PROT_NONE);
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
  if (image != NULL && image->mem_offset + image->len > initial_size)
    return COWMEM_EINVAL;
  if (image != NULL && image->len == 0) image = NULL; /* all zeros */
  slot_check(slot);

  int e = 0;
  if (image != slot->image && slot->image != NULL) {
    /* Take the old image out: its range lies inside [0, accessible), so
     * fresh read-write zero pages keep the READY invariant below it. */
    cowmem_image_t* old = slot->image;
    if (image_mapped(old))
      e = cowmem__os_map_anon(slot->base + old->mem_offset, old->len, COWMEM__PROT_RW);
    else
      e = cowmem__os_discard(slot->base + old->mem_offset, old->len);
    if (e) return cowmem__slot_fail(slot, e);
    slot->image = NULL;
    cowmem_image_free(old);
  }
  e = slot_set_accessible(slot, initial_size);
  if (e) return cowmem__slot_fail(slot, e);
  if (image != slot->image) {
    if (image_mapped(image)) {
      for (size_t i = 0; i < image->nmaps && e == 0; i++)
        e = cowmem__os_map_file(slot->base + image->mem_offset + image->maps[i].off,
                                image->maps[i].len, image->fd,
                                image->source_offset + image->maps[i].off,
                                COWMEM__PROT_RW);
      if (e) return cowmem__slot_fail(slot, e);
    } else {
      cowmem__image_copy_into(image, slot->base + image->mem_offset);
      COWMEM__STAT_INC(cowmem__stat_image_copies);
    }
    slot->image = cowmem_image_retain(image);
  }
  slot->initial = initial_size;
  slot->state = COWMEM_SLOT_DIRTY;
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
  return 0;
}

static int slot_check_resettable(const cowmem_slot_t* slot) {
  if (slot == NULL) return COWMEM_EINVAL;
  if (slot->state == COWMEM_SLOT_BROKEN) return COWMEM_EBROKEN;
  if (slot->state != COWMEM_SLOT_DIRTY) return COWMEM_ESTATE;
  slot_check(slot);
  return 0;
}

int cowmem__slot_finish_reset(cowmem_slot_t* slot) {
  int e = slot_set_accessible(slot, slot->initial);
  if (e) return cowmem__slot_fail(slot, e);
  if (slot->image != NULL && !image_mapped(slot->image)) {
    cowmem__image_copy_into(slot->image, slot->base + slot->image->mem_offset);
    COWMEM__STAT_INC(cowmem__stat_image_copies);
  }
  slot->state = COWMEM_SLOT_READY;
  return 0;
}

int cowmem_slot_reset(cowmem_slot_t* slot) {
  int r = slot_check_resettable(slot);
  if (r != 0) return r;
  /* Discarding restores image pages from the fd and zeros elsewhere. */
  int e = slot->accessible ? cowmem__os_discard(slot->base, slot->accessible) : 0;
  if (e) return cowmem__slot_fail(slot, e);
  return cowmem__slot_finish_reset(slot);
}

/* Copy the image's bytes (zeros in holes) over [0, keep) of the slot. */
static void slot_restore_window(cowmem_slot_t* slot, size_t keep) {
  const cowmem_image_t* img = slot->image;
  size_t at = 0;
  if (img != NULL) {
    const uint8_t* src = img->kind == COWMEM_IMAGE_COPY ? img->bytes
                                                       : cowmem__image_view(slot->image);
    for (size_t i = 0; i < img->nruns && at < keep; i++) {
      size_t lo = (size_t)(img->mem_offset + img->runs[i].off);
      size_t hi = lo + (size_t)img->runs[i].len;
      if (lo >= keep) break;
      if (hi > keep) hi = keep;
      if (lo > at) memset(slot->base + at, 0, lo - at);
      memcpy(slot->base + lo, src + (lo - img->mem_offset), hi - lo);
      at = hi;
    }
  }
  if (at < keep) memset(slot->base + at, 0, keep - at);
}

int cowmem__slot_reset_keep(cowmem_slot_t* slot, size_t keep) {
  int r = slot_check_resettable(slot);
  if (r != 0) return r;
  /* Only what stays accessible can stay resident; and a MEMFD image needs
   * its read-only view to copy from (without one, discard everything). */
  keep = cowmem__page_floor(keep < slot->initial ? keep : slot->initial);
  if (slot->image != NULL && image_mapped(slot->image) &&
      cowmem__image_view(slot->image) == NULL)
    keep = 0;
  if (keep > 0) slot_restore_window(slot, keep);
  int e = slot->accessible > keep
              ? cowmem__os_discard(slot->base + keep, slot->accessible - keep)
              : 0;
  if (e) return cowmem__slot_fail(slot, e);
  return cowmem__slot_finish_reset(slot);
}

cowmem_slot_state_t cowmem_slot_state(const cowmem_slot_t* slot) {
  return slot == NULL ? COWMEM_SLOT_BROKEN : slot->state;
}
bool cowmem_slot_dirty(const cowmem_slot_t* slot) {
  return slot != NULL && slot->state == COWMEM_SLOT_DIRTY;
}
bool cowmem_slot_has_image(const cowmem_slot_t* slot) {
  return slot != NULL && slot->image != NULL;
}
cowmem_image_t* cowmem_slot_image(const cowmem_slot_t* slot) {
  return slot == NULL ? NULL : slot->image;
}
size_t cowmem_slot_size(const cowmem_slot_t* slot) {
  return slot == NULL ? 0 : slot->accessible;
}
size_t cowmem_slot_reserve(const cowmem_slot_t* slot) {
  return slot == NULL ? 0 : slot->reserve;
}
void* cowmem_slot_base(const cowmem_slot_t* slot) {
  return slot == NULL ? NULL : slot->base;
}
