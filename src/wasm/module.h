/* The decoded module, shared by the parser (parse.c), the image builder and
 * the fallback (module.c), and later tools (strip, compile). Internal. */
#ifndef COWMEM_WASM_MODULE_H
#define COWMEM_WASM_MODULE_H

#include "cowmem.h"

typedef struct {
  cowmem_memory_info_t info;
  cowmem_noimage_t why;
  cowmem_image_t* image; /* NULL: no image or all zeros */
  char why_text[112];
} cowmem__memory_t;

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
  cowmem_segment_info_t* segments;
  uint32_t nsegments;

  uint32_t imports[5]; /* by cowmem_extern_kind_t */
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

#endif
