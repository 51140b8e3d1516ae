/* The PAGEMAP_SCAN uapi (Linux >= 6.7), declared once, for system headers
 * that predate it (Debian bookworm's). It is the kernel's ABI, not
 * cowmem's: the Linux backend (src/os/linux.c) and the benchmarks'
 * reproduction of Wasmtime's pagemap_scan reset mode both include it from
 * compat/, where declarations the system headers may lack live
 * (bench_uffd_wp too: the write-protect flags). Checked
 * against 6.18 with a probe (a written page of a private file mapping comes back
 * PRESENT|WRITTEN without FILE; a read one as FILE; a read anonymous one as
 * PFNZERO). */
#ifndef COWMEM_COMPAT_PAGEMAP_SCAN_H
#define COWMEM_COMPAT_PAGEMAP_SCAN_H

#include <stdint.h>
#include <sys/ioctl.h>

#ifndef PAGEMAP_SCAN
struct page_region {
  uint64_t start, end, categories;
};
struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING (1u << 0)
#define PM_SCAN_CHECK_WPASYNC (1u << 1)
#define PAGE_IS_WRITTEN (1u << 1)
#define PAGE_IS_FILE (1u << 2)
#define PAGE_IS_PRESENT (1u << 3)
#define PAGE_IS_SWAPPED (1u << 4)
#define PAGE_IS_PFNZERO (1u << 5)
#endif

#endif
