/* cowmem: copy-on-write initial memory images for WebAssembly runtimes.
 *
 * This is the only installed header. It is the API and its documentation.
 *
 * The model (what Wasmtime calls MemoryImage / MemoryImageSlot):
 *   - an IMAGE is a linear memory's initial contents, built once, page
 *     aligned, kept in a sealed memfd (or a range of an immutable file) and
 *     shared by every instance;
 *   - a SLOT is the address range of one linear memory. Instantiating a slot
 *     with an image maps the image copy-on-write (MAP_PRIVATE) at its offset;
 *     resetting the slot discards the instance's private pages with one
 *     madvise, so the next instance of the same image needs no system call;
 *   - a POOL (below) is one reservation holding many slots.
 *
 * The header reads top-down: the core first (errors, options, statistics,
 * images, slots, pools, snapshots), which knows nothing of WebAssembly;
 * then the WebAssembly front end (modules, strip, image files), which turns
 * a module's data segments into images and stores them in files.
 *
 * Conventions for every function:
 *   - an int result is 0 on success or a negative COWMEM_E* code; output
 *     parameters are written only on success;
 *   - sizes and offsets documented as "page multiples" are multiples of
 *     cowmem_page_size() (the host page, not the 64 KiB WebAssembly page);
 *     anything else is COWMEM_EINVAL;
 *   - NULL where an object is required is COWMEM_EINVAL, never a crash;
 *   - why something failed, beyond its code, is told one way: a
 *     cowmem_diag_t the caller may pass (NULL: not wanted);
 *   - flags are enums of bits, OR-ed into an `unsigned flags` argument;
 *   - _free ends an object the caller owns; objects shared by reference
 *     (images) have _retain and _release instead.
 */
#ifndef COWMEM_H
#define COWMEM_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(COWMEM_STATIC_DEFINE)
#define COWMEM_API
#elif defined(_WIN32)
#define COWMEM_API __declspec(dllexport)
#elif defined(__GNUC__)
#define COWMEM_API __attribute__((visibility("default")))
#else
#define COWMEM_API
#endif

#define COWMEM_VERSION_MAJOR 0
#define COWMEM_VERSION_MINOR 2
#define COWMEM_VERSION_PATCH 0

/* ------------------------------------------------------------------------
 * Errors
 *
 * System errors are the negated errno value of the platform (libuv's
 * convention), so COWMEM_ENOMEM == -ENOMEM on Linux. cowmem's own conditions
 * use values below -4000 that no errno takes.
 * ---------------------------------------------------------------------- */

#define COWMEM__SYS_ERRORS(XX)                                                 \
  XX(EPERM, -EPERM, "operation not permitted")                                 \
  XX(ENOENT, -ENOENT, "no such file or directory")                             \
  XX(EIO, -EIO, "i/o error")                                                   \
  XX(EBADF, -EBADF, "bad file descriptor")                                     \
  XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                      \
  XX(ENOMEM, -ENOMEM, "out of memory")                                         \
  XX(EACCES, -EACCES, "permission denied")                                     \
  XX(EBUSY, -EBUSY, "resource busy")                                           \
  XX(EINVAL, -EINVAL, "invalid argument")                                      \
  XX(ENFILE, -ENFILE, "file table overflow")                                   \
  XX(EMFILE, -EMFILE, "too many open files")                                   \
  XX(EFBIG, -EFBIG, "file too large")                                          \
  XX(ENOSPC, -ENOSPC, "no space left on device")                               \
  XX(ERANGE, -ERANGE, "result out of range")                                   \
  XX(ENOSYS, -ENOSYS, "function not implemented")                              \
  XX(EOVERFLOW, -EOVERFLOW, "value too large for defined data type")           \
  XX(ETIMEDOUT, -ETIMEDOUT, "timed out")

#define COWMEM__OWN_ERRORS(XX)                                                 \
  XX(ESTATE, -4001, "operation not valid in the object's current state")       \
  XX(EBROKEN, -4002, "slot is broken after a failed system call; release it")  \
  XX(EEXHAUSTED, -4003, "no free slot in the pool")                            \
  XX(EMAPLIMIT, -4004,                                                         \
     "the process has as many memory mappings as vm.max_map_count allows "     \
     "(raise it: sysctl -w vm.max_map_count=N; or use fewer slots)")           \
  XX(EMALFORMED, -4010, "malformed module")                                    \
  XX(EINVALID, -4011, "invalid module")                                        \
  XX(EUNSUPPORTED, -4012, "unsupported module feature")                        \
  XX(EUNLINKABLE, -4013, "unlinkable module")                                  \
  XX(EOOB, -4014, "out of bounds memory access")                               \
  XX(EBADIMG, -4020, "corrupt image file")                                     \
  XX(EVERSION, -4021, "unsupported image file version")                        \
  XX(EPAGESIZE, -4022, "image file was built for another page size")           \
  XX(EMISMATCH, -4023, "image file does not belong to this module")          \
  XX(ECHANGED, -4024,                                                          \
     "the file an image maps was truncated or rewritten after it was opened")

#define COWMEM_ERRORS(XX) COWMEM__SYS_ERRORS(XX) COWMEM__OWN_ERRORS(XX)

typedef enum {
#define COWMEM__ERR_ENUM(name, value, msg) COWMEM_##name = (value),
  COWMEM_ERRORS(COWMEM__ERR_ENUM)
#undef COWMEM__ERR_ENUM
  COWMEM_OK = 0
} cowmem_errno_t;

/* A message for an error code; never NULL. Unknown negative values that are
 * negated errno values get the system's message. Thread-safe. */
COWMEM_API const char* cowmem_strerror(int err);
/* The code's name without the prefix ("EINVAL", "ESTATE"); "UNKNOWN" for
 * values not in the table. Thread-safe. */
COWMEM_API const char* cowmem_err_name(int err);

/* Why a memory has no image (see the front end). Here because a
 * cowmem_diag_t carries it. */
typedef enum {
  COWMEM_NOIMAGE_NONE = 0,          /* it has one (or is all zeros) */
  COWMEM_NOIMAGE_IMPORTED = 1,      /* the memory is imported */
  COWMEM_NOIMAGE_GLOBAL_OFFSET = 2, /* a segment offset is an import */
  COWMEM_NOIMAGE_OUT_OF_BOUNDS = 3, /* a segment ends beyond min_pages:
                                       instantiation traps */
  COWMEM_NOIMAGE_TOO_SPARSE = 4,    /* span > COWMEM_MODULE_IMAGE_SPAN_MAX */
  COWMEM_NOIMAGE_NOT_BUILT = 5      /* parsed with COWMEM_MODULE_NO_IMAGES */
} cowmem_noimage_t;

/* Why: filled by the functions that take one, on failure (code != 0) and,
 * for the image queries, when there is no image (noimage != NONE). It is
 * zeroed when there is nothing to tell. offset is a byte offset in the
 * input the function read (a module's binary, an image file), where that
 * means something, else 0. reason is a sentence: the spec's wording where
 * the spec test suite has one ("unexpected end", "unknown memory 1", ...),
 * the field and rule for a bad configuration ("max_slots: must be at least
 * 1"), the segment at fault for a memory without an image. */
typedef struct cowmem_diag_s {
  int code;                 /* the error returned (0: none) */
  cowmem_noimage_t noimage; /* image queries: why there is none */
  uint64_t offset;
  char reason[128];
} cowmem_diag_t;

/* ------------------------------------------------------------------------
 * Options (mimalloc's model): each has a default, read once from the
 * environment variable COWMEM_<NAME> on first use, and may be set by the
 * program. Setting an option affects objects created afterwards.
 * Thread-safe.
 * ---------------------------------------------------------------------- */

#define COWMEM_OPTIONS(XX)                                                     \
  /* name,         default, what it does */                                    \
  XX(FORCE_COPY, 0,                                                            \
     "keep images in ordinary memory and copy them at instantiation "          \
     "(the portable fallback), even where memfd works")                        \
  XX(VERBOSE, 0, "print a line on stderr when a fallback is taken")            \
  XX(HOLE_PAGES, 16,                                                           \
     "zero runs of at least this many pages inside an image are left "         \
     "unmapped in a slot (anonymous zeros) instead of mapped from the memfd")  \
  XX(MAX_MAPS, 8,                                                              \
     "the most mappings one image takes in a slot; beyond it, the smallest "   \
     "holes are mapped from the memfd too (each mapping costs a VMA per slot)") \
  XX(NO_PAGEMAP_SCAN, 0,                                                       \
     "do not use PAGEMAP_SCAN to find written pages (the fallback: the "       \
     "adaptive reset learns by comparing contents; for tests and benchmarks)") \
  XX(NO_FAULT_COUNT, 0,                                                        \
     "do not use the process's page-fault count to reset a slot whose "        \
     "instance took no fault by copying back only its hot pages (the "         \
     "adaptive reset's quiet way; for tests and benchmarks)")

typedef enum {
#define COWMEM__OPT_ENUM(name, def, doc) COWMEM_OPTION_##name,
  COWMEM_OPTIONS(COWMEM__OPT_ENUM)
#undef COWMEM__OPT_ENUM
  COWMEM_OPTION_COUNT_
} cowmem_option_t;

COWMEM_API long cowmem_option_get(cowmem_option_t opt);
COWMEM_API void cowmem_option_set(cowmem_option_t opt, long value);
COWMEM_API const char* cowmem_option_name(cowmem_option_t opt);

/* ------------------------------------------------------------------------
 * Statistics: process-wide counters of the system calls cowmem makes, by
 * kind. Reading them is how tests and benchmarks show that instantiating the
 * same image again makes no system call. Counters are relaxed atomics:
 * thread-safe, monotonic, approximate only while other threads run.
 * ---------------------------------------------------------------------- */

#define COWMEM_SYSCALLS(XX)                                                    \
  XX(mmap) XX(munmap) XX(mprotect) XX(madvise) XX(process_madvise)             \
  XX(memfd_create) XX(write) XX(read) XX(ftruncate) XX(fcntl) XX(close)        \
  XX(fstat) XX(other)

#define COWMEM_STATS_VERSION 1
typedef struct cowmem_stats_s {
  uint32_t version; /* COWMEM_STATS_VERSION */
#define COWMEM__STAT_FIELD(name) uint64_t sys_##name;
  COWMEM_SYSCALLS(COWMEM__STAT_FIELD)
#undef COWMEM__STAT_FIELD
  uint64_t syscalls_total;
  uint64_t images_live;    /* images not yet freed */
  uint64_t image_copies;   /* instantiations that copied (fallback) */
} cowmem_stats_t;

/* Fill *out (its version field is set by the call). */
COWMEM_API void cowmem_stats_get(cowmem_stats_t* out);
/* Print every counter through out(line, arg), one line at a time; with
 * out == NULL, to stderr. */
COWMEM_API void cowmem_stats_print(void (*out)(const char* line, void* arg),
                                   void* arg);

/* The host page size: the unit of every alignment rule below. */
COWMEM_API size_t cowmem_page_size(void);

/* ------------------------------------------------------------------------
 * Images
 *
 * An image is [mem_offset, mem_offset + len) of a linear memory's initial
 * contents; everything outside it is zero. mem_offset and len are page
 * multiples; leading and trailing zero pages are never part of an image (an
 * all-zero image has len 0 and maps nothing).
 *
 * Images are reference-counted. cowmem_image_retain adds a reference,
 * cowmem_image_release drops one; the last drop closes the memfd. A slot that
 * holds an image holds a reference, so the caller may free its own at once.
 *
 * Thread safety: every image function may be called from any thread; an
 * image is immutable once created. With images in use by slots and pools:
 *   - A caller may call any function on an image, or pass it to a slot or a
 *     pool, only while it holds a reference of its own to it.
 *   - cowmem_image_release may run at any time, on any thread, while slots in
 *     use, idle pool slots or a BATCHED reset queue still hold the image: each
 *     holds its own reference, and the image lives until the last one goes.
 *   - Replacing a module's image under load (take a reference under the
 *     caller's own lock before each acquire, swap the pointer, free the old
 *     one) is safe beside acquires, releases, cowmem_pool_trim,
 *     cowmem_pool_flush and the metrics calls on any threads. Instances
 *     already running keep the old image; idle slots that still map it are
 *     decommitted at the pool's next acquire or release (an orphan, see
 *     Pools), so its memory goes without a trim.
 * ---------------------------------------------------------------------- */

typedef struct cowmem_image_s cowmem_image_t;

typedef enum {
  COWMEM_IMAGE_MEMFD = 1, /* sealed memfd, mapped copy-on-write */
  COWMEM_IMAGE_FILE = 2,  /* a range of a caller's file, mapped in place */
  COWMEM_IMAGE_COPY = 3   /* ordinary memory, copied at instantiation */
} cowmem_image_kind_t;

typedef struct cowmem_image_info_s {
  cowmem_image_kind_t kind;
  uint64_t mem_offset;    /* where the image starts in linear memory */
  uint64_t len;           /* bytes covered, a page multiple (0: empty).
                             mem_offset + len is at most 2^64: an image in
                             the last page of a 2^48-page memory64 memory
                             ends there, so compare len with size -
                             mem_offset rather than forming the sum */
  uint64_t source_offset; /* offset of the image in its fd (0 for memfd) */
  uint64_t data_pages;    /* pages holding non-zero bytes */
  int fd;                 /* the backing fd, -1 for COPY; owned by the image */
} cowmem_image_info_t;

/* Build an image from the bytes that a memory holds at [mem_offset,
 * mem_offset + len). Neither needs to be aligned: the image is widened to
 * whole pages with zeros. Only pages with a non-zero byte are written to the
 * memfd; runs of zero pages inside the image stay holes of the file
 * (ftruncate), so they are never resident. The memfd is sealed against
 * writes, growth and shrinking before the call returns.
 * Where memfd_create or sealing fails with ENOSYS, EMFILE, ENFILE, ENOMEM or
 * EPERM, or COWMEM_FORCE_COPY is set, the image is COWMEM_IMAGE_COPY instead.
 * Errors: EINVAL (NULL out, bytes NULL with len > 0, range overflow), ENOMEM,
 * EIO and the other errors of write/ftruncate/fcntl. On error nothing leaks. */
COWMEM_API int cowmem_image_new_from_bytes(const void* bytes, size_t len,
                                           uint64_t mem_offset,
                                           cowmem_image_t** out);

/* Flags for cowmem_image_new_from_file. */
typedef enum {
  COWMEM_IMAGE_FILE_IMMUTABLE = 0x1 /* the file never changes (see below) */
} cowmem_image_flag_t;

/* Build an image from the range [file_offset, file_offset + len) of the open
 * file fd, placed at mem_offset in linear memory. file_offset and mem_offset
 * are page multiples; len is a page multiple, or the range ends exactly at the
 * file's end (the rest of the last page reads as zeros); the range lies inside
 * the file. The image dups fd: the caller keeps and closes its own.
 *
 * Changing the file after the image is opened must not change any instance's
 * memory (a private file mapping shows later writes to the file on pages the
 * instance has not written). So the image maps the file directly only when
 * that cannot happen: the file is a memfd sealed with F_SEAL_WRITE, or has
 * the immutable attribute (chattr +i), or the caller passes COWMEM_IMAGE_FILE_IMMUTABLE and so promises the file is
 * never written or truncated while the image lives (a read-only installed
 * file). Otherwise the range is copied into a new sealed memfd (or ordinary
 * memory in the fallback), which costs the page-cache sharing between
 * processes that a direct mapping gives. The copy reads only the file's
 * data extents (SEEK_DATA/SEEK_HOLE), through a 1 MiB buffer: holes stay
 * holes and are never read or allocated, so a sparse file that claims
 * gigabytes costs what it holds.
 * Errors: EINVAL (alignment, range outside the file, len 0), EBADF, and the
 * errors of fstat/dup/read. On error nothing leaks. */
COWMEM_API int cowmem_image_new_from_file(int fd, uint64_t file_offset,
                                          uint64_t len, uint64_t mem_offset,
                                          unsigned flags,
                                          cowmem_image_t** out);

/* Is the file a FILE image maps still the one it was made from? 0 if so,
 * and always for MEMFD and COPY images; COWMEM_ECHANGED if it was truncated
 * or written in place since (its size or mtime differ: see Image files for
 * the rule). Once changed, an image is never instantiated again: every
 * cowmem_slot_instantiate and cowmem_pool_acquire with it fails with
 * ECHANGED (nothing mapped, the slot EMPTY), and pools decommit their idle
 * slots that hold it, as for an orphan. Instances already running keep
 * their mapping: pages they have not written read the file as it is now,
 * and past a truncated end fault with SIGBUS (the kernel offers no way to
 * keep a private file mapping's unwritten pages). The same check (one
 * fstat) runs whenever a FILE image is mapped into a slot, and when a slot
 * that still maps it (READY with the same image) starts another instance
 * at least 1 ms after the image's file was last compared (by the coarse
 * clock, CLOCK_MONOTONIC_COARSE). So every instance that starts 1 ms plus
 * one tick of that clock (1-4 ms on Linux) or more after a change sees
 * ECHANGED instead; one started sooner in a warm slot is exposed as the
 * running instances are (call cowmem_image_check first to rule that out).
 * Restoring resets (KEEP_RESIDENT,
 * ADAPTIVE) never read such a file through a mapping: the pages a reset
 * must store into may still map it, so they are read with pread, and a
 * file truncated under them reads short: the reset fails with ECHANGED
 * (cowmem_pool_release returns it, the slot is dropped EMPTY) instead of
 * the host faulting with SIGBUS. Pages an ADAPTIVE reset found written by
 * its scan are the instance's own copies; those it copies from the
 * image's cache, an anonymous copy of the pages resets have read (at most
 * the image's data, once per process), read from the file once a page,
 * so such a reset makes no pread.
 * How it stays cheap: the check costs nothing where the kernel keeps the
 * file as it is, which is probed once when the image is made: a memfd
 * sealed against writes and shrinking (F_SEAL_WRITE | F_SEAL_SHRINK), or
 * a file with the immutable attribute (chattr +i). There an instantiate of
 * the same image makes no system call at all. Any other file, an opened
 * .cwimg included, costs one fstat per mapping and at most one a
 * millisecond per image for such instantiates (0.15-0.2 us each: a tenth
 * of a warm slot's cycle when it ran at every instantiate).
 * Errors: EINVAL (NULL), ECHANGED, and the errors of fstat. Thread-safe. */
COWMEM_API int cowmem_image_check(const cowmem_image_t* image);

/* Add a reference; returns image. NULL is ignored. */
COWMEM_API cowmem_image_t* cowmem_image_retain(cowmem_image_t* image);
/* Drop one reference; the last one frees the image. NULL is ignored. */
COWMEM_API void cowmem_image_release(cowmem_image_t* image);
/* Errors: EINVAL for NULL arguments. */
COWMEM_API int cowmem_image_info(const cowmem_image_t* image,
                                 cowmem_image_info_t* out);
/* Copy the image's bytes at [offset, offset + len) of linear memory into
 * dst (zeros outside the image). For tests and tools; slow. Reads into dst
 * directly (allocates nothing): on error dst holds zeros (EINVAL: dst is
 * unchanged). Errors: EINVAL, and the errors of fstat and pread. */
COWMEM_API int cowmem_image_read(const cowmem_image_t* image, uint64_t offset,
                                 void* dst, size_t len);

/* ------------------------------------------------------------------------
 * Slots
 *
 * A slot is one linear memory's address range of `reserve` bytes: the
 * largest size the memory may reach plus any guard region. Bytes
 * [0, accessible) are read-write; every byte above is PROT_NONE, so an access
 * there faults (SIGSEGV), which is what lets a runtime elide bounds checks.
 *
 * States:
 *   EMPTY  nothing accessible, no image (a new or released slot);
 *   READY  clean: [0, size) holds exactly image and zeros; an instantiate
 *          with the same image and size needs no system call;
 *   DIRTY  an instance runs in it (after instantiate, before reset);
 *   BROKEN a system call failed half-way; only release and free are valid.
 *
 * A slot is not thread-safe: one thread at a time may call functions on it
 * (different slots may be used from different threads at once).
 * ---------------------------------------------------------------------- */

typedef struct cowmem_slot_s cowmem_slot_t;

typedef enum {
  COWMEM_SLOT_EMPTY = 0,
  COWMEM_SLOT_READY = 1,
  COWMEM_SLOT_DIRTY = 2,
  COWMEM_SLOT_BROKEN = 3
} cowmem_slot_state_t;

/* Reserve `reserve` bytes (a page multiple > 0) of inaccessible address space
 * (PROT_NONE, MAP_NORESERVE) and make a slot of it. cowmem_slot_free unmaps
 * it. The guard is the part above the accessible size: every address in
 * [base + accessible, base + reserve) faults. For a wasm32 runtime without
 * bounds checks reserve COWMEM_WASM32_SLOT_RESERVE + COWMEM_WASM32_GUARD_SIZE
 * (8 GiB: base + u32 + u32 stays inside). Nothing is reserved below base.
 * Errors: EINVAL, ENOMEM (address space or rlimit), EMAPLIMIT. */
COWMEM_API int cowmem_slot_new(size_t reserve, cowmem_slot_t** out);

/* Make a slot of a range the caller reserved: base page-aligned, reserve a
 * page multiple, the range mapped and owned by the caller. cowmem maps over
 * parts of it but never unmaps any of it: release and free leave it
 * anonymous PROT_NONE memory. Errors: EINVAL, ENOMEM. */
COWMEM_API int cowmem_slot_new_at(void* base, size_t reserve,
                                  cowmem_slot_t** out);

/* Release the slot (see cowmem_slot_decommit), then free it; a slot made by
 * cowmem_slot_new is unmapped. Pointers into the slot become invalid. NULL is
 * ignored. Returns 0 or the release's error (the slot is freed anyway). */
COWMEM_API int cowmem_slot_free(cowmem_slot_t* slot);

/* Start an instance: afterwards [0, initial_size) is read-write and holds
 * the image at its offset and zeros elsewhere; [initial_size, reserve) is
 * inaccessible; the slot is DIRTY. image may be NULL (all zeros).
 * The same image and size as the READY slot holds: no system call (an
 * fstat a millisecond at most for a FILE image whose file can change: see
 * cowmem_image_check). Another
 * size: one mprotect. Another image: the old image's range is replaced and the
 * new one mapped (the slot keeps a reference to it). A COPY image is copied.
 * Errors: ESTATE (slot DIRTY), EBROKEN, EINVAL (initial_size not a page
 * multiple, larger than reserve, or smaller than the image's end), ECHANGED
 * (a FILE image whose file changed: see cowmem_image_check), EMAPLIMIT (the
 * process is at vm.max_map_count), and the errors of mmap/mprotect. On a
 * system call failure the slot is released to EMPTY (or left BROKEN if even
 * that fails). */
COWMEM_API int cowmem_slot_instantiate(cowmem_slot_t* slot,
                                       size_t initial_size,
                                       cowmem_image_t* image);

/* Make [0, new_size) accessible: one mprotect of the new part, which reads as
 * zeros. new_size is a page multiple, >= the accessible size, <= reserve.
 * Errors: ESTATE (not DIRTY), EINVAL (alignment, shrink), ERANGE (beyond the
 * reserve), and mprotect's errors (the slot stays DIRTY at its old size). */
COWMEM_API int cowmem_slot_grow(cowmem_slot_t* slot, size_t new_size);

/* End an instance: discard its writes with madvise(MADV_DONTNEED) over the
 * accessible range (restoring image and zeros), make everything above the
 * initial size inaccessible again. The slot becomes READY for the same image
 * and initial size. Errors: ESTATE (not DIRTY), EBROKEN, and the errors of
 * madvise/mprotect; on those the slot is released to EMPTY (or BROKEN). */
COWMEM_API int cowmem_slot_reset(cowmem_slot_t* slot);

/* Drop the instance and the image: map fresh anonymous PROT_NONE memory over
 * the whole slot (never unmapping a hole in the reservation) and drop the
 * image reference. Valid in every state; the slot becomes EMPTY. Errors: the
 * errors of mmap, after which the slot is BROKEN (try again). */
COWMEM_API int cowmem_slot_decommit(cowmem_slot_t* slot);

COWMEM_API cowmem_slot_state_t cowmem_slot_state(const cowmem_slot_t* slot);
/* The image the slot holds (borrowed, valid while the slot holds it). */
COWMEM_API cowmem_image_t* cowmem_slot_image(const cowmem_slot_t* slot);
/* Bytes [0, n) accessible now. */
COWMEM_API size_t cowmem_slot_accessible(const cowmem_slot_t* slot);
COWMEM_API size_t cowmem_slot_reserve(const cowmem_slot_t* slot);
/* The slot's first byte; stable for the slot's life. */
COWMEM_API void* cowmem_slot_base(const cowmem_slot_t* slot);

/* ------------------------------------------------------------------------
 * Pools
 *
 * A pool is one reservation (PROT_NONE, no commit charge) holding
 * max_slots slots of slot_reserve bytes, each followed by guard_size bytes
 * that stay inaccessible, with a guard before the first slot:
 *
 *   [guard][slot 0][guard][slot 1][guard] ... [slot n-1][guard]
 *
 * cowmem_pool_acquire hands out a slot instantiated with an image; the
 * caller uses it with the slot functions above (base, size, grow) and gives
 * it back with cowmem_pool_release, which resets it with the pool's reset
 * strategy. Choice of slot, in order: an idle slot that last held the same
 * image (nothing to map: no system call), a never-used slot, a decommitted
 * one, and last the least recently used idle slot of another image (slots
 * that two threads released within one tick of the coarse monotonic clock
 * count as equally old).
 *
 * Idle slots keep their image mapped ("warm") up to max_warm_slots; past it
 * a released slot is decommitted (zero RSS, "cold"). An image the caller has
 * freed while pool slots still map it is an orphan: the pool decommits its
 * idle slots on its next acquire or release, and a slot still running it
 * at the next call after the slot's release, so the image's memory goes.
 *
 * Thread safety: acquire, release, flush, trim and metrics may be called
 * from any number of threads at once. Idle slots are kept in shards (by
 * thread and by image) with a lock each, so threads rarely meet; a thread
 * still finds an idle slot of its image that another thread released.
 * cowmem_pool_free must not race with anything else on the pool. A slot
 * handed out is the caller's alone until released.
 * ---------------------------------------------------------------------- */

typedef struct cowmem_pool_s cowmem_pool_t;

/* How a released slot is reset. */
typedef enum {
  /* madvise(MADV_DONTNEED) over the accessible range: pages go back to the
   * image and zeros; the next instance faults in what it touches. */
  COWMEM_RESET_MADVISE = 0,
  /* The first keep_resident bytes are restored by copying the image (and
   * zeroing elsewhere) instead, so they stay resident and the next instance
   * takes no page fault there; the rest is madvised. */
  COWMEM_RESET_KEEP_RESIDENT = 1,
  /* Released slots wait in a queue; a flush discards batch_size of them in
   * one process_madvise(MADV_DONTNEED) (Linux >= 6.13; one madvise per slot
   * elsewhere) before they can be acquired again. */
  COWMEM_RESET_BATCHED = 2,
  /* Learns, per image, which pages instances write (the hot set, at most
   * resident_budget bytes) and keeps those resident, restoring them by copy;
   * everything else the instance wrote is decommitted. A reset either copies
   * the hot set back and madvises the rest in as few calls as its ranges
   * allow (the cheapest way alone, and the only one without PAGEMAP_SCAN),
   * or, with PAGEMAP_SCAN (Linux >= 6.7), asks the kernel which pages were
   * written, so a reset that only touched hot pages makes no madvise at all
   * and pages instances only read stay mapped: when the hot set has many
   * runs for the page tables it spans (both ways walk every table holding
   * a mapped page, the scan at twice the cost), when instances read image
   * pages or zeros (a madvise of them would make the next instance fault
   * each in again), and while another thread of the process is in such a
   * madvise (two at once make the kernel flush every CPU's TLBs).
   * A blind reset (the first way) copies the hot pages back at release and,
   * where process_madvise exists, queues its madvise with other slots': one
   * call discards the rest of up to 8 slots (at most half of max_slots and
   * max_warm_slots, fewer while the threads' queues leave acquires no idle
   * slot, half as many again while another thread's such call is under
   * way; pools of fewer than 4 slots queue nothing), made when the queue
   * is full, by cowmem_pool_flush, or by an acquire that finds no idle slot
   * of its image (before it would map the image into another).
   * A quiet reset (Linux): when the process took no page fault since the
   * slot's last reset (getrusage, every thread), the hot set is the same and
   * the memory did not grow, nothing but a hot page can have changed, and
   * copying the hot pages back is the whole reset. Where resets queue, the
   * hot pages are copied at release and the slot waits in the queue, whose
   * flush reads the count once for all its slots (and settles any whose
   * count moved); elsewhere tried where it is the cheaper way. Never with
   * COWMEM_OPTION_NO_FAULT_COUNT. (Pool and slot
   * memory is kept in base pages, MADV_NOHUGEPAGE: khugepaged would make
   * pages writable without a fault.)
   * The hot set is learned by comparing contents on sampled resets. Learning
   * samples one reset in sample_every (and sooner while instances write pages
   * outside the hot set; up to 4 times less often while they write exactly
   * the hot set). A pool learns for up to 1024 live images at once (what it
   * learned about an image is dropped once the image is freed and no slot
   * holds it; past 1024 live ones, later images get plain madvise resets) and
   * keeps only pages of a memory's first 1 GiB. */
  COWMEM_RESET_ADAPTIVE = 3,
  COWMEM_RESET_COUNT_
} cowmem_reset_strategy_t;

/* Flags of cowmem_pool_config_t.flags. */
typedef enum {
  /* Refuse (COWMEM_EMAPLIMIT) a pool whose slots, all in use, could need
   * more mappings than vm.max_map_count leaves the process; without it the
   * pool is made and cowmem_pool_new says so in diag->reason (code 0). */
  COWMEM_POOL_STRICT_LIMITS = 0x1
} cowmem_pool_flag_t;

#define COWMEM_POOL_CONFIG_VERSION 2
typedef struct cowmem_pool_config_s {
  uint32_t version;       /* set by cowmem_pool_config_init */
  size_t max_slots;       /* default 1000 */
  size_t slot_reserve;    /* largest memory, default 4 GiB (wasm32) */
  size_t guard_size;      /* before the first slot and after each one,
                             default 4 GiB (see Guards below) */
  size_t max_warm_slots;  /* idle slots kept mapped, default SIZE_MAX (all) */
  cowmem_reset_strategy_t reset; /* default COWMEM_RESET_MADVISE */
  size_t keep_resident;   /* KEEP_RESIDENT: bytes restored by copy, default 64 KiB */
  size_t batch_size;      /* BATCHED: slots per flush, default 32 */
  size_t resident_budget; /* ADAPTIVE: most bytes of a slot kept resident
                             and restored by copy (a page multiple, at most
                             slot_reserve), default 1 MiB */
  size_t sample_every;    /* ADAPTIVE: learn from one reset in this many
                             (>= 1; up to 4x as many while the workload
                             holds still), default 64 */
  unsigned flags;         /* cowmem_pool_flag_t, default 0 */
} cowmem_pool_config_t;

/* The wasm32 layout: 65536 pages of 64 KiB, and the most a 32-bit address
 * plus a 32-bit offset can add to that (0xffffffff + 0xffffffff + 1 bytes,
 * rounded to 8 GiB past the memory's base). */
#define COWMEM_WASM32_SLOT_RESERVE ((size_t)4 << 30)
#define COWMEM_WASM32_GUARD_SIZE ((size_t)4 << 30)

/* Guards. While a pool's slot at `base` is handed out with n bytes
 * accessible, every address in [base + n, base + slot_reserve + guard_size)
 * and in [base - guard_size, base) faults (SIGSEGV): it is PROT_NONE, or
 * another slot's PROT_NONE part, never another slot's accessible bytes.
 *
 * With the defaults (the same as cowmem_pool_config_init_wasm32) that covers
 * every address base + index + offset for a 32-bit index and a 32-bit
 * offset, up to base + 0x1fffffffe: a wasm32 runtime with 64 KiB pages may
 * leave out bounds checks and let the fault stand for the trap, as wasm2c
 * and WAMR do with their guard pages (both integrations ask for this
 * layout). With a smaller guard_size or slot_reserve the runtime must check
 * every access whose address can go past base + slot_reserve + guard_size - 1:
 * the next slot starts there. memory64 memories are covered by no guard:
 * their runtime checks bounds (a 64-bit index reaches anywhere).
 *
 * Address space: each slot costs slot_reserve + guard_size of it, the
 * defaults 8 GiB; 1000 slots reserve 8 TiB + 4 GiB of the 128 TiB a 64-bit
 * Linux process has. The reservation is PROT_NONE with MAP_NORESERVE: no
 * memory and no commit charge until a slot is instantiated. When the kernel
 * refuses it (RLIMIT_AS, or not enough address space left), cowmem_pool_new
 * fails with COWMEM_ENOMEM and diag->reason names the reservation. */

/* Fill *cfg with the defaults (noted beside each field). Fields may be
 * overridden by COWMEM_POOL_* environment variables when the program reads
 * them itself; the library reads none here. */
COWMEM_API void cowmem_pool_config_init(cowmem_pool_config_t* cfg);

/* Fill *cfg with the defaults and the wasm32 layout: slot_reserve
 * COWMEM_WASM32_SLOT_RESERVE, guard_size COWMEM_WASM32_GUARD_SIZE, so that a
 * wasm32 runtime without bounds checks never reaches another slot's bytes
 * (see Guards). Ask for this preset to keep that guarantee whatever the
 * defaults become; today they are the same. */
COWMEM_API void cowmem_pool_config_init_wasm32(cowmem_pool_config_t* cfg);

/* Create a pool. slot_reserve and guard_size are page multiples, slot_reserve > 0,
 * max_slots > 0, and max_slots x (slot_reserve + guard_size) + guard_size must
 * fit the address space the process may reserve.
 *
 * Mappings: each slot in use adds up to 2 x COWMEM_MAX_MAPS + 2 mappings
 * (VMAs) to the process (the image's map ranges, the holes between them,
 * the zeros before and after, and the split of the reservation; 4 for an
 * image from a .cwimg, 2 for zeros), and Linux refuses a process more than
 * vm.max_map_count of them (65,530 by default). When the mappings the
 * process has now plus max_slots times that could exceed the limit, the
 * pool is still made, diag->reason says so with the figures (diag->code
 * stays 0), and a full pool may fail acquires with EMAPLIMIT; with
 * COWMEM_POOL_STRICT_LIMITS it is refused instead. The metrics report the
 * limit and the mappings in use.
 * Errors: EINVAL (a field is wrong: diag->reason names it and says why),
 * ENOMEM (the bookkeeping or the reservation failed: diag->reason says
 * which), EMAPLIMIT (strict, see above). */
COWMEM_API int cowmem_pool_new(const cowmem_pool_config_t* cfg,
                               cowmem_pool_t** out, cowmem_diag_t* diag);

/* Free the pool and its reservation. Errors: EBUSY if a slot is still
 * acquired (the pool is left as it was). NULL is ignored. */
COWMEM_API int cowmem_pool_free(cowmem_pool_t* pool);

/* Acquire a slot instantiated with image (NULL: zeros) at initial_size;
 * cowmem_slot_grow on it stops at max_size. Both are page multiples,
 * initial_size <= max_size <= slot_reserve, and the image ends at or below
 * initial_size. The slot is DIRTY, the caller's until cowmem_pool_release.
 * Do not cowmem_slot_free it (that returns EINVAL).
 * Errors: EINVAL, EEXHAUSTED (every slot is acquired or, with BATCHED,
 * nothing could be flushed), and the errors of cowmem_slot_instantiate
 * (ECHANGED, EMAPLIMIT, ...; the slot then goes back to the pool,
 * decommitted).
 * EEXHAUSTED is never a transient miss: it is returned only when no slot
 * is free and none is being released or moved (swept, trimmed, flushed)
 * by another thread; an acquire that meets such a slot in flight waits
 * for it. */
COWMEM_API int cowmem_pool_acquire(cowmem_pool_t* pool, cowmem_image_t* image,
                                   size_t initial_size, size_t max_size,
                                   cowmem_slot_t** out);
/* As cowmem_pool_acquire, but when the pool is exhausted wait until a slot
 * is released, at most timeout_ms milliseconds (< 0: no limit).
 * Errors: as cowmem_pool_acquire, and ETIMEDOUT. */
COWMEM_API int cowmem_pool_acquire_wait(cowmem_pool_t* pool,
                                        cowmem_image_t* image,
                                        size_t initial_size, size_t max_size,
                                        long timeout_ms, cowmem_slot_t** out);

/* Give the slot back: reset it (the pool's strategy) and keep it idle, or
 * decommit it past max_warm_slots. Whatever the instance did, the next one
 * sees exactly its image and zeros. Errors: EINVAL (not a slot of this
 * pool), ESTATE (not acquired: a double release), and the errors of the
 * reset; the slot is then decommitted and back in the pool all the same.
 * The slot pointer is invalid for the caller afterwards. */
COWMEM_API int cowmem_pool_release(cowmem_pool_t* pool, cowmem_slot_t* slot);

/* BATCHED: discard every queued slot now. Other strategies: no-op. */
COWMEM_API int cowmem_pool_flush(cowmem_pool_t* pool);
/* Decommit every idle slot (warm ones included): RSS of idle slots to 0. */
COWMEM_API int cowmem_pool_trim(cowmem_pool_t* pool);

/* The slot of this pool whose reservation (its base up to the end of the
 * guard after it) holds addr, if that slot is handed out; NULL otherwise
 * (outside the pool, or the slot is idle). For runtimes whose free and grow
 * hooks get only the memory's address: no table of their own is needed.
 * O(1). Thread-safe; a slot another thread is acquiring or releasing at that
 * moment may be reported either way. */
COWMEM_API cowmem_slot_t* cowmem_pool_slot_of(cowmem_pool_t* pool, const void* addr);
/* Whether addr lies in the pool's reservation (any slot, idle or handed
 * out, or any guard). With cowmem_pool_slot_of, a hook that gets only an
 * address tells "not ours" (a memory of another allocator) from "ours but
 * not a live memory's base" (a double free, a stale or interior pointer),
 * which must not reach another allocator's free. O(1), no system call.
 * Thread-safe. false for a NULL pool. */
COWMEM_API bool cowmem_pool_contains(const cowmem_pool_t* pool, const void* addr);

#define COWMEM_POOL_METRICS_VERSION 2
typedef struct cowmem_pool_metrics_s {
  uint32_t version;
  uint64_t slots;            /* max_slots */
  uint64_t in_use;           /* acquired now */
  uint64_t warm;             /* idle with an image (or zeros) mapped */
  uint64_t cold;             /* idle and decommitted */
  uint64_t never_used;       /* not touched yet */
  uint64_t pending;          /* released, waiting for a flush (BATCHED,
                                ADAPTIVE's blind and quiet resets) */
  uint64_t acquires;
  uint64_t affinity_hits;    /* idle slot of the same image reused */
  uint64_t affinity_misses;  /* anything else */
  uint64_t steals;           /* misses served by another image's idle slot */
  uint64_t exhausted;        /* acquires that found no slot */
  uint64_t releases;
  uint64_t resets[COWMEM_RESET_COUNT_]; /* by strategy */
  uint64_t decommits;        /* slots decommitted (warm cap, orphans, trim) */
  uint64_t flushes;          /* flushes of that queue (of each queue) that
                                made a discard call (one each; a flush of
                                quiet resets only makes none) */
  uint64_t failures;         /* failed system calls under acquire/release */
  uint64_t idle_resident_bytes; /* resident bytes in idle slots' accessible
                                   ranges (mincore; shared image pages too) */
  /* ADAPTIVE, summed over images (see cowmem_pool_image_metrics): */
  uint64_t copied_pages;     /* pages restored by copy (kept resident) */
  uint64_t discarded_pages;  /* pages decommitted by resets */
  /* Mappings (VMAs), see cowmem_pool_new. Version 2. */
  uint64_t map_limit;        /* vm.max_map_count now (0: unknown) */
  uint64_t maps_process;     /* mappings the process has now (0: unknown) */
  uint64_t maps_in_use;      /* of those, the pool's: its reservation and
                                what its slots add (in use and idle) */
  uint64_t maps_per_slot_max; /* the most one slot can add */
  uint64_t maps_full;        /* the pool's with every slot at that most */
} cowmem_pool_metrics_t;

/* Fill *out. Counters are read without stopping other threads: each is
 * exact, their sum only approximately consistent. idle_resident_bytes costs
 * a mincore per idle slot, maps_process a read of /proc/self/maps (about
 * 1 us per 100 mappings). Errors: EINVAL. */
COWMEM_API int cowmem_pool_metrics(cowmem_pool_t* pool,
                                   cowmem_pool_metrics_t* out);

/* What the ADAPTIVE reset learned about one image in this pool. */
#define COWMEM_POOL_IMAGE_METRICS_VERSION 2
typedef struct cowmem_pool_image_metrics_s {
  uint32_t version;
  uint64_t resets;           /* ADAPTIVE resets of slots holding the image */
  uint64_t hot_pages;        /* pages in the hot set now */
  uint64_t samples;          /* resets that were learned from */
  uint64_t sampled_dirty_pages; /* pages written (with PAGEMAP_SCAN: or
                                   faulted in outside the hot set), summed
                                   over the samples: / samples = per instance */
  uint64_t missed_pages;     /* written pages outside the hot set (found by
                                PAGEMAP_SCAN; 0 without it) */
  uint64_t copied_pages;     /* pages restored by copy */
  uint64_t discarded_pages;  /* pages decommitted (without PAGEMAP_SCAN:
                                every page outside the hot set) */
  uint64_t discard_calls;    /* madvise / process_madvise calls its resets made
                                (not the queue's flushes: cowmem_pool_metrics) */
  uint64_t scans;            /* resets that used PAGEMAP_SCAN */
  uint64_t quiet_resets;     /* resets that copied back only the hot pages:
                                no page fault in the process since the
                                slot's last reset, so nothing else changed */
} cowmem_pool_image_metrics_t;

/* Fill *out for image (NULL: the all-zeros memory). An image the pool has
 * not reset with ADAPTIVE reads as all zeros. Thread-safe, like
 * cowmem_pool_metrics. Errors: EINVAL. */
COWMEM_API int cowmem_pool_image_metrics(cowmem_pool_t* pool,
                                         const cowmem_image_t* image,
                                         cowmem_pool_image_metrics_t* out);

/* ------------------------------------------------------------------------
 * Snapshots
 *
 * A snapshot is an image made from a slot's current memory, so that a
 * runtime can run a module's initialization once and start every later
 * instance from the initialized memory; instances of the snapshot reset to
 * it. Thread safety: as for the slot (the caller must not write the slot
 * while the snapshot is taken); the image is thread-safe as any image.
 * ---------------------------------------------------------------------- */

/* Make a new image (sealed, sparse memfd; COPY where memfd is missing) of
 * the slot's bytes [0, cowmem_slot_accessible(slot)), trimmed of leading and
 * trailing zero pages as cowmem_image_new_from_bytes does: its mem_offset
 * is the first non-zero page. Zero pages stay holes of the memfd. Only
 * pages that can hold non-zero bytes are read (those the instance wrote,
 * found with PAGEMAP_SCAN, or resident ones per mincore without it, and
 * the slot image's data pages), so never-touched pages are not faulted in.
 * Costs a copy of those pages through a private buffer and one write of
 * the non-zero ones into the memfd. The slot is not changed.
 * Errors: EINVAL (NULL), ESTATE (slot EMPTY or BROKEN), ECHANGED (the
 * slot's image maps a file that changed since, as cowmem_image_check says:
 * a truncated file's pages would fault the read with SIGBUS), ENOMEM, and
 * the errors of cowmem_image_new_from_bytes. *out is a new reference. */
COWMEM_API int cowmem_snapshot(cowmem_slot_t* slot, cowmem_image_t** out);


/* ------------------------------------------------------------------------
 * WebAssembly front end
 *
 * cowmem_module_parse reads what a WebAssembly binary says about memory:
 * imports and definitions of memories and globals, exports, data segments,
 * the start function, and the section layout. It decodes every section
 * but code and tags, checks section order, sizes and the spec's validation
 * rules for them; of the code section it checks the count against the
 * function section (and, with COWMEM_MODULE_CHECK_BODIES, the body sizes).
 * It does NOT validate function bodies: a module whose only fault is in a
 * function body parses.
 *
 * It then builds, for each defined memory whose initial contents are known
 * before instantiation, an image (see Images): its active data segments
 * with constant offsets applied in module order onto zeros. A memory gets
 * no image when a segment's offset comes from an imported global, a segment
 * ends beyond the memory's initial size (instantiation traps), the memory
 * is imported (unless COWMEM_MODULE_FRESH_IMPORTS: see there), or its data
 * spans more than COWMEM_MODULE_IMAGE_SPAN_MAX bytes. Such memories use
 * the segmented fallback: cowmem_module_apply_*.
 *
 * A module is immutable once parsed: every function below may be called
 * from any thread at once on the same module; cowmem_module_free must not
 * race with any of them.
 * ---------------------------------------------------------------------- */

typedef struct cowmem_module_s cowmem_module_t;


/* Flags for cowmem_module_parse. The default is the current spec with the
 * memory64 and multi-memory proposals; the NO_* flags restore older rules
 * (what the spec tests of that era assert). */
typedef enum {
  COWMEM_MODULE_BORROW = 0x01,    /* keep a pointer to the caller's bytes
                                     instead of a copy (see below) */
  COWMEM_MODULE_NO_IMAGES = 0x02, /* parse only; no memory images */
  COWMEM_MODULE_NO_MULTI_MEMORY = 0x04, /* > 1 memory is invalid */
  COWMEM_MODULE_NO_MEMORY64 = 0x08,     /* memory64 limits malformed */
  /* Constant expressions may read only imported globals (the rule before
   * the GC proposal relaxed it to any earlier immutable global). */
  COWMEM_MODULE_NO_DEFINED_GLOBAL_GET = 0x10,
  COWMEM_MODULE_NO_THREADS = 0x20, /* shared memories malformed */
  /* Walk the code section's function bodies to check that their sizes add
   * up to the section's (by default only their count is checked: a third
   * of the parse time of a large module goes to touching every body). */
  COWMEM_MODULE_CHECK_BODIES = 0x40,
  /* Tags (exception handling: section 13, import/export kind 4) malformed. */
  COWMEM_MODULE_NO_EXCEPTIONS = 0x80,
  /* The host promises that every instance imports, for each imported
   * memory, a FRESH memory: created for that instance, all zeros, exactly
   * min_pages long, of the declared kind (what emscripten's
   * -sIMPORTED_MEMORY output and pthread builds expect of their loader).
   * Its initial contents are then as static as a defined memory's, so it
   * gets an image by the same rules (constant offsets; a segment offset
   * from an imported global still means no image) and its segments are
   * covered_by_image (strip drops them). Without the flag an imported
   * memory has no image (COWMEM_NOIMAGE_IMPORTED): its contents are the
   * importer's. A host that breaks the promise (a memory shared between
   * instances, or one larger or already written) and runs a stripped
   * module gets wrong contents, as with any stripped module on memory not
   * from cowmem. */
  COWMEM_MODULE_FRESH_IMPORTS = 0x100
} cowmem_module_flag_t;

/* Largest span (first to last non-empty segment byte) an image is built for;
 * beyond it the memory uses the segmented fallback. */
#define COWMEM_MODULE_IMAGE_SPAN_MAX ((uint64_t)1 << 30)

/* Parse len bytes of a WebAssembly binary and build its memory images.
 * The module copies the bytes, unless COWMEM_MODULE_BORROW: then it keeps
 * `bytes`, which must stay valid and unchanged until cowmem_module_free.
 * Every pointer the module hands out (names, segment data) points into
 * those bytes and is valid until cowmem_module_free.
 * Errors: EINVAL (NULL out, bytes NULL with len > 0), EMALFORMED (cannot be
 * decoded), EINVALID (decodes but breaks a validation rule), EUNSUPPORTED
 * (a feature cowmem does not handle), ENOMEM and the errors of
 * cowmem_image_new_from_bytes. On a parse error *diag (if not NULL) says
 * where and why; it is zeroed on success. */
COWMEM_API int cowmem_module_parse(const void* bytes, size_t len,
                                   unsigned flags, cowmem_module_t** out,
                                   cowmem_diag_t* diag);
/* Free the module and drop its image references (a slot holding one keeps
 * it). Every pointer obtained from the module becomes invalid. NULL is
 * ignored. */
COWMEM_API void cowmem_module_free(cowmem_module_t* module);
/* The module's bytes (the copy, or the caller's with BORROW). */
COWMEM_API const uint8_t* cowmem_module_bytes(const cowmem_module_t* module,
                                              size_t* len);
/* Read all of fd, a regular file open for reading (a module's .wasm), from
 * offset 0 into a buffer from malloc, which the caller frees with free():
 * the bytes a runtime integration hands to cowmem_module_parse and, for a
 * stripped module, to its runtime. fd stays the caller's. Errors: EINVAL
 * (NULL, not a regular file), ENOMEM, EIO (the file shrank while read) and
 * the errors of fstat/pread; *bytes and *len are left unchanged. */
COWMEM_API int cowmem_module_read(int fd, uint8_t** bytes, size_t* len);

/* Sections, in file order, custom sections included. For tools that
 * rewrite the binary (strip, compile). */
typedef struct cowmem_section_info_s {
  uint32_t id;             /* 0 custom, 1 type, ..., 11 data, 12 data count */
  uint64_t offset;         /* of the id byte */
  uint64_t payload_offset; /* of the first byte after the size */
  uint64_t payload_len;
} cowmem_section_info_t;

COWMEM_API uint32_t cowmem_module_section_count(const cowmem_module_t* m);
/* Errors: EINVAL (NULL, index out of range). Same for every *_info below. */
COWMEM_API int cowmem_module_section_info(const cowmem_module_t* m,
                                          uint32_t index,
                                          cowmem_section_info_t* out);

/* The WebAssembly page, the unit of a memory's limits, and the most pages a
 * memory may have (the spec's limits): 2^16 for a 32-bit memory (4 GiB),
 * 2^48 for a memory64 one. */
#define COWMEM_WASM_PAGE_SIZE ((uint64_t)65536)
#define COWMEM_WASM32_MAX_PAGES ((uint64_t)1 << 16)
#define COWMEM_WASM64_MAX_PAGES ((uint64_t)1 << 48)
#define COWMEM_WASM_MAX_PAGES(memory64)                                        \
  ((memory64) ? COWMEM_WASM64_MAX_PAGES : COWMEM_WASM32_MAX_PAGES)

/* Memories, in index space order: imported ones first. Names point into the
 * module's bytes, are not NUL-terminated, and are NULL/0 if not imported. */
typedef struct cowmem_memory_info_s {
  bool imported;
  bool memory64;   /* flag 0x04 */
  bool shared;     /* flag 0x02 */
  bool has_max;
  uint64_t min_pages; /* 64 KiB WebAssembly pages */
  uint64_t max_pages; /* valid if has_max */
  const char* import_module;
  size_t import_module_len;
  const char* import_name;
  size_t import_name_len;
  uint32_t export_count;    /* exports naming this memory */
  uint32_t active_segments; /* active data segments targeting it */
  bool fresh; /* imported, and parsed with COWMEM_MODULE_FRESH_IMPORTS: the
                 host gives each instance a fresh zeroed memory of
                 min_pages, so it has an image like a defined memory */
} cowmem_memory_info_t;

COWMEM_API uint32_t cowmem_module_memory_count(const cowmem_module_t* m);
COWMEM_API int cowmem_module_memory_info(const cowmem_module_t* m,
                                         uint32_t index,
                                         cowmem_memory_info_t* out);


/* The image of memory `index`, borrowed: valid until cowmem_module_free
 * (cowmem_image_retain it to keep it longer). NULL when the memory has no
 * image or its initial contents are all zeros; *why (if not NULL) then
 * says which: why->noimage is NONE for zeros, else the reason, with a
 * sentence naming the segment at fault in why->reason and its offset in the
 * module in why->offset. The image holds the memory's initial bytes exactly
 * when why->noimage is NONE. A bad index returns NULL with why->code
 * EINVAL. */
COWMEM_API cowmem_image_t* cowmem_module_image(const cowmem_module_t* m,
                                               uint32_t index,
                                               cowmem_diag_t* why);

/* Value types, by their binary encoding. */
#define COWMEM_TYPE_I32 0x7f
#define COWMEM_TYPE_I64 0x7e
#define COWMEM_TYPE_F32 0x7d
#define COWMEM_TYPE_F64 0x7c
#define COWMEM_TYPE_V128 0x7b
#define COWMEM_TYPE_FUNCREF 0x70
#define COWMEM_TYPE_EXTERNREF 0x6f

typedef enum {
  COWMEM_INIT_CONST = 0,  /* value holds the bits (i32 zero-extended) */
  COWMEM_INIT_IMPORT = 1, /* equals imported global `global` */
  COWMEM_INIT_OTHER = 2   /* a reference or v128: not tracked */
} cowmem_init_kind_t;

/* Globals, imported ones first. For an imported global, init is
 * COWMEM_INIT_IMPORT with global == its own index. */
typedef struct cowmem_global_info_s {
  bool imported;
  bool is_mutable;
  uint8_t type; /* COWMEM_TYPE_* */
  cowmem_init_kind_t init;
  uint64_t value;
  uint32_t global;
  const char* import_module;
  size_t import_module_len;
  const char* import_name;
  size_t import_name_len;
} cowmem_global_info_t;

COWMEM_API uint32_t cowmem_module_global_count(const cowmem_module_t* m);
COWMEM_API int cowmem_module_global_info(const cowmem_module_t* m,
                                         uint32_t index,
                                         cowmem_global_info_t* out);

typedef enum {
  COWMEM_EXTERN_FUNC = 0,
  COWMEM_EXTERN_TABLE = 1,
  COWMEM_EXTERN_MEMORY = 2,
  COWMEM_EXTERN_GLOBAL = 3,
  COWMEM_EXTERN_TAG = 4
} cowmem_extern_kind_t;

typedef struct cowmem_export_info_s {
  cowmem_extern_kind_t kind;
  uint32_t index;
  const char* name; /* into the module's bytes, not NUL-terminated */
  size_t name_len;
} cowmem_export_info_t;

COWMEM_API uint32_t cowmem_module_export_count(const cowmem_module_t* m);
COWMEM_API int cowmem_module_export_info(const cowmem_module_t* m,
                                         uint32_t index,
                                         cowmem_export_info_t* out);
/* Whether the module has a start function (its index in *func if so):
 * after it runs, memory may differ from the initial image. */
COWMEM_API bool cowmem_module_start(const cowmem_module_t* m, uint32_t* func);
/* Imports of every kind, by kind (functions, tables, memories, globals,
 * tags). */
COWMEM_API uint32_t cowmem_module_import_count(const cowmem_module_t* m,
                                               cowmem_extern_kind_t kind);

/* Data segments, in module order. */
typedef enum {
  COWMEM_SEGMENT_ACTIVE = 0,
  COWMEM_SEGMENT_PASSIVE = 1
} cowmem_segment_mode_t;

typedef enum {
  COWMEM_OFFSET_CONST = 0, /* offset is the value */
  COWMEM_OFFSET_GLOBAL = 1 /* offset is imported global `offset`'s value */
} cowmem_offset_kind_t;

typedef struct cowmem_segment_info_s {
  cowmem_segment_mode_t mode;
  uint32_t memory; /* active only */
  cowmem_offset_kind_t offset_kind;
  uint64_t offset; /* the offset, or an imported global's index */
  const uint8_t* data; /* into the module's bytes */
  uint64_t data_len;
  /* Byte ranges in the binary: the segment is [segment_offset,
   * segment_end) (from its flags to its last data byte); its data starts at
   * data_offset. */
  uint64_t segment_offset;
  uint64_t segment_end;
  uint64_t data_offset;
  /* Active, and its memory's image already holds its bytes: a runtime using
   * the image must not apply it again (strip may drop it). */
  bool covered_by_image;
} cowmem_segment_info_t;

COWMEM_API uint32_t cowmem_module_segment_count(const cowmem_module_t* m);
COWMEM_API int cowmem_module_segment_info(const cowmem_module_t* m,
                                          uint32_t index,
                                          cowmem_segment_info_t* out);

/* The value of an imported global, as the embedder supplies it. bits holds
 * the value's bit pattern (i32 and f32 in the low 32 bits). */
typedef struct cowmem_global_value_s {
  uint8_t type; /* COWMEM_TYPE_* */
  bool is_mutable;
  uint64_t bits;
} cowmem_global_value_t;

/* A memory an import is satisfied with. */
typedef struct cowmem_memory_desc_s {
  uint64_t pages; /* current size in 64 KiB pages */
  uint64_t max_pages;
  bool has_max;
  bool memory64;
  bool shared;
} cowmem_memory_desc_t;

/* The instantiation verdict as far as memories decide it, in the spec's
 * order: (1) imports: each imported global's type and mutability and each
 * imported memory's limits must match what is supplied (EUNLINKABLE,
 * "incompatible import type"); (2) every active segment's offset is
 * evaluated; (3) segments are checked in module order across all
 * memories, the first one that does not fit its memory's initial size
 * (imported: `memories[i].pages`) fails with EOOB, "out of bounds memory
 * access", diag->offset at that segment. globals[i] is imported global i
 * (nglobals must equal the import count), memories[i] imported memory i.
 * Functions, tables and element segments are not considered.
 * Errors: EINVAL for NULL or count mismatch. Thread-safe (reads only). */
COWMEM_API int cowmem_module_instantiate_check(
    const cowmem_module_t* m, const cowmem_memory_desc_t* memories,
    size_t nmemories, const cowmem_global_value_t* globals, size_t nglobals,
    cowmem_diag_t* diag);

/* A memory's bytes as the runtime holds them. */
typedef struct cowmem_memory_view_s {
  void* base;
  uint64_t size; /* accessible bytes */
} cowmem_memory_view_t;

/* Flags for cowmem_module_apply. */
typedef enum {
  /* Segments covered by an image are bounds-checked but not written. */
  COWMEM_APPLY_SKIP_COVERED = 0x1
} cowmem_apply_flag_t;

/* The segmented fallback: write active segments into memories at
 * instantiation with the spec's semantics. views[i] is memory first + i of
 * the index space (first + nviews <= cowmem_module_memory_count); only the
 * segments of those memories are applied, in module order. A segment that
 * does not fit [0, size) of its view writes nothing and stops the process
 * with EOOB, "out of bounds memory access" (bulk-memory semantics: earlier
 * segments' writes remain, later ones are not applied). A view with base
 * NULL is not written but its size still bounds-checks. A runtime that
 * creates all memories before applying passes first 0 and every memory (the
 * trap point is then the spec's across memories); one that applies memory
 * by memory passes one view. globals[i] is imported global i (nglobals >=
 * their count; only the values of i32/i64 globals are read, as offsets).
 * Errors: EINVAL (NULL, counts, flags), EOOB. The caller must not run this
 * concurrently on the same memory bytes. */
COWMEM_API int cowmem_module_apply(const cowmem_module_t* m, uint32_t first,
                                   const cowmem_memory_view_t* views,
                                   size_t nviews,
                                   const cowmem_global_value_t* globals,
                                   size_t nglobals, unsigned flags,
                                   cowmem_diag_t* diag);

/* ------------------------------------------------------------------------
 * Strip (the cowmem command's `strip`)
 *
 * A runtime that takes a memory from cowmem needs no data initialization
 * for the segments the memory's image already holds. Strip rewrites the
 * module so that any runtime skips them, the active segments with
 * covered_by_image, in one of two ways:
 *   - removed, when no function body uses memory.init or data.drop (the
 *     only instructions that name a segment) and the module is not a
 *     relocatable object (a "linking" custom section): the segments left
 *     (passive ones, those of memories without an image) keep their order
 *     and are renumbered, a data count section carries the new count, and
 *     the name section's data segment names follow (those of removed
 *     segments go). A runtime then walks only the segments it applies;
 *   - otherwise each becomes an empty passive segment (flags 0x01, 0
 *     bytes): the segment count and so every segment index stay the same,
 *     and an empty passive segment behaves under memory.init and data.drop
 *     exactly as the dropped active segment did. No section is added (a
 *     module whose bodies use memory.init or data.drop already has its
 *     data count section; passive segments need none), so the section
 *     indices a relocatable object's reloc.* sections name stay valid. A
 *     body the decoder does not know (GC instructions) counts as naming a
 *     segment.
 * Segments of memories without an image keep their bytes and mode. Every
 * other section is copied byte for byte.
 *
 * The stripped module is only correct with cowmem's memory (the image
 * instantiated in the slot); on memory from anywhere else it starts with
 * zeros where the data was. Thread-safe (reads the module only).
 * ---------------------------------------------------------------------- */

/* Write the stripped module into a new buffer: *out (malloc'd: release it
 * with free()), *out_len bytes; *nstripped (if not NULL) is the
 * number of segments stripped. A module with nothing to strip is returned
 * unchanged. Errors: EINVAL (NULL), ENOMEM. */
COWMEM_API int cowmem_module_strip(const cowmem_module_t* m, uint8_t** out,
                                   size_t* out_len, uint32_t* nstripped);

/* The summary line of a strip, as the tools that strip a file print it:
 *   "NAME: S of N data segments stripped (L left), A -> B bytes"
 * for m (N segments, A bytes) stripped into out (out_len bytes, B) by
 * cowmem_module_strip, which said S; L is the segment count of out, which
 * is parsed to count them. Written into buf (cap bytes, NUL-terminated,
 * cut short to fit), without a newline. Errors: EINVAL (NULL, cap 0), the
 * parse errors of out (strip is broken: buf holds ""), ENOMEM. */
COWMEM_API int cowmem_module_strip_summary(const cowmem_module_t* m, const uint8_t* out,
                                           size_t out_len, uint32_t nstripped,
                                           const char* name, char* buf, size_t cap);

/* ------------------------------------------------------------------------
 * Image files (.cwimg)
 *
 * Compile once, start many times, share pages across processes: an image
 * file holds each memory's image at page-aligned offsets, so that opening
 * it makes FILE images (see cowmem_image_new_from_file) that map the file
 * itself. Every process that opens the same file shares its page cache.
 *
 * Layout (version 1, little-endian): a header page holding
 *   magic "\x89CWIMG\r\n", format version, header length, page size,
 *   memory count, file size, the SHA-256 of the source module (zeros when
 *   written without one), the SHA-256 of the header itself, and one
 *   80-byte descriptor per memory (index, limits and flags, the image's
 *   offset and length in memory and in the file, its data pages, the
 *   active segments left for instantiation, and why it has no image);
 * then each image at a page-aligned file offset, in descriptor order.
 * Zero pages inside an image are holes of the file (it is sparse): a
 * private mapping reads a hole as zeros without allocating file blocks.
 *
 * Opening reads the header only (one pread, one fstat and one dup per
 * image), never image bytes, so it costs the same for any image size. The
 * header hash catches corruption of the header; image bytes are not
 * checked (reading them would cost what the format exists to avoid).
 *
 * An opened file is treated as immutable, like an installed executable:
 * its images map the file directly (COWMEM_IMAGE_FILE_IMMUTABLE).
 * Install a new version by writing another file and renaming it over the
 * old one (what `cowmem compile -o` does): open images keep the old inode.
 * Writing into the file in place while it is open changes the memory of
 * running instances on pages they have not written, and truncating it
 * makes their reads fault with SIGBUS. Open with COWMEM_IMGFILE_COPY when
 * that cannot be ruled out: each image is then copied into a sealed memfd
 * (reading all of it, and losing the sharing between processes).
 *
 * Thread safety: an opened file is immutable; every accessor may be
 * called from any thread; cowmem_imgfile_free must not race with them.
 * Writers may run concurrently on different fds.
 * ---------------------------------------------------------------------- */

#define COWMEM_IMGFILE_VERSION 1

/* Flags for opening. */
typedef enum {
  COWMEM_IMGFILE_COPY = 0x1 /* copy images into sealed memfds instead of
                               mapping the file (see above) */
} cowmem_imgfile_flag_t;

/* One memory of an image file. The writer reads the fields marked "in";
 * the opener fills all of them. */
typedef struct cowmem_imgfile_memory_s {
  uint32_t index; /* in: the memory's index in its module; strictly
                     increasing from one memory to the next */
  bool imported, memory64, shared, has_max; /* in */
  bool fresh; /* in: imported, and the module was compiled with
                 COWMEM_MODULE_FRESH_IMPORTS (the host gives each instance a
                 fresh zeroed memory of min_pages): only such an imported
                 memory may have an image. Descriptor flag 0x10; files
                 without it read as before. */
  bool snapshot; /* in: the image is a state the memory reached by running
                    (a snapshot, pre-initialization), not what the
                    module's segments write: cowmem_imgfile_check_module
                    then checks only that it fits the memory. Descriptor
                    flag 0x20 (an older reader refuses such a file). */
  uint64_t min_pages;      /* in: 64 KiB pages */
  uint64_t max_pages;      /* in: valid if has_max */
  cowmem_image_t* image;   /* in: the image, or NULL (no image, or zeros).
                              Opener: borrowed, valid until the file is
                              freed (retain it to keep it longer) */
  cowmem_noimage_t noimage; /* in: why there is no image (NONE if there is) */
  uint32_t segments_left;  /* in: active segments an instance must still
                              apply (those no image covers) */
  uint64_t mem_offset, mem_len;   /* the image in linear memory */
  uint64_t file_offset, file_len; /* the image in the file */
  uint64_t data_pages;     /* pages written (not holes) */
} cowmem_imgfile_memory_t;

typedef struct cowmem_imgfile_s cowmem_imgfile_t;

/* SHA-256 of n bytes at p into out. Thread-safe. */
COWMEM_API void cowmem_sha256(const void* p, size_t n, uint8_t out[32]);
/* The hash that image files record: SHA-256 of the module's bytes (about
 * 3 ms per MiB). Errors: EINVAL. */
COWMEM_API int cowmem_module_hash(const cowmem_module_t* m, uint8_t out[32]);

/* Write an image file for n memories (n <= 4096) to fd, a regular file
 * open for writing: its previous contents are discarded (ftruncate to 0),
 * then header and images are written with pwrite, leaving zero pages as
 * holes. module_hash may be NULL (a file that belongs to no module, e.g. a
 * snapshot: it opens only without a module or with the zero hash). Image
 * end must lie within min_pages. Errors: EINVAL (NULL, n, order, an image
 * beyond its memory's initial size, an image and noimage != NONE, an imported
 * memory with an image unless `fresh`, `fresh` on a defined memory),
 * ENOMEM, and the errors of write/ftruncate (the file is then incomplete:
 * remove it). */
COWMEM_API int cowmem_imgfile_write(int fd, const cowmem_imgfile_memory_t* mems,
                                    uint32_t n, const uint8_t module_hash[32]);

/* Write the image file of a parsed module: every memory in index order,
 * with its image (cowmem_module_memory_image) and the module's hash;
 * imported memories are marked fresh when the module was parsed with
 * COWMEM_MODULE_FRESH_IMPORTS. Errors: as cowmem_imgfile_write; EINVAL if
 * the module was parsed with COWMEM_MODULE_NO_IMAGES. */
COWMEM_API int cowmem_module_compile(const cowmem_module_t* m, int fd);

/* Snapshot the slot (as cowmem_snapshot) and write it to fd as an image
 * file of one memory (as cowmem_imgfile_write), which cowmem_imgfile_open
 * later maps, so a process can start instances from an initialized memory
 * written by another. desc gives the memory's index, flags and limits (its
 * image, noimage and the fields the opener fills are ignored); NULL: index 0,
 * min_pages the slot's accessible size in 64 KiB pages rounded up, no
 * maximum. The snapshot must end within desc->min_pages. module_hash is
 * recorded (NULL: the file belongs to no module and opens only with a NULL
 * hash). Errors: those of cowmem_snapshot and cowmem_imgfile_write. */
COWMEM_API int cowmem_imgfile_write_snapshot(cowmem_slot_t* slot, int fd,
                                             const cowmem_imgfile_memory_t* desc,
                                             const uint8_t module_hash[32]);

/* Open an image file. The header is validated: size, magic, version
 * (EVERSION), page size equal to cowmem_page_size() (EPAGESIZE), header
 * hash, descriptor table within the header, every image range
 * page-aligned, inside the file, in order and not overlapping, every
 * image inside its memory's initial size, a maximum only with its flag
 * (max_pages 0 otherwise), an image for an imported memory
 * only if it is marked fresh, fresh only on an imported memory (EBADIMG
 * for all of these, truncated files included). With module_hash
 * (cowmem_module_hash of the module the caller will instantiate; NULL: no
 * check), the file must have
 * been compiled from exactly those bytes (EMISMATCH). fd is dup'ed per
 * image: the caller keeps and closes its own. On error *diag (if not NULL)
 * says why, diag->offset being a byte offset in the file; it is zeroed on
 * success. Errors: EINVAL (NULL out, bad fd or flags), the codes above,
 * ENOMEM and the errors of fstat/pread/dup (and, with COWMEM_IMGFILE_COPY,
 * of the copy). */
COWMEM_API int cowmem_imgfile_open(int fd, const uint8_t module_hash[32],
                                   unsigned flags, cowmem_imgfile_t** out,
                                   cowmem_diag_t* diag);
/* Check an opened file against the module it will serve: the recorded
 * module hash (EMISMATCH) and every descriptor field against what
 * cowmem_module_compile(m) writes: the memory count, each memory's index,
 * flags (imported, memory64, shared, has-max, fresh), limits, no-image
 * reason, image offset, length and data pages, and the segments left for
 * instantiation (EBADIMG, diag->reason naming the memory and the field,
 * diag->offset at it in the file). A snapshot memory's image (its
 * `snapshot` flag: pre-initialized state, cowmem_imgfile_write_snapshot)
 * is not the segments' work: for it the image must lie within min_pages
 * instead of equalling the module's. The header hash only catches
 * corruption: a header forged with the right module hash passes
 * cowmem_imgfile_open, and its fields decide what instances get, so call
 * this wherever the module is at hand (the `cowmem` command does with
 * --module). Image bytes are not read. m must have been parsed with
 * images (not COWMEM_MODULE_NO_IMAGES: EINVAL) and with the flags the
 * file was compiled with (COWMEM_MODULE_FRESH_IMPORTS: else the fresh
 * flag differs). Costs the module's hash (about 3 ms per MiB). Errors:
 * EINVAL, ENOMEM, EMISMATCH, EBADIMG. Thread-safe (reads only). */
COWMEM_API int cowmem_imgfile_check_module(const cowmem_imgfile_t* f,
                                           const cowmem_module_t* m,
                                           cowmem_diag_t* diag);
/* Free the file object and drop its image references (slots holding an
 * image keep it). NULL is ignored. */
COWMEM_API void cowmem_imgfile_free(cowmem_imgfile_t* f);
COWMEM_API uint32_t cowmem_imgfile_memory_count(const cowmem_imgfile_t* f);
/* Memory i (in file order, which is index order). Errors: EINVAL. */
COWMEM_API int cowmem_imgfile_memory(const cowmem_imgfile_t* f, uint32_t i,
                                     cowmem_imgfile_memory_t* out);
/* The image of the memory with module index `index`, borrowed as from
 * cowmem_module_image: valid until cowmem_imgfile_free, NULL when that
 * memory has no image (all zeros, or a fallback memory: why->noimage says
 * which; no such memory: why->code EINVAL). */
COWMEM_API cowmem_image_t* cowmem_imgfile_image(const cowmem_imgfile_t* f,
                                                uint32_t index,
                                                cowmem_diag_t* why);
/* The module hash the file records (zeros: none), its format version and
 * its size in bytes. */
COWMEM_API void cowmem_imgfile_module_hash(const cowmem_imgfile_t* f,
                                           uint8_t out[32]);
COWMEM_API uint32_t cowmem_imgfile_version(const cowmem_imgfile_t* f);
COWMEM_API uint64_t cowmem_imgfile_size(const cowmem_imgfile_t* f);

/* ------------------------------------------------------------------------
 * Pre-initialization (the cowmem command's `preinit`)
 *
 * Run a module's initialization once, then start every instance from its
 * result: what Wizer does, with a copy-on-write image as a second output.
 * Three steps, runtime-agnostic:
 *   1. cowmem_preinit_validate: is there anything a snapshot of memories
 *      and globals cannot carry? (table changes, dropped segments, imported
 *      globals or tables, ...: see there);
 *   2. cowmem_preinit_instrument: the module a runner instantiates and
 *      initializes, which exports every memory and every mutable defined
 *      global under the reserved names below so that the runner can read
 *      them afterwards;
 *   3. cowmem_preinit_rewrite: from what the runner read (a snapshot), the
 *      original module rewritten to start where initialization ended.
 *
 * The rewritten module: each memory's minimum is its size after
 * initialization (its maximum kept); each mutable defined global's
 * initializer is the constant it held; the start section is removed (it
 * ran), and so are the `_initialize` export (a WASI reactor's constructor:
 * it ran) and the init function's export (unless
 * COWMEM_PREINIT_KEEP_INIT_FUNC); exports are renamed as asked (dst=src:
 * the function exported as src is exported as dst instead, and a previous
 * export named dst goes); the original active data segments, whose bytes
 * the snapshot holds, are removed or become empty passive ones by strip's
 * rule (see Strip: removed unless a body uses memory.init; the name
 * section's data segment names follow) and the data count section, if
 * any, counts the segments written. Every other section is copied byte
 * for byte, so every function, global and memory index is unchanged (and
 * every segment index, when segments are not removed).
 *
 * Two forms of the memories' contents:
 *   (a) COWMEM_PREINIT_SEGMENTS: the snapshot as active data segments
 *       after the original ones that stay, one per run of non-zero bytes
 *       (zero runs shorter than merge_gap stay inside a segment, and the
 *       shortest gaps are merged until at most max_segments are written):
 *       a standalone module that any runtime runs;
 *   (b) COWMEM_PREINIT_IMAGES: no snapshot segments; the snapshot is
 *       written as an image file (see Image files) recording the rewritten
 *       module's hash, for runtimes on cowmem: instantiation copies nothing,
 *       and zero pages are holes of the file. On any other memory the
 *       module starts from zeros.
 *
 * Thread safety: every function here reads its module only and may run on
 * any thread concurrently with the other module functions.
 * ---------------------------------------------------------------------- */

/* Export names that cowmem_preinit_instrument adds, followed by the index
 * in decimal ("cowmem:preinit:memory:0", "cowmem:preinit:global:3"). A
 * module that already exports a name with this prefix is refused. */
#define COWMEM_PREINIT_EXPORT_PREFIX "cowmem:preinit:"
#define COWMEM_PREINIT_MEMORY_EXPORT "cowmem:preinit:memory:"
#define COWMEM_PREINIT_GLOBAL_EXPORT "cowmem:preinit:global:"
/* The init function's export name when none is given, and the name Wizer
 * used before; the runner calls the first one exported. */
#define COWMEM_PREINIT_DEFAULT_FUNC "wizer-initialize"
#define COWMEM_PREINIT_DEFAULT_FUNC_ALT "wizer.initialize"

/* What a snapshot cannot carry, with diag->offset at the first place in
 * module order that says so, and diag->reason naming it:
 *   - an imported table or global (its value belongs to the importer), or
 *     an imported memory unless the module was parsed with
 *     COWMEM_MODULE_FRESH_IMPORTS (then each instance gets a fresh one and
 *     the snapshot becomes its initial contents): at the import entry;
 *   - a mutable defined global of reference type (a reference cannot be
 *     written as a constant): at the global's entry;
 *   - in any function body, table.set, table.grow, table.fill,
 *     table.copy, table.init, elem.drop or data.drop (a table's contents
 *     and a segment's dropped state are not in the snapshot): at the
 *     instruction's first byte.
 * Function bodies are decoded instruction by instruction, prefixed
 * instructions (0xFC bulk memory and tables, 0xFD SIMD, 0xFE atomics)
 * included, so an immediate is never read as an instruction.
 * Errors: EINVAL (NULL), EUNSUPPORTED (a refusal above; or an instruction
 * this decoder does not know, such as the GC proposal's 0xFB prefix),
 * EMALFORMED (a body that does not decode), ENOMEM. */
COWMEM_API int cowmem_preinit_validate(const cowmem_module_t* m,
                                       cowmem_diag_t* diag);

/* Write the instrumented module into a new buffer (*out, malloc'd: free()
 * it; *out_len bytes): the module with one more export per memory (index
 * order, imported memories included) and per mutable defined global, named
 * as above. Only the export section changes (it is added before the
 * sections that follow it when the module has none). It does not
 * validate: call cowmem_preinit_validate first.
 * Errors: EINVAL (NULL), EUNSUPPORTED (an export already uses the reserved
 * prefix: diag->offset at its name), ENOMEM. */
COWMEM_API int cowmem_preinit_instrument(const cowmem_module_t* m,
                                         uint8_t** out, size_t* out_len,
                                         cowmem_diag_t* diag);

/* One memory after initialization. */
typedef struct cowmem_preinit_memory_s {
  uint64_t pages;        /* its size in 64 KiB pages, >= the declared
                            minimum and <= the maximum */
  cowmem_image_t* image; /* its contents (cowmem_snapshot of a slot, or
                            cowmem_image_new_from_bytes of the bytes a
                            runtime holds), within `pages`; NULL: all
                            zeros. Borrowed for the call. */
} cowmem_preinit_memory_t;

/* One mutable defined global after initialization. */
typedef struct cowmem_preinit_global_s {
  uint32_t index; /* in the global index space (imported ones first) */
  uint8_t type;   /* COWMEM_TYPE_I32, I64, F32, F64 or V128: its type */
  /* The value's bits, little-endian: i32 and f32 in the low 32 bits of
   * bits[0], i64 and f64 in bits[0], v128 lanes 0-7 (bytes) in bits[0]
   * and 8-15 in bits[1]. */
  uint64_t bits[2];
} cowmem_preinit_global_t;

typedef struct cowmem_preinit_snapshot_s {
  const cowmem_preinit_memory_t* memories; /* one per memory, index order */
  uint32_t nmemories;
  const cowmem_preinit_global_t* globals; /* one per mutable defined global,
                                             index order */
  uint32_t nglobals;
} cowmem_preinit_snapshot_t;

typedef enum {
  COWMEM_PREINIT_SEGMENTS = 0x0,       /* (a): the snapshot as segments */
  COWMEM_PREINIT_IMAGES = 0x1,         /* (b): the snapshot as images */
  COWMEM_PREINIT_KEEP_INIT_FUNC = 0x2  /* keep the init function's export */
} cowmem_preinit_flag_t;

typedef struct cowmem_preinit_options_s {
  unsigned flags;          /* cowmem_preinit_flag_t; default 0 */
  const char* init_func;   /* the export removed; default NULL: both
                              default names */
  const char* const* renames; /* "dst=src" strings; default none */
  size_t nrenames;
  uint32_t merge_gap;      /* (a): zero runs shorter than this stay inside
                              a segment (a segment's header costs about
                              as much); default 8 */
  uint32_t max_segments;   /* (a): at most this many snapshot segments
                              (shortest gaps merged first); default 10000,
                              1 at least */
} cowmem_preinit_options_t;

/* Fill *opt with the defaults above. NULL is ignored. */
COWMEM_API void cowmem_preinit_options_init(cowmem_preinit_options_t* opt);

/* Rewrite m (the original module, not the instrumented one) from snap into
 * a new buffer (*out, malloc'd: free() it; *out_len bytes). With
 * COWMEM_PREINIT_IMAGES, the image file is written to images_fd as
 * cowmem_imgfile_write does (every memory in index order, the snapshot as
 * its image, the rewritten module's hash); images_fd is ignored without
 * it. opt NULL: the defaults. m is validated first
 * (cowmem_preinit_validate's refusals and errors). On error nothing is
 * returned; the image file may be incomplete (remove it).
 * Errors: EINVAL (NULL; a snapshot that does not fit the module: wrong
 * memory or global counts, indices or types, pages below the minimum or
 * above the maximum, an image beyond `pages`; a rename not of the form
 * dst=src or whose src is not an exported function; bad options: diag
 * says which), the validation errors, ENOMEM, and the errors of
 * cowmem_image_read and cowmem_imgfile_write. */
COWMEM_API int cowmem_preinit_rewrite(const cowmem_module_t* m,
                                      const cowmem_preinit_snapshot_t* snap,
                                      const cowmem_preinit_options_t* opt,
                                      uint8_t** out, size_t* out_len,
                                      int images_fd, cowmem_diag_t* diag);

#ifdef __cplusplus
}
#endif
#endif /* COWMEM_H */
