/* Images: a memory's initial contents, built once and shared.
 *
 * From bytes, only pages holding a non-zero byte are written into a memfd
 * sized with ftruncate, so zero runs inside the image stay file holes and are
 * never resident; then the memfd is sealed. Where memfd cannot be had, the
 * same pages go into an anonymous mapping (COPY) that instantiation copies.
 * Both keep the list of non-zero page runs: copies touch only those.
 *
 * This file alone knows an image's layout; the others use image.h. */
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* A run of pages of an image that hold non-zero bytes, relative to the
 * image's mem_offset. Copies restore only these; holes stay untouched. */
typedef struct {
  uint64_t off;
  uint64_t len;
} cowmem__run_t;

struct cowmem_image_s {
  /* References (bits 32-63), the orphan flag (bit 31) and the references
   * held by idle pool slots (bits 0-30) in one word. When idle slots hold
   * every reference, nobody can instantiate the image again: it is an
   * orphan, and pools decommit its idle slots so that its memory is freed.
   * One word, so that the update that makes the image an orphan (a free, or
   * a slot becoming idle) sees it in its own read-modify-write: with two
   * counters, a free and a release racing could each miss the other's.
   * On a cache line of its own: every acquire and release writes it, and
   * the fields below are read by every reset on every thread (sharing the
   * line cost two threads' K=16 cycle 0.3 us on the 2-core VM). */
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
   * holes (see image_plan_maps); the large holes between them stay
   * anonymous memory in a slot, because a read fault on a hole of a private
   * shmem mapping allocates a page in the memfd. */
  cowmem__run_t* maps;
  size_t nmaps;
  uint64_t id;            /* unique for the process's life (pools key on it) */
  _Atomic(uint8_t*) view; /* image_view's mapping, or NULL */
  /* FILE: the file as it was when the image was made (size, inode, mtime),
   * compared whenever the image is mapped again; changed once it differed:
   * from then on the image is never instantiated again. */
  cowmem__os_file_id_t file_id;
  _Atomic bool changed;
  _Atomic(cowmem__image_weak_t*) weak; /* made on first request */
};

/* A weak reference: says whether the image is gone, without keeping it. */
struct cowmem__image_weak_s {
  _Atomic uint32_t refs;
  _Atomic bool dead;
};

static _Atomic uint64_t image_next_id = 1;

/* The fields of cowmem_image_s.refs. */
#define REF_ONE ((uint64_t)1 << 32)
#define ORPHAN_BIT ((uint64_t)1 << 31)
#define IDLE_MASK (ORPHAN_BIT - 1)

/* The input bytes as seen through pages: page p of the image covers memory
 * [p, p + ps); only the first and the last page may be partly outside the
 * caller's bytes, and those parts are zero. */
typedef struct {
  const uint8_t* bytes;
  uint64_t begin; /* memory offset of bytes[0] */
  uint64_t end;   /* memory offset one past the last byte */
} source_t;

/* Pointer to the page at memory offset pa, complete: directly into the
 * caller's bytes, or assembled in tmp with zero padding. */
static const uint8_t* source_page(const source_t* s, uint64_t pa, size_t ps,
                                  uint8_t* tmp) {
  if (pa >= s->begin && pa + ps <= s->end) return s->bytes + (pa - s->begin);
  memset(tmp, 0, ps);
  uint64_t lo = pa > s->begin ? pa : s->begin;
  uint64_t hi = pa + ps < s->end ? pa + ps : s->end;
  if (lo < hi) memcpy(tmp + (lo - pa), s->bytes + (lo - s->begin), hi - lo);
  return tmp;
}

bool cowmem__is_zero(const void* ptr, size_t n) {
  /* OR 64 bytes at a time: this scan bounds image building, which should cost
   * about as much as copying the data once. */
  const uint8_t* p = ptr;
  const uint8_t* end = p + n;
  while (p < end) {
    uint64_t acc = 0, w[8];
    memcpy(w, p, sizeof w);
    for (int i = 0; i < 8; i++)
      acc |= w[i];
    if (acc != 0) return false;
    p += sizeof w;
  }
  return true;
}

static cowmem_image_t* image_alloc(void) {
  size_t size = (sizeof(cowmem_image_t) + 63) & ~(size_t)63; /* aligned: see refs */
  cowmem_image_t* img = aligned_alloc(64, size);
  if (img == NULL) return NULL;
  memset(img, 0, size);
  atomic_init(&img->refs, REF_ONE);
  img->fd = -1;
  img->id = atomic_fetch_add(&image_next_id, 1);
  return img;
}

_Atomic uint64_t cowmem__orphan_epoch;

static void image_destroy(cowmem_image_t* img) {
  cowmem__image_weak_t* w = atomic_load(&img->weak);
  if (w != NULL) {
    atomic_store(&w->dead, true);
    cowmem__image_weak_release(w);
  }
  uint8_t* view = atomic_load(&img->view);
  if (view != NULL) cowmem__os_unmap(view, img->len);
  if (img->fd >= 0) cowmem__os_close(img->fd);
  if (img->bytes != NULL) cowmem__os_unmap(img->bytes, img->len);
  free(img->runs);
  free(img->maps);
  free(img);
}

/* Find the non-zero page runs of the source over [first, last) pages. */
static int collect_runs(cowmem_image_t* img, const source_t* s, uint64_t lo, uint64_t hi,
                        size_t ps, uint8_t* tmp) {
  size_t cap = 0;
  uint64_t run_start = 0;
  bool in_run = false;
  for (uint64_t pa = lo; pa <= hi; pa += ps) {
    bool nz = pa < hi && !cowmem__is_zero(source_page(s, pa, ps, tmp), ps);
    if (nz && !in_run) {
      run_start = pa;
      in_run = true;
    } else if (!nz && in_run) {
      if (img->nruns == cap) {
        size_t ncap = cap ? cap * 2 : 8;
        cowmem__run_t* r = realloc(img->runs, ncap * sizeof *r);
        if (r == NULL) return COWMEM_ENOMEM;
        img->runs = r;
        cap = ncap;
      }
      img->runs[img->nruns].off = run_start;
      img->runs[img->nruns].len = pa - run_start;
      img->data_pages += (pa - run_start) / ps;
      img->nruns++;
      in_run = false;
    }
    if (pa == hi) break;
  }
  return 0;
}

/* Write the runs into dst: an fd (pwrite) or memory. Runs are in memory
 * offsets here; they become image-relative after. */
static int write_runs(cowmem_image_t* img, const source_t* s, uint8_t* mem, size_t ps,
                      uint8_t* tmp) {
  for (size_t i = 0; i < img->nruns; i++) {
    uint64_t pa = img->runs[i].off, end = pa + img->runs[i].len;
    while (pa < end) {
      /* Whole pages inside the caller's bytes go in one write; a partial
       * edge page goes alone through tmp. */
      uint64_t n;
      const uint8_t* src;
      if (pa >= s->begin && pa + ps <= s->end) {
        uint64_t full_end = cowmem__page_floor(s->end);
        n = (end < full_end ? end : full_end) - pa;
        src = s->bytes + (pa - s->begin);
      } else {
        n = ps;
        src = source_page(s, pa, ps, tmp);
      }
      uint64_t rel = pa - img->mem_offset;
      if (mem != NULL) {
        memcpy(mem + rel, src, n);
      } else {
        int e = cowmem__os_pwrite_all(img->fd, src, n, rel);
        if (e) return cowmem__err_from_os(e);
      }
      pa += n;
    }
  }
  return 0;
}

/* Which parts of a MEMFD image a slot maps from the fd. Reading a hole of a
 * private shmem mapping allocates a page in the memfd, so large holes are
 * better left to the slot's anonymous memory (a read maps the shared zero
 * page). But every mapping is a VMA in every slot, and a pool of thousands
 * of slots must stay under vm.max_map_count: join runs across holes shorter
 * than HOLE_PAGES, then across the smallest holes until at most MAX_MAPS. */
static int image_plan_maps(cowmem_image_t* img, size_t ps) {
  img->maps = malloc((img->nruns ? img->nruns : 1) * sizeof *img->maps);
  if (img->maps == NULL) return COWMEM_ENOMEM;
  uint64_t min_hole = (uint64_t)cowmem_option_get(COWMEM_OPTION_HOLE_PAGES) * ps;
  long max_maps = cowmem_option_get(COWMEM_OPTION_MAX_MAPS);
  size_t n = 0;
  for (size_t i = 0; i < img->nruns; i++) {
    if (n > 0 &&
        img->runs[i].off - (img->maps[n - 1].off + img->maps[n - 1].len) < min_hole)
      img->maps[n - 1].len = img->runs[i].off + img->runs[i].len - img->maps[n - 1].off;
    else
      img->maps[n++] = img->runs[i];
  }
  while (n > 1 && (long)n > (max_maps > 0 ? max_maps : 1)) {
    size_t best = 1;
    uint64_t best_gap = UINT64_MAX;
    for (size_t i = 1; i < n; i++) {
      uint64_t gap = img->maps[i].off - (img->maps[i - 1].off + img->maps[i - 1].len);
      if (gap < best_gap) {
        best_gap = gap;
        best = i;
      }
    }
    img->maps[best - 1].len =
        img->maps[best].off + img->maps[best].len - img->maps[best - 1].off;
    memmove(&img->maps[best], &img->maps[best + 1], (n - best - 1) * sizeof *img->maps);
    n--;
  }
  img->nmaps = n;
  return 0;
}

static bool memfd_fallback_errno(int e) {
  return e == ENOSYS || e == EMFILE || e == ENFILE || e == ENOMEM || e == EPERM ||
         e == EINVAL;
}

/* Put the runs into a sealed memfd. On failure *fallback says whether the
 * COPY image should be made instead (memfd or sealing missing or out of
 * descriptors: copies are the safe path there). */
static int image_fill_memfd(cowmem_image_t* img, const source_t* s, size_t ps,
                            uint8_t* tmp, bool* fallback) {
  int fd = -1;
  int e = cowmem__os_memfd_new("cowmem-image", &fd);
  if (e) {
    *fallback = memfd_fallback_errno(e);
    return cowmem__err_from_os(e);
  }
  img->fd = fd;
  int r = cowmem__err_from_os(cowmem__os_ftruncate(fd, img->len));
  if (r == 0) r = write_runs(img, s, NULL, ps, tmp);
  if (r == 0 && (e = cowmem__os_seal(fd)) != 0) {
    *fallback = memfd_fallback_errno(e);
    r = cowmem__err_from_os(e);
  }
  if (r != 0) {
    cowmem__os_close(fd);
    img->fd = -1;
  }
  return r;
}

static int image_fill_copy(cowmem_image_t* img, const source_t* s, size_t ps,
                           uint8_t* tmp) {
  void* mem = NULL;
  int e = cowmem__os_reserve(img->len, &mem);
  if (e == 0) {
    e = cowmem__os_map_anon(mem, img->len, COWMEM__PROT_RW);
    if (e) cowmem__os_unmap(mem, img->len);
  }
  if (e) return cowmem__err_from_os(e);
  img->bytes = mem;
  int r = write_runs(img, s, mem, ps, tmp);
  if (r == 0) cowmem__os_protect(mem, img->len, COWMEM__PROT_READ);
  return r;
}

/* Choose the image's backing and fill it: a sealed memfd, or ordinary
 * memory where memfd cannot be had or copies are forced. */
static int image_back(cowmem_image_t* img, const source_t* s, size_t ps, uint8_t* tmp) {
  bool copy = cowmem_option_get(COWMEM_OPTION_FORCE_COPY) != 0 || !cowmem__os_has_memfd();
  if (img->nruns == 0) { /* all zeros: nothing to back */
    img->kind = copy ? COWMEM_IMAGE_COPY : COWMEM_IMAGE_MEMFD;
    return 0;
  }
  img->mem_offset = img->runs[0].off;
  const cowmem__run_t* last = &img->runs[img->nruns - 1];
  img->len = last->off + last->len - img->mem_offset;
  if (!copy) {
    bool fallback = false;
    img->kind = COWMEM_IMAGE_MEMFD;
    int r = image_fill_memfd(img, s, ps, tmp, &fallback);
    if (r == 0 || !fallback) return r;
    cowmem__verbose("memfd unavailable (%s): copying", cowmem_err_name(r));
  }
  img->kind = COWMEM_IMAGE_COPY;
  return image_fill_copy(img, s, ps, tmp);
}

int cowmem_image_new_from_bytes(const void* bytes, size_t len, uint64_t mem_offset,
                                cowmem_image_t** out) {
  if (out == NULL || (bytes == NULL && len > 0)) return COWMEM_EINVAL;
  if (mem_offset > UINT64_MAX - len) return COWMEM_EINVAL;
  size_t ps = cowmem__os_page_size();
  source_t s = {bytes, mem_offset, mem_offset + len};
  uint64_t lo = cowmem__page_floor(s.begin), hi;
  if (!cowmem__page_ceil(s.end, &hi)) return COWMEM_EINVAL;

  cowmem_image_t* img = image_alloc();
  uint8_t* tmp = malloc(ps);
  int r = (img == NULL || tmp == NULL) ? COWMEM_ENOMEM : 0;
  if (r == 0) r = collect_runs(img, &s, lo, hi, ps, tmp);
  if (r == 0) r = image_back(img, &s, ps, tmp);
  free(tmp);
  if (r != 0) {
    if (img != NULL) image_destroy(img);
    return r;
  }
  for (size_t i = 0; i < img->nruns; i++)
    img->runs[i].off -= img->mem_offset;
  if (img->kind == COWMEM_IMAGE_MEMFD && image_plan_maps(img, ps) != 0) {
    image_destroy(img);
    return COWMEM_ENOMEM;
  }
  COWMEM__STAT_INC(cowmem__stat_images_live);
  *out = img;
  return 0;
}

int cowmem_image_new_from_file(int fd, uint64_t file_offset, uint64_t len,
                               uint64_t mem_offset, unsigned flags,
                               cowmem_image_t** out) {
  if (out == NULL || fd < 0 || len == 0) return COWMEM_EINVAL;
  if ((flags & ~COWMEM_IMAGE_FILE_IMMUTABLE) != 0) return COWMEM_EINVAL;
  if (!cowmem__is_page_multiple(file_offset) || !cowmem__is_page_multiple(mem_offset))
    return COWMEM_EINVAL;
  uint64_t rounded;
  if (file_offset > UINT64_MAX - len || !cowmem__page_ceil(len, &rounded) ||
      mem_offset > UINT64_MAX - rounded)
    return COWMEM_EINVAL;
  uint64_t fsize = 0;
  bool sealed = false;
  int e = cowmem__os_fstat(fd, &fsize, &sealed);
  if (e) return e == EINVAL ? COWMEM_EINVAL : cowmem__err_from_os(e);
  /* Past the end of the file a mapping raises SIGBUS, and a partial last
   * page must end at EOF so that its tail reads as zeros. */
  if (file_offset + len > fsize) return COWMEM_EINVAL;
  if (rounded != len && file_offset + len != fsize) return COWMEM_EINVAL;

  bool direct = (sealed || (flags & COWMEM_IMAGE_FILE_IMMUTABLE)) &&
                cowmem__os_has_memfd() &&
                cowmem_option_get(COWMEM_OPTION_FORCE_COPY) == 0;
  if (!direct) {
    /* The file may change under us: take a private, sealed copy now. */
    if (len > SIZE_MAX) return COWMEM_ENOMEM;
    uint8_t* buf = malloc((size_t)len);
    if (buf == NULL) return COWMEM_ENOMEM;
    int r = cowmem__err_from_os(cowmem__os_pread_all(fd, buf, (size_t)len, file_offset));
    if (r == 0) r = cowmem_image_new_from_bytes(buf, (size_t)len, mem_offset, out);
    free(buf);
    return r;
  }
  cowmem_image_t* img = image_alloc();
  if (img == NULL) return COWMEM_ENOMEM;
  img->runs = malloc(sizeof *img->runs);
  img->maps = malloc(sizeof *img->maps);
  e = img->runs == NULL || img->maps == NULL ? ENOMEM : cowmem__os_dup(fd, &img->fd);
  if (e == 0) e = cowmem__os_file_id(img->fd, &img->file_id);
  if (e) {
    image_destroy(img);
    return cowmem__err_from_os(e);
  }
  img->kind = COWMEM_IMAGE_FILE;
  img->mem_offset = mem_offset;
  img->len = rounded;
  img->source_offset = file_offset;
  img->data_pages = rounded / cowmem__os_page_size();
  img->runs[0].off = 0;
  img->runs[0].len = rounded;
  img->nruns = 1;
  img->maps[0] = img->runs[0];
  img->nmaps = 1;
  COWMEM__STAT_INC(cowmem__stat_images_live);
  *out = img;
  return 0;
}

cowmem_image_t* cowmem_image_retain(cowmem_image_t* image) {
  if (image != NULL)
    atomic_fetch_add_explicit(&image->refs, REF_ONE, memory_order_relaxed);
  return image;
}

static void orphan_announce(void) {
  atomic_fetch_add(&cowmem__orphan_epoch, 1);
}

void cowmem__image_idle_add(cowmem_image_t* image) {
  uint64_t old = atomic_load(&image->refs), nw;
  bool orphan;
  do {
    nw = old + 1;
    orphan = !(old & ORPHAN_BIT) && (nw >> 32) == (nw & IDLE_MASK);
    if (orphan) nw |= ORPHAN_BIT;
  } while (!atomic_compare_exchange_weak(&image->refs, &old, nw));
  /* A changed image's slot becoming idle: the sweep that announced the
   * change may have run already. */
  if (orphan || atomic_load_explicit(&image->changed, memory_order_relaxed))
    orphan_announce();
}

void cowmem__image_idle_sub(cowmem_image_t* image) {
  atomic_fetch_sub(&image->refs, 1);
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
 * old inode's ctime but none of its bytes. */
static int image_file_check(const cowmem_image_t* img) {
  if (img->kind != COWMEM_IMAGE_FILE) return 0;
  if (atomic_load_explicit(&img->changed, memory_order_relaxed))
    return COWMEM__IMAGE_CHANGED;
  cowmem__os_file_id_t now;
  int e = cowmem__os_file_id(img->fd, &now);
  if (e) return e;
  const cowmem__os_file_id_t* was = &img->file_id;
  if (now.size == was->size && now.mtime_ns == was->mtime_ns && now.ino == was->ino &&
      now.dev == was->dev)
    return 0;
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
  /* The orphan flag is set by the decrement itself: after it, the idle
   * slots holding the other references may drop them at any time. */
  uint64_t old = atomic_load_explicit(&image->refs, memory_order_relaxed), nw;
  bool orphan;
  do {
    nw = old - REF_ONE;
    uint64_t idle = nw & IDLE_MASK;
    orphan = !(old & ORPHAN_BIT) && idle > 0 && (nw >> 32) == idle;
    if (orphan) nw |= ORPHAN_BIT;
  } while (!atomic_compare_exchange_weak_explicit(
      &image->refs, &old, nw, memory_order_acq_rel, memory_order_relaxed));
  if (orphan) orphan_announce();
  if ((nw >> 32) != 0) return;
  COWMEM__STAT_DEC(cowmem__stat_images_live);
  image_destroy(image);
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
  if (offset > UINT64_MAX - len) return COWMEM_EINVAL;
  uint64_t lo = offset > image->mem_offset ? offset : image->mem_offset;
  uint64_t img_end = image->mem_offset + image->len;
  uint64_t hi = offset + len < img_end ? offset + len : img_end;
  if (lo >= hi || image->kind == COWMEM_IMAGE_COPY) {
    memset(dst, 0, len);
    if (lo < hi)
      memcpy((uint8_t*)dst + (lo - offset), image->bytes + (lo - image->mem_offset),
             hi - lo);
    return 0;
  }
  /* From the fd, through a buffer: dst is written only once nothing can
   * fail any more. A FILE image's last page may run past EOF: that part
   * reads as zeros. */
  uint64_t src = image->source_offset + (lo - image->mem_offset);
  uint64_t fsize = 0;
  bool sealed = false;
  int e = cowmem__os_fstat(image->fd, &fsize, &sealed);
  if (e) return cowmem__err_from_os(e);
  uint64_t n = src >= fsize ? 0 : hi - lo;
  if (n > 0 && src + n > fsize) n = fsize - src;
  uint8_t* buf = n > 0 ? malloc((size_t)n) : NULL;
  if (n > 0 && buf == NULL) return COWMEM_ENOMEM;
  e = n > 0 ? cowmem__os_pread_all(image->fd, buf, (size_t)n, src) : 0;
  if (e == 0) {
    memset(dst, 0, len);
    if (n > 0) memcpy((uint8_t*)dst + (lo - offset), buf, (size_t)n);
  }
  free(buf);
  return cowmem__err_from_os(e);
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
  return image == NULL ? 0 : image->mem_offset + image->len;
}

static bool image_mapped(const cowmem_image_t* img) {
  return img != NULL && img->len > 0 && img->kind != COWMEM_IMAGE_COPY;
}

size_t cowmem__image_maps(const cowmem_image_t* img, uint64_t size) {
  if (size == 0) return 0;
  if (!image_mapped(img)) return 1;
  size_t n = 2 * img->nmaps - 1;
  if (img->mem_offset > 0) n++;
  if (img->mem_offset + img->len < size) n++;
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
  /* One fstat beside the mmaps of a FILE image: a file truncated since
   * would fault the instance with SIGBUS; refuse it instead. */
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

int cowmem__image_remove(const cowmem_image_t* img, uint8_t* base) {
  if (img == NULL || img->len == 0) return 0;
  if (image_mapped(img))
    return cowmem__os_map_anon(base + img->mem_offset, img->len, COWMEM__PROT_RW);
  return cowmem__os_discard(base + img->mem_offset, img->len);
}

void cowmem__image_after_discard(const cowmem_image_t* img, uint8_t* base) {
  if (img != NULL && img->len > 0 && !image_mapped(img)) copy_runs(img, base);
}

/* The bytes at mem_offset, once cowmem__image_readable said yes. */
static const uint8_t* image_src(const cowmem_image_t* img) {
  if (img->kind == COWMEM_IMAGE_COPY) return img->bytes;
  return atomic_load_explicit(&((cowmem_image_t*)img)->view, memory_order_acquire);
}

bool cowmem__image_readable(cowmem_image_t* img) {
  return img == NULL || img->len == 0 || image_view(img) != NULL;
}

/* The index of the first run ending after rel (image-relative). */
static size_t run_at(const cowmem_image_t* img, uint64_t rel) {
  size_t lo = 0, hi = img->nruns;
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
  size_t i = run_at(img, rel);
  if (i == img->nruns || img->runs[i].off > rel) return NULL;
  return image_src(img) + rel;
}

void cowmem__image_restore(const cowmem_image_t* img, uint8_t* base, uint64_t lo,
                           uint64_t hi) {
  uint64_t at = lo;
  if (img != NULL && img->len > 0) {
    const uint8_t* src = image_src(img);
    uint64_t rel_lo = lo > img->mem_offset ? lo - img->mem_offset : 0;
    for (size_t i = run_at(img, rel_lo); i < img->nruns; i++) {
      uint64_t a = img->mem_offset + img->runs[i].off, b = a + img->runs[i].len;
      if (a >= hi) break;
      if (a < at) a = at;
      if (b > hi) b = hi;
      if (a > at) memset(base + at, 0, a - at);
      memcpy(base + a, src + (a - img->mem_offset), b - a);
      at = b;
    }
  }
  if (at < hi) memset(base + at, 0, hi - at);
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
