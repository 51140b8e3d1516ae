/* Building images: a memory's initial contents, built once and shared.
 *
 * From bytes, only pages holding a non-zero byte are written into a memfd
 * sized with ftruncate, so zero runs inside the image stay file holes and are
 * never resident; then the memfd is sealed. Where memfd cannot be had, the
 * same pages go into an anonymous mapping (COPY) that instantiation copies.
 * Both keep the list of non-zero page runs: copies touch only those.
 *
 * From a file range, a file that cannot change (sealed, immutable, or
 * declared immutable) is mapped itself (FILE) where memfd can be had; any
 * other is copied the same way, read from its data extents only.
 *
 * What happens to an image once it is built is image.c's. */
#include <stdlib.h>
#include <string.h>

#include "image/layout.h"

/* The input bytes as seen through pages: page p of the image covers memory
 * [p, p + ps); only the first and the last page may be partly outside the
 * caller's bytes, and those parts are zero.
 *
 * The last page may end at byte 2^64 (a memory64 memory of 2^48 pages with
 * data in its last page), one past what a uint64_t holds: page ends are
 * never formed as sums here, only lengths (end - pa) are compared. */
typedef struct {
  const uint8_t* bytes;
  uint64_t begin; /* memory offset of bytes[0] */
  uint64_t end;   /* memory offset one past the last byte */
  /* Or, with bytes NULL, a file range: memory offset begin is file offset
   * file_base; read through chunk (chunk_len, a page multiple) and only
   * where the file holds data, so a sparse claim costs what it holds. */
  int fd;
  uint64_t file_base;
  uint8_t* chunk;
  size_t chunk_len;
} source_t;

/* Read memory [pa, pa + n) of a file source into buf: [begin, end) is in
 * the file; the rest of a partial last page reads as zeros. */
static int source_read(const source_t* s, uint64_t pa, uint8_t* buf, size_t n) {
  uint64_t in = pa - s->begin < s->end - s->begin ? s->end - pa : 0;
  size_t have = in < n ? (size_t)in : n;
  int e = have ? cowmem__os_pread_all(s->fd, buf, have, s->file_base + (pa - s->begin)) : 0;
  if (e) return cowmem__err_from_os(e);
  memset(buf + have, 0, n - have);
  return 0;
}

/* Pointer to the page at memory offset pa, complete: directly into the
 * caller's bytes, or assembled in tmp with zero padding. */
static bool source_whole(const source_t* s, uint64_t pa, size_t ps) {
  return s->bytes != NULL && pa >= s->begin && pa < s->end && s->end - pa >= ps;
}

static const uint8_t* source_page(const source_t* s, uint64_t pa, size_t ps,
                                  uint8_t* tmp) {
  if (source_whole(s, pa, ps)) return s->bytes + (pa - s->begin);
  memset(tmp, 0, ps);
  uint64_t lo = pa > s->begin ? pa : s->begin;
  if (lo - pa < ps && s->end > lo) {
    uint64_t n = s->end - lo, room = ps - (lo - pa);
    memcpy(tmp + (lo - pa), s->bytes + (lo - s->begin), n < room ? n : room);
  }
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

/* Add the page-aligned [off, off + len) to the runs (in memory offsets,
 * increasing), joining it to the last run when they touch. */
static int run_add(cowmem_image_t* img, size_t* cap, uint64_t off, uint64_t len,
                   size_t ps) {
  cowmem__run_t* last = img->nruns ? &img->runs[img->nruns - 1] : NULL;
  img->data_pages += len / ps;
  if (last != NULL && off - last->off == last->len) {
    last->len += len;
    return 0;
  }
  if (img->nruns == *cap) {
    size_t ncap = *cap ? *cap * 2 : 8;
    cowmem__run_t* r = realloc(img->runs, ncap * sizeof *r);
    if (r == NULL) return COWMEM_ENOMEM;
    img->runs = r;
    *cap = ncap;
  }
  img->runs[img->nruns++] = (cowmem__run_t){off, len};
  return 0;
}

/* Find the non-zero page runs of the source over the npages pages from lo
 * (counted in pages: the last one may end at 2^64). */
static int collect_runs(cowmem_image_t* img, const source_t* s, uint64_t lo,
                        uint64_t npages, size_t ps, uint8_t* tmp) {
  size_t cap = 0;
  for (uint64_t i = 0; i < npages; i++) {
    if (cowmem__is_zero(source_page(s, lo + i * ps, ps, tmp), ps)) continue;
    int r = run_add(img, &cap, lo + i * ps, ps, ps);
    if (r != 0) return r;
  }
  return 0;
}

/* The same for a file source: only its data extents are read (the holes
 * of a sparse file are zeros without looking); npages from begin. */
static int collect_runs_fd(cowmem_image_t* img, const source_t* s, uint64_t npages,
                           size_t ps) {
  size_t cap = 0;
  uint64_t done = 0; /* pages from begin already scanned */
  while (done < npages) {
    uint64_t d, h, end = s->file_base + (s->end - s->begin);
    int e = cowmem__os_data_extent(s->fd, s->file_base + done * ps, end, &d, &h);
    if (e) return cowmem__err_from_os(e);
    if (d >= end) break;
    /* The pages the extent touches; h <= end, so q <= npages. */
    uint64_t p = (d - s->file_base) / ps, q = (h - s->file_base) / ps;
    q += (h - s->file_base) % ps != 0;
    if (p < done) p = done;
    while (p < q) {
      size_t n = q - p < s->chunk_len / ps ? (size_t)(q - p) : s->chunk_len / ps;
      int r = source_read(s, s->begin + p * ps, s->chunk, n * ps);
      for (size_t k = 0; k < n && r == 0; k++)
        if (!cowmem__is_zero(s->chunk + k * ps, ps))
          r = run_add(img, &cap, s->begin + (p + k) * ps, ps, ps);
      if (r != 0) return r;
      p += n;
    }
    done = q > done ? q : done + 1; /* an empty extent still advances */
  }
  return 0;
}

/* Write the runs into dst: an fd (pwrite) or memory. Runs are in memory
 * offsets here; they become image-relative after. */
static int write_runs(cowmem_image_t* img, const source_t* s, uint8_t* mem, size_t ps,
                      uint8_t* tmp) {
  for (size_t i = 0; i < img->nruns; i++) {
    uint64_t pa = img->runs[i].off, left = img->runs[i].len;
    while (left > 0) {
      /* Whole pages inside the caller's bytes go in one write; a partial
       * edge page goes alone through tmp. */
      uint64_t n;
      const uint8_t* src;
      if (s->bytes == NULL) {
        n = left < s->chunk_len ? left : s->chunk_len;
        int r = source_read(s, pa, s->chunk, (size_t)n);
        if (r != 0) return r;
        src = s->chunk;
      } else if (source_whole(s, pa, ps)) {
        uint64_t whole = cowmem__page_floor(s->end - pa); /* s->end - pa >= ps */
        n = left < whole ? left : whole;
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
      pa += n; /* wraps to 0 past the last page of 2^64: left is 0 then */
      left -= n;
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
  img->len = last->off - img->mem_offset + last->len;
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

/* Build an image of the source's npages pages from lo: its non-zero page
 * runs, backed by a sealed memfd or a copy. */
static int image_build(const source_t* s, uint64_t lo, uint64_t npages,
                       cowmem_image_t** out) {
  size_t ps = cowmem__os_page_size();
  cowmem_image_t* img = cowmem__image_alloc();
  uint8_t* tmp = malloc(ps);
  int r = (img == NULL || tmp == NULL) ? COWMEM_ENOMEM : 0;
  if (r == 0)
    r = s->bytes != NULL || npages == 0 ? collect_runs(img, s, lo, npages, ps, tmp)
                                        : collect_runs_fd(img, s, npages, ps);
  if (r == 0) r = image_back(img, s, ps, tmp);
  free(tmp);
  if (r != 0) {
    if (img != NULL) cowmem__image_destroy(img);
    return r;
  }
  for (size_t i = 0; i < img->nruns; i++)
    img->runs[i].off -= img->mem_offset;
  if (img->kind == COWMEM_IMAGE_MEMFD && image_plan_maps(img, ps) != 0) {
    cowmem__image_destroy(img);
    return COWMEM_ENOMEM;
  }
  COWMEM__STAT_INC(cowmem__stat_images_live);
  *out = img;
  return 0;
}

int cowmem_image_new_from_bytes(const void* bytes, size_t len, uint64_t mem_offset,
                                cowmem_image_t** out) {
  if (out == NULL || (bytes == NULL && len > 0)) return COWMEM_EINVAL;
  if (mem_offset > UINT64_MAX - len) return COWMEM_EINVAL;
  size_t ps = cowmem__os_page_size();
  source_t s = {bytes, mem_offset, mem_offset + len, -1, 0, NULL, 0};
  /* In pages from lo, so that an image whose last page ends at 2^64 is
   * counted, not rounded up past UINT64_MAX. Only an image of all 2^64
   * bytes has more pages than that holds, and no caller has those bytes. */
  uint64_t lo = cowmem__page_floor(s.begin), span = s.end - lo;
  uint64_t npages = span / ps + (span % ps != 0);
  if (npages > UINT64_MAX / ps) return COWMEM_EINVAL;
  return image_build(&s, lo, npages, out);
}

/* A private copy of a file range that may change: its data extents are
 * read (twice: to find the non-zero pages, then to copy them), its holes
 * never, so what it costs is bounded by what the file holds, not by the
 * length it is given. */
static int image_copy_file(int fd, uint64_t file_offset, uint64_t len,
                           uint64_t mem_offset, cowmem_image_t** out) {
  size_t ps = cowmem__os_page_size();
  source_t s = {NULL, mem_offset, mem_offset + len, fd, file_offset, NULL,
                (size_t)1 << 20};
  s.chunk = malloc(s.chunk_len);
  if (s.chunk == NULL) return COWMEM_ENOMEM;
  int r = image_build(&s, mem_offset, len / ps + (len % ps != 0), out);
  free(s.chunk);
  return r;
}

int cowmem_image_new_from_file(int fd, uint64_t file_offset, uint64_t len,
                               uint64_t mem_offset, unsigned flags,
                               cowmem_image_t** out) {
  if (out == NULL || fd < 0 || len == 0) return COWMEM_EINVAL;
  if ((flags & ~COWMEM_IMAGE_FILE_IMMUTABLE) != 0) return COWMEM_EINVAL;
  if (!cowmem__is_page_multiple(file_offset) || !cowmem__is_page_multiple(mem_offset))
    return COWMEM_EINVAL;
  uint64_t rounded;
  /* The image may end at 2^64 (see source_t), not past it. */
  if (file_offset > UINT64_MAX - len || !cowmem__page_ceil(len, &rounded) ||
      (mem_offset != 0 && rounded > 0 - mem_offset))
    return COWMEM_EINVAL;
  uint64_t fsize = 0;
  bool sealed = false;
  int e = cowmem__os_fstat(fd, &fsize, &sealed);
  if (e) return e == EINVAL ? COWMEM_EINVAL : cowmem__err_from_os(e);
  /* Past the end of the file a mapping raises SIGBUS, and a partial last
   * page must end at EOF so that its tail reads as zeros. */
  if (file_offset + len > fsize) return COWMEM_EINVAL;
  if (rounded != len && file_offset + len != fsize) return COWMEM_EINVAL;

  bool fixed = false;
  if ((e = cowmem__os_file_fixed(fd, &fixed)) != 0) return cowmem__err_from_os(e);
  bool direct = (sealed || fixed || (flags & COWMEM_IMAGE_FILE_IMMUTABLE)) &&
                cowmem__os_has_memfd() &&
                cowmem_option_get(COWMEM_OPTION_FORCE_COPY) == 0;
  if (!direct) {
    /* The file may change under us: take a private, sealed copy now. */
    return image_copy_file(fd, file_offset, len, mem_offset, out);
  }
  cowmem_image_t* img = cowmem__image_alloc();
  if (img == NULL) return COWMEM_ENOMEM;
  img->runs = malloc(sizeof *img->runs);
  img->maps = malloc(sizeof *img->maps);
  e = img->runs == NULL || img->maps == NULL ? ENOMEM : cowmem__os_dup(fd, &img->fd);
  if (e == 0) e = cowmem__os_file_id(img->fd, &img->file_id);
  if (e) {
    cowmem__image_destroy(img);
    return cowmem__err_from_os(e);
  }
  img->kind = COWMEM_IMAGE_FILE;
  img->fixed = fixed;
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
