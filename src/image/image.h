/* The image's internal interface. Only the image files (src/image/: build.c
 * makes images, image.c keeps and uses them) know how an image is laid out
 * (its non-zero runs, its bytes, its fd and the ranges a slot maps) and how
 * MEMFD, FILE and COPY images differ; slots, resets, snapshots and the
 * image-file writer ask through these functions.
 *
 * Offsets are linear-memory offsets (byte 0 of the memory, not of the
 * image); `base` is the address of the memory's byte 0 in a slot. */
#ifndef COWMEM_IMAGE_H
#define COWMEM_IMAGE_H

#include "internal.h"

/* The key pools group idle slots by: unique for the process's life, 0 for
 * NULL and for an all-zeros image (which maps nothing). */
uint64_t cowmem__image_key(const cowmem_image_t* image);
/* One past the image's last byte in memory; 0 for NULL. */
uint64_t cowmem__image_end(const cowmem_image_t* image);
/* Whether the image maps its file (MEMFD, FILE) into a slot, and then the
 * memory offsets [*lo, *hi) it spans: a page there that the process has not
 * made its own holds the image's bytes (or the zeros of a hole). */
bool cowmem__image_file_span(const cowmem_image_t* image, uint64_t* lo, uint64_t* hi);

/* Put the image into memory whose [0, end) is read-write and holds zeros:
 * map its ranges copy-on-write (MEMFD, FILE) or copy its bytes (COPY).
 * 0, an errno value, or COWMEM__IMAGE_CHANGED (a FILE image whose file
 * was truncated or rewritten: nothing was mapped). */
#define COWMEM__IMAGE_CHANGED (-COWMEM_ECHANGED) /* cowmem__err_from_os makes it the code */
int cowmem__image_place(const cowmem_image_t* image, uint8_t* base);
/* The image is about to start another instance in a slot that still maps
 * it (READY, same image): is the file it maps what it was? 0, an errno
 * value or COWMEM__IMAGE_CHANGED, as cowmem__image_place. No system call
 * but for a FILE image whose file the kernel does not keep fixed (one
 * fstat): a file truncated since would fault the new instance's first
 * read of a page it maps with SIGBUS. */
int cowmem__image_verify(const cowmem_image_t* image);
/* The same when a slot that still maps the image starts another instance
 * (READY, same image), but the file is compared at most once a
 * millisecond (by the coarse clock): a change is caught by every such
 * instantiation that starts 1 ms and one tick of that clock (1-4 ms on
 * Linux) after it, and in between the fstat is skipped. */
int cowmem__image_verify_reuse(const cowmem_image_t* image);
/* Take the image out again: its range becomes read-write zero pages.
 * 0 or an errno value. */
int cowmem__image_remove(const cowmem_image_t* image, uint8_t* base);
/* After the memory was discarded (MADV_DONTNEED): a mapped image reads as
 * its bytes again by itself; a COPY image's bytes are copied back. */
void cowmem__image_after_discard(const cowmem_image_t* image, uint8_t* base);

/* Make the image's bytes readable through cowmem__image_page_differs and
 * cowmem__image_restore. false if that cannot be done (or the image was
 * found changed); NULL is readable (all zeros). A MEMFD image, or a FILE
 * image the kernel keeps fixed, is read through a read-only view mapped on
 * first use; a COPY image is memory. A FILE image whose file may change is
 * never read through a mapping (the file may be truncated under it, and a
 * mapping's read past the new end faults with SIGBUS): pread fills its
 * cache, anonymous memory made on first use as a view is, page by page. */
bool cowmem__image_readable(cowmem_image_t* image);
/* The image's bytes of the page at memory offset off (page-aligned), or
 * NULL where the page is zeros. Requires cowmem__image_readable, and an
 * image with a view or memory (not one read by pread). */
const uint8_t* cowmem__image_page(const cowmem_image_t* image, uint64_t off);
/* Does page (the page-sized bytes at memory offset off, page-aligned)
 * differ from the image's page there? A page that cannot be read (the file
 * shrank) differs. Requires cowmem__image_readable. */
bool cowmem__image_page_differs(const cowmem_image_t* image, const uint8_t* page,
                                uint64_t off);
/* Copy the image's bytes and zeros over memory [lo, hi) (page multiples),
 * so that range holds exactly what instantiation gives. own: every page of
 * the range is the instance's own anonymous copy (a scan found it
 * written), so storing to it cannot fault; else a page may still map the
 * image's file, and an image read by pread is read straight into it (a
 * store to a mapping past a truncated end would fault with SIGBUS, the
 * kernel's copy reads short instead). The image's bytes are written only
 * where a 64-byte line differs (image/lines.h), which reads the range
 * first: done where the page is the instance's own (own) or the image's
 * file cannot change (a view of it), never on a page that may map a file
 * read by pread. Requires cowmem__image_readable. 0,
 * an errno value, or COWMEM__IMAGE_CHANGED (an image read by pread whose
 * file was truncated: part of the range may hold anything, and the caller
 * drops the slot). */
int cowmem__image_restore(const cowmem_image_t* image, uint8_t* base, uint64_t lo,
                          uint64_t hi, bool own);
/* The same over n ranges of the memory at base (addresses, page multiples,
 * in ascending order, not overlapping), in one walk of the image's runs: a reset
 * restores all its pages with one call. likely_own (with own false): the
 * pages are very likely the slot's own, so their lines may be copied
 * without comparing where that is faster (image/lines.h); a page that
 * maps the image after all then becomes the slot's own copy, with the
 * image's bytes. Where the image's file may change they are still written
 * by pread. */
int cowmem__image_restore_many(const cowmem_image_t* image, uint8_t* base,
                               const cowmem__os_range_t* ranges, size_t n, bool own,
                               bool likely_own);

/* Call fn(arg, off, len) for each run of pages holding non-zero bytes, in
 * order, in memory offsets; stops at the first non-zero return and returns
 * it. (A FILE image is one run: its zero pages are not known.) */
int cowmem__image_each_run(const cowmem_image_t* image,
                           int (*fn)(void* arg, uint64_t off, uint64_t len), void* arg);
/* The same over the pages that may hold data: the runs, and for a FILE
 * image the file's data extents (SEEK_DATA/SEEK_HOLE, rounded out to whole
 * pages; the holes of a sparse file are zeros and never read). The fd's
 * file offset is kept. fn's first non-zero return, or a COWMEM_E* code
 * when the extents cannot be told. */
int cowmem__image_each_extent(const cowmem_image_t* image,
                              int (*fn)(void* arg, uint64_t off, uint64_t len),
                              void* arg);

/* Mappings (VMAs) that [0, size) of a slot takes, read-write with the image
 * placed: its map ranges, the anonymous holes between them, and the zeros
 * before and after it. */
size_t cowmem__image_maps(const cowmem_image_t* image, uint64_t size);
/* The most any image takes (cowmem__image_maps at COWMEM_MAX_MAPS). */
size_t cowmem__image_maps_max(void);
/* A FILE image found changed (cowmem_image_check): never instantiated
 * again, and an orphan for the pools' sweeps. */
bool cowmem__image_changed(const cowmem_image_t* image);

/* Weak references: whether the image is gone, without keeping it alive
 * (the ADAPTIVE reset drops what it learned about a dead image). weak
 * returns a new reference (NULL when out of memory); the caller holds a
 * reference to the image while it asks. */
typedef struct cowmem__image_weak_s cowmem__image_weak_t;
cowmem__image_weak_t* cowmem__image_weak(cowmem_image_t* image);
bool cowmem__image_weak_dead(const cowmem__image_weak_t* w);
void cowmem__image_weak_release(cowmem__image_weak_t* w);

/* Is every byte of p[0, n) zero? n is a multiple of 64. */
bool cowmem__is_zero(const void* p, size_t n);

/* Orphans. A slot of a pool takes its reference with pool_hold and drops
 * it with pool_drop (slots outside pools use retain and release), which
 * count it among the pools' share; acquiring and releasing a slot that
 * keeps its image counts nothing. When pool slots hold every reference,
 * nobody can instantiate the image again (a caller passes an image only
 * while it holds a reference of its own): the release of the last other
 * reference marks it an orphan and bumps cowmem__orphan_epoch, which pools
 * compare with the epoch they last swept at, and their sweeps decommit its
 * idle slots. A slot that was in use or resetting then becomes idle or
 * queued later: landed bumps the epoch again for an orphan's (or a changed
 * image's) slot, called under the lock of the list or queue that now keeps
 * the slot: once that lock is released, another thread may take the slot
 * and drop the reference, the image's last one. */
cowmem_image_t* cowmem__image_pool_hold(cowmem_image_t* image);
void cowmem__image_pool_drop(cowmem_image_t* image);
void cowmem__image_landed(const cowmem_image_t* image);
bool cowmem__image_orphaned(const cowmem_image_t* image);
extern _Atomic uint64_t cowmem__orphan_epoch;

#endif
