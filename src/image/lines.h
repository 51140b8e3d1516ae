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
 * reading the lines would. Private to src/image/. */
#ifndef COWMEM_IMAGE_LINES_H
#define COWMEM_IMAGE_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* dst[0, len) = src[0, len). The ranges do not overlap. */
void cowmem__lines_copy(uint8_t* dst, const uint8_t* src, size_t len);

#ifdef COWMEM_TESTING
/* Compare (true, when the machine can) or copy plainly (false), until
 * called again; returns whether comparing is now in use. */
bool cowmem__lines_compare_set(bool on);
#endif

#endif
