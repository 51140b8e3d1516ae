/* Pre-initialization: the instruction decoder and what a snapshot cannot
 * carry (cowmem_preinit_validate), and the walks of the import and global
 * sections that the rewriter shares.
 *
 * The parser does not walk function bodies, so this file decodes every
 * instruction with its immediates. Refusing table.set by looking for byte
 * 0x25 would also hit a local index 0x25 or a LEB byte of a constant: only
 * a decoder that knows each opcode's immediates finds the instruction and
 * nothing else. An opcode it does not know stops it (EUNSUPPORTED) rather
 * than guessing its length. Bodies are not otherwise validated (types,
 * block nesting): a runtime that instantiates the module does that. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm/preinit.h"
#include "wasm/reader.h"

int cowmem__preinit_fail(cowmem_diag_t* diag, int code, uint64_t offset,
                         const char* fmt, ...) {
  if (diag) {
    va_list ap;
    memset(diag, 0, sizeof *diag);
    diag->code = code;
    diag->offset = offset;
    va_start(ap, fmt);
    vsnprintf(diag->reason, sizeof diag->reason, fmt, ap);
    va_end(ap);
  }
  return code;
}

bool cowmem__preinit_find_section(const cowmem_module_t* m, uint32_t id,
                                  cowmem_section_info_t* out) {
  uint32_t n = cowmem_module_section_count(m);
  for (uint32_t i = 0; i < n; i++)
    if (cowmem_module_section_info(m, i, out) == 0 && out->id == id) return true;
  return false;
}

/* A reader over one section's payload; errors go to *d. */
static void reader_init(cowmem__rd_t* r, const cowmem_module_t* m,
                        const cowmem_section_info_t* s, cowmem_diag_t* d,
                        cowmem_diag_t* inv) {
  size_t len = 0;
  memset(r, 0, sizeof *r);
  memset(d, 0, sizeof *d);
  memset(inv, 0, sizeof *inv);
  r->base = cowmem_module_bytes(m, &len);
  r->len = len;
  r->pos = (size_t)s->payload_offset;
  r->end = (size_t)(s->payload_offset + s->payload_len);
  r->eof_reason = "unexpected end of section or function";
  r->diag = d;
  r->invalid = inv;
}

/* A value type: one byte, or (ref null? heaptype) with its s33. */
static int skip_valtype(cowmem__rd_t* r, uint8_t* out) {
  int64_t ht;
  TRY(cowmem__rd_u8(r, out));
  if (*out == 0x63 || *out == 0x64) TRY(cowmem__rd_s64(r, &ht));
  return 0;
}

/* A block type: 0x40, a value type, or a type index (s33). */
static int skip_blocktype(cowmem__rd_t* r) {
  int64_t v;
  if (r->pos < r->end && (r->base[r->pos] == 0x63 || r->base[r->pos] == 0x64)) {
    uint8_t t;
    return skip_valtype(r, &t);
  }
  return cowmem__rd_s64(r, &v);
}

/* A memory argument: alignment (bit 6: a memory index follows, the
 * multi-memory encoding) and an offset (64 bits with memory64). */
static int skip_memarg(cowmem__rd_t* r) {
  uint32_t align, mem;
  uint64_t off;
  TRY(cowmem__rd_u32(r, &align));
  if (align & 0x40) TRY(cowmem__rd_u32(r, &mem));
  return cowmem__rd_u64(r, &off);
}

static int skip_u32s(cowmem__rd_t* r, unsigned n) {
  uint32_t v;
  for (unsigned i = 0; i < n; i++) TRY(cowmem__rd_u32(r, &v));
  return 0;
}

#define PREFIXED(prefix, sub) (((uint32_t)(prefix) << 24) | (sub))

static int unknown(cowmem__rd_t* r, size_t at, uint32_t op) {
  if (op >> 24)
    return cowmem__rd_fail(r, COWMEM_EUNSUPPORTED, at,
                           "unknown instruction 0x%02x %u", op >> 24,
                           op & 0xffffffu);
  return cowmem__rd_fail(r, COWMEM_EUNSUPPORTED, at,
                         "unknown instruction 0x%02x", op);
}

/* 0xFC: saturating truncations, bulk memory, tables. */
static int instr_fc(cowmem__rd_t* r, size_t at, uint32_t sub) {
  static const uint8_t nimm[18] = {0, 0, 0, 0, 0, 0, 0, 0, /* trunc_sat */
                                   2, 1, 2, 1,             /* memory.* */
                                   2, 1, 2, 1, 1, 1};      /* table.* */
  if (sub >= sizeof nimm) return unknown(r, at, PREFIXED(0xfc, sub));
  return skip_u32s(r, nimm[sub]);
}

/* 0xFD: SIMD (and relaxed SIMD, 0x100-0x113). */
static int instr_fd(cowmem__rd_t* r, size_t at, uint32_t sub) {
  size_t off;
  if (sub <= 11 || sub == 92 || sub == 93) return skip_memarg(r);
  if (sub == 12 || sub == 13) return cowmem__rd_bytes(r, 16, &off);
  if (sub >= 21 && sub <= 34) return cowmem__rd_bytes(r, 1, &off); /* lane */
  if (sub >= 84 && sub <= 91) {
    TRY(skip_memarg(r));
    return cowmem__rd_bytes(r, 1, &off);
  }
  if (sub <= 0x113) return 0;
  return unknown(r, at, PREFIXED(0xfd, sub));
}

/* 0xFE: threads (atomics). */
static int instr_fe(cowmem__rd_t* r, size_t at, uint32_t sub) {
  size_t off;
  if (sub <= 2 || (sub >= 0x10 && sub <= 0x4e)) return skip_memarg(r);
  if (sub == 3) return cowmem__rd_bytes(r, 1, &off); /* atomic.fence 0x00 */
  return unknown(r, at, PREFIXED(0xfe, sub));
}

static int instr_prefixed(cowmem__rd_t* r, size_t at, uint8_t prefix,
                          uint32_t* op) {
  uint32_t sub;
  if (prefix == 0xfb)
    return cowmem__rd_fail(r, COWMEM_EUNSUPPORTED, at,
                           "GC instructions (0xfb) are not supported");
  TRY(cowmem__rd_u32(r, &sub));
  *op = PREFIXED(prefix, sub);
  if (prefix == 0xfc) return instr_fc(r, at, sub);
  if (prefix == 0xfd) return instr_fd(r, at, sub);
  return instr_fe(r, at, sub);
}

/* try_table's catch clauses: kind, then a tag (kinds 0, 1) and a label. */
static int skip_catches(cowmem__rd_t* r) {
  uint32_t n;
  TRY(cowmem__rd_count(r, 2, &n));
  for (uint32_t i = 0; i < n; i++) {
    size_t at = r->pos;
    uint8_t kind;
    TRY(cowmem__rd_u8(r, &kind));
    if (kind > 3)
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, at, "malformed catch kind");
    TRY(skip_u32s(r, kind < 2 ? 2 : 1));
  }
  return 0;
}

/* Decode one instruction at r->pos: *op is its opcode (a prefixed one as
 * PREFIXED(prefix, sub)). */
static int instr(cowmem__rd_t* r, uint32_t* op) {
  size_t at = r->pos, off;
  uint8_t b, t;
  uint32_t n;
  int64_t v;
  TRY(cowmem__rd_u8(r, &b));
  *op = b;
  if (b >= 0x45 && b <= 0xc4) return 0; /* numeric, no immediates */
  if (b >= 0x28 && b <= 0x3e) return skip_memarg(r);
  if (b >= 0x20 && b <= 0x26) return skip_u32s(r, 1); /* locals, globals,
                                                         table.get/set */
  switch (b) {
    case 0x00: case 0x01: case 0x05: case 0x0a: case 0x0b: case 0x0f:
    case 0x19: case 0x1a: case 0x1b: case 0xd1: case 0xd3: case 0xd4:
      return 0;
    case 0x02: case 0x03: case 0x04: case 0x06: /* block loop if try */
      return skip_blocktype(r);
    case 0x1f: /* try_table */
      TRY(skip_blocktype(r));
      return skip_catches(r);
    case 0x07: case 0x08: case 0x09: case 0x0c: case 0x0d: case 0x10:
    case 0x12: case 0x14: case 0x15: case 0x18: case 0x3f: case 0x40:
    case 0xd2: case 0xd5: case 0xd6:
      return skip_u32s(r, 1);
    case 0x11: case 0x13: /* call_indirect, return_call_indirect */
      return skip_u32s(r, 2);
    case 0x0e: /* br_table */
      TRY(cowmem__rd_count(r, 1, &n));
      return skip_u32s(r, n + 1);
    case 0x1c: /* select t* */
      TRY(cowmem__rd_count(r, 1, &n));
      for (uint32_t i = 0; i < n; i++) TRY(skip_valtype(r, &t));
      return 0;
    case 0x41: case 0x42: case 0xd0: /* i32/i64.const, ref.null ht */
      return cowmem__rd_s64(r, &v);
    case 0x43:
      return cowmem__rd_bytes(r, 4, &off);
    case 0x44:
      return cowmem__rd_bytes(r, 8, &off);
    case 0xfb: case 0xfc: case 0xfd: case 0xfe:
      return instr_prefixed(r, at, b, op);
    default:
      return unknown(r, at, b);
  }
}

/* The instructions a snapshot cannot carry. */
static const char* refused(uint32_t op) {
  switch (op) {
    case 0x26: return "table.set";
    case PREFIXED(0xfc, 9): return "data.drop";
    case PREFIXED(0xfc, 12): return "table.init";
    case PREFIXED(0xfc, 13): return "elem.drop";
    case PREFIXED(0xfc, 14): return "table.copy";
    case PREFIXED(0xfc, 15): return "table.grow";
    case PREFIXED(0xfc, 17): return "table.fill";
    default: return NULL;
  }
}

/* A constant expression, up to its end (they hold no blocks). */
static int skip_expr(cowmem__rd_t* r) {
  uint32_t op;
  do TRY(instr(r, &op));
  while (op != 0x0b);
  return 0;
}

static int import_entry(cowmem__rd_t* r, cowmem__preinit_entry_t* e) {
  size_t off;
  uint32_t len, x;
  uint8_t flags, mut;
  e->start = r->pos;
  TRY(cowmem__rd_name(r, &off, &len));
  TRY(cowmem__rd_name(r, &off, &len));
  e->desc = r->pos;
  TRY(cowmem__rd_u8(r, &e->kind));
  switch (e->kind) {
    case COWMEM_EXTERN_FUNC:
      TRY(cowmem__rd_u32(r, &x));
      break;
    case COWMEM_EXTERN_TABLE:
    case COWMEM_EXTERN_MEMORY:
      if (e->kind == COWMEM_EXTERN_TABLE) TRY(skip_valtype(r, &mut));
      TRY(cowmem__rd_u8(r, &flags));
      if (flags & 0x04) { /* 64-bit limits */
        uint64_t w;
        TRY(cowmem__rd_u64(r, &w));
        if (flags & 0x01) TRY(cowmem__rd_u64(r, &w));
      } else {
        TRY(skip_u32s(r, flags & 0x01 ? 2 : 1));
      }
      break;
    case COWMEM_EXTERN_GLOBAL:
      TRY(skip_valtype(r, &mut));
      TRY(cowmem__rd_u8(r, &mut));
      e->is_mutable = mut;
      break;
    case COWMEM_EXTERN_TAG:
      TRY(cowmem__rd_u8(r, &mut));
      TRY(cowmem__rd_u32(r, &x));
      break;
    default:
      return cowmem__rd_fail(r, COWMEM_EMALFORMED, (size_t)e->desc,
                             "malformed import kind");
  }
  e->end = r->pos;
  return 0;
}

static int global_entry(cowmem__rd_t* r, cowmem__preinit_entry_t* e) {
  uint8_t mut;
  e->start = r->pos;
  TRY(skip_valtype(r, &e->kind));
  TRY(cowmem__rd_u8(r, &mut));
  e->is_mutable = mut;
  e->desc = r->pos;
  TRY(skip_expr(r));
  e->end = r->pos;
  return 0;
}

int cowmem__preinit_entries(const cowmem_module_t* m, uint8_t section,
                            cowmem__preinit_entry_t** out, uint32_t* n,
                            cowmem_diag_t* diag) {
  cowmem_section_info_t s;
  cowmem__rd_t r;
  cowmem_diag_t d, inv;
  cowmem__preinit_entry_t* e = NULL;
  uint32_t count = 0;
  int err = 0;
  *out = NULL;
  *n = 0;
  if (!cowmem__preinit_find_section(m, section, &s)) return 0;
  reader_init(&r, m, &s, &d, &inv);
  err = cowmem__rd_count(&r, 2, &count);
  if (err == 0 && !(e = calloc(count ? count : 1, sizeof *e))) err = COWMEM_ENOMEM;
  for (uint32_t i = 0; i < count && err == 0; i++)
    err = section == WASM_SEC_IMPORT ? import_entry(&r, &e[i])
                                        : global_entry(&r, &e[i]);
  if (err != 0) {
    free(e);
    if (err == COWMEM_ENOMEM) return err;
    return cowmem__preinit_fail(diag, err, d.offset, "%s", d.reason);
  }
  *out = e;
  *n = count;
  return 0;
}

/* Imported tables and globals; imported memories unless fresh. */
static int validate_imports(const cowmem_module_t* m, cowmem_diag_t* diag) {
  cowmem__preinit_entry_t* e;
  uint32_t n, mem = 0;
  int err = cowmem__preinit_entries(m, WASM_SEC_IMPORT, &e, &n, diag);
  for (uint32_t i = 0; i < n && err == 0; i++) {
    cowmem_memory_info_t mi;
    const char* what = NULL;
    if (e[i].kind == COWMEM_EXTERN_TABLE)
      what = "an imported table: its contents belong to the importer";
    else if (e[i].kind == COWMEM_EXTERN_GLOBAL)
      what = "an imported global: its value belongs to the importer";
    else if (e[i].kind == COWMEM_EXTERN_MEMORY &&
             cowmem_module_memory_info(m, mem++, &mi) == 0 && !mi.fresh)
      what = "an imported memory that is not fresh per instance";
    if (what)
      err = cowmem__preinit_fail(diag, COWMEM_EUNSUPPORTED, e[i].start,
                                 "import %u: %s", i, what);
  }
  free(e);
  return err;
}

static int validate_globals(const cowmem_module_t* m, cowmem_diag_t* diag) {
  cowmem__preinit_entry_t* e;
  uint32_t n, first = cowmem_module_import_count(m, COWMEM_EXTERN_GLOBAL);
  int err = cowmem__preinit_entries(m, WASM_SEC_GLOBAL, &e, &n, diag);
  for (uint32_t i = 0; i < n && err == 0; i++) {
    uint8_t t = e[i].kind;
    bool ref = t == COWMEM_TYPE_FUNCREF || t == COWMEM_TYPE_EXTERNREF ||
               t == 0x63 || t == 0x64;
    if (e[i].is_mutable && ref)
      err = cowmem__preinit_fail(diag, COWMEM_EUNSUPPORTED, e[i].start,
                                 "global %u: a mutable global of reference "
                                 "type cannot be written as a constant",
                                 first + i);
  }
  free(e);
  return err;
}

/* One function body: locals, then instructions to the body's end. */
static int validate_body(cowmem__rd_t* r, uint32_t func, cowmem_diag_t* diag) {
  uint32_t groups, count;
  uint8_t t;
  TRY(cowmem__rd_count(r, 2, &groups));
  for (uint32_t i = 0; i < groups; i++) {
    TRY(cowmem__rd_u32(r, &count));
    TRY(skip_valtype(r, &t));
  }
  while (r->pos < r->end) {
    size_t at = r->pos;
    uint32_t op;
    TRY(instr(r, &op));
    const char* what = refused(op);
    if (what)
      return cowmem__preinit_fail(diag, COWMEM_EUNSUPPORTED, at,
                                  "function %u: %s: a snapshot cannot carry "
                                  "%s", func, what,
                                  op == PREFIXED(0xfc, 9)
                                      ? "a dropped segment"
                                      : op == PREFIXED(0xfc, 13)
                                            ? "a dropped element segment"
                                            : "a table's contents");
  }
  return 0;
}

static int validate_code(const cowmem_module_t* m, cowmem_diag_t* diag) {
  cowmem_section_info_t s;
  cowmem__rd_t r;
  cowmem_diag_t d, inv;
  uint32_t n, size;
  uint32_t first = cowmem_module_import_count(m, COWMEM_EXTERN_FUNC);
  int err;
  if (!cowmem__preinit_find_section(m, WASM_SEC_CODE, &s)) return 0;
  reader_init(&r, m, &s, &d, &inv);
  err = cowmem__rd_count(&r, 1, &n);
  for (uint32_t i = 0; i < n && err == 0; i++) {
    size_t section_end = r.end;
    err = cowmem__rd_u32(&r, &size);
    if (err == 0 && size > r.end - r.pos)
      err = cowmem__rd_eof(&r);
    if (err != 0) break;
    r.end = r.pos + size;
    err = validate_body(&r, first + i, diag);
    if (err != 0 && diag && diag->code == err) return err; /* a refusal */
    r.pos = r.end;
    r.end = section_end;
  }
  if (err != 0)
    return cowmem__preinit_fail(diag, err, d.offset, "%s", d.reason);
  return 0;
}

int cowmem_preinit_validate(const cowmem_module_t* m, cowmem_diag_t* diag) {
  cowmem_diag_t local;
  if (!diag) diag = &local; /* a refusal is told apart by its diag code */
  memset(diag, 0, sizeof *diag);
  if (!m) return cowmem__preinit_fail(diag, COWMEM_EINVAL, 0, "module is NULL");
  TRY(validate_imports(m, diag));
  TRY(validate_globals(m, diag));
  return validate_code(m, diag);
}
