/* The front end's internal interface: the decoded module, shared by the
 * parser (parse.c), the image builder and the fallback (module.c), and
 * later tools (strip, compile). */
#ifndef COWMEM_WASM_WASM_H
#define COWMEM_WASM_WASM_H

#include "cowmem.h"

/* Initial size of a memory in bytes; 2^48 pages (the memory64 cap) is
 * 2^64 bytes, one past what a uint64_t holds: saturate. (So a segment
 * ending exactly at byte 2^64 counts as out of bounds; no host can map
 * such a memory anyway.) */
static inline uint64_t cowmem__wasm_bytes(uint64_t pages) {
  return pages >= COWMEM_WASM64_MAX_PAGES ? UINT64_MAX : pages * COWMEM_WASM_PAGE_SIZE;
}

/* Does [off, off + len) lie inside the initial size of a memory of
 * `pages` pages? Exact where cowmem__wasm_bytes saturates: 2^48 pages hold
 * every byte below 2^64, so an image whose last page ends at 2^64 fits. */
static inline bool cowmem__wasm_fits(uint64_t pages, uint64_t off, uint64_t len) {
  if (pages >= COWMEM_WASM64_MAX_PAGES) return off == 0 || len <= 0 - off;
  uint64_t size = pages * COWMEM_WASM_PAGE_SIZE;
  return off <= size && len <= size - off;
}

typedef struct {
  cowmem_memory_info_t info;
  cowmem_noimage_t why;
  cowmem_image_t* image; /* NULL: no image or all zeros */
  uint64_t why_offset;   /* of the segment at fault, in the module */
  char why_text[112];
} cowmem__memory_t;

/* A data segment, compact (esbuild-wasm has ~10^5): the public
 * cowmem_segment_info_t is built from it on demand. */
typedef struct {
  uint64_t offset;      /* constant offset, or imported global index */
  uint64_t data_offset; /* of the data in the module */
  uint32_t data_len;
  uint32_t header_len; /* data_offset - offset of the segment's flags */
  uint32_t memory;
  uint8_t mode;        /* cowmem_segment_mode_t */
  uint8_t offset_kind; /* cowmem_offset_kind_t */
  bool covered_by_image;
} cowmem__segment_t;

struct cowmem_module_s {
  const uint8_t* bytes;
  size_t len;
  uint8_t* owned; /* the copy, or NULL with BORROW */
  unsigned flags;

  cowmem_section_info_t* sections;
  uint32_t nsections, sections_cap;
  cowmem__memory_t* memories;
  uint32_t nmemories;
  cowmem_global_info_t* globals;
  uint32_t nglobals;
  cowmem_export_info_t* exports;
  uint32_t nexports;
  cowmem__segment_t* segments;
  uint32_t nsegments;

  uint32_t imports[5];                     /* by cowmem_extern_kind_t */
  uint32_t ntypes, nfuncs, ntables, ntags; /* index spaces incl. imports */
  bool has_start;
  uint32_t start;
  bool has_datacount;
  uint32_t datacount;
};

/* Decode and validate; fills m (which the caller frees on error). */
int cowmem__module_decode(cowmem_module_t* m, cowmem_diag_t* diag);
/* Build the images of defined memories whose data spans at most span_max
 * bytes. */
int cowmem__module_build_images(cowmem_module_t* m, uint64_t span_max);
/* Free everything m owns except m itself. */
void cowmem__module_clear(cowmem_module_t* m);

/* Image files (imgfile_open.c), for cowmem_imgfile_check_module (compile.c):
 * the file's module hash and every descriptor compared with want[0, n),
 * the descriptors compile would write. EMISMATCH or EBADIMG naming the
 * field, diag->offset at it. */
int cowmem__imgfile_compare(const cowmem_imgfile_t* f, const uint8_t module_hash[32],
                            const cowmem_imgfile_memory_t* want, uint32_t n,
                            cowmem_diag_t* diag);

#endif
