/* Pre-initialization: the rewritten module (cowmem_preinit_rewrite). The
 * sections that change are re-encoded whole (imports when a fresh imported
 * memory grew, memories, globals, exports, data count, data, and the name
 * section when data segments are removed); the start section is left out;
 * everything else is copied. */
#include <stdlib.h>
#include <string.h>

#include "wasm/code.h"
#include "wasm/preinit.h"
#include "wasm/reader.h"

typedef struct {
  const cowmem_module_t* m;
  const cowmem_preinit_snapshot_t* snap;
  const cowmem_preinit_options_t* opt;
  cowmem_diag_t* diag;
  const uint8_t* bytes;
  uint32_t* map; /* new data segment indices, NULL when indices stay */
  uint32_t nkept; /* original data segments that stay */
} rw_t;

void cowmem_preinit_options_init(cowmem_preinit_options_t* opt) {
  if (!opt) return;
  memset(opt, 0, sizeof *opt);
  opt->merge_gap = 8;
  opt->max_segments = 10000;
}

static int check_options(const cowmem_preinit_options_t* o, cowmem_diag_t* d) {
  unsigned all = COWMEM_PREINIT_IMAGES | COWMEM_PREINIT_KEEP_INIT_FUNC;
  if (o->flags & ~all)
    return cowmem__preinit_fail(d, COWMEM_EINVAL, 0, "flags: unknown bits 0x%x",
                                o->flags & ~all);
  if (o->max_segments == 0)
    return cowmem__preinit_fail(d, COWMEM_EINVAL, 0,
                                "max_segments: must be at least 1");
  if (o->nrenames && !o->renames)
    return cowmem__preinit_fail(d, COWMEM_EINVAL, 0, "renames: NULL");
  for (size_t i = 0; i < o->nrenames; i++) {
    const char* r = o->renames[i];
    const char* eq = r ? strchr(r, '=') : NULL;
    if (!eq || eq == r || eq[1] == '\0')
      return cowmem__preinit_fail(d, COWMEM_EINVAL, 0,
                                  "rename %zu: not of the form dst=src", i);
    for (size_t j = 0; j < i; j++)
      if (strncmp(o->renames[j], r, (size_t)(eq - r) + 1) == 0)
        return cowmem__preinit_fail(d, COWMEM_EINVAL, 0,
                                    "rename %zu: its dst is renamed to twice", i);
  }
  return 0;
}

static int check_memories(const rw_t* w) {
  const cowmem_preinit_snapshot_t* s = w->snap;
  uint32_t n = cowmem_module_memory_count(w->m);
  if (s->nmemories != n || (n && !s->memories))
    return cowmem__preinit_fail(w->diag, COWMEM_EINVAL, 0,
                                "snapshot: %u memories for a module with %u",
                                s->nmemories, n);
  for (uint32_t i = 0; i < n; i++) {
    cowmem_memory_info_t mi;
    cowmem_image_info_t ii;
    uint64_t pages = s->memories[i].pages;
    uint64_t cap;
    TRY(cowmem_module_memory_info(w->m, i, &mi));
    cap = COWMEM_WASM_MAX_PAGES(mi.memory64);
    if (pages < mi.min_pages || (mi.has_max && pages > mi.max_pages) || pages > cap)
      return cowmem__preinit_fail(w->diag, COWMEM_EINVAL, 0,
                                  "snapshot: memory %u: %llu pages, outside its "
                                  "limits", i, (unsigned long long)pages);
    if (!s->memories[i].image) continue;
    TRY(cowmem_image_info(s->memories[i].image, &ii));
    if (ii.len && (ii.mem_offset > pages * COWMEM_WASM_PAGE_SIZE ||
                   ii.len > pages * COWMEM_WASM_PAGE_SIZE - ii.mem_offset))
      return cowmem__preinit_fail(w->diag, COWMEM_EINVAL, 0,
                                  "snapshot: memory %u: image ends beyond its "
                                  "%llu pages", i, (unsigned long long)pages);
  }
  return 0;
}

/* The snapshot's globals: exactly the mutable defined ones, in order. */
static int check_globals(const rw_t* w) {
  const cowmem_preinit_snapshot_t* s = w->snap;
  uint32_t n = cowmem_module_global_count(w->m), k = 0;
  if (s->nglobals && !s->globals)
    return cowmem__preinit_fail(w->diag, COWMEM_EINVAL, 0, "snapshot: globals NULL");
  for (uint32_t i = 0; i < n; i++) {
    cowmem_global_info_t g;
    TRY(cowmem_module_global_info(w->m, i, &g));
    if (g.imported || !g.is_mutable) continue;
    if (k >= s->nglobals || s->globals[k].index != i)
      return cowmem__preinit_fail(w->diag, COWMEM_EINVAL, 0,
                                  "snapshot: global %u is missing", i);
    if (s->globals[k].type != g.type)
      return cowmem__preinit_fail(w->diag, COWMEM_EINVAL, 0,
                                  "snapshot: global %u: type 0x%02x, declared "
                                  "0x%02x", i, s->globals[k].type, g.type);
    k++;
  }
  if (k != s->nglobals)
    return cowmem__preinit_fail(w->diag, COWMEM_EINVAL, 0,
                                "snapshot: %u globals, the module has %u "
                                "mutable defined ones", s->nglobals, k);
  return 0;
}

static void put_limits(cowmem__pbuf_t* b, const cowmem_memory_info_t* mi,
                       uint64_t pages) {
  cowmem__pbuf_byte(b, (uint8_t)((mi->has_max ? 1 : 0) | (mi->shared ? 2 : 0) |
                                 (mi->memory64 ? 4 : 0)));
  cowmem__pbuf_uleb(b, pages);
  if (mi->has_max) cowmem__pbuf_uleb(b, mi->max_pages);
}

/* Imports: memory entries with their new minimum, the rest copied. */
static int import_payload(const rw_t* w, cowmem__pbuf_t* b) {
  cowmem__preinit_entry_t* e;
  uint32_t n, mem = 0;
  TRY(cowmem__preinit_entries(w->m, WASM_SEC_IMPORT, &e, &n, w->diag));
  cowmem__pbuf_uleb(b, n);
  for (uint32_t i = 0; i < n; i++) {
    cowmem_memory_info_t mi;
    if (e[i].kind != COWMEM_EXTERN_MEMORY) {
      cowmem__pbuf_add(b, w->bytes + e[i].start, (size_t)(e[i].end - e[i].start));
      continue;
    }
    cowmem__pbuf_add(b, w->bytes + e[i].start, (size_t)(e[i].desc + 1 - e[i].start));
    if (cowmem_module_memory_info(w->m, mem, &mi) == 0)
      put_limits(b, &mi, w->snap->memories[mem].pages);
    mem++;
  }
  free(e);
  return 0;
}

static int memory_payload(const rw_t* w, cowmem__pbuf_t* b) {
  uint32_t n = cowmem_module_memory_count(w->m);
  uint32_t first = cowmem_module_import_count(w->m, COWMEM_EXTERN_MEMORY);
  cowmem__pbuf_uleb(b, n - first);
  for (uint32_t i = first; i < n; i++) {
    cowmem_memory_info_t mi;
    TRY(cowmem_module_memory_info(w->m, i, &mi));
    put_limits(b, &mi, w->snap->memories[i].pages);
  }
  return 0;
}

static void put_value(cowmem__pbuf_t* b, const cowmem_preinit_global_t* g) {
  uint8_t le[16];
  for (unsigned i = 0; i < 16; i++) le[i] = (uint8_t)(g->bits[i / 8] >> (8 * (i % 8)));
  switch (g->type) {
    case COWMEM_TYPE_I32:
      cowmem__pbuf_byte(b, 0x41);
      cowmem__pbuf_sleb(b, (int32_t)(uint32_t)g->bits[0]);
      break;
    case COWMEM_TYPE_I64:
      cowmem__pbuf_byte(b, 0x42);
      cowmem__pbuf_sleb(b, (int64_t)g->bits[0]);
      break;
    case COWMEM_TYPE_F32:
      cowmem__pbuf_byte(b, 0x43);
      cowmem__pbuf_add(b, le, 4);
      break;
    case COWMEM_TYPE_F64:
      cowmem__pbuf_byte(b, 0x44);
      cowmem__pbuf_add(b, le, 8);
      break;
    default: /* v128 (check_globals matched the declared type) */
      cowmem__pbuf_byte(b, 0xfd);
      cowmem__pbuf_uleb(b, 12);
      cowmem__pbuf_add(b, le, 16);
      break;
  }
  cowmem__pbuf_byte(b, 0x0b);
}

/* Globals: mutable ones start at their snapshot value. */
static int global_payload(const rw_t* w, cowmem__pbuf_t* b) {
  cowmem__preinit_entry_t* e;
  uint32_t n, k = 0;
  uint32_t first = cowmem_module_import_count(w->m, COWMEM_EXTERN_GLOBAL);
  TRY(cowmem__preinit_entries(w->m, WASM_SEC_GLOBAL, &e, &n, w->diag));
  cowmem__pbuf_uleb(b, n);
  for (uint32_t i = 0; i < n; i++) {
    bool mut = e[i].is_mutable && k < w->snap->nglobals &&
               w->snap->globals[k].index == first + i;
    size_t upto = (size_t)(mut ? e[i].desc : e[i].end);
    cowmem__pbuf_add(b, w->bytes + e[i].start, upto - (size_t)e[i].start);
    if (mut) put_value(b, &w->snap->globals[k++]);
  }
  free(e);
  return 0;
}

static bool matches(const cowmem_export_info_t* e, const char* s, size_t n) {
  return e->name_len == n && memcmp(e->name, s, n) == 0;
}

static bool is_init_export(const rw_t* w, const cowmem_export_info_t* e) {
  const char* f = w->opt->init_func;
  if (matches(e, "_initialize", 11)) return true;
  if (w->opt->flags & COWMEM_PREINIT_KEEP_INIT_FUNC) return false;
  if (f) return matches(e, f, strlen(f));
  return matches(e, COWMEM_PREINIT_DEFAULT_FUNC, strlen(COWMEM_PREINIT_DEFAULT_FUNC)) ||
         matches(e, COWMEM_PREINIT_DEFAULT_FUNC_ALT,
                 strlen(COWMEM_PREINIT_DEFAULT_FUNC_ALT));
}

/* The rename whose src (from_src) or dst names e, or -1. */
static long find_rename(const rw_t* w, const cowmem_export_info_t* e, bool src) {
  for (size_t i = 0; i < w->opt->nrenames; i++) {
    const char* r = w->opt->renames[i];
    const char* eq = strchr(r, '=');
    const char* s = src ? eq + 1 : r;
    size_t n = src ? strlen(eq + 1) : (size_t)(eq - r);
    if (matches(e, s, n)) return (long)i;
  }
  return -1;
}

/* Every rename's src names an exported function (also when the module
 * has no export section to rewrite). */
static int check_renames(const rw_t* w) {
  uint32_t n = cowmem_module_export_count(w->m);
  for (size_t i = 0; i < w->opt->nrenames; i++) {
    bool found = false;
    for (uint32_t j = 0; j < n && !found; j++) {
      cowmem_export_info_t e;
      TRY(cowmem_module_export_info(w->m, j, &e));
      found = e.kind == COWMEM_EXTERN_FUNC && find_rename(w, &e, true) == (long)i;
    }
    if (!found)
      return cowmem__preinit_fail(w->diag, COWMEM_EINVAL, 0,
                                  "rename %zu: \"%s\" is not an exported "
                                  "function", i, strchr(w->opt->renames[i], '=') + 1);
  }
  return 0;
}

static int export_payload(const rw_t* w, cowmem__pbuf_t* b) {
  uint32_t n = cowmem_module_export_count(w->m), kept = 0;
  cowmem__pbuf_t list = {0};
  for (uint32_t j = 0; j < n; j++) {
    cowmem_export_info_t e;
    TRY(cowmem_module_export_info(w->m, j, &e));
    long r = find_rename(w, &e, true);
    if (r >= 0 && e.kind == COWMEM_EXTERN_FUNC) {
      const char* dst = w->opt->renames[r];
      e.name = dst, e.name_len = (size_t)(strchr(dst, '=') - dst);
    } else if (find_rename(w, &e, false) >= 0 || is_init_export(w, &e)) {
      continue;
    }
    cowmem__pbuf_uleb(&list, e.name_len);
    cowmem__pbuf_add(&list, e.name, e.name_len);
    cowmem__pbuf_byte(&list, (uint8_t)e.kind);
    cowmem__pbuf_uleb(&list, e.index);
    kept++;
  }
  cowmem__pbuf_uleb(b, kept);
  cowmem__pbuf_add(b, list.p, list.len);
  b->failed |= list.failed;
  free(list.p);
  return 0;
}

/* Does any fresh imported memory change its minimum? */
static bool imports_change(const rw_t* w) {
  uint32_t n = cowmem_module_import_count(w->m, COWMEM_EXTERN_MEMORY);
  for (uint32_t i = 0; i < n; i++) {
    cowmem_memory_info_t mi;
    if (cowmem_module_memory_info(w->m, i, &mi) == 0 &&
        mi.min_pages != w->snap->memories[i].pages)
      return true;
  }
  return false;
}

/* The new payload of section s into *b, or *copy when it stays (the name
 * section's is the whole section). */
static int section_payload(const rw_t* w, const cowmem_section_info_t* s,
                           const cowmem__pbuf_t* data, uint32_t nsegments,
                           cowmem__pbuf_t* b, bool* copy) {
  *copy = false;
  switch (s->id) {
    case WASM_SEC_IMPORT:
      if (!imports_change(w)) break;
      return import_payload(w, b);
    case WASM_SEC_MEMORY: return memory_payload(w, b);
    case WASM_SEC_GLOBAL: return global_payload(w, b);
    case WASM_SEC_EXPORT: return export_payload(w, b);
    case WASM_SEC_DATACOUNT:
      cowmem__pbuf_uleb(b, nsegments);
      return 0;
    case WASM_SEC_DATA:
      cowmem__pbuf_add(b, data->p, data->len);
      return 0;
    case WASM_SEC_CUSTOM:
      if (!w->map || !cowmem__custom_named(w->m, s, "name")) break;
      cowmem__data_names(w->m, s, w->map, cowmem_module_segment_count(w->m), b);
      return 0;
    default: break;
  }
  *copy = true;
  return 0;
}

static bool active(const cowmem_segment_info_t* s) {
  return s->mode == COWMEM_SEGMENT_ACTIVE;
}

/* Strip's rule (rewrite.h): the original active segments, which the
 * snapshot holds, are removed when the code allows it. */
static int renumber(rw_t* w) {
  w->nkept = cowmem_module_segment_count(w->m);
  if (!cowmem__data_removable(w->m)) return 0;
  TRY(cowmem__data_renumber(w->m, active, &w->map, &w->nkept));
  if (w->nkept == cowmem_module_segment_count(w->m)) {
    free(w->map);
    w->map = NULL;
  }
  return 0;
}

static int rewrite(const rw_t* w, cowmem__pbuf_t* o) {
  cowmem__pbuf_t data = {0};
  cowmem_section_info_t ds;
  uint32_t nseg = 0, nsec = cowmem_module_section_count(w->m);
  bool images = w->opt->flags & COWMEM_PREINIT_IMAGES;
  bool need_data = !cowmem__code_find_section(w->m, WASM_SEC_DATA, &ds);
  int err = cowmem__preinit_data(w->m, w->snap, w->opt, images, w->nkept, &data,
                                 &nseg, w->diag);
  need_data = need_data && nseg > 0;
  cowmem__pbuf_add(o, w->bytes, 8); /* magic and version */
  for (uint32_t i = 0; i < nsec && err == 0; i++) {
    cowmem_section_info_t s;
    cowmem__pbuf_t payload = {0};
    bool copy;
    err = cowmem_module_section_info(w->m, i, &s);
    if (err == 0 && s.id != WASM_SEC_START)
      err = section_payload(w, &s, &data, nseg, &payload, &copy);
    if (err == 0 && s.id != WASM_SEC_START) {
      if (copy)
        cowmem__pbuf_add(o, w->bytes + s.offset,
                         (size_t)(s.payload_offset + s.payload_len - s.offset));
      else if (s.id == WASM_SEC_CUSTOM)
        cowmem__pbuf_add(o, payload.p, payload.len);
      else
        cowmem__pbuf_section(o, (uint8_t)s.id, &payload);
    }
    free(payload.p);
    if (err == 0 && need_data && s.id == WASM_SEC_CODE) {
      cowmem__pbuf_section(o, WASM_SEC_DATA, &data);
      need_data = false;
    }
  }
  if (err == 0 && need_data) cowmem__pbuf_section(o, WASM_SEC_DATA, &data);
  o->failed |= data.failed;
  free(data.p);
  return err;
}

int cowmem_preinit_rewrite(const cowmem_module_t* m,
                           const cowmem_preinit_snapshot_t* snap,
                           const cowmem_preinit_options_t* opt, uint8_t** out,
                           size_t* out_len, int images_fd, cowmem_diag_t* diag) {
  cowmem_preinit_options_t defaults;
  cowmem__pbuf_t o = {0};
  rw_t w;
  int err;
  if (diag) memset(diag, 0, sizeof *diag);
  if (!m || !snap || !out || !out_len)
    return cowmem__preinit_fail(diag, COWMEM_EINVAL, 0, "NULL argument");
  if (!opt) {
    cowmem_preinit_options_init(&defaults);
    opt = &defaults;
  }
  w.m = m, w.snap = snap, w.opt = opt, w.diag = diag, w.map = NULL;
  w.bytes = cowmem_module_bytes(m, &(size_t){0});
  TRY(check_options(opt, diag));
  TRY(cowmem_preinit_validate(m, diag));
  TRY(check_memories(&w));
  TRY(check_globals(&w));
  TRY(check_renames(&w));
  err = renumber(&w);
  if (err == 0) err = rewrite(&w, &o);
  free(w.map);
  if (err == 0) err = cowmem__pbuf_done(&o);
  if (err == 0 && (opt->flags & COWMEM_PREINIT_IMAGES)) {
    err = cowmem__preinit_images(m, snap, o.p, o.len, images_fd);
    if (err != 0 && (!diag || diag->code == 0))
      cowmem__preinit_fail(diag, err, 0, "writing the image file: %s",
                           cowmem_strerror(err));
  }
  if (err != 0) {
    free(o.p);
    if (diag && diag->code == 0) cowmem__preinit_fail(diag, err, 0, "%s", cowmem_strerror(err));
    return err;
  }
  *out = o.p;
  *out_len = o.len;
  return 0;
}
