/* Images: a memory's initial contents, built once (build.c) and shared.
 *
 * This file is an image's lifetime and use: its references and the pools'
 * ones that make it an orphan, weak references, the check that a FILE
 * image's file is unchanged, and what slots, resets, snapshots and the
 * image-file writer ask of it through image.h (place it in a slot and take
 * it out, restore it, its bytes page by page, its runs, its key and end).
 * How an image is laid out is layout.h's; only build.c and this file know. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image/layout.h"
#include "image/lines.h"

/* A weak reference: says whether the image is gone, without keeping it. */
struct cowmem__image_weak_s {
  _Atomic uint32_t refs;
  _Atomic bool dead;
};

static _Atomic uint64_t image_next_id = 1;

/* The fields of cowmem_image_s.refs. */
#define REF_ONE ((uint64_t)1 << 32)
#define ORPHAN_BIT ((uint64_t)1 << 31)
#define POOLED_MASK (ORPHAN_BIT - 1)

cowmem_image_t* cowmem__image_alloc(void) {
  cowmem_image_t* img = cowmem__alloc_lines(1, sizeof *img); /* see refs */
  if (img == NULL) return NULL;
  atomic_init(&img->refs, REF_ONE);
  img->fd = -1;
  img->id = atomic_fetch_add(&image_next_id, 1);
  if (pthread_mutex_init(&img->cache_lock, NULL) != 0) {
    free(img);
    return NULL;
  }
  return img;
}

_Atomic uint64_t cowmem__orphan_epoch;

void cowmem__image_destroy(cowmem_image_t* img) {
  cowmem__image_weak_t* w = atomic_load(&img->weak);
  if (w != NULL) {
    atomic_store(&w->dead, true);
    cowmem__image_weak_release(w);
  }
  uint8_t* view = atomic_load(&img->view);
  if (view != NULL) cowmem__os_unmap(view, img->len);
  if (img->fd >= 0) cowmem__os_close(img->fd);
  if (img->bytes != NULL) cowmem__os_unmap(img->bytes, img->len);
  uint8_t* cache = atomic_load(&img->cache);
  if (cache != NULL) cowmem__os_unmap(cache, img->len);
  free((void*)img->cached);
  pthread_mutex_destroy(&img->cache_lock);
  free(img->runs);
  free(img->maps);
  free(img);
}

cowmem_image_t* cowmem_image_retain(cowmem_image_t* image) {
  if (image != NULL)
    atomic_fetch_add_explicit(&image->refs, REF_ONE, memory_order_relaxed);
  return image;
}

static void orphan_announce(void) {
  atomic_fetch_add(&cowmem__orphan_epoch, 1);
}

cowmem_image_t* cowmem__image_pool_hold(cowmem_image_t* image) {
  if (image != NULL)
    atomic_fetch_add_explicit(&image->refs, REF_ONE + 1, memory_order_relaxed);
  return image;
}

/* The users' references are unchanged: an image is not made an orphan
 * here, only freed when this was the last reference. */
void cowmem__image_pool_drop(cowmem_image_t* image) {
  if (image == NULL) return;
  uint64_t old =
      atomic_fetch_sub_explicit(&image->refs, REF_ONE + 1, memory_order_acq_rel);
  if ((old >> 32) != 1) return;
  COWMEM__STAT_DEC(cowmem__stat_images_live);
  cowmem__image_destroy(image);
}

void cowmem__image_landed(const cowmem_image_t* image) {
  if (image != NULL && cowmem__image_orphaned(image)) orphan_announce();
}

bool cowmem__image_orphaned(const cowmem_image_t* image) {
  return (atomic_load(&image->refs) & ORPHAN_BIT) != 0 ||
         atomic_load_explicit(&image->changed, memory_order_relaxed);
}

bool cowmem__image_changed(const cowmem_image_t* image) {
  return image != NULL && atomic_load_explicit(&image->changed, memory_order_relaxed);
}

/* FILE: is the file still what it was? A truncation changes its size (and
 * would make the next fault past the new end a SIGBUS), a write in place
 * its mtime (with the clock's granularity: two writes within one tick of
 * the open may look the same). The inode's ctime is not compared: renaming
 * a new file over the old one, the supported way to install, changes the
 * old inode's ctime but none of its bytes. A file the kernel keeps fixed
 * (sealed memfd, immutable inode) cannot change: no check, no fstat. */
static int image_file_check(const cowmem_image_t* img) {
  if (img->kind != COWMEM_IMAGE_FILE || img->fixed) return 0;
  if (atomic_load_explicit(&img->changed, memory_order_relaxed))
    return COWMEM__IMAGE_CHANGED;
  uint64_t t = cowmem__os_coarse_ns(); /* no later than the fstat */
  cowmem__os_file_id_t now;
  int e = cowmem__os_file_id(img->fd, &now);
  if (e) return e;
  const cowmem__os_file_id_t* was = &img->file_id;
  if (now.size == was->size && now.mtime_ns == was->mtime_ns && now.ino == was->ino &&
      now.dev == was->dev) {
    atomic_store_explicit(&((cowmem_image_t*)img)->compared_ns, t, memory_order_relaxed);
    return 0;
  }
  bool expected = false;
  if (atomic_compare_exchange_strong(&((cowmem_image_t*)img)->changed, &expected, true)) {
    cowmem__verbose("image file changed underneath (size %llu -> %llu)",
                    (unsigned long long)was->size, (unsigned long long)now.size);
    orphan_announce(); /* pools drop its idle slots */
  }
  return COWMEM__IMAGE_CHANGED;
}

int cowmem_image_check(const cowmem_image_t* image) {
  if (image == NULL) return COWMEM_EINVAL;
  return cowmem__err_from_os(image_file_check(image));
}

cowmem__image_weak_t* cowmem__image_weak(cowmem_image_t* image) {
  cowmem__image_weak_t* w = atomic_load(&image->weak);
  if (w == NULL) {
    cowmem__image_weak_t* nw = malloc(sizeof *nw);
    if (nw == NULL) return NULL;
    atomic_init(&nw->refs, 1); /* the image's */
    atomic_init(&nw->dead, false);
    if (atomic_compare_exchange_strong(&image->weak, &w, nw))
      w = nw;
    else
      free(nw);
  }
  atomic_fetch_add(&w->refs, 1);
  return w;
}

bool cowmem__image_weak_dead(const cowmem__image_weak_t* w) {
  return atomic_load(&((cowmem__image_weak_t*)w)->dead);
}

void cowmem__image_weak_release(cowmem__image_weak_t* w) {
  if (w != NULL && atomic_fetch_sub(&w->refs, 1) == 1) free(w);
}

void cowmem_image_release(cowmem_image_t* image) {
  if (image == NULL) return;
  /* The orphan flag is set by the decrement itself: after it, the pool
   * slots holding the other references may drop them at any time. */
  uint64_t old = atomic_load_explicit(&image->refs, memory_order_relaxed), nw;
  bool orphan;
  do {
    nw = old - REF_ONE;
    uint64_t pooled = nw & POOLED_MASK;
    orphan = !(old & ORPHAN_BIT) && pooled > 0 && (nw >> 32) == pooled;
    if (orphan) nw |= ORPHAN_BIT;
  } while (!atomic_compare_exchange_weak_explicit(
      &image->refs, &old, nw, memory_order_acq_rel, memory_order_relaxed));
  if (orphan) orphan_announce();
  if ((nw >> 32) != 0) return;
  COWMEM__STAT_DEC(cowmem__stat_images_live);
  cowmem__image_destroy(image);
}

int cowmem_image_info(const cowmem_image_t* image, cowmem_image_info_t* out) {
  if (image == NULL || out == NULL) return COWMEM_EINVAL;
  out->kind = image->kind;
  out->mem_offset = image->mem_offset;
  out->len = image->len;
  out->source_offset = image->source_offset;
  out->data_pages = image->data_pages;
  out->fd = image->fd;
  return 0;
}

int cowmem_image_read(const cowmem_image_t* image, uint64_t offset, void* dst,
                      size_t len) {
  if (image == NULL || (dst == NULL && len > 0)) return COWMEM_EINVAL;
  if (len == 0) return 0;
  /* By last bytes, not ends: the range and the image may end at 2^64. */
  if (offset > UINT64_MAX - (len - 1)) return COWMEM_EINVAL;
  uint64_t lo = offset > image->mem_offset ? offset : image->mem_offset;
  uint64_t last = offset + (len - 1);
  if (image->len > 0 && image->mem_offset + (image->len - 1) < last)
    last = image->mem_offset + (image->len - 1);
  uint64_t n_in = image->len > 0 && lo <= last ? last - lo + 1 : 0; /* < 2^64: len */
  if (n_in == 0 || image->kind == COWMEM_IMAGE_COPY) {
    memset(dst, 0, len);
    if (n_in > 0)
      memcpy((uint8_t*)dst + (lo - offset), image->bytes + (lo - image->mem_offset),
             (size_t)n_in);
    return 0;
  }
  /* From the fd, straight into dst: no buffer as large as the range asked
   * for. A FILE image's last page may run past EOF: that part reads as
   * zeros, as do holes (pread returns them without allocating). */
  uint64_t src = image->source_offset + (lo - image->mem_offset);
  uint64_t fsize = 0;
  bool sealed = false;
  int e = cowmem__os_fstat(image->fd, &fsize, &sealed);
  if (e) return cowmem__err_from_os(e);
  uint64_t n = src >= fsize ? 0 : n_in;
  if (n > 0 && n > fsize - src) n = fsize - src;
  memset(dst, 0, len);
  e = n > 0 ? cowmem__os_pread_all(image->fd, (uint8_t*)dst + (lo - offset), (size_t)n, src)
            : 0;
  if (e) memset(dst, 0, len); /* nothing half-read */
  return cowmem__err_from_os(e);
}

/* A FILE image whose file the kernel does not keep fixed: someone may
 * truncate it while the image is in use, and a read of a mapping of it
 * past the new end faults with SIGBUS. Its bytes are read with pread,
 * which reads short there instead; it has no view. */
static bool image_by_pread(const cowmem_image_t* img) {
  return img->kind == COWMEM_IMAGE_FILE && !img->fixed;
}

/* Read [rel, rel + len) of such an image (image-relative) into dst. Past
 * the end the file had when the image was made (a last partial page) it
 * reads zeros. A short read means the file shrank: COWMEM__IMAGE_CHANGED
 * (the check marks the image changed), else the read's errno. */
static int image_pread(const cowmem_image_t* img, uint8_t* dst, uint64_t rel,
                       uint64_t len) {
  uint64_t src = img->source_offset + rel, end = img->file_id.size;
  uint64_t n = src >= end ? 0 : end - src < len ? end - src : len;
  int e = n > 0 ? cowmem__os_pread_all(img->fd, dst, (size_t)n, src) : 0;
  if (e) {
    int c = image_file_check(img);
    return c ? c : e;
  }
  if (n < len) memset(dst + n, 0, (size_t)(len - n));
  return 0;
}

/* Is page p (image-relative) in an image's cache (its bits)? */
static bool page_cached(const _Atomic uint64_t* bits, uint64_t p) {
  return (atomic_load_explicit(&bits[p / 64], memory_order_acquire) >> (p % 64)) & 1;
}

/* Make the cache of an image read by pread: len bytes of anonymous
 * memory, sparse, and its bits. Under cache_lock. */
static int cache_make(cowmem_image_t* img, size_t ps) {
  size_t words = (size_t)((img->len / ps + 63) / 64);
  _Atomic uint64_t* bits = calloc(words, sizeof *bits);
  void* mem = NULL;
  int e = bits == NULL ? ENOMEM : cowmem__os_reserve(img->len, &mem);
  if (e == 0) {
    e = cowmem__os_map_anon(mem, img->len, COWMEM__PROT_RW);
    if (e) cowmem__os_unmap(mem, img->len);
  }
  if (e) {
    free((void*)bits);
    return e;
  }
  img->cached = bits;
  atomic_store_explicit(&img->cache, (uint8_t*)mem, memory_order_release);
  return 0;
}

/* The cache of an image read by pread, made on first use like another
 * image's view (cowmem__image_readable: before instances run, not during
 * one); NULL if it cannot be made. */
static uint8_t* image_cache(cowmem_image_t* img) {
  uint8_t* c = atomic_load_explicit(&img->cache, memory_order_acquire);
  if (c != NULL) return c;
  pthread_mutex_lock(&img->cache_lock);
  if (atomic_load_explicit(&img->cache, memory_order_relaxed) == NULL)
    (void)cache_make(img, cowmem__os_page_size());
  c = atomic_load_explicit(&img->cache, memory_order_relaxed);
  pthread_mutex_unlock(&img->cache_lock);
  return c;
}

/* The bytes of [rel, rel + len) (image-relative, page multiples) of an
 * image read by pread, from its cache (made: cowmem__image_readable said
 * yes); the pages not there yet are read into it first, once for the
 * image's life. NULL with the read's error in *err
 * (COWMEM__IMAGE_CHANGED: the file shrank). What the cache holds stays
 * what the file held when it was read: a reset restores the image as
 * instances got it even after the file changed. */
static const uint8_t* image_cached(const cowmem_image_t* cimg, uint64_t rel,
                                   uint64_t len, int* err) {
  cowmem_image_t* img = (cowmem_image_t*)cimg;
  size_t ps = cowmem__os_page_size();
  uint64_t end = (rel + len + ps - 1) / ps, p = rel / ps;
  uint8_t* c = atomic_load_explicit(&img->cache, memory_order_acquire);
  while (p < end && page_cached(img->cached, p)) p++;
  if (p == end) return c + rel;
  int e = 0;
  pthread_mutex_lock(&img->cache_lock);
  while (p < end && e == 0) {
    if (page_cached(img->cached, p)) {
      p++;
      continue;
    }
    uint64_t q = p + 1;
    while (q < end && !page_cached(img->cached, q)) q++;
    e = image_pread(img, c + p * ps, p * ps, (q - p) * ps);
    for (; e == 0 && p < q; p++)
      atomic_fetch_or_explicit(&img->cached[p / 64], (uint64_t)1 << (p % 64),
                               memory_order_release);
  }
  pthread_mutex_unlock(&img->cache_lock);
  *err = e;
  return e ? NULL : c + rel;
}

/* A read-only view of the image's bytes at [mem_offset, mem_offset + len),
 * mapped on first use; NULL if it cannot be mapped. */
static const uint8_t* image_view(cowmem_image_t* image) {
  uint8_t* v = atomic_load_explicit(&image->view, memory_order_acquire);
  if (v != NULL || image->len == 0) return v;
  if (image->kind == COWMEM_IMAGE_COPY) return image->bytes;
  if (image_file_check(image) != 0) return NULL;
  /* A shared read-only mapping of the sealed memfd (or immutable file):
   * reads of data pages come from the page cache, copy-free. Callers read
   * only the non-zero runs, so no hole of the memfd is ever allocated. */
  void* m = NULL;
  if (cowmem__os_map_shared_ro(image->fd, image->source_offset, image->len, &m) != 0)
    return NULL;
  uint8_t* expected = NULL;
  if (!atomic_compare_exchange_strong(&image->view, &expected, (uint8_t*)m)) {
    cowmem__os_unmap(m, image->len);
    return expected;
  }
  return m;
}

/* ---- the internal interface (image.h) ---- */

uint64_t cowmem__image_key(const cowmem_image_t* image) {
  return image == NULL || image->len == 0 ? 0 : image->id;
}

uint64_t cowmem__image_end(const cowmem_image_t* image) {
  if (image == NULL) return 0;
  /* An image in the last page of a 2^48-page memory64 memory ends at 2^64:
   * saturate, as the front end's sizes do (no slot is that large). */
  return image->len > UINT64_MAX - image->mem_offset ? UINT64_MAX
                                                       : image->mem_offset + image->len;
}

static bool image_mapped(const cowmem_image_t* img) {
  return img != NULL && img->len > 0 && img->kind != COWMEM_IMAGE_COPY;
}

bool cowmem__image_file_span(const cowmem_image_t* img, uint64_t* lo, uint64_t* hi) {
  if (!image_mapped(img)) return false;
  *lo = img->mem_offset;
  *hi = cowmem__image_end(img);
  return true;
}

size_t cowmem__image_maps(const cowmem_image_t* img, uint64_t size) {
  if (size == 0) return 0;
  if (!image_mapped(img)) return 1;
  size_t n = 2 * img->nmaps - 1;
  if (img->mem_offset > 0) n++;
  if (cowmem__image_end(img) < size) n++;
  return n;
}

size_t cowmem__image_maps_max(void) {
  long m = cowmem_option_get(COWMEM_OPTION_MAX_MAPS);
  return 2 * (size_t)(m > 1 ? m : 1) + 1;
}

static void copy_runs(const cowmem_image_t* img, uint8_t* base) {
  uint8_t* dst = base + img->mem_offset;
  for (size_t i = 0; i < img->nruns; i++)
    memcpy(dst + img->runs[i].off, img->bytes + img->runs[i].off, img->runs[i].len);
  COWMEM__STAT_INC(cowmem__stat_image_copies);
}

int cowmem__image_place(const cowmem_image_t* img, uint8_t* base) {
  if (img == NULL || img->len == 0) return 0;
  if (!image_mapped(img)) {
    copy_runs(img, base);
    return 0;
  }
  /* One fstat beside the mmaps of a FILE image the kernel does not keep
   * fixed: a file truncated since would fault the instance with SIGBUS;
   * refuse it instead. */
  int c = image_file_check(img);
  if (c) return c;
  for (size_t i = 0; i < img->nmaps; i++) {
    int e = cowmem__os_map_file(base + img->mem_offset + img->maps[i].off,
                                img->maps[i].len, img->fd,
                                img->source_offset + img->maps[i].off, COWMEM__PROT_RW);
    if (e) return e;
  }
  return 0;
}

int cowmem__image_verify(const cowmem_image_t* img) {
  return img == NULL ? 0 : image_file_check(img);
}

/* The fstat costs 0.15-0.2 us, a tenth of the rest of a warm slot's
 * cycle (the wasm2c demo: 2.33 us an instantiate+free with it, 2.11
 * without). Compared at most once a millisecond, a change made at time t
 * is still seen by every instantiation that starts at t + 1 ms + one tick
 * of the coarse clock or later: the comparison before it began before t,
 * so the clock has moved on by 1 ms since. Instances started in between
 * are exposed to it as the instances already running are. */
#define IMAGE_RECHECK_NS 1000000u
int cowmem__image_verify_reuse(const cowmem_image_t* img) {
  /* compared_ns is set only by a comparison, so only for a FILE image the
   * kernel does not keep fixed; a change found meanwhile sets changed,
   * which the instantiation refuses before it asks. */
  uint64_t last =
      img == NULL ? 0 : atomic_load_explicit(&img->compared_ns, memory_order_relaxed);
  if (last != 0 && cowmem__os_coarse_ns() - last < IMAGE_RECHECK_NS) return 0;
  return cowmem__image_verify(img);
}

int cowmem__image_remove(const cowmem_image_t* img, uint8_t* base) {
  if (img == NULL || img->len == 0) return 0;
  if (!image_mapped(img)) return cowmem__os_discard(base + img->mem_offset, img->len);
  return cowmem__os_map_anon(base + img->mem_offset, img->len, COWMEM__PROT_RW);
}

void cowmem__image_after_discard(const cowmem_image_t* img, uint8_t* base) {
  if (img != NULL && img->len > 0 && !image_mapped(img)) copy_runs(img, base);
}

/* The bytes at mem_offset, once cowmem__image_readable said yes; NULL for
 * an image read by pread. */
static const uint8_t* image_src(const cowmem_image_t* img) {
  if (img->kind == COWMEM_IMAGE_COPY) return img->bytes;
  if (image_by_pread(img)) return NULL;
  return atomic_load_explicit(&((cowmem_image_t*)img)->view, memory_order_acquire);
}

bool cowmem__image_readable(cowmem_image_t* img) {
  if (img == NULL || img->len == 0) return true;
  if (image_by_pread(img)) return !cowmem__image_changed(img) && image_cache(img) != NULL;
  return image_view(img) != NULL;
}

/* The index of the first run ending after rel (image-relative), searched
 * from run `from` on (every run before it ends at or before rel). */
static size_t run_at(const cowmem_image_t* img, size_t from, uint64_t rel) {
  size_t lo = from, hi = img->nruns;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (img->runs[mid].off + img->runs[mid].len <= rel)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

const uint8_t* cowmem__image_page(const cowmem_image_t* img, uint64_t off) {
  if (img == NULL || off < img->mem_offset || off - img->mem_offset >= img->len)
    return NULL;
  /* Runs are page-granular: a page is all in a run or all zeros. */
  uint64_t rel = off - img->mem_offset;
  size_t i = run_at(img, 0, rel);
  if (i == img->nruns || img->runs[i].off > rel) return NULL;
  return image_src(img) + rel;
}

bool cowmem__image_page_differs(const cowmem_image_t* img, const uint8_t* page,
                                uint64_t off) {
  size_t ps = cowmem__os_page_size();
  if (img == NULL || !image_by_pread(img) || off < img->mem_offset ||
      off - img->mem_offset >= img->len) {
    const uint8_t* want = cowmem__image_page(img, off);
    return want != NULL ? memcmp(page, want, ps) != 0 : !cowmem__is_zero(page, ps);
  }
  /* A page that cannot be read counts as changed; the reset's restore
   * reports why. */
  int e = 0;
  const uint8_t* want = image_cached(img, off - img->mem_offset, ps, &e);
  return want == NULL || memcmp(page, want, ps) != 0;
}

/* Restore [lo, hi) of an image's memory (lo inside the image or before
 * it). *run: a run index no later than the first run ending after lo; it
 * becomes that run, so that the next range, which starts at or after hi,
 * searches from there. */
static int restore_range(const cowmem_image_t* img, const uint8_t* src, uint8_t* base,
                         uint64_t lo, uint64_t hi, bool own, bool plain, size_t* run) {
  uint64_t at = lo, rel_lo = lo > img->mem_offset ? lo - img->mem_offset : 0;
  size_t i = *run;
  /* Ranges ascend, and the run that covered the last one usually covers
   * this one too: search only when it ends before it. */
  if (i < img->nruns && img->runs[i].off + img->runs[i].len <= rel_lo)
    i = run_at(img, i + 1, rel_lo);
  *run = i;
  for (; i < img->nruns; i++) {
    uint64_t a = img->mem_offset + img->runs[i].off, b = a + img->runs[i].len;
    if (a >= hi) break;
    if (a < at) a = at;
    if (b > hi) b = hi;
    if (a > at) memset(base + at, 0, a - at);
    int e = 0;
    const uint8_t* from = src != NULL ? src + (a - img->mem_offset)
                          : own       ? image_cached(img, a - img->mem_offset, b - a, &e)
                                      : NULL;
    if (from != NULL)
      cowmem__lines_copy(base + a, from, b - a, plain);
    else if (e || (e = image_pread(img, base + a, a - img->mem_offset, b - a)) != 0)
      return e;
    at = b;
  }
  if (at < hi) memset(base + at, 0, hi - at);
  return 0;
}

int cowmem__image_restore_many(const cowmem_image_t* img, uint8_t* base,
                               const cowmem__os_range_t* ranges, size_t n, bool own,
                               bool likely_own) {
  bool plain = own || likely_own; /* comparing is not needed to keep pages clean */
  bool empty = img == NULL || img->len == 0;
  const uint8_t* src = empty ? NULL : image_src(img); /* NULL: read by pread */
  uint64_t first = empty ? 0 : img->mem_offset, end = empty ? 0 : first + img->len;
  size_t run = 0;
  for (size_t k = 0; k < n; k++) {
    uint8_t* p = ranges[k].addr;
    uint64_t lo = (uint64_t)(p - base), hi = lo + ranges[k].len;
    if (hi <= first || lo >= end) {
      memset(p, 0, ranges[k].len);
      continue;
    }
    /* Most ranges lie in the run the last one did: one copy. */
    if (src != NULL && run < img->nruns) {
      uint64_t a = first + img->runs[run].off;
      if (a <= lo && hi <= a + img->runs[run].len) {
        cowmem__lines_copy(p, src + (lo - first), ranges[k].len, plain);
        continue;
      }
    }
    int e = restore_range(img, src, base, lo, hi, own, plain, &run);
    if (e) return e;
  }
  return 0;
}

int cowmem__image_restore(const cowmem_image_t* img, uint8_t* base, uint64_t lo,
                          uint64_t hi, bool own) {
  cowmem__os_range_t r = {base + lo, (size_t)(hi - lo)};
  return cowmem__image_restore_many(img, base, &r, 1, own, false);
}

int cowmem__image_each_run(const cowmem_image_t* img,
                           int (*fn)(void* arg, uint64_t off, uint64_t len), void* arg) {
  if (img == NULL) return 0;
  for (size_t i = 0; i < img->nruns; i++) {
    int r = fn(arg, img->mem_offset + img->runs[i].off, img->runs[i].len);
    if (r != 0) return r;
  }
  return 0;
}

int cowmem__image_each_extent(const cowmem_image_t* img,
                              int (*fn)(void* arg, uint64_t off, uint64_t len),
                              void* arg) {
  if (img == NULL || img->kind != COWMEM_IMAGE_FILE)
    return cowmem__image_each_run(img, fn, arg); /* known exactly */
  size_t ps = cowmem__os_page_size();
  uint64_t start = img->source_offset, end = start + img->len;
  uint64_t at = 0; /* image-relative, a page multiple */
  while (at < img->len) {
    uint64_t d, h;
    int e = cowmem__os_data_extent(img->fd, start + at, end, &d, &h);
    if (e) return cowmem__err_from_os(e);
    if (d >= end) break;
    /* The pages the extent touches (len is a page multiple: b <= len). */
    uint64_t a = (d - start) / ps * ps, b = (h - start + ps - 1) / ps * ps;
    if (a < at) a = at;
    if (b > a) {
      int r = fn(arg, img->mem_offset + a, b - a);
      if (r != 0) return r;
    }
    at = b > at ? b : at + ps; /* an empty extent still advances */
  }
  return 0;
}
