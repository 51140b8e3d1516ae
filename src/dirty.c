/* Dirty-page detection (see dirty.h).
 *
 * Why PAGEMAP_SCAN's categories and not userfaultfd write-protection: a
 * slot is MAP_PRIVATE over a sealed memfd and anonymous memory, so "written
 * by this process" is exactly "an anonymous page is present (or swapped)
 * where the mapping is a file, or a non-zero-page page where it is
 * anonymous". Both are what the reset discards, and MADV_DONTNEED makes
 * them absent again, so the next scan starts clean with no other state.
 * Write-protect tracking (UFFD_FEATURE_WP_ASYNC) would also tell which of
 * the pages the reset keeps resident were written again, but it needs a
 * userfaultfd per process (privileged where vm.unprivileged_userfaultfd is
 * 0) and re-arming after every reset; and measured on 6.18
 * (bench/bench_uffd_wp.c), MADV_DONTNEED on an armed anonymous
 * range drops the tracking of the pages it zaps (with or without
 * UFFD_FEATURE_WP_UNPOPULATED): they read as written until armed again,
 * and arming fills the page tables, so a write-protect scan of a 16 MiB
 * slot costs about 6 us against 0.4-1.2 us for the category scan used here.
 * The adaptive reset instead restores every kept page the scan reports by
 * copy (about 0.1 us a page) and learns which kept pages were really
 * written by comparing contents on the resets it samples. */
#include <stdlib.h>

#include "dirty.h"

bool cowmem__dirty_exact(void) {
  return cowmem_option_get(COWMEM_OPTION_NO_PAGEMAP_SCAN) == 0 &&
         cowmem__os_has_pagemap_scan();
}

int cowmem__dirty_scan(void* addr, size_t len, cowmem__os_range_fn fn, void* arg) {
  if (!cowmem__dirty_exact()) return COWMEM_ENOSYS;
  if (len == 0) return 0;
  return cowmem__err_from_os(cowmem__os_written_ranges(addr, len, fn, arg));
}

int cowmem__dirty_written(void* addr, size_t len, cowmem__os_ranges_fn fn, void* arg) {
  if (len == 0) return 0;
  return cowmem__err_from_os(cowmem__os_written_batches(addr, len, fn, arg));
}

typedef struct {
  size_t bytes, tables;
  uintptr_t span, last; /* a table's span; the last table counted, + 1 */
} mapped_t;

static void add_mapped(void* arg, uint8_t* addr, size_t len) {
  mapped_t* m = arg;
  m->bytes += len;
  uintptr_t first = (uintptr_t)addr / m->span, end = ((uintptr_t)addr + len - 1) / m->span;
  m->tables += end - first + 1 - (m->last == first + 1); /* ranges come in order */
  m->last = end + 1;
}

int cowmem__dirty_mapped(void* addr, size_t len, size_t* pages, size_t* tables) {
  if (!cowmem__dirty_exact()) return COWMEM_ENOSYS;
  size_t ps = cowmem__os_page_size();
  mapped_t m = {0, 0, (uintptr_t)ps * (ps / 8), 0};
  if (len > 0) {
    int e = cowmem__os_mapped_ranges(addr, len, add_mapped, &m);
    if (e) return cowmem__err_from_os(e);
  }
  *pages = m.bytes / ps;
  *tables = m.tables;
  return 0;
}

int cowmem__dirty_candidates(void* addr, size_t len, cowmem__os_range_fn fn, void* arg) {
  if (len == 0) return 0;
  if (cowmem__dirty_exact()) {
    int r = cowmem__dirty_scan(addr, len, fn, arg);
    if (r != COWMEM_ENOSYS) return r;
  }
  size_t ps = cowmem__os_page_size(), pages = len / ps;
  uint8_t vec[512];
  uint8_t* base = addr;
  uint8_t* run = NULL;
  for (size_t done = 0; done < pages;) {
    size_t n = pages - done < sizeof vec ? pages - done : sizeof vec;
    int e = cowmem__os_private_map(base + done * ps, n * ps, vec);
    if (e) return cowmem__err_from_os(e);
    for (size_t i = 0; i < n; i++) {
      uint8_t* p = base + (done + i) * ps;
      if ((vec[i] & 1) && run == NULL) run = p;
      if (!(vec[i] & 1) && run != NULL) {
        fn(arg, run, (size_t)(p - run));
        run = NULL;
      }
    }
    done += n;
  }
  if (run != NULL) fn(arg, run, (size_t)(base + pages * ps - run));
  return 0;
}
