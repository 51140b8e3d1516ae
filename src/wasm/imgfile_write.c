/* Image files: the writer (the format in imgfile.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm/imgfile.h"

const uint8_t cowmem__imgfile_magic[8] = {0x89, 'C', 'W', 'I', 'M', 'G', '\r', '\n'};

/* ---- writer ---------------------------------------------------------- */

typedef struct {
  int fd;
  const cowmem_image_t* img;
  uint64_t base; /* file offset of the image's first byte */
  uint64_t mem_offset;
  uint8_t* buf;
  size_t buf_len;
  uint64_t written;
} write_ctx_t;

/* Write one extent's non-zero pages; zero pages stay holes. The extent is
 * read through a bounded buffer and scanned page by page: a FILE image's
 * data extent may hold zero pages. */
static int write_extent(void* arg, uint64_t off, uint64_t len) {
  write_ctx_t* w = arg;
  size_t page = cowmem__os_page_size();
  /* By what is left, not off + len: the last run of a 2^48-page memory
   * ends at 2^64. */
  while (len > 0) {
    size_t n = len < w->buf_len ? (size_t)len : w->buf_len;
    int err = cowmem_image_read(w->img, off, w->buf, n);
    if (err != 0) return err;
    size_t p = 0;
    while (p < n) {
      if (cowmem__is_zero(w->buf + p, page)) {
        p += page;
        continue;
      }
      size_t q = p + page;
      while (q < n && !cowmem__is_zero(w->buf + q, page))
        q += page;
      int e = cowmem__os_pwrite_all(w->fd, w->buf + p, q - p,
                                    w->base + (off - w->mem_offset) + p);
      if (e) return cowmem__err_from_os(e);
      w->written += (q - p) / page;
      p = q;
    }
    off += n;
    len -= n;
  }
  return 0;
}

/* Write the image's non-zero pages at file_offset. *data_pages counts the
 * pages written. */
static int write_image(int fd, const cowmem_image_t* img, uint64_t mem_offset,
                       uint64_t file_offset, uint8_t* buf, size_t buf_len,
                       uint64_t* data_pages) {
  write_ctx_t w = {fd, img, file_offset, mem_offset, buf, buf_len, 0};
  int err = cowmem__image_each_extent(img, write_extent, &w);
  *data_pages = w.written;
  return err;
}

static int check_memory(const cowmem_imgfile_memory_t* m, uint32_t prev, bool first,
                        cowmem_image_info_t* info) {
  memset(info, 0, sizeof *info);
  if (!first && m->index <= prev) return COWMEM_EINVAL;
  if ((unsigned)m->noimage > COWMEM_NOIMAGE_NOT_BUILT) return COWMEM_EINVAL;
  if (m->has_max && m->max_pages < m->min_pages) return COWMEM_EINVAL;
  uint64_t cap = COWMEM_WASM_MAX_PAGES(m->memory64);
  if (m->min_pages > cap || (m->has_max && m->max_pages > cap)) return COWMEM_EINVAL;
  if (m->fresh && !m->imported) return COWMEM_EINVAL;
  if (!m->image) return 0;
  if ((m->imported && !m->fresh) || m->noimage != COWMEM_NOIMAGE_NONE)
    return COWMEM_EINVAL;
  int err = cowmem_image_info(m->image, info);
  if (err != 0) return err;
  if (!cowmem__wasm_fits(m->min_pages, info->mem_offset, info->len)) return COWMEM_EINVAL;
  return 0;
}

int cowmem_imgfile_write(int fd, const cowmem_imgfile_memory_t* mems, uint32_t n,
                         const uint8_t module_hash[32]) {
  if (fd < 0 || (n > 0 && !mems) || n > MAX_MEMORIES) return COWMEM_EINVAL;
  size_t page = cowmem__os_page_size();
  size_t hdr_len = HDR_FIXED + (size_t)n * DESC_SIZE;
  uint64_t pos;
  if (!cowmem__page_ceil(hdr_len, &pos)) return COWMEM_EINVAL;
  /* Lay out first, so that bad input writes nothing. */
  cowmem_image_info_t* infos = calloc(n ? n : 1, sizeof *infos);
  uint8_t* hdr = calloc(1, hdr_len);
  size_t buf_len = (size_t)1 << 20; /* a multiple of any page size */
  uint8_t* buf = malloc(buf_len);
  uint64_t* file_off = calloc(n ? n : 1, sizeof *file_off);
  int err = (!infos || !hdr || !buf || !file_off) ? COWMEM_ENOMEM : 0;
  for (uint32_t i = 0; i < n && err == 0; i++) {
    err = check_memory(&mems[i], i ? mems[i - 1].index : 0, i == 0, &infos[i]);
    if (err == 0 && infos[i].len > 0) {
      file_off[i] = pos;
      if (pos > UINT64_MAX - infos[i].len)
        err = COWMEM_EINVAL;
      else
        pos += infos[i].len;
    }
  }
  if (err == 0) err = cowmem__err_from_os(cowmem__os_ftruncate(fd, 0));
  for (uint32_t i = 0; i < n && err == 0; i++) {
    const cowmem_imgfile_memory_t* m = &mems[i];
    uint64_t data_pages = 0;
    if (infos[i].len > 0)
      err = write_image(fd, m->image, infos[i].mem_offset, file_off[i], buf, buf_len,
                        &data_pages);
    uint8_t* d = hdr + HDR_FIXED + (size_t)i * DESC_SIZE;
    uint32_t flags = (m->imported ? F_IMPORTED : 0) | (m->memory64 ? F_MEMORY64 : 0) |
                     (m->shared ? F_SHARED : 0) | (m->has_max ? F_HAS_MAX : 0) |
                     (m->fresh ? F_FRESH : 0) | (m->snapshot ? F_SNAPSHOT : 0);
    st32(d + 0, m->index);
    st32(d + 4, flags);
    st64(d + 8, m->min_pages);
    st64(d + 16, m->has_max ? m->max_pages : 0);
    st64(d + 24, infos[i].len ? infos[i].mem_offset : 0);
    st64(d + 32, infos[i].len);
    st64(d + 40, infos[i].len ? file_off[i] : 0);
    st64(d + 48, infos[i].len);
    st64(d + 56, data_pages);
    st32(d + 64, m->segments_left);
    st32(d + 68, (uint32_t)m->noimage);
  }
  if (err == 0) {
    memcpy(hdr, cowmem__imgfile_magic, sizeof cowmem__imgfile_magic);
    st32(hdr + OFF_VERSION, COWMEM_IMGFILE_VERSION);
    st32(hdr + OFF_HDR_LEN, (uint32_t)hdr_len);
    st32(hdr + OFF_PAGE, (uint32_t)page);
    st32(hdr + OFF_COUNT, n);
    st64(hdr + OFF_FILE_SIZE, pos);
    if (module_hash) memcpy(hdr + OFF_MODULE_HASH, module_hash, 32);
    uint8_t h[32];
    header_hash(hdr, hdr_len, h);
    memcpy(hdr + OFF_HDR_HASH, h, 32);
    /* Size first, header last: a crash half-way leaves no valid header. */
    err = cowmem__err_from_os(cowmem__os_ftruncate(fd, pos));
    if (err == 0) err = cowmem__err_from_os(cowmem__os_pwrite_all(fd, hdr, hdr_len, 0));
  }
  free(infos);
  free(hdr);
  free(buf);
  free(file_off);
  return err;
}

/* A snapshot as an image file: cowmem_imgfile_write with one memory. */
int cowmem_imgfile_write_snapshot(cowmem_slot_t* slot, int fd,
                                  const cowmem_imgfile_memory_t* desc,
                                  const uint8_t module_hash[32]) {
  if (slot == NULL || fd < 0) return COWMEM_EINVAL;
  cowmem_imgfile_memory_t mem;
  if (desc != NULL) {
    mem = *desc;
  } else {
    memset(&mem, 0, sizeof mem);
    uint64_t size = cowmem_slot_accessible(slot);
    mem.min_pages = (size + COWMEM_WASM_PAGE_SIZE - 1) / COWMEM_WASM_PAGE_SIZE;
  }
  cowmem_image_t* snap = NULL;
  int r = cowmem_snapshot(slot, &snap);
  if (r != 0) return r;
  mem.image = cowmem__image_key(snap) != 0 ? snap : NULL;
  mem.noimage = COWMEM_NOIMAGE_NONE;
  mem.snapshot = true;
  r = cowmem_imgfile_write(fd, &mem, 1, module_hash);
  cowmem_image_release(snap);
  return r;
}
