/* Image files: the opener (the format in imgfile.h).
 *
 * The opener treats the file as untrusted bytes: one bounded read of the
 * header into a buffer, fields decoded with explicit little-endian loads,
 * every count capped before anything is allocated, and every range checked
 * as lengths (`len <= size - off`), never as sums that could wrap. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm/imgfile.h"

/* ---- opener ---------------------------------------------------------- */

static int fail(cowmem_diag_t* d, int code, uint64_t offset, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int fail(cowmem_diag_t* d, int code, uint64_t offset, const char* fmt, ...) {
  d->code = code;
  d->offset = offset;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->reason, sizeof d->reason, fmt, ap);
  va_end(ap);
  return code;
}

void cowmem_imgfile_free(cowmem_imgfile_t* f) {
  if (!f) return;
  for (uint32_t i = 0; i < f->n; i++)
    cowmem_image_release(f->mems[i].image);
  free(f->mems);
  free(f);
}

/* Decode and check descriptor i (at file offset at) into *m. data_start is
 * the first byte after the header page(s); *prev_end the end of the
 * previous image in the file. */
static int decode_desc(const uint8_t* d, uint64_t at, uint32_t i, uint64_t data_start,
                       uint64_t size, uint64_t* prev_end, cowmem_imgfile_memory_t* m,
                       cowmem_diag_t* diag) {
  uint32_t flags = ld32(d + 4);
  m->index = ld32(d + 0);
  m->imported = flags & F_IMPORTED;
  m->memory64 = flags & F_MEMORY64;
  m->shared = flags & F_SHARED;
  m->has_max = flags & F_HAS_MAX;
  m->fresh = flags & F_FRESH;
  m->snapshot = flags & F_SNAPSHOT;
  m->min_pages = ld64(d + 8);
  m->max_pages = ld64(d + 16);
  m->mem_offset = ld64(d + 24);
  m->mem_len = ld64(d + 32);
  m->file_offset = ld64(d + 40);
  m->file_len = ld64(d + 48);
  m->data_pages = ld64(d + 56);
  m->segments_left = ld32(d + 64);
  uint32_t why = ld32(d + 68);
  m->noimage = (cowmem_noimage_t)why;
  if (flags & ~F_KNOWN)
    return fail(diag, COWMEM_EBADIMG, at + 4, "memory %u: unknown flags 0x%x", i, flags);
  if (why > COWMEM_NOIMAGE_NOT_BUILT)
    return fail(diag, COWMEM_EBADIMG, at + 68, "memory %u: unknown no-image reason %u", i,
                why);
  if (m->fresh && !m->imported)
    return fail(diag, COWMEM_EBADIMG, at + 4, "memory %u: fresh but not imported", i);
  if (ld64(d + 72) != 0)
    return fail(diag, COWMEM_EBADIMG, at + 72, "memory %u: reserved field set", i);
  /* The spec's limits: 2^16 pages for 32-bit memories, 2^48 for 64-bit. */
  uint64_t cap = COWMEM_WASM_MAX_PAGES(m->memory64);
  if (m->min_pages > cap || (m->has_max && m->max_pages > cap))
    return fail(diag, COWMEM_EBADIMG, at + 8, "memory %u: limits beyond %llu pages", i,
                (unsigned long long)cap);
  if (!m->has_max && m->max_pages != 0) /* the writer writes 0 */
    return fail(diag, COWMEM_EBADIMG, at + 16, "memory %u: a maximum without the flag", i);
  if (m->has_max && m->max_pages < m->min_pages)
    return fail(diag, COWMEM_EBADIMG, at + 16, "memory %u: maximum below the minimum", i);
  if (m->mem_len == 0) {
    if (m->mem_offset || m->file_offset || m->file_len || m->data_pages)
      return fail(diag, COWMEM_EBADIMG, at + 24,
                  "memory %u: empty image with a non-zero range", i);
    return 0;
  }
  uint64_t page = cowmem__os_page_size();
  if ((m->imported && !m->fresh) || m->noimage != COWMEM_NOIMAGE_NONE)
    return fail(diag, COWMEM_EBADIMG, at + 4,
                "memory %u: an image for a memory that cannot have one", i);
  if (!cowmem__is_page_multiple(m->mem_offset) || !cowmem__is_page_multiple(m->mem_len) ||
      !cowmem__is_page_multiple(m->file_offset))
    return fail(diag, COWMEM_EBADIMG, at + 24, "memory %u: image range not page-aligned",
                i);
  if (m->file_len != m->mem_len)
    return fail(diag, COWMEM_EBADIMG, at + 48,
                "memory %u: file length %llu differs from memory length %llu", i,
                (unsigned long long)m->file_len, (unsigned long long)m->mem_len);
  if (!cowmem__wasm_fits(m->min_pages, m->mem_offset, m->mem_len))
    return fail(diag, COWMEM_EBADIMG, at + 24,
                "memory %u: image ends beyond the initial size", i);
  if (m->data_pages > m->mem_len / page)
    return fail(diag, COWMEM_EBADIMG, at + 56,
                "memory %u: more data pages than the image has", i);
  if (m->file_offset < data_start || m->file_offset < *prev_end)
    return fail(diag, COWMEM_EBADIMG, at + 40,
                "memory %u: image overlaps the header or another image", i);
  if (m->file_offset > size || m->file_len > size - m->file_offset)
    return fail(diag, COWMEM_EBADIMG, at + 40,
                "memory %u: image at %llu+%llu ends beyond the file (%llu "
                "bytes)",
                i, (unsigned long long)m->file_offset, (unsigned long long)m->file_len,
                (unsigned long long)size);
  *prev_end = m->file_offset + m->file_len;
  return 0;
}

/* The fixed part of the header: magic, version, page size, lengths. */
static int check_fixed(const uint8_t* h, size_t got, uint64_t size, uint32_t* n,
                       size_t* hdr_len, cowmem_diag_t* diag) {
  size_t m = got < 8 ? got : 8;
  if (memcmp(h, cowmem__imgfile_magic, m) != 0)
    return fail(diag, COWMEM_EBADIMG, 0, "not an image file (bad magic)");
  if (got < 8)
    return fail(diag, COWMEM_EBADIMG, size, "truncated header (%llu bytes)",
                (unsigned long long)size);
  if (got < OFF_PAGE + 4)
    return fail(diag, COWMEM_EBADIMG, size, "truncated header (%llu bytes)",
                (unsigned long long)size);
  uint32_t version = ld32(h + OFF_VERSION);
  if (version != COWMEM_IMGFILE_VERSION)
    return fail(diag, COWMEM_EVERSION, OFF_VERSION,
                "format version %u, this cowmem reads version %u", version,
                COWMEM_IMGFILE_VERSION);
  uint32_t page = ld32(h + OFF_PAGE);
  if (page != cowmem__os_page_size())
    return fail(diag, COWMEM_EPAGESIZE, OFF_PAGE,
                "built for %u-byte pages, this host has %zu-byte pages", page,
                cowmem__os_page_size());
  if (got < HDR_FIXED)
    return fail(diag, COWMEM_EBADIMG, size, "truncated header (%llu bytes)",
                (unsigned long long)size);
  *n = ld32(h + OFF_COUNT);
  if (*n > MAX_MEMORIES)
    return fail(diag, COWMEM_EBADIMG, OFF_COUNT, "%u memories, at most %u", *n,
                MAX_MEMORIES);
  *hdr_len = HDR_FIXED + (size_t)*n * DESC_SIZE;
  if (ld32(h + OFF_HDR_LEN) != *hdr_len)
    return fail(diag, COWMEM_EBADIMG, OFF_HDR_LEN,
                "header length %u does not match %u memories", ld32(h + OFF_HDR_LEN), *n);
  uint64_t want = ld64(h + OFF_FILE_SIZE);
  if (want != size)
    return fail(diag, COWMEM_EBADIMG, size,
                "%s: the file has %llu bytes, its header says %llu",
                size < want ? "truncated" : "trailing bytes", (unsigned long long)size,
                (unsigned long long)want);
  return 0;
}

static int open_images(int fd, cowmem_imgfile_t* f, unsigned flags) {
  for (uint32_t i = 0; i < f->n; i++) {
    cowmem_imgfile_memory_t* m = &f->mems[i];
    if (m->mem_len == 0) continue;
    int err = cowmem_image_new_from_file(
        fd, m->file_offset, m->file_len, m->mem_offset,
        (flags & COWMEM_IMGFILE_COPY) ? 0 : COWMEM_IMAGE_FILE_IMMUTABLE, &m->image);
    if (err != 0) return err;
  }
  return 0;
}

int cowmem_imgfile_open(int fd, const uint8_t module_hash[32], unsigned flags,
                        cowmem_imgfile_t** out, cowmem_diag_t* diag) {
  cowmem_diag_t local;
  if (!diag) diag = &local;
  memset(diag, 0, sizeof *diag);
  if (!out || fd < 0 || (flags & ~COWMEM_IMGFILE_COPY))
    return fail(diag, COWMEM_EINVAL, 0, "invalid argument");
  uint64_t size = 0;
  bool sealed = false;
  int e = cowmem__os_fstat(fd, &size, &sealed);
  if (e)
    return fail(diag, cowmem__err_from_os(e), 0, "fstat: %s",
                cowmem_strerror(cowmem__err_from_os(e)));
  /* One read of what the largest header can be, but no more than the file:
   * the fixed part tells how much of it is the header. */
  size_t page = cowmem__os_page_size();
  size_t first = size < page ? (size_t)size : page; /* usually all of it */
  uint8_t* h = malloc(page);
  if (!h) return fail(diag, COWMEM_ENOMEM, 0, "out of memory");
  cowmem_imgfile_t* f = NULL;
  int err = 0;
  uint32_t n = 0;
  size_t hdr_len = 0;
  if (first > 0 && (e = cowmem__os_pread_all(fd, h, first, 0)) != 0) {
    err = fail(diag, cowmem__err_from_os(e), 0, "read: %s",
               cowmem_strerror(cowmem__err_from_os(e)));
    goto out;
  }
  err = check_fixed(h, first, size, &n, &hdr_len, diag);
  if (err != 0) goto out;
  if (hdr_len > size) {
    err = fail(diag, COWMEM_EBADIMG, size,
               "truncated: %u descriptors do not fit the file", n);
    goto out;
  }
  if (hdr_len > first) { /* more than a page of descriptors */
    uint8_t* bigger = realloc(h, hdr_len);
    if (!bigger) {
      err = fail(diag, COWMEM_ENOMEM, 0, "out of memory");
      goto out;
    }
    h = bigger;
  }
  if (hdr_len > first &&
      (e = cowmem__os_pread_all(fd, h + first, hdr_len - first, first)) != 0) {
    err = fail(diag, cowmem__err_from_os(e), first, "read: %s",
               cowmem_strerror(cowmem__err_from_os(e)));
    goto out;
  }
  uint8_t hh[32];
  header_hash(h, hdr_len, hh);
  if (memcmp(hh, h + OFF_HDR_HASH, 32) != 0) {
    err = fail(diag, COWMEM_EBADIMG, OFF_HDR_HASH,
               "header checksum mismatch (corrupt header)");
    goto out;
  }
  if (module_hash && memcmp(module_hash, h + OFF_MODULE_HASH, 32) != 0) {
    err = fail(diag, COWMEM_EMISMATCH, OFF_MODULE_HASH,
               "compiled from another module (module hash differs)");
    goto out;
  }
  f = calloc(1, sizeof *f);
  if (f) f->mems = calloc(n ? n : 1, sizeof *f->mems);
  if (!f || !f->mems) {
    err = fail(diag, COWMEM_ENOMEM, 0, "out of memory");
    goto out;
  }
  f->version = COWMEM_IMGFILE_VERSION;
  f->size = size;
  memcpy(f->module_hash, h + OFF_MODULE_HASH, 32);
  uint64_t data_start = 0, prev_end = 0;
  cowmem__page_ceil(hdr_len, &data_start); /* hdr_len is small: no overflow */
  for (uint32_t i = 0; i < n; i++) {
    uint64_t at = HDR_FIXED + (uint64_t)i * DESC_SIZE;
    err = decode_desc(h + at, at, i, data_start, size, &prev_end, &f->mems[i], diag);
    if (err == 0 && i > 0 && f->mems[i].index <= f->mems[i - 1].index)
      err = fail(diag, COWMEM_EBADIMG, at, "memory %u: index out of order", i);
    if (err != 0) goto out;
    f->n = i + 1;
  }
  err = open_images(fd, f, flags);
  if (err != 0) {
    fail(diag, err, 0, "cannot map the images: %s", cowmem_strerror(err));
    goto out;
  }
out:
  free(h);
  if (err != 0) {
    cowmem_imgfile_free(f);
    return err;
  }
  *out = f;
  return 0;
}

uint32_t cowmem_imgfile_memory_count(const cowmem_imgfile_t* f) {
  return f ? f->n : 0;
}

int cowmem_imgfile_memory(const cowmem_imgfile_t* f, uint32_t i,
                          cowmem_imgfile_memory_t* out) {
  if (!f || !out || i >= f->n) return COWMEM_EINVAL;
  *out = f->mems[i];
  return 0;
}

cowmem_image_t* cowmem_imgfile_image(const cowmem_imgfile_t* f, uint32_t index,
                                     cowmem_diag_t* why) {
  if (why) memset(why, 0, sizeof *why);
  for (uint32_t i = 0; f && i < f->n; i++) {
    if (f->mems[i].index != index) continue;
    if (why && f->mems[i].noimage != COWMEM_NOIMAGE_NONE) {
      static const char* const reasons[] = {"",
                                            "the memory is imported",
                                            "a segment offset is an imported global",
                                            "a segment ends beyond the initial size",
                                            "the data is too sparse",
                                            "compiled without images"};
      why->noimage = f->mems[i].noimage;
      snprintf(why->reason, sizeof why->reason, "%s", reasons[f->mems[i].noimage]);
    }
    return f->mems[i].image;
  }
  if (why) fail(why, COWMEM_EINVAL, 0, "no such memory");
  return NULL;
}

/* Every descriptor field against what the module's compile would write
 * (want, from compile.c). The header hash only says the header is what
 * some writer wrote; a forged header with the right module hash passes it,
 * and each field below then decides what an instance gets (segments left
 * unapplied, a memory64 or maximum flag the runtime trusts). */
int cowmem__imgfile_compare(const cowmem_imgfile_t* f, const uint8_t module_hash[32],
                            const cowmem_imgfile_memory_t* want, uint32_t n,
                            cowmem_diag_t* diag) {
  if (memcmp(f->module_hash, module_hash, 32) != 0)
    return fail(diag, COWMEM_EMISMATCH, OFF_MODULE_HASH,
                "compiled from another module (module hash differs)");
  if (f->n != n)
    return fail(diag, COWMEM_EBADIMG, OFF_COUNT,
                "%u memories in the file, %u in the module", f->n, n);
  for (uint32_t i = 0; i < n; i++) {
    const cowmem_imgfile_memory_t *h = &f->mems[i], *w = &want[i];
    cowmem_image_info_t wi = {0};
    if (w->image && cowmem_image_info(w->image, &wi) != 0)
      return fail(diag, COWMEM_EINVAL, 0, "memory %u: the module's image", i);
    const struct {
      const char* name;
      unsigned at; /* in the descriptor */
      uint64_t have, want;
    } k[] = {
        {"index", 0, h->index, w->index},
        {"the imported flag", 4, h->imported, w->imported},
        {"the memory64 flag", 4, h->memory64, w->memory64},
        {"the shared flag", 4, h->shared, w->shared},
        {"the has-max flag", 4, h->has_max, w->has_max},
        {"the fresh flag", 4, h->fresh, w->fresh},
        {"min_pages", 8, h->min_pages, w->min_pages},
        {"max_pages", 16, h->max_pages, w->has_max ? w->max_pages : 0},
        {"segments_left", 64, h->segments_left, w->segments_left},
        {"the no-image reason", 68, h->noimage, w->noimage},
        {"the image's memory offset", 24, h->mem_offset, wi.len ? wi.mem_offset : 0},
        {"the image's length", 32, h->mem_len, wi.len},
        {"data_pages", 56, h->data_pages, wi.len ? wi.data_pages : 0},
    };
    /* A snapshot's image is the memory's state after running: the fields
     * from the no-image reason on say nothing the module can confirm (that
     * it lies within min_pages, decode_desc checked at open). */
    size_t nk = h->snapshot ? 9 : sizeof k / sizeof k[0];
    for (size_t j = 0; j < nk; j++)
      if (k[j].have != k[j].want)
        return fail(diag, COWMEM_EBADIMG, HDR_FIXED + (uint64_t)i * DESC_SIZE + k[j].at,
                    "memory %u: %s is %llu in the file, %llu for the module", i,
                    k[j].name, (unsigned long long)k[j].have,
                    (unsigned long long)k[j].want);
  }
  memset(diag, 0, sizeof *diag);
  return 0;
}

void cowmem_imgfile_module_hash(const cowmem_imgfile_t* f, uint8_t out[32]) {
  if (f && out) memcpy(out, f->module_hash, 32);
}

uint32_t cowmem_imgfile_version(const cowmem_imgfile_t* f) {
  return f ? f->version : 0;
}

uint64_t cowmem_imgfile_size(const cowmem_imgfile_t* f) {
  return f ? f->size : 0;
}
