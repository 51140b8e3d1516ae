/* Dirty-page detection for slots: which pages of a range an instance wrote.
 * The core's view of the OS layer's PAGEMAP_SCAN, with the option that
 * turns it off (COWMEM_NO_PAGEMAP_SCAN) applied in one place. */
#ifndef COWMEM_DIRTY_H
#define COWMEM_DIRTY_H

#include "internal.h"

/* Can written pages be found exactly here? (PAGEMAP_SCAN works and is not
 * disabled by the option.) Cheap: the probe is cached. */
bool cowmem__dirty_exact(void);

/* Call fn for the ranges of [addr, addr+len) written since they were last
 * discarded (see cowmem__os_written_ranges). Returns 0, COWMEM_ENOSYS when
 * not exact, or the error of the scan (fn may have seen a prefix). */
int cowmem__dirty_scan(void* addr, size_t len, cowmem__os_range_fn fn, void* arg);
/* The same once cowmem__dirty_exact() said yes (a reset asks once), the
 * ranges handed to fn a scan's batch at a time (cowmem__os_written_batches). */
int cowmem__dirty_written(void* addr, size_t len, cowmem__os_ranges_fn fn, void* arg);

/* *pages = how many pages of [addr, addr+len) the process has mapped
 * (cowmem__os_mapped_ranges: written, or only read), *tables = how many
 * page tables hold them (the last level: 512 entries of 8 bytes for 4 KiB
 * pages, so a table maps 2 MiB), which is what a scan or a discard of the
 * range walks. 0, COWMEM_ENOSYS when not exact, or the scan's error
 * (outputs unchanged then). */
int cowmem__dirty_mapped(void* addr, size_t len, size_t* pages, size_t* tables);

/* Pages of [addr, addr+len) that may hold bytes other than zeros or the
 * file's: the written ranges where the scan works, else the pages
 * cowmem__os_private_map marks (anonymous pages of /proc/self/pagemap;
 * mincore's resident pages where it cannot be read). fn as above.
 * Returns 0 or an error (nothing known). */
int cowmem__dirty_candidates(void* addr, size_t len, cowmem__os_range_fn fn, void* arg);

#endif
