/* The OS layer: the only code in cowmem that makes system calls.
 *
 * Shared contract of every primitive here:
 *   - addresses and lengths are page-aligned (cowmem__os_page_size()), lengths
 *     non-zero unless stated, output pointers non-NULL;
 *   - the result is 0 or a positive errno value; the core converts it to a
 *     COWMEM_E* code with cowmem__err_from_os();
 *   - on failure nothing was allocated (no fd, no mapping left behind);
 *   - each call is counted in the process-wide statistics by kind, and under
 *     COWMEM_TESTING it can be made to fail (cowmem__os_inject_fail);
 *   - no policy: which range to discard or protect is the core's decision.
 *
 * Backends: linux.c (memfd, seals, MADV_DONTNEED, process_madvise) and
 * posix.c (anonymous mmap only: no memfd, so every image is a copy, and
 * "discard" maps fresh zero pages). os.c picks one; COWMEM_OS_FORCE_POSIX
 * builds the posix one on Linux so its tests run here. */
#ifndef COWMEM_OS_H
#define COWMEM_OS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cowmem.h"

/* Protection of a range. */
typedef enum {
  COWMEM__PROT_NONE = 0,
  COWMEM__PROT_RW = 1,
  COWMEM__PROT_READ = 2
} cowmem__prot_t;

/* The kinds of system call, for the statistics and for fault injection.
 * Same order as COWMEM_SYSCALLS in cowmem.h. */
typedef enum {
#define COWMEM__OS_OP_ENUM(name) COWMEM__OS_##name,
  COWMEM_SYSCALLS(COWMEM__OS_OP_ENUM)
#undef COWMEM__OS_OP_ENUM
  COWMEM__OS_OP_COUNT
} cowmem__os_op_t;

size_t cowmem__os_page_size(void);
/* Monotonic nanoseconds at the clock's coarse resolution (Linux: its tick,
 * 1-4 ms), for ordering, not measuring: about 5 ns a read on the 2-core VM
 * against 19 ns for CLOCK_MONOTONIC. */
uint64_t cowmem__os_coarse_ns(void);
/* Monotonic nanoseconds (CLOCK_MONOTONIC), for measuring. */
uint64_t cowmem__os_now_ns(void);

/* Reserve len bytes of inaccessible address space (PROT_NONE, no commit
 * charge). *out receives the base. Like every mapping made here (and
 * cowmem__os_map_anon), it is kept in base pages (Linux: MADV_NOHUGEPAGE,
 * one madvise counted), so that only a counted fault makes a page of it
 * present or writable (cowmem__os_fault_count). */
int cowmem__os_reserve(size_t len, void** out);
/* Unmap a whole reservation made by cowmem__os_reserve (or any range the
 * caller owns). */
int cowmem__os_unmap(void* addr, size_t len);
/* Replace [addr, addr+len) with fresh anonymous private memory (zeros) of
 * the given protection, kept in base pages. The range stays mapped
 * whatever happens: if the mapping fails the old one is still there
 * (MAP_FIXED replaces atomically); if only the advice fails, the range is
 * the fresh memory and the error is returned. */
int cowmem__os_map_anon(void* addr, size_t len, cowmem__prot_t prot);
/* Map [off, off+len) of fd privately (copy-on-write) at addr, replacing what
 * was there. off page-aligned. Linux only; posix returns ENOSYS. */
int cowmem__os_map_file(void* addr, size_t len, int fd, uint64_t off,
                        cowmem__prot_t prot);
/* Map [off, off+len) of fd shared and read-only anywhere; *out receives the
 * address. Linux only; posix returns ENOSYS. */
int cowmem__os_map_shared_ro(int fd, uint64_t off, size_t len, void** out);
int cowmem__os_protect(void* addr, size_t len, cowmem__prot_t prot);
/* Throw away the private pages of [addr, addr+len): afterwards anonymous
 * memory reads as zeros and private file mappings read the file again.
 * Linux: madvise(MADV_DONTNEED). posix: only valid on anonymous RW memory,
 * replaced by a fresh mapping. */
int cowmem__os_discard(void* addr, size_t len);
/* Discard several ranges at once (one process_madvise where the kernel has
 * it, else one discard per range). */
typedef struct {
  void* addr;
  size_t len;
} cowmem__os_range_t;
int cowmem__os_discard_many(const cowmem__os_range_t* ranges, size_t n);
/* Does cowmem__os_discard_many make one call for many ranges (Linux with
 * process_madvise; true until a call finds it missing)? */
bool cowmem__os_discards_batch(void);
/* Discard ranges expected to hold no pages (a reset's decommit of what
 * should be untouched). Such discards take turns in the process: two
 * madvise calls at once make Linux flush every CPU's TLBs even when
 * nothing was freed. posix: cowmem__os_discard_many. */
int cowmem__os_discard_empty(const cowmem__os_range_t* ranges, size_t n);
/* Would such a discard by this thread likely wait for another thread's?
 * True while one is under way, and for a while after this thread's own
 * had to wait. A caller with another way to do its work can take it.
 * posix: false. */
bool cowmem__os_discard_contended(void);
/* Is another thread's such discard under way right now? (One relaxed load;
 * posix: false.) */
bool cowmem__os_discard_busy(void);

/* Bytes of [addr, addr+len) resident in memory (mincore). */
int cowmem__os_resident(void* addr, size_t len, size_t* bytes);

/* Does the backend have memfd with seals? Probed once, cached. */
bool cowmem__os_has_memfd(void);
/* A new memfd of size 0 (close-on-exec, sealing allowed). */
int cowmem__os_memfd_new(const char* name, int* fd);
/* Write all of buf at off (loops over short writes). */
int cowmem__os_pwrite_all(int fd, const void* buf, size_t len, uint64_t off);
/* Read all of [off, off+len) into buf; EIO if the file ends first. */
int cowmem__os_pread_all(int fd, void* buf, size_t len, uint64_t off);
int cowmem__os_ftruncate(int fd, uint64_t size);
/* Seal against write, grow, shrink and further sealing. */
int cowmem__os_seal(int fd);
/* File size and whether F_SEAL_WRITE is set on it. */
int cowmem__os_fstat(int fd, uint64_t* size, bool* write_sealed);
int cowmem__os_dup(int fd, int* out);
/* A file's identity and version as fstat tells them: an image mapped from
 * a file compares them before it maps it again (see image/image.c). */
typedef struct {
  uint64_t size, dev, ino;
  int64_t mtime_ns, ctime_ns;
} cowmem__os_file_id_t;
int cowmem__os_file_id(int fd, cowmem__os_file_id_t* out);
/* Can the kernel promise that the file's bytes and size never change while
 * fd is open? Linux: a memfd sealed against writes and shrinking (sealed
 * for good), or an inode with the immutable attribute (chattr +i: no
 * write or truncate until a privileged process clears it). *fixed false
 * otherwise, or where the kernel cannot say. posix: always false. */
int cowmem__os_file_fixed(int fd, bool* fixed);
/* The first stretch of file data at or after off, below end: *data its
 * start (end when there is none) and *hole its end (at most end). Holes of
 * a sparse file are skipped without reading them (SEEK_DATA/SEEK_HOLE);
 * where the system cannot tell, [off, end) is all data. The fd's file
 * offset is restored (the caller's fd may be read sequentially). */
int cowmem__os_data_extent(int fd, uint64_t off, uint64_t end, uint64_t* data,
                           uint64_t* hole);
/* Close; errors are counted but not reported (close always frees the fd). */
void cowmem__os_close(int fd);

/* ---- Kernel limits ----
 * A mapping primitive (reserve, map_anon, map_file, map_shared_ro,
 * protect) that fails with ENOMEM because the process holds as many
 * mappings as vm.max_map_count allows returns COWMEM__OS_EMAPLIMIT
 * instead (not an errno: cowmem__err_from_os makes it COWMEM_EMAPLIMIT).
 * Telling the two apart costs a read of /proc/self/maps, on the failure
 * path only. posix: never (no such limit is known there). */
#define COWMEM__OS_EMAPLIMIT (-COWMEM_EMAPLIMIT)
/* The most mappings a process may have (vm.max_map_count); ENOSYS where
 * unknown. Read each time (an operator may raise it while we run). */
int cowmem__os_map_limit(uint64_t* out);
/* Mappings the process has now (lines of /proc/self/maps); ENOSYS where
 * unknown. Costs about 1 us per 100 mappings. */
int cowmem__os_map_count(uint64_t* out);

/* Count one system call of this kind (also used by the core for calls it
 * makes through a primitive with a different name). */
void cowmem__os_count(cowmem__os_op_t op);
uint64_t cowmem__os_counter(cowmem__os_op_t op);

/* Per-thread stripes, for counters written on every call (the OS layer's
 * system call counts, a pool's shards, ADAPTIVE's per-image counters):
 * each stripe on cache lines of its own, summed when read. The first
 * COWMEM__STRIPES_OWNED threads that ask each own a stripe for good and add
 * to it with a plain load and store; later threads share the others, round
 * robin, and add atomically. A locked add costs 6-7 ns even on a line of
 * one's own: ADAPTIVE's four were 27 of the 33 ns its K=0 reset cost over
 * a plain madvise. A stripe is never given back: a thread that exits
 * leaves its counts in it. */
#define COWMEM__STRIPES 16
#define COWMEM__STRIPES_OWNED 12
/* The calling thread's stripe, in [0, COWMEM__STRIPES); -1 in the
 * variable until the thread first asks. Read several times per reset, so
 * inline and in the initial-exec TLS model: one load at a fixed offset from
 * the thread pointer, where the default model of position-independent code
 * calls __tls_get_addr (or a TLS descriptor) each time. The library is
 * linked into the program or loaded with it, which that model needs; a
 * dlopen'ed copy uses the static TLS space glibc keeps spare for that. */
extern _Thread_local int cowmem__os_tl_stripe __attribute__((tls_model("initial-exec")));
int cowmem__os_stripe_first(void);
static inline int cowmem__os_stripe(void) {
  int s = cowmem__os_tl_stripe;
  return s >= 0 ? s : cowmem__os_stripe_first();
}
/* Add v to a counter of stripe, the calling thread's own (the value of
 * cowmem__os_stripe that picked field: asked once, not per add); the
 * value before. */
static inline uint64_t cowmem__stripe_add(int stripe, _Atomic uint64_t* field,
                                          uint64_t v) {
  if (stripe >= COWMEM__STRIPES_OWNED)
    return atomic_fetch_add_explicit(field, v, memory_order_relaxed);
  uint64_t old = atomic_load_explicit(field, memory_order_relaxed);
  atomic_store_explicit(field, old + v, memory_order_relaxed);
  return old;
}

#ifdef COWMEM_TESTING
/* Fault injection, compiled into test builds only: the `after`-th next call
 * of kind op (0 = the very next) fails with err; after that, calls succeed
 * again. cowmem__os_inject_clear() cancels every pending failure. */
void cowmem__os_inject_fail(cowmem__os_op_t op, unsigned after, int err);
void cowmem__os_inject_clear(void);
/* Returns the errno to fail with (and consumes the injection), or 0. */
int cowmem__os_inject_check(cowmem__os_op_t op);
/* Take (hold) or give back the turn of cowmem__os_discard_empty, as such
 * a discard in progress would (Linux; posix: nothing). */
void cowmem__os_discard_hold(bool hold);
#define COWMEM__OS_INJECT(op)                                                            \
  do {                                                                                   \
    int inj_ = cowmem__os_inject_check(op);                                              \
    if (inj_ != 0) return inj_;                                                          \
  } while (0)
#else
#define COWMEM__OS_INJECT(op) ((void)0)
#endif

/* ---- Dirty-page detection and residency (adaptive reset, snapshots) ----
 *
 * cowmem__os_written_ranges reports, in address order, the ranges of
 * [addr, addr+len) that hold pages this process wrote since they were last
 * discarded: present or swapped pages that are neither file-backed (an
 * unwritten page of a private file mapping is the file's own page) nor the
 * shared zero page. For a slot that is exactly "the pages that no longer read
 * as image and zeros by themselves". fn is called once per range (adjacent
 * ranges may come in several calls); there is no cap on how many.
 * Linux >= 6.7: one PAGEMAP_SCAN ioctl on /proc/self/pagemap per 64 ranges
 * (the fd is reopened after fork: a pagemap fd reads the mm it was opened
 * in). Returns ENOSYS where the ioctl is missing (older kernels, posix; the
 * answer is probed once and cached), or the ioctl's errno; on an error fn
 * may already have been called for a prefix of the range. */
typedef void (*cowmem__os_range_fn)(void* arg, uint8_t* addr, size_t len);
bool cowmem__os_has_pagemap_scan(void);
int cowmem__os_written_ranges(void* addr, size_t len, cowmem__os_range_fn fn, void* arg);
/* The same, fn called once per scan with its ranges (at most 64, in
 * order): a reset that keeps them all makes one call, not one a range. */
typedef void (*cowmem__os_ranges_fn)(void* arg, const cowmem__os_range_t* ranges,
                                     size_t n);
int cowmem__os_written_batches(void* addr, size_t len, cowmem__os_ranges_fn fn,
                               void* arg);
/* The ranges of [addr, addr+len) whose pages are in the process's page
 * tables (present or swapped), whatever they hold: written pages and also
 * file pages and zero pages only read. As cowmem__os_written_ranges
 * otherwise (one PAGEMAP_SCAN per 64 ranges; ENOSYS without it). */
int cowmem__os_mapped_ranges(void* addr, size_t len, cowmem__os_range_fn fn, void* arg);
/* The page faults this process has taken, all threads, living and exited
 * (getrusage: minor + major), with the pid folded into bits 40 and up so
 * that counts read in different processes (a child after fork, whose count
 * starts again at 0) never compare equal while below 2^40. Every fault
 * that maps a page counts (a write to a page not writable, a read of an
 * absent one, a system call's copy into memory of this process), so an
 * unchanged count means no page became present or writable in between, in
 * memory kept in base pages (as cowmem__os_reserve and cowmem__os_map_anon
 * keep it: khugepaged, which collapses anonymous memory into huge pages,
 * makes absent pages present and writable with no fault). posix: ENOSYS. */
int cowmem__os_fault_count(uint64_t* out);
/* Where PAGEMAP_SCAN is missing: vec[i] (one byte per page of [addr,
 * addr+len), at most 512 pages) gets bit 0 set if page i may have been
 * written by this process. Linux reads /proc/self/pagemap (every kernel
 * since 2.6.25): present or swapped, and not a page of a file, which is
 * exact for a slot up to the zero page of an anonymous read. Where that
 * cannot be read, and on other systems, mincore's residency: a superset,
 * since for a private file mapping it is the page cache's residency, not
 * whether the process wrote the page. */
int cowmem__os_private_map(void* addr, size_t len, uint8_t* vec);

#endif
