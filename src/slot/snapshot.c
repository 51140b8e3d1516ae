/* Snapshots: an image made from a slot's current memory.
 *
 * Only pages that can hold non-zero bytes are read from the slot: the pages
 * the instance wrote (PAGEMAP_SCAN; without it, the anonymous pages of
 * /proc/self/pagemap, or mincore's resident ones) and the slot image's data
 * pages. Reading anything else would
 * fault it in: a zero page mapped into anonymous memory, or worse, a page
 * allocated in the image's memfd where a small hole is mapped from it. The
 * candidates are copied into a private anonymous buffer whose other pages
 * are never written, and cowmem_image_new_from_bytes builds the sealed,
 * sparse memfd from that buffer (it finds the zero pages again, so a
 * candidate page the instance zeroed becomes a hole too). The price is one
 * extra copy of the candidate pages (a first-write fault each, about 2 us)
 * and read faults of the buffer's untouched pages (zero page, no
 * allocation) between the first and the last candidate. When no page in
 * between is skipped, the slot is read in place instead. */
#include <stdlib.h>
#include <string.h>

#include "dirty.h"
#include "image/image.h"
#include "slot/slot.h"

typedef struct {
  uint8_t* base;
  uint8_t* marks; /* one byte per page: may hold data */
  size_t ps;
} snap_ctx_t;

static void mark_range(void* arg, uint8_t* addr, size_t len) {
  snap_ctx_t* c = arg;
  size_t lo = (size_t)(addr - c->base) / c->ps, n = len / c->ps;
  memset(c->marks + lo, 1, n);
}

/* The slot image's data pages below the accessible size. */
typedef struct {
  snap_ctx_t* c;
  uint64_t accessible;
} run_ctx_t;

static int mark_run(void* arg, uint64_t lo, uint64_t len) {
  run_ctx_t* rc = arg;
  uint64_t hi = lo + len;
  if (lo >= rc->accessible) return 1; /* runs are in order: done */
  if (hi > rc->accessible) hi = rc->accessible;
  memset(rc->c->marks + lo / rc->c->ps, 1, (size_t)(hi - lo) / rc->c->ps);
  return 0;
}

int cowmem_snapshot(cowmem_slot_t* slot, cowmem_image_t** out) {
  if (slot == NULL || out == NULL) return COWMEM_EINVAL;
  if (slot->state == COWMEM_SLOT_BROKEN) return COWMEM_EBROKEN;
  if (slot->state != COWMEM_SLOT_READY && slot->state != COWMEM_SLOT_DIRTY)
    return COWMEM_ESTATE;
  /* The slot's image pages the instance did not write are read through
   * its mapping: a FILE image's file truncated since would fault that read
   * with SIGBUS (the kernel also drops the instance's own copies past the
   * new end). One fstat, for a file the kernel does not keep fixed, refuses
   * it first; a truncation while the snapshot reads still faults, as it
   * faults the running instance. */
  int c0 = cowmem__image_verify(slot->image);
  if (c0) return cowmem__err_from_os(c0);
  size_t ps = cowmem__os_page_size(), pages = slot->accessible / ps;
  if (pages == 0) return cowmem_image_new_from_bytes(NULL, 0, 0, out);
  snap_ctx_t c = {slot->base, calloc(pages, 1), ps};
  if (c.marks == NULL) return COWMEM_ENOMEM;
  if (cowmem__dirty_candidates(slot->base, slot->accessible, mark_range, &c) != 0)
    memset(c.marks, 1, pages); /* nothing known: read everything */
  run_ctx_t rc = {&c, slot->accessible};
  cowmem__image_each_run(slot->image, mark_run, &rc);
  size_t first = 0, last = pages;
  while (first < pages && !c.marks[first])
    first++;
  while (last > first && !c.marks[last - 1])
    last--;
  if (first == last) {
    free(c.marks);
    return cowmem_image_new_from_bytes(NULL, 0, 0, out);
  }
  size_t span = (last - first) * ps;
  bool gaps = memchr(c.marks + first, 0, last - first) != NULL;
  if (!gaps) {
    /* Every page between the first and the last may hold data: read them
     * in place, no buffer (the common case: data, then a heap above it). */
    free(c.marks);
    return cowmem_image_new_from_bytes(slot->base + first * ps, span,
                                       (uint64_t)first * ps, out);
  }
  void* buf = NULL;
  int e = cowmem__os_reserve(span, &buf);
  if (e == 0) {
    e = cowmem__os_protect(buf, span, COWMEM__PROT_RW);
    if (e) cowmem__os_unmap(buf, span);
  }
  if (e) {
    free(c.marks);
    return cowmem__err_from_os(e);
  }
  uint8_t* b = buf;
  for (size_t p = first; p < last;) {
    if (!c.marks[p]) {
      p++;
      continue;
    }
    size_t q = p;
    while (q < last && c.marks[q])
      q++;
    memcpy(b + (p - first) * ps, slot->base + p * ps, (q - p) * ps);
    p = q;
  }
  free(c.marks);
  int r = cowmem_image_new_from_bytes(b, span, (uint64_t)first * ps, out);
  cowmem__os_unmap(buf, span);
  return r;
}
