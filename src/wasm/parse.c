/* Decoding and validating the sections that matter to memory.
 *
 * Sections are read in one pass. Each is given its own region of the
 * cursor so no read crosses into the next section, and must be consumed
 * exactly ("section size mismatch"). Validation errors are recorded and
 * decoding goes on (cowmem__rd_invalid), because the spec decodes the whole
 * module before validating it: a malformed byte later wins. */
#include <stdlib.h>
#include <string.h>

#include "wasm/wasm.h"
#include "wasm/reader.h"

/* Position of each section id in the required order; 0 = custom. The data
 * count section (12) comes before code (10); tags (13) after memories. */
static const uint8_t section_rank[14] = {0, 1, 2, 3, 4, 5, 7, 8,
                                         9, 10, 12, 13, 11, 6};

static int grow(cowmem__rd_t* r, void** arr, uint32_t* cap, uint32_t need,
                size_t elem) {
  if (need <= *cap) return 0;
  uint32_t ncap = *cap ? *cap : 4;
  while (ncap < need) ncap = ncap > UINT32_MAX / 2 ? need : ncap * 2;
  void* p = realloc(*arr, (size_t)ncap * elem);
  if (!p) return cowmem__rd_fail(r, COWMEM_ENOMEM, r->pos, "out of memory");
  memset((char*)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
  *arr = p;
  *cap = ncap;
  return 0;
}

typedef struct {
  cowmem_module_t* m;
  cowmem__rd_t r;
  uint32_t mem_cap, glob_cap;
  uint32_t defined_funcs, code_count;
  bool has_code;
} parser_t;

static int read_valtype(parser_t* p, uint8_t* out) {
  uint8_t t;
  size_t at = p->r.pos;
  TRY(cowmem__rd_u8(&p->r, &t));
  switch (t) {
    case 0x7f: case 0x7e: case 0x7d: case 0x7c: case 0x7b: case 0x70:
    case 0x6f:
      *out = t;
      return 0;
    case 0x63: case 0x64: { /* typed references: (ref null? ht) */
      int64_t ht;
      TRY(cowmem__rd_s64(&p->r, &ht));
      *out = t;
      return 0;
    }
    default:
      return cowmem__rd_fail(&p->r, COWMEM_EMALFORMED, at,
                             "malformed value type");
  }
}

static int read_limits(parser_t* p, bool memory, cowmem_memory_info_t* out) {
  cowmem__rd_t* r = &p->r;
  size_t at = r->pos;
  uint8_t flags;
  TRY(cowmem__rd_u8(r, &flags));
  unsigned allowed = memory ? 0x07u : 0x01u;
  if (memory && (p->m->flags & COWMEM_MODULE_NO_MEMORY64)) allowed &= ~0x04u;
  if (memory && (p->m->flags & COWMEM_MODULE_NO_THREADS)) allowed &= ~0x02u;
  /* Before memory64 the flags were a varuint1 in the spec's decoder, so
   * other values read as LEB128 errors; since, a byte. */
  if (flags & ~allowed) {
    const char* why = "malformed limits flags";
    if (p->m->flags & COWMEM_MODULE_NO_MEMORY64)
      why = flags & 0x80 ? "integer representation too long"
                         : "integer too large";
    return cowmem__rd_fail(r, COWMEM_EMALFORMED, at, "%s", why);
  }
  out->has_max = flags & 0x01;
  out->shared = flags & 0x02;
  out->memory64 = flags & 0x04;
  if (out->memory64) {
    TRY(cowmem__rd_u64(r, &out->min_pages));
    if (out->has_max) TRY(cowmem__rd_u64(r, &out->max_pages));
  } else {
    uint32_t v;
    TRY(cowmem__rd_u32(r, &v));
    out->min_pages = v;
    if (out->has_max) {
      TRY(cowmem__rd_u32(r, &v));
      out->max_pages = v;
    }
  }
  if (memory) {
    uint64_t cap = COWMEM_WASM_MAX_PAGES(out->memory64);
    if (out->min_pages > cap || (out->has_max && out->max_pages > cap))
      cowmem__rd_invalid(r, at,
                         out->memory64
                             ? "memory size must be at most 2^48 pages"
                             : "memory size must be at most 65536 pages "
                               "(4GiB)");
    if (out->shared && !out->has_max)
      cowmem__rd_invalid(r, at, "shared memory must have maximum");
  }
  if (out->has_max && out->min_pages > out->max_pages)
    cowmem__rd_invalid(r, at, "size minimum must not be greater than maximum");
  return 0;
}

static int read_table_type(parser_t* p) {
  uint8_t t;
  size_t at = p->r.pos;
  TRY(cowmem__rd_u8(&p->r, &t));
  if (t != 0x70 && t != 0x6f)
    return cowmem__rd_fail(&p->r, COWMEM_EMALFORMED, at,
                           "malformed reference type");
  cowmem_memory_info_t lim;
  memset(&lim, 0, sizeof lim);
  TRY(read_limits(p, false, &lim));
  p->m->ntables++;
  return 0;
}

static int add_memory(parser_t* p, size_t at, const cowmem_memory_info_t* info) {
  cowmem_module_t* m = p->m;
  TRY(grow(&p->r, (void**)&m->memories, &p->mem_cap, m->nmemories + 1,
           sizeof *m->memories));
  m->memories[m->nmemories++].info = *info;
  if (m->nmemories == 2 && (m->flags & COWMEM_MODULE_NO_MULTI_MEMORY))
    cowmem__rd_invalid(&p->r, at, "multiple memories");
  return 0;
}

static int add_global(parser_t* p, const cowmem_global_info_t* g) {
  cowmem_module_t* m = p->m;
  TRY(grow(&p->r, (void**)&m->globals, &p->glob_cap, m->nglobals + 1,
           sizeof *m->globals));
  m->globals[m->nglobals++] = *g;
  return 0;
}

typedef struct {
  uint8_t type;
  cowmem_init_kind_t kind;
  uint64_t value;
  uint32_t global;
} cexpr_t;

/* Single-byte opcodes that no proposal defines (a malformed module, not
 * merely a non-constant instruction). */
static bool illegal_opcode(uint8_t op) {
  return op == 0x16 || op == 0x17 || op == 0x1d || op == 0x1e || op == 0x27 ||
         (op >= 0xc5 && op <= 0xcf) || (op >= 0xd7 && op <= 0xfa) ||
         op == 0xff;
}

/* A constant expression of type `want`. `visible` globals may be read. */
static int read_const_expr(parser_t* p, uint8_t want, uint32_t visible,
                           cexpr_t* out) {
  cowmem__rd_t* r = &p->r;
  cowmem_module_t* m = p->m;
  size_t start = r->pos;
  uint32_t depth = 0;
  cexpr_t top = {0, COWMEM_INIT_OTHER, 0, 0};
  if (m->flags & COWMEM_MODULE_NO_DEFINED_GLOBAL_GET &&
      visible > m->imports[COWMEM_EXTERN_GLOBAL])
    visible = m->imports[COWMEM_EXTERN_GLOBAL];
  for (;;) {
    size_t at = r->pos;
    uint8_t op;
    TRY(cowmem__rd_u8(r, &op));
    if (op == 0x0b) break;
    cexpr_t v = {0, COWMEM_INIT_CONST, 0, 0};
    switch (op) {
      case 0x41: {
        int32_t x;
        TRY(cowmem__rd_s32(r, &x));
        v.type = COWMEM_TYPE_I32, v.value = (uint32_t)x;
        break;
      }
      case 0x42: {
        int64_t x;
        TRY(cowmem__rd_s64(r, &x));
        v.type = COWMEM_TYPE_I64, v.value = (uint64_t)x;
        break;
      }
      case 0x43: case 0x44: {
        size_t off;
        unsigned n = op == 0x43 ? 4 : 8;
        TRY(cowmem__rd_bytes(r, n, &off));
        for (unsigned i = 0; i < n; i++)
          v.value |= (uint64_t)r->base[off + i] << (8 * i);
        v.type = op == 0x43 ? COWMEM_TYPE_F32 : COWMEM_TYPE_F64;
        break;
      }
      case 0x23: {
        uint32_t x;
        TRY(cowmem__rd_u32(r, &x));
        if (x >= visible) {
          cowmem__rd_invalid(r, at, "unknown global %u", x);
          v.kind = COWMEM_INIT_OTHER, v.type = 0;
          break;
        }
        const cowmem_global_info_t* g = &m->globals[x];
        if (g->is_mutable)
          cowmem__rd_invalid(r, at, "constant expression required");
        v.type = g->type, v.kind = g->init, v.value = g->value;
        v.global = g->global;
        break;
      }
      case 0xd0: {
        uint8_t t;
        TRY(cowmem__rd_u8(r, &t));
        if (t != 0x70 && t != 0x6f)
          return cowmem__rd_fail(r, COWMEM_EMALFORMED, at,
                                 "malformed reference type");
        v.type = t, v.kind = COWMEM_INIT_OTHER;
        break;
      }
      case 0xd2: {
        uint32_t x;
        TRY(cowmem__rd_u32(r, &x));
        if (x >= m->nfuncs) cowmem__rd_invalid(r, at, "unknown function %u", x);
        v.type = COWMEM_TYPE_FUNCREF, v.kind = COWMEM_INIT_OTHER;
        break;
      }
      case 0xfd: {
        uint32_t sub;
        TRY(cowmem__rd_u32(r, &sub));
        if (sub != 12) goto not_const;
        TRY(cowmem__rd_skip(r, 16));
        v.type = COWMEM_TYPE_V128, v.kind = COWMEM_INIT_OTHER;
        break;
      }
      default:
        if (illegal_opcode(op))
          return cowmem__rd_fail(r, COWMEM_EMALFORMED, at, "illegal opcode");
      not_const:
        /* Any other instruction: its immediates are unknown here, so the
         * rest of the module cannot be decoded; report it now. */
        return cowmem__rd_fail(r, COWMEM_EINVALID, at,
                               "constant expression required");
    }
    top = v;
    depth++;
  }
  if (depth != 1 || top.type != want)
    cowmem__rd_invalid(r, start, "type mismatch");
  *out = top;
  return 0;
}

static int parse_types(parser_t* p) {
  cowmem__rd_t* r = &p->r;
  uint32_t n;
  TRY(cowmem__rd_count(r, 3, &n));
  for (uint32_t i = 0; i < n; i++) {
    size_t at = r->pos;
    uint8_t form;
    TRY(cowmem__rd_u8(r, &form));
    if (form != 0x60) {
      if (form >= 0x4e && form <= 0x50)
        return cowmem__rd_fail(r, COWMEM_EUNSUPPORTED, at,
                               "GC type definitions are not supported");
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, at,
                             "integer representation too long");
    }
    for (int k = 0; k < 2; k++) {
      uint32_t c;
      uint8_t t;
      TRY(cowmem__rd_count(r, 1, &c));
      for (uint32_t j = 0; j < c; j++) TRY(read_valtype(p, &t));
    }
  }
  p->m->ntypes = n;
  return 0;
}

static int parse_imports(parser_t* p) {
  cowmem__rd_t* r = &p->r;
  cowmem_module_t* m = p->m;
  uint32_t n;
  TRY(cowmem__rd_count(r, 3, &n));
  for (uint32_t i = 0; i < n; i++) {
    size_t mod_off, name_off, at;
    uint32_t mod_len, name_len, x;
    uint8_t kind;
    TRY(cowmem__rd_name(r, &mod_off, &mod_len));
    TRY(cowmem__rd_name(r, &name_off, &name_len));
    at = r->pos;
    TRY(cowmem__rd_u8(r, &kind));
    if (kind == COWMEM_EXTERN_TAG && (m->flags & COWMEM_MODULE_NO_EXCEPTIONS))
      kind = 0xff; /* malformed below */
    const char* mod = (const char*)m->bytes + mod_off;
    const char* name = (const char*)m->bytes + name_off;
    switch (kind) {
      case COWMEM_EXTERN_FUNC:
        TRY(cowmem__rd_u32(r, &x));
        if (x >= m->ntypes) cowmem__rd_invalid(r, at, "unknown type");
        m->nfuncs++;
        break;
      case COWMEM_EXTERN_TABLE:
        TRY(read_table_type(p));
        break;
      case COWMEM_EXTERN_MEMORY: {
        cowmem_memory_info_t mi;
        memset(&mi, 0, sizeof mi);
        TRY(read_limits(p, true, &mi));
        mi.imported = true;
        mi.import_module = mod, mi.import_module_len = mod_len;
        mi.import_name = name, mi.import_name_len = name_len;
        TRY(add_memory(p, at, &mi));
        break;
      }
      case COWMEM_EXTERN_GLOBAL: {
        cowmem_global_info_t g;
        uint8_t mut;
        memset(&g, 0, sizeof g);
        TRY(read_valtype(p, &g.type));
        size_t mat = r->pos;
        TRY(cowmem__rd_u8(r, &mut));
        if (mut > 1)
          return cowmem__rd_fail(r, COWMEM_EMALFORMED, mat,
                                 "malformed mutability");
        g.imported = true, g.is_mutable = mut;
        g.init = COWMEM_INIT_IMPORT, g.global = m->nglobals;
        g.import_module = mod, g.import_module_len = mod_len;
        g.import_name = name, g.import_name_len = name_len;
        TRY(add_global(p, &g));
        break;
      }
      case COWMEM_EXTERN_TAG: {
        uint8_t attr;
        TRY(cowmem__rd_u8(r, &attr));
        TRY(cowmem__rd_u32(r, &x));
        if (x >= m->ntypes) cowmem__rd_invalid(r, at, "unknown type");
        m->ntags++;
        break;
      }
      default:
        return cowmem__rd_fail(r, COWMEM_EMALFORMED, at,
                               "malformed import kind");
    }
    m->imports[kind]++;
  }
  return 0;
}

static int parse_functions(parser_t* p) {
  uint32_t n, x;
  TRY(cowmem__rd_count(&p->r, 1, &n));
  for (uint32_t i = 0; i < n; i++) {
    size_t at = p->r.pos;
    TRY(cowmem__rd_u32(&p->r, &x));
    if (x >= p->m->ntypes) cowmem__rd_invalid(&p->r, at, "unknown type");
  }
  p->defined_funcs = n;
  p->m->nfuncs += n;
  return 0;
}

static int parse_tables(parser_t* p) {
  uint32_t n;
  TRY(cowmem__rd_count(&p->r, 3, &n));
  for (uint32_t i = 0; i < n; i++) TRY(read_table_type(p));
  return 0;
}

static int parse_memories(parser_t* p) {
  uint32_t n;
  TRY(cowmem__rd_count(&p->r, 2, &n));
  for (uint32_t i = 0; i < n; i++) {
    cowmem_memory_info_t mi;
    size_t at = p->r.pos;
    memset(&mi, 0, sizeof mi);
    TRY(read_limits(p, true, &mi));
    TRY(add_memory(p, at, &mi));
  }
  return 0;
}

static int parse_globals(parser_t* p) {
  cowmem__rd_t* r = &p->r;
  uint32_t n;
  TRY(cowmem__rd_count(r, 4, &n));
  for (uint32_t i = 0; i < n; i++) {
    cowmem_global_info_t g;
    uint8_t mut;
    cexpr_t e;
    memset(&g, 0, sizeof g);
    TRY(read_valtype(p, &g.type));
    size_t at = r->pos;
    TRY(cowmem__rd_u8(r, &mut));
    if (mut > 1)
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, at, "malformed mutability");
    g.is_mutable = mut;
    TRY(read_const_expr(p, g.type, p->m->nglobals, &e));
    g.init = e.kind, g.value = e.value, g.global = e.global;
    TRY(add_global(p, &g));
  }
  return 0;
}

static int cmp_export(const void* a, const void* b) {
  const cowmem_export_info_t* x = a;
  const cowmem_export_info_t* y = b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp(x->name, y->name, n);
  if (c) return c;
  return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static int parse_exports(parser_t* p) {
  cowmem__rd_t* r = &p->r;
  cowmem_module_t* m = p->m;
  static const char* const what[] = {"function", "table", "memory", "global",
                                     "tag"};
  uint32_t n;
  TRY(cowmem__rd_count(r, 3, &n));
  m->exports = calloc(n ? n : 1, sizeof *m->exports);
  if (!m->exports)
    return cowmem__rd_fail(r, COWMEM_ENOMEM, r->pos, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    size_t off, at;
    uint32_t len, x;
    uint8_t kind;
    TRY(cowmem__rd_name(r, &off, &len));
    at = r->pos;
    TRY(cowmem__rd_u8(r, &kind));
    if (kind > COWMEM_EXTERN_TAG ||
        (kind == COWMEM_EXTERN_TAG && (m->flags & COWMEM_MODULE_NO_EXCEPTIONS)))
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, at, "malformed export kind");
    TRY(cowmem__rd_u32(r, &x));
    const uint32_t limit[] = {m->nfuncs, m->ntables, m->nmemories, m->nglobals,
                              m->ntags};
    if (x >= limit[kind])
      cowmem__rd_invalid(r, at, "unknown %s %u", what[kind], x);
    else if (kind == COWMEM_EXTERN_MEMORY)
      m->memories[x].info.export_count++;
    cowmem_export_info_t* e = &m->exports[m->nexports++];
    e->kind = (cowmem_extern_kind_t)kind, e->index = x;
    e->name = (const char*)m->bytes + off, e->name_len = len;
  }
  /* Duplicate names in O(n log n): a module may export thousands. */
  cowmem_export_info_t* sorted = malloc((n ? n : 1) * sizeof *sorted);
  if (!sorted) return cowmem__rd_fail(r, COWMEM_ENOMEM, r->pos, "out of memory");
  memcpy(sorted, m->exports, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, cmp_export);
  for (uint32_t i = 1; i < n; i++)
    if (cmp_export(&sorted[i - 1], &sorted[i]) == 0) {
      cowmem__rd_invalid(r, (size_t)((const uint8_t*)sorted[i].name - m->bytes),
                         "duplicate export name");
      break;
    }
  free(sorted);
  return 0;
}

/* Element segments: decoded and checked (kinds, indices, expressions), not
 * kept: tables are not cowmem's business, but a module whose element
 * section is malformed or invalid must not parse. */
static int parse_elems(parser_t* p) {
  cowmem__rd_t* r = &p->r;
  cowmem_module_t* m = p->m;
  uint32_t n;
  TRY(cowmem__rd_count(r, 2, &n));
  for (uint32_t i = 0; i < n; i++) {
    size_t at = r->pos;
    uint32_t flags, table = 0, items, x;
    uint8_t type = COWMEM_TYPE_FUNCREF;
    cexpr_t e;
    TRY(cowmem__rd_u32(r, &flags));
    if (flags > 7)
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, at,
                             "malformed elements segment kind");
    if (!(flags & 1)) { /* active */
      if (flags & 2) {
        size_t tat = r->pos;
        TRY(cowmem__rd_u32(r, &table));
        if (table >= m->ntables)
          cowmem__rd_invalid(r, tat, "unknown table %u", table);
      } else if (m->ntables == 0) {
        cowmem__rd_invalid(r, at, "unknown table 0");
      }
      TRY(read_const_expr(p, COWMEM_TYPE_I32, m->nglobals, &e));
    }
    if (flags & 3) {
      size_t tat = r->pos;
      TRY(cowmem__rd_u8(r, &type));
      if (flags & 4) {
        if (type != COWMEM_TYPE_FUNCREF && type != COWMEM_TYPE_EXTERNREF)
          return cowmem__rd_fail(r, COWMEM_EMALFORMED, tat,
                                 "malformed reference type");
      } else if (type != 0x00) {
        return cowmem__rd_fail(r, COWMEM_EMALFORMED, tat,
                               "malformed element kind");
      } else {
        type = COWMEM_TYPE_FUNCREF;
      }
    }
    TRY(cowmem__rd_count(r, 1, &items));
    for (uint32_t k = 0; k < items; k++) {
      if (flags & 4) {
        TRY(read_const_expr(p, type, m->nglobals, &e));
      } else {
        size_t xat = r->pos;
        TRY(cowmem__rd_u32(r, &x));
        if (x >= m->nfuncs) cowmem__rd_invalid(r, xat, "unknown function %u", x);
      }
    }
  }
  return 0;
}

static int parse_code(parser_t* p) {
  cowmem__rd_t* r = &p->r;
  uint32_t n, size;
  size_t at = r->pos;
  TRY(cowmem__rd_count(r, 1, &n));
  if (n != p->defined_funcs)
    return cowmem__rd_fail(r, COWMEM_EMALFORMED, at,
                           "function and code section have inconsistent "
                           "lengths");
  /* The bodies are not walked: function bodies are not validated here, and
   * touching each body's size prefix was a third of parsing esbuild-wasm
   * (one cache miss per function over 8 MB). Only with
   * COWMEM_MODULE_CHECK_BODIES are their sizes checked to fill the section. */
  if (p->m->flags & COWMEM_MODULE_CHECK_BODIES) {
    for (uint32_t i = 0; i < n; i++) {
      TRY(cowmem__rd_u32(r, &size));
      TRY(cowmem__rd_skip(r, size));
    }
  } else {
    (void)size;
    r->pos = r->end;
  }
  p->has_code = true;
  p->code_count = n;
  return 0;
}

/* The common segment, "0x00 i32.const <short LEB> end <short len> data"
 * into a 32-bit memory 0, decoded without the general machinery; false
 * (nothing consumed) for anything else, which the general path handles
 * with its checks. Halves the time per segment of esbuild-wasm. */
static bool fast_active_i32(cowmem__rd_t* r, cowmem_module_t* m,
                            cowmem__segment_t* s) {
  if (r->end - r->pos < 12 || m->nmemories == 0 ||
      m->memories[0].info.memory64)
    return false;
  const uint8_t* b = r->base + r->pos;
  if (b[0] != 0x00 || b[1] != 0x41) return false;
  uint32_t off, len;
  unsigned n = cowmem__leb_short(b + 2, &off);
  if (n == 0 || (b[1 + n] & 0x40) || b[2 + n] != 0x0b) return false;
  unsigned k = cowmem__leb_short(b + 3 + n, &len);
  size_t head = 3 + n + k;
  if (k == 0 || len > r->end - r->pos - head) return false;
  s->mode = COWMEM_SEGMENT_ACTIVE;
  s->memory = 0;
  s->offset_kind = COWMEM_OFFSET_CONST;
  s->offset = off;
  s->covered_by_image = false;
  s->data_offset = r->pos + head;
  s->data_len = len;
  s->header_len = (uint32_t)head;
  m->memories[0].info.active_segments++;
  r->pos += head + len;
  m->nsegments++;
  return true;
}

static int parse_data(parser_t* p) {
  cowmem__rd_t* r = &p->r;
  cowmem_module_t* m = p->m;
  uint32_t n;
  size_t at = r->pos;
  TRY(cowmem__rd_count(r, 2, &n));
  if (m->has_datacount && n != m->datacount)
    return cowmem__rd_fail(r, COWMEM_EMALFORMED, at,
                           "data count and data section have inconsistent "
                           "lengths");
  /* malloc, not calloc: every field is written below, and zeroing 10^5
   * entries showed in the profile. */
  m->segments = malloc((n ? n : 1) * sizeof *m->segments);
  if (!m->segments)
    return cowmem__rd_fail(r, COWMEM_ENOMEM, r->pos, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    cowmem__segment_t* s = &m->segments[i];
    uint32_t flags, mem = 0, len;
    size_t off, start = r->pos;
    if (fast_active_i32(r, m, s)) continue;
    TRY(cowmem__rd_u32(r, &flags));
    if (flags > 2)
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, start,
                             "malformed data segment kind");
    s->mode = flags == 1 ? COWMEM_SEGMENT_PASSIVE : COWMEM_SEGMENT_ACTIVE;
    s->memory = 0;
    s->offset_kind = COWMEM_OFFSET_CONST;
    s->offset = 0;
    s->covered_by_image = false;
    if (flags == 2) TRY(cowmem__rd_u32(r, &mem));
    if (flags != 1) {
      cexpr_t e;
      uint8_t want = COWMEM_TYPE_I32;
      if (mem >= m->nmemories)
        cowmem__rd_invalid(r, start, "unknown memory %u", mem);
      else if (m->memories[mem].info.memory64)
        want = COWMEM_TYPE_I64;
      TRY(read_const_expr(p, want, m->nglobals, &e));
      s->memory = mem;
      if (e.kind == COWMEM_INIT_IMPORT) {
        s->offset_kind = COWMEM_OFFSET_GLOBAL, s->offset = e.global;
      } else {
        s->offset = e.value;
      }
      if (mem < m->nmemories) m->memories[mem].info.active_segments++;
    }
    TRY(cowmem__rd_u32(r, &len));
    TRY(cowmem__rd_bytes(r, len, &off));
    s->data_len = len;
    s->data_offset = off;
    s->header_len = (uint32_t)(off - start);
    m->nsegments++;
  }
  return 0;
}

static int parse_custom(parser_t* p) {
  size_t off;
  uint32_t len;
  TRY(cowmem__rd_name(&p->r, &off, &len));
  p->r.pos = p->r.end;
  return 0;
}

static int parse_section(parser_t* p, uint8_t id) {
  cowmem__rd_t* r = &p->r;
  cowmem_module_t* m = p->m;
  switch (id) {
    case 0: return parse_custom(p);
    case 1: return parse_types(p);
    case 2: return parse_imports(p);
    case 3: return parse_functions(p);
    case 4: return parse_tables(p);
    case 5: return parse_memories(p);
    case 6: return parse_globals(p);
    case 7: return parse_exports(p);
    case 8: {
      size_t at = r->pos;
      TRY(cowmem__rd_u32(r, &m->start));
      if (m->start >= m->nfuncs)
        cowmem__rd_invalid(r, at, "unknown function %u", m->start);
      m->has_start = true;
      return 0;
    }
    case 9: return parse_elems(p);
    case 10: return parse_code(p);
    case 11: return parse_data(p);
    case 12:
      TRY(cowmem__rd_u32(r, &m->datacount));
      m->has_datacount = true;
      return 0;
    case 13: {
      uint32_t n;
      TRY(cowmem__rd_u32(r, &n));
      m->ntags += n;
      r->pos = r->end;
      return 0;
    }
  }
  return 0;
}

static int add_section(parser_t* p, const cowmem_section_info_t* s) {
  cowmem_module_t* m = p->m;
  TRY(grow(&p->r, (void**)&m->sections, &m->sections_cap, m->nsections + 1,
           sizeof *m->sections));
  m->sections[m->nsections++] = *s;
  return 0;
}

static int decode(parser_t* p) {
  cowmem__rd_t* r = &p->r;
  cowmem_module_t* m = p->m;
  static const uint8_t magic[4] = {0x00, 0x61, 0x73, 0x6d};
  static const uint8_t version[4] = {0x01, 0x00, 0x00, 0x00};
  size_t off;
  if (m->len >= 4 && memcmp(m->bytes, magic, 4) != 0)
    return cowmem__rd_fail(r, COWMEM_EMALFORMED, 0,
                           "magic header not detected");
  TRY(cowmem__rd_bytes(r, 4, &off));
  if (m->len >= 8 && memcmp(m->bytes + 4, version, 4) != 0)
    return cowmem__rd_fail(r, COWMEM_EMALFORMED, 4, "unknown binary version");
  TRY(cowmem__rd_bytes(r, 4, &off));

  uint8_t last_rank = 0;
  while (r->pos < m->len) {
    cowmem_section_info_t s;
    uint8_t id;
    uint32_t size;
    r->end = m->len;
    r->eof_reason = "unexpected end";
    s.offset = r->pos;
    TRY(cowmem__rd_u8(r, &id));
    if (id > 13 || (id == 13 && (m->flags & COWMEM_MODULE_NO_EXCEPTIONS)))
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, s.offset,
                             "malformed section id");
    TRY(cowmem__rd_u32(r, &size));
    if (id != 0) {
      if (section_rank[id] <= last_rank)
        return cowmem__rd_fail(r, COWMEM_EMALFORMED, s.offset,
                               "unexpected content after last section");
      last_rank = section_rank[id];
    }
    s.id = id;
    s.payload_offset = r->pos;
    s.payload_len = size;
    bool truncated = size > cowmem__rd_left(r);
    if (truncated && id == 10)
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, m->len, "unexpected end");
    r->end = truncated ? m->len : r->pos + size;
    r->eof_reason = "unexpected end of section or function";
    TRY(add_section(p, &s));
    TRY(parse_section(p, id));
    if (truncated)
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, m->len,
                             "unexpected end of section or function");
    if (r->pos != r->end)
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, s.offset,
                             "section size mismatch");
  }
  if (!p->has_code && p->defined_funcs != 0)
    return cowmem__rd_fail(r, COWMEM_EMALFORMED, m->len,
                           "function and code section have inconsistent "
                           "lengths");
  if (m->has_datacount && m->datacount != m->nsegments) {
    bool seen = false;
    for (uint32_t i = 0; i < m->nsections; i++) seen |= m->sections[i].id == 11;
    if (!seen)
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, m->len,
                             "data count and data section have inconsistent "
                             "lengths");
  }
  return 0;
}

int cowmem__module_decode(cowmem_module_t* m, cowmem_diag_t* diag) {
  parser_t p;
  cowmem_diag_t invalid;
  memset(&p, 0, sizeof p);
  memset(&invalid, 0, sizeof invalid);
  memset(diag, 0, sizeof *diag);
  p.m = m;
  p.r.base = m->bytes;
  p.r.len = m->len;
  p.r.end = m->len;
  p.r.eof_reason = "unexpected end";
  p.r.diag = diag;
  p.r.invalid = &invalid;
  int err = decode(&p);
  if (err != 0) return err;
  if (invalid.code != 0) {
    *diag = invalid;
    return invalid.code;
  }
  return 0;
}
