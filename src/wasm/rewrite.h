/* What the passes that rewrite a module share (rewrite.c): the output
 * buffer, and removing data segments, which strip and the
 * pre-initialization rewriter do by the same rule. Internal to the front
 * end. */
#ifndef COWMEM_WASM_REWRITE_H
#define COWMEM_WASM_REWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "cowmem.h"

/* A growing output buffer. Appends after a failed allocation do nothing
 * and the failure is reported once, by cowmem__pbuf_done. */
typedef struct {
  uint8_t* p;
  size_t len, cap;
  bool failed;
} cowmem__pbuf_t;

void cowmem__pbuf_add(cowmem__pbuf_t* b, const void* src, size_t n);
void cowmem__pbuf_byte(cowmem__pbuf_t* b, uint8_t v);
void cowmem__pbuf_uleb(cowmem__pbuf_t* b, uint64_t v);
void cowmem__pbuf_sleb(cowmem__pbuf_t* b, int64_t v);
/* Append a section: id, payload size, payload. */
void cowmem__pbuf_section(cowmem__pbuf_t* b, uint8_t id, const cowmem__pbuf_t* payload);
/* 0, or ENOMEM (and the buffer freed) after a failed append. */
int cowmem__pbuf_done(cowmem__pbuf_t* b);

/* Is section s a custom section of this name? */
bool cowmem__custom_named(const cowmem_module_t* m, const cowmem_section_info_t* s,
                          const char* name);

/* May data segments be removed from m, the ones after them renumbered?
 * Only if no function body names a data index (memory.init, data.drop)
 * and m is not a relocatable object (a "linking" custom section: its
 * relocations name segments by index). Bodies are decoded only when m has
 * a data count section, which those instructions require; a body the
 * decoder cannot walk counts as naming one. */
bool cowmem__data_removable(const cowmem_module_t* m);

#define COWMEM__SEGMENT_GONE UINT32_MAX

/* Each segment's index once the segments for which `gone` holds are
 * removed (COWMEM__SEGMENT_GONE for those): *map malloc'd, one entry per
 * segment of m; *kept the new count. Errors: ENOMEM. */
int cowmem__data_renumber(const cowmem_module_t* m,
                          bool (*gone)(const cowmem_segment_info_t* s), uint32_t** map,
                          uint32_t* kept);

/* The name section s of m, appended whole to *out with its data segment
 * names (subsection 9) renumbered by map (the names of removed segments
 * go); every other subsection copied. Runtimes ignore a malformed name
 * section, so this does not fail on one: a data segment name map it
 * cannot read goes, and so does everything from a subsection it cannot
 * frame. */
void cowmem__data_names(const cowmem_module_t* m, const cowmem_section_info_t* s,
                        const uint32_t* map, uint32_t n, cowmem__pbuf_t* out);

#endif
