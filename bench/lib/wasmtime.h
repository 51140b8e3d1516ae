/* Wasmtime's three reset modes, redone at the system-call level, for the
 * benchmarks that print cowmem's ratio to each (bench_adaptive, `cowmem
 * bench`). Wasmtime cannot be installed here; what its pooling allocator
 * does to a linear memory on reuse is a few system calls on a known
 * layout, and that is what is measured.
 *
 * The layout: the image's bytes mapped private from a memfd at their
 * offset, anonymous zeros around them. The resets:
 *   default        madvise(MADV_DONTNEED) over the accessible memory;
 *   keep_resident  copy image and zeros back over the first N bytes,
 *                  madvise the rest;
 *   pagemap_scan   one PAGEMAP_SCAN of the memory for present written
 *                  pages, at most 32 regions; copy those regions back while
 *                  they fit in the keep budget, madvise the others and
 *                  everything past where the scan stopped (without the
 *                  scan: the default).
 * Linux only. Part of the benchmarks' helper library (bench/lib/). */
#ifndef COWMEM_BENCH_WASMTIME_H
#define COWMEM_BENCH_WASMTIME_H

#include <stddef.h>
#include <stdint.h>

enum { WT_DEFAULT, WT_KEEP, WT_PAGEMAP, WT_MODES };

typedef struct {
  uint8_t* base;
  size_t mem;          /* accessible bytes */
  const uint8_t* img;  /* the image's bytes (the caller keeps them) */
  size_t img_len, at;  /* page-aligned offset of the image */
  size_t keep;         /* keep_resident: bytes copied back */
  size_t scan_keep;    /* pagemap_scan: at most these bytes copied back */
  int pagemap;         /* /proc/self/pagemap, or -1 */
} wt_mem_t;

/* Map the layout: mem bytes, the image's img_len bytes (the caller keeps
 * them) at offset at; keep and scan_keep are the bytes keep_resident and
 * pagemap_scan copy back. 0, or -1 with errno. */
int wt_open(wt_mem_t* w, size_t mem, const uint8_t* img, size_t img_len, size_t at,
            size_t keep, size_t scan_keep);
void wt_close(wt_mem_t* w);
/* Reset the memory as Wasmtime's mode (WT_*) does on reuse. */
void wt_reset(const wt_mem_t* w, int mode);

#endif
