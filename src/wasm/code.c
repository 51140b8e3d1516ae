/* The instruction decoder. See code.h.
 *
 * The parser does not walk function bodies, so this file decodes every
 * instruction with its immediates. Finding table.set by looking for byte
 * 0x25 would also hit a local index 0x25 or a LEB byte of a constant: only
 * a decoder that knows each opcode's immediates finds the instruction and
 * nothing else. An opcode it does not know stops it (EUNSUPPORTED) rather
 * than guessing its length. */
#include <string.h>

#include "wasm/code.h"

int cowmem__code_valtype(cowmem__rd_t* r, uint8_t* out) {
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
    return cowmem__code_valtype(r, &t);
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
  if (sub >= sizeof nimm) return unknown(r, at, COWMEM__OP(0xfc, sub));
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
  return unknown(r, at, COWMEM__OP(0xfd, sub));
}

/* 0xFE: threads (atomics). */
static int instr_fe(cowmem__rd_t* r, size_t at, uint32_t sub) {
  size_t off;
  if (sub <= 2 || (sub >= 0x10 && sub <= 0x4e)) return skip_memarg(r);
  if (sub == 3) return cowmem__rd_bytes(r, 1, &off); /* atomic.fence 0x00 */
  return unknown(r, at, COWMEM__OP(0xfe, sub));
}

static int instr_prefixed(cowmem__rd_t* r, size_t at, uint8_t prefix,
                          uint32_t* op) {
  uint32_t sub;
  if (prefix == 0xfb)
    return cowmem__rd_fail(r, COWMEM_EUNSUPPORTED, at,
                           "GC instructions (0xfb) are not supported");
  TRY(cowmem__rd_u32(r, &sub));
  *op = COWMEM__OP(prefix, sub);
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
 * COWMEM__OP(prefix, sub)). */
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
      for (uint32_t i = 0; i < n; i++) TRY(cowmem__code_valtype(r, &t));
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

/* Constant expressions hold no blocks: the first end is theirs. */
int cowmem__code_expr(cowmem__rd_t* r) {
  uint32_t op;
  do TRY(instr(r, &op));
  while (op != 0x0b);
  return 0;
}

/* One function body: its locals, then instructions to the body's end. */
static int walk_body(cowmem__rd_t* r, uint32_t func, cowmem__code_visit_t visit,
                     void* ctx, bool* visited) {
  uint32_t groups, count;
  uint8_t t;
  TRY(cowmem__rd_count(r, 2, &groups));
  for (uint32_t i = 0; i < groups; i++) {
    TRY(cowmem__rd_u32(r, &count));
    TRY(cowmem__code_valtype(r, &t));
  }
  while (r->pos < r->end) {
    size_t at = r->pos;
    uint32_t op;
    TRY(instr(r, &op));
    int v = visit(ctx, func, op, at);
    if (v != 0) return *visited = true, v;
  }
  return 0;
}

int cowmem__code_walk(const cowmem_module_t* m, cowmem__code_visit_t visit, void* ctx,
                      cowmem_diag_t* diag) {
  cowmem_section_info_t s;
  cowmem__rd_t r;
  cowmem_diag_t d, inv;
  uint32_t n = 0, size;
  uint32_t first = cowmem_module_import_count(m, COWMEM_EXTERN_FUNC);
  bool visited = false;
  int err;
  if (!cowmem__code_find_section(m, WASM_SEC_CODE, &s)) return 0;
  cowmem__code_section(&r, m, &s, &d, &inv);
  err = cowmem__rd_count(&r, 1, &n);
  for (uint32_t i = 0; i < n && err == 0; i++) {
    size_t section_end = r.end;
    err = cowmem__rd_u32(&r, &size);
    if (err == 0 && size > r.end - r.pos) err = cowmem__rd_eof(&r);
    if (err != 0) break;
    r.end = r.pos + size;
    err = walk_body(&r, first + i, visit, ctx, &visited);
    r.pos = r.end;
    r.end = section_end;
  }
  if (err != 0 && !visited && diag) *diag = d;
  return err;
}

static int names_data(void* ctx, uint32_t func, uint32_t op, size_t at) {
  (void)ctx, (void)func, (void)at;
  return op == COWMEM__OP_MEMORY_INIT || op == COWMEM__OP_DATA_DROP;
}

int cowmem__code_uses_data(const cowmem_module_t* m, bool* uses) {
  int r = cowmem__code_walk(m, names_data, NULL, NULL);
  if (r < 0) return r;
  *uses = r == 1;
  return 0;
}

bool cowmem__code_find_section(const cowmem_module_t* m, uint32_t id,
                               cowmem_section_info_t* out) {
  uint32_t n = cowmem_module_section_count(m);
  for (uint32_t i = 0; i < n; i++)
    if (cowmem_module_section_info(m, i, out) == 0 && out->id == id) return true;
  return false;
}

void cowmem__code_section(cowmem__rd_t* r, const cowmem_module_t* m,
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
