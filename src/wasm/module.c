/* The module object: its accessors, the per-memory images, and the
 * segmented fallback that applies data segments at instantiation. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "wasm/wasm.h"

static void set_diag(cowmem_diag_t* d, int code, uint64_t offset, const char* reason) {
  if (!d) return;
  d->code = code;
  d->offset = offset;
  snprintf(d->reason, sizeof d->reason, "%s", reason);
}

int cowmem_module_parse(const void* bytes, size_t len, unsigned flags,
                        cowmem_module_t** out, cowmem_diag_t* diag) {
  cowmem_diag_t local;
  if (!diag) diag = &local;
  memset(diag, 0, sizeof *diag);
  if (!out || (!bytes && len > 0)) {
    set_diag(diag, COWMEM_EINVAL, 0, "invalid argument");
    return COWMEM_EINVAL;
  }
  cowmem_module_t* m = calloc(1, sizeof *m);
  if (!m) goto nomem;
  m->flags = flags;
  m->len = len;
  if (flags & COWMEM_MODULE_BORROW) {
    m->bytes = bytes;
  } else {
    m->owned = malloc(len ? len : 1);
    if (!m->owned) goto nomem;
    if (len) memcpy(m->owned, bytes, len);
    m->bytes = m->owned;
  }
  int err = cowmem__module_decode(m, diag);
  if (err == 0 && !(flags & COWMEM_MODULE_NO_IMAGES))
    err = cowmem__module_build_images(m, COWMEM_MODULE_IMAGE_SPAN_MAX);
  if (err == 0 && (flags & COWMEM_MODULE_FRESH_IMPORTS))
    for (uint32_t i = 0; i < m->nmemories; i++)
      m->memories[i].info.fresh = m->memories[i].info.imported;
  if (err == 0 && (flags & COWMEM_MODULE_NO_IMAGES))
    for (uint32_t i = 0; i < m->nmemories; i++)
      if (!m->memories[i].info.imported || (flags & COWMEM_MODULE_FRESH_IMPORTS)) {
        m->memories[i].why = COWMEM_NOIMAGE_NOT_BUILT;
        snprintf(m->memories[i].why_text, sizeof m->memories[i].why_text,
                 "parsed with COWMEM_MODULE_NO_IMAGES");
      }
  if (err != 0) {
    if (diag->code == 0) set_diag(diag, err, 0, cowmem_strerror(err));
    cowmem_module_free(m);
    return err;
  }
  *out = m;
  return 0;
nomem:
  cowmem_module_free(m);
  set_diag(diag, COWMEM_ENOMEM, 0, "out of memory");
  return COWMEM_ENOMEM;
}

void cowmem__module_clear(cowmem_module_t* m) {
  for (uint32_t i = 0; i < m->nmemories; i++)
    cowmem_image_release(m->memories[i].image);
  free(m->sections);
  free(m->memories);
  free(m->globals);
  free(m->exports);
  free(m->segments);
  free(m->owned);
}

void cowmem_module_free(cowmem_module_t* m) {
  if (!m) return;
  cowmem__module_clear(m);
  free(m);
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static void
no_image(cowmem__memory_t* mem, cowmem_noimage_t why, uint64_t offset, const char* fmt,
         ...) {
  va_list ap;
  va_start(ap, fmt);
  mem->why = why;
  mem->why_offset = offset;
  vsnprintf(mem->why_text, sizeof mem->why_text, fmt, ap);
  va_end(ap);
}

/* Two passes over the segments, O(segments + data bytes): the first decides
 * each memory and finds the span of its data, the second copies every
 * segment into its memory's one buffer, later segments over earlier ones
 * (modules such as esbuild-wasm have ~10^5 segments in no offset order). */
int cowmem__module_build_images(cowmem_module_t* m, uint64_t span_max) {
  uint32_t n = m->nmemories;
  if (n == 0) return 0;
  uint64_t* lo = calloc(n, sizeof *lo);
  uint64_t* hi = calloc(n, sizeof *hi);
  uint8_t** buf = calloc(n, sizeof *buf);
  int err = 0;
  if (!lo || !hi || !buf) {
    err = COWMEM_ENOMEM;
    goto out;
  }
  /* A fresh import (COWMEM_MODULE_FRESH_IMPORTS) starts as zeros of exactly
   * min_pages, like a defined memory, so the same rules decide its image;
   * any other import holds whatever the importer put there. */
  bool fresh = (m->flags & COWMEM_MODULE_FRESH_IMPORTS) != 0;
  for (uint32_t k = 0; k < n; k++) {
    lo[k] = UINT64_MAX;
    if (m->memories[k].info.imported && !fresh)
      no_image(&m->memories[k], COWMEM_NOIMAGE_IMPORTED, 0, "the memory is imported");
  }
  for (uint32_t i = 0; i < m->nsegments; i++) {
    const cowmem__segment_t* s = &m->segments[i];
    if (s->mode != COWMEM_SEGMENT_ACTIVE) continue;
    cowmem__memory_t* mem = &m->memories[s->memory];
    if (mem->why != COWMEM_NOIMAGE_NONE) continue;
    uint64_t size = cowmem__wasm_bytes(mem->info.min_pages);
    if (s->offset_kind == COWMEM_OFFSET_GLOBAL) {
      no_image(mem, COWMEM_NOIMAGE_GLOBAL_OFFSET, s->data_offset - s->header_len,
               "segment %u: offset is imported global %llu", i,
               (unsigned long long)s->offset);
    } else if (s->offset > size || s->data_len > size - s->offset) {
      no_image(mem, COWMEM_NOIMAGE_OUT_OF_BOUNDS, s->data_offset - s->header_len,
               "segment %u at %llu ends beyond the initial size %llu", i,
               (unsigned long long)s->offset, (unsigned long long)size);
    } else if (s->data_len > 0) {
      if (s->offset < lo[s->memory]) lo[s->memory] = s->offset;
      if (s->offset + s->data_len > hi[s->memory])
        hi[s->memory] = s->offset + s->data_len;
    }
  }
  for (uint32_t k = 0; k < n; k++) {
    cowmem__memory_t* mem = &m->memories[k];
    if (mem->why != COWMEM_NOIMAGE_NONE || hi[k] == 0) continue;
    if (hi[k] - lo[k] > span_max || hi[k] - lo[k] > SIZE_MAX) {
      no_image(mem, COWMEM_NOIMAGE_TOO_SPARSE, 0, "data spans %llu bytes, more than %llu",
               (unsigned long long)(hi[k] - lo[k]), (unsigned long long)span_max);
      continue;
    }
    /* calloc: a large span comes from fresh zero pages, so the holes
     * between segments cost address space, not memory. */
    buf[k] = calloc(1, (size_t)(hi[k] - lo[k]));
    if (!buf[k]) {
      err = COWMEM_ENOMEM;
      goto out;
    }
  }
  for (uint32_t i = 0; i < m->nsegments; i++) {
    cowmem__segment_t* s = &m->segments[i];
    if (s->mode != COWMEM_SEGMENT_ACTIVE) continue;
    if (m->memories[s->memory].why != COWMEM_NOIMAGE_NONE) continue;
    s->covered_by_image = true;
    if (s->data_len > 0)
      memcpy(buf[s->memory] + (s->offset - lo[s->memory]), m->bytes + s->data_offset,
             (size_t)s->data_len);
  }
  for (uint32_t k = 0; k < n; k++) {
    if (!buf[k]) continue;
    err = cowmem_image_new_from_bytes(buf[k], (size_t)(hi[k] - lo[k]), lo[k],
                                      &m->memories[k].image);
    if (err != 0) goto out;
  }
out:
  if (buf)
    for (uint32_t k = 0; k < n; k++)
      free(buf[k]);
  free(buf);
  free(lo);
  free(hi);
  return err;
}

const uint8_t* cowmem_module_bytes(const cowmem_module_t* m, size_t* len) {
  if (!m) return NULL;
  if (len) *len = m->len;
  return m->bytes;
}

/* In the front end, not in each runtime integration: every one of them
 * reads a .wasm before cowmem_module_parse (and WAMR again for the stripped
 * module it loads), and this way through the OS layer, whose failure
 * injection reaches it. */
int cowmem_module_read(int fd, uint8_t** bytes, size_t* len) {
  if (fd < 0 || !bytes || !len) return COWMEM_EINVAL;
  uint64_t size;
  bool sealed;
  int e = cowmem__os_fstat(fd, &size, &sealed);
  if (e != 0) return cowmem__err_from_os(e);
  if (size > SIZE_MAX - 1) return COWMEM_ENOMEM;
  uint8_t* p = malloc(size ? (size_t)size : 1); /* malloc(0) may be NULL */
  if (!p) return COWMEM_ENOMEM;
  e = size ? cowmem__os_pread_all(fd, p, (size_t)size, 0) : 0;
  if (e != 0) {
    free(p);
    return cowmem__err_from_os(e);
  }
  *bytes = p;
  *len = (size_t)size;
  return 0;
}

#define COUNT_AND_INFO(what, field, count, type, expr)                                   \
  uint32_t cowmem_module_##what##_count(const cowmem_module_t* m) {                      \
    return m ? m->count : 0;                                                             \
  }                                                                                      \
  int cowmem_module_##what##_info(const cowmem_module_t* m, uint32_t index, type* out) { \
    if (!m || !out || index >= m->count) return COWMEM_EINVAL;                           \
    *out = expr;                                                                         \
    return 0;                                                                            \
  }

COUNT_AND_INFO(section, sections, nsections, cowmem_section_info_t, m->sections[index])
COUNT_AND_INFO(memory, memories, nmemories, cowmem_memory_info_t, m->memories[index].info)
COUNT_AND_INFO(global, globals, nglobals, cowmem_global_info_t, m->globals[index])
COUNT_AND_INFO(export, exports, nexports, cowmem_export_info_t, m->exports[index])

uint32_t cowmem_module_segment_count(const cowmem_module_t* m) {
  return m ? m->nsegments : 0;
}

int cowmem_module_segment_info(const cowmem_module_t* m, uint32_t index,
                               cowmem_segment_info_t* out) {
  if (!m || !out || index >= m->nsegments) return COWMEM_EINVAL;
  const cowmem__segment_t* s = &m->segments[index];
  out->mode = (cowmem_segment_mode_t)s->mode;
  out->memory = s->memory;
  out->offset_kind = (cowmem_offset_kind_t)s->offset_kind;
  out->offset = s->offset;
  out->data = m->bytes + s->data_offset;
  out->data_len = s->data_len;
  out->segment_offset = s->data_offset - s->header_len;
  out->segment_end = s->data_offset + s->data_len;
  out->data_offset = s->data_offset;
  out->covered_by_image = s->covered_by_image;
  return 0;
}

cowmem_image_t* cowmem_module_image(const cowmem_module_t* m, uint32_t index,
                                    cowmem_diag_t* why) {
  if (why) memset(why, 0, sizeof *why);
  if (!m || index >= m->nmemories) {
    set_diag(why, COWMEM_EINVAL, 0, "no such memory");
    return NULL;
  }
  const cowmem__memory_t* mem = &m->memories[index];
  if (why && mem->why != COWMEM_NOIMAGE_NONE) {
    why->noimage = mem->why;
    why->offset = mem->why_offset;
    snprintf(why->reason, sizeof why->reason, "%s", mem->why_text);
  }
  return mem->image;
}

bool cowmem_module_start(const cowmem_module_t* m, uint32_t* func) {
  if (!m || !m->has_start) return false;
  if (func) *func = m->start;
  return true;
}

uint32_t cowmem_module_import_count(const cowmem_module_t* m, cowmem_extern_kind_t kind) {
  if (!m || (unsigned)kind > COWMEM_EXTERN_TAG) return 0;
  return m->imports[kind];
}

/* Apply (bases != NULL) or only check the active segments of memories
 * [first, first + n) in module order; views[k] is memory first + k. */
static int run_segments(const cowmem_module_t* m, uint32_t first, size_t n,
                        const cowmem_memory_view_t* views,
                        const cowmem_global_value_t* globals, size_t nglobals,
                        bool skip_covered, cowmem_diag_t* diag) {
  for (uint32_t i = 0; i < m->nsegments; i++) {
    const cowmem__segment_t* s = &m->segments[i];
    if (s->mode != COWMEM_SEGMENT_ACTIVE) continue;
    if (s->memory < first || s->memory - first >= n) continue;
    const cowmem_memory_view_t* v = &views[s->memory - first];
    uint64_t off = s->offset;
    if (s->offset_kind == COWMEM_OFFSET_GLOBAL) {
      if (s->offset >= nglobals) {
        set_diag(diag, COWMEM_EINVAL, s->data_offset - s->header_len,
                 "no value for an imported global");
        return COWMEM_EINVAL;
      }
      off = globals[s->offset].bits;
      if (!m->memories[s->memory].info.memory64) off &= 0xffffffffu;
    }
    if (off > v->size || s->data_len > v->size - off) {
      set_diag(diag, COWMEM_EOOB, s->data_offset - s->header_len,
               "out of bounds memory access");
      return COWMEM_EOOB;
    }
    if (v->base && s->data_len > 0 && !(skip_covered && s->covered_by_image))
      memcpy((uint8_t*)v->base + off, m->bytes + s->data_offset, s->data_len);
  }
  if (diag) memset(diag, 0, sizeof *diag);
  return 0;
}

int cowmem_module_apply(const cowmem_module_t* m, uint32_t first,
                        const cowmem_memory_view_t* views, size_t nviews,
                        const cowmem_global_value_t* globals, size_t nglobals,
                        unsigned flags, cowmem_diag_t* diag) {
  if (!m || (!views && nviews) || first > m->nmemories || nviews > m->nmemories - first ||
      (!globals && nglobals) || nglobals < m->imports[COWMEM_EXTERN_GLOBAL] ||
      (flags & ~(unsigned)COWMEM_APPLY_SKIP_COVERED)) {
    set_diag(diag, COWMEM_EINVAL, 0, "invalid argument");
    return COWMEM_EINVAL;
  }
  return run_segments(m, first, nviews, views, globals, nglobals,
                      (flags & COWMEM_APPLY_SKIP_COVERED) != 0, diag);
}

int cowmem_module_instantiate_check(const cowmem_module_t* m,
                                    const cowmem_memory_desc_t* memories,
                                    size_t nmemories,
                                    const cowmem_global_value_t* globals, size_t nglobals,
                                    cowmem_diag_t* diag) {
  if (!m || (!memories && nmemories) || (!globals && nglobals) ||
      nmemories != m->imports[COWMEM_EXTERN_MEMORY] ||
      nglobals != m->imports[COWMEM_EXTERN_GLOBAL])
    return COWMEM_EINVAL;
  for (size_t i = 0; i < nglobals; i++) {
    const cowmem_global_info_t* g = &m->globals[i];
    if (globals[i].type != g->type || globals[i].is_mutable != g->is_mutable) {
      set_diag(diag, COWMEM_EUNLINKABLE, 0, "incompatible import type");
      return COWMEM_EUNLINKABLE;
    }
  }
  for (size_t i = 0; i < nmemories; i++) {
    const cowmem_memory_info_t* want = &m->memories[i].info;
    const cowmem_memory_desc_t* have = &memories[i];
    if (have->memory64 != want->memory64 || have->shared != want->shared ||
        have->pages < want->min_pages ||
        (want->has_max && (!have->has_max || have->max_pages > want->max_pages))) {
      set_diag(diag, COWMEM_EUNLINKABLE, 0, "incompatible import type");
      return COWMEM_EUNLINKABLE;
    }
  }
  cowmem_memory_view_t* views = calloc(m->nmemories ? m->nmemories : 1, sizeof *views);
  if (!views) return COWMEM_ENOMEM;
  for (uint32_t k = 0; k < m->nmemories; k++)
    views[k].size = cowmem__wasm_bytes(k < nmemories ? memories[k].pages
                                                     : m->memories[k].info.min_pages);
  int err = run_segments(m, 0, m->nmemories, views, globals, nglobals, false, diag);
  free(views);
  return err;
}
