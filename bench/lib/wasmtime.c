/* Wasmtime's three reset modes at the system-call level (wasmtime.h). */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pagemap_scan.h"
#include "wasmtime.h"

int wt_open(wt_mem_t* w, size_t mem, const uint8_t* img, size_t img_len, size_t at,
                   size_t keep, size_t scan_keep) {
  memset(w, 0, sizeof *w);
  w->pagemap = -1;
  w->base = mmap(NULL, mem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (w->base == MAP_FAILED) return -1;
  w->mem = mem;
  if (img_len > 0) {
    int fd = memfd_create("wt-image", MFD_CLOEXEC);
    if (fd < 0) goto fail;
    size_t done = 0;
    while (done < img_len) {
      ssize_t r = write(fd, img + done, img_len - done);
      if (r <= 0) {
        close(fd);
        goto fail;
      }
      done += (size_t)r;
    }
    void* m = mmap(w->base + at, img_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
                   fd, 0);
    close(fd);
    if (m == MAP_FAILED) goto fail;
  }
  w->img = img;
  w->img_len = img_len;
  w->at = at;
  w->keep = keep < mem ? keep : mem;
  w->scan_keep = scan_keep;
  w->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  return 0;
fail:
  munmap(w->base, mem);
  w->base = NULL;
  return -1;
}

void wt_close(wt_mem_t* w) {
  if (w->base != NULL) munmap(w->base, w->mem);
  if (w->pagemap >= 0) close(w->pagemap);
  w->base = NULL;
  w->pagemap = -1;
}

/* Copy image and zeros back over [lo, hi) of the memory. */
static void copy_back(const wt_mem_t* w, size_t lo, size_t hi) {
  size_t ilo = w->at, ihi = w->at + w->img_len;
  size_t a = lo > ilo ? lo : ilo, b = hi < ihi ? hi : ihi;
  if (a < b) {
    memcpy(w->base + a, w->img + (a - w->at), b - a);
    if (lo < a) memset(w->base + lo, 0, a - lo);
    if (b < hi) memset(w->base + b, 0, hi - b);
  } else {
    memset(w->base + lo, 0, hi - lo);
  }
}

void wt_reset(const wt_mem_t* w, int mode) {
  if (mode == WT_DEFAULT || (mode == WT_PAGEMAP && w->pagemap < 0)) {
    madvise(w->base, w->mem, MADV_DONTNEED);
    return;
  }
  if (mode == WT_KEEP) {
    copy_back(w, 0, w->keep);
    if (w->mem > w->keep) madvise(w->base + w->keep, w->mem - w->keep, MADV_DONTNEED);
    return;
  }
  struct page_region v[32];
  struct pm_scan_arg a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.start = (uint64_t)(uintptr_t)w->base;
  a.end = a.start + w->mem;
  a.vec = (uint64_t)(uintptr_t)v;
  a.vec_len = 32;
  a.category_inverted = PAGE_IS_FILE | PAGE_IS_PFNZERO;
  a.category_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO;
  a.category_anyof_mask = PAGE_IS_PRESENT;
  a.return_mask = PAGE_IS_PRESENT;
  long n = ioctl(w->pagemap, PAGEMAP_SCAN, &a);
  if (n < 0) {
    madvise(w->base, w->mem, MADV_DONTNEED);
    return;
  }
  size_t copied = 0;
  for (long i = 0; i < n; i++) {
    size_t lo = (size_t)(v[i].start - a.start), hi = (size_t)(v[i].end - a.start);
    if (copied + (hi - lo) <= w->scan_keep) {
      copy_back(w, lo, hi);
      copied += hi - lo;
    } else {
      madvise(w->base + lo, hi - lo, MADV_DONTNEED);
    }
  }
  if (a.walk_end < a.end)
    madvise((uint8_t*)(uintptr_t)a.walk_end, (size_t)(a.end - a.walk_end), MADV_DONTNEED);
}
