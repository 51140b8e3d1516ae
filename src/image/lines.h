/* Copying image bytes back over a slot's memory, a 64-byte line at a time:
 * what a reset's copies are made of (image.c's restores). An instance
 * usually changes a few lines of each page it writes (a stack frame, a
 * counter, a list link), and a copy of the whole page writes every line
 * back, makes each one dirty again and leaves the stores to drain at the
 * pool's next locked instruction. Comparing first reads the same lines and
 * writes only those that differ; once several lines of a 4 KiB block
 * differ, the rest of the block is copied without comparing, so a page the
 * instance rewrote costs a copy and a few comparisons.
 *
 * Comparing needs AVX2 (asked once, at the first call); other machines
 * copy as memcpy does. The bytes that result are the same either way.
 * Zeros are written with memset: a store-only fill costs no more than
 * reading the lines would. Private to src/image/.
 *
 * Two kinds of destination. A page the slot may still map from the image
 * (a blind reset's hot page the instance did not write) is always
 * compared: a plain copy would write it, and the write is a copy-on-write
 * fault and a page of the slot's own, where comparing reads it and leaves
 * it mapped. A page the instance owns (one a scan reported written) is
 * its own copy already, and there comparing only saves stores: on a CPU
 * whose plain copy of a page costs less than comparing it (a Zen 5:
 * 0.31-0.33 us for 8 pages against 0.55-0.58), it is no saving. So which way such
 * pages take is measured once per process, at the first restore of one
 * (some 20 us): the faster of the two on a page with one line changed. */
#ifndef COWMEM_IMAGE_LINES_H
#define COWMEM_IMAGE_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* dst[0, len) = src[0, len). The ranges do not overlap. own: the pages of
 * dst are the slot's own (written), or so likely that one mapping the
 * image may become the slot's own copy (comparing is then only for
 * speed). */
void cowmem__lines_copy(uint8_t* dst, const uint8_t* src, size_t len, bool own);

#ifdef COWMEM_TESTING
/* Compare (true, when the machine can) or copy plainly (false), until
 * called again, for both kinds of destination; returns whether comparing
 * is now in use. */
bool cowmem__lines_compare_set(bool on);
/* The same for owned pages only (the measured choice), where the machine
 * can compare at all; returns whether owned pages are now compared. */
bool cowmem__lines_own_compare_set(bool on);
/* Measure again which way owned pages take; returns whether it is
 * comparing. *compare_ns and *copy_ns: each way's fastest of its runs
 * over 8 pages with one line changed in each. */
bool cowmem__lines_measure(uint64_t* compare_ns, uint64_t* copy_ns);
#endif

#endif
