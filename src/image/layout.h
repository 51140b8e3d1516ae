/* An image's layout, private to the image files: build.c makes an image
 * (its runs, its memfd, file or copy, the ranges a slot maps), image.c
 * keeps it (references, orphans, weak references) and answers what the
 * others ask through image.h. Nothing outside src/image/ includes this. */
#ifndef COWMEM_IMAGE_LAYOUT_H
#define COWMEM_IMAGE_LAYOUT_H

#include <pthread.h>

#include "image/image.h"

/* A run of pages of an image that hold non-zero bytes, relative to the
 * image's mem_offset. Copies restore only these; holes stay untouched. */
typedef struct {
  uint64_t off;
  uint64_t len;
} cowmem__run_t;

struct cowmem_image_s {
  /* References (bits 32-63), the orphan flag (bit 31) and the references
   * held by pool slots (bits 0-30) in one word. When pool slots hold every
   * reference, nobody can instantiate the image again: it is an orphan,
   * and pools decommit its slots as they become idle, so that its memory
   * is freed. One word, so that the release that makes the image an orphan
   * sees the pools' share in its own read-modify-write: with two counters,
   * a user's release and a slot's could each miss the other's. Written
   * when a reference is taken or dropped (a slot of a pool changing its
   * image, a caller's retain and release), not by an acquire or a release
   * of a slot that keeps its image; on a cache line of its own all the
   * same: the fields below are read by every reset on every thread. */
  _Alignas(64) _Atomic uint64_t refs;
  _Alignas(64) cowmem_image_kind_t kind;
  uint64_t mem_offset;
  uint64_t len;
  uint64_t source_offset;
  uint64_t data_pages;
  int fd;              /* MEMFD and FILE; -1 for COPY */
  uint8_t* bytes;      /* COPY: an anonymous mapping of len bytes (sparse) */
  cowmem__run_t* runs; /* non-zero page runs, in order */
  size_t nruns;
  /* MEMFD/FILE: the ranges mapped from the fd, runs joined across small
   * holes (see build.c's image_plan_maps); the large holes between them stay
   * anonymous memory in a slot, because a read fault on a hole of a private
   * shmem mapping allocates a page in the memfd. */
  cowmem__run_t* maps;
  size_t nmaps;
  uint64_t id;            /* unique for the process's life (pools key on it) */
  _Atomic(uint8_t*) view; /* image.c's image_view mapping, or NULL */
  /* FILE: the file as it was when the image was made (size, inode, mtime),
   * compared whenever the image is mapped again; changed once it differed:
   * from then on the image is never instantiated again. */
  cowmem__os_file_id_t file_id;
  _Atomic bool changed;
  /* FILE not fixed: the coarse clock (cowmem__os_coarse_ns) read just
   * before the last comparison that found the file unchanged; 0 before
   * the first (see cowmem__image_verify_reuse). */
  _Atomic uint64_t compared_ns;
  /* FILE: the kernel keeps the file as it is (sealed memfd, immutable
   * inode): reusing a slot that maps it needs no check. */
  bool fixed;
  /* FILE not fixed: the pages restoring resets have read of it, kept in
   * anonymous memory (image.c's image_cached) so that a reset neither
   * reads the file through a mapping nor makes a system call once its
   * pages are here: a sparse copy of len bytes made on first use, one bit
   * per page read, and the lock its readers take to fill it. */
  _Atomic(uint8_t*) cache;
  _Atomic uint64_t* cached;
  pthread_mutex_t cache_lock;
  _Atomic(cowmem__image_weak_t*) weak; /* made on first request */
};

/* A zeroed image holding one reference, fd -1 and a new id; NULL when out
 * of memory. destroy frees what it holds, whatever its references say. */
cowmem_image_t* cowmem__image_alloc(void);
void cowmem__image_destroy(cowmem_image_t* img);

#endif
