/* Pre-initialization: what a snapshot cannot carry
 * (cowmem_preinit_validate), and the walks of the import and global
 * sections that the rewriter shares. Function bodies are decoded by
 * code.c, not otherwise validated (types, block nesting): a runtime that
 * instantiates the module does that. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm/code.h"
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

/* The instructions a snapshot cannot carry. */
static const char* refused(uint32_t op) {
  switch (op) {
    case 0x26: return "table.set";
    case COWMEM__OP_DATA_DROP: return "data.drop";
    case COWMEM__OP(0xfc, 12): return "table.init";
    case COWMEM__OP(0xfc, 13): return "elem.drop";
    case COWMEM__OP(0xfc, 14): return "table.copy";
    case COWMEM__OP(0xfc, 15): return "table.grow";
    case COWMEM__OP(0xfc, 17): return "table.fill";
    default: return NULL;
  }
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
      if (e->kind == COWMEM_EXTERN_TABLE) TRY(cowmem__code_valtype(r, &mut));
      TRY(cowmem__rd_u8(r, &flags));
      if (flags & 0x04) { /* 64-bit limits */
        uint64_t w;
        TRY(cowmem__rd_u64(r, &w));
        if (flags & 0x01) TRY(cowmem__rd_u64(r, &w));
      } else {
        TRY(cowmem__rd_u32(r, &x));
        if (flags & 0x01) TRY(cowmem__rd_u32(r, &x));
      }
      break;
    case COWMEM_EXTERN_GLOBAL:
      TRY(cowmem__code_valtype(r, &mut));
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
  TRY(cowmem__code_valtype(r, &e->kind));
  TRY(cowmem__rd_u8(r, &mut));
  e->is_mutable = mut;
  e->desc = r->pos;
  TRY(cowmem__code_expr(r));
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
  if (!cowmem__code_find_section(m, section, &s)) return 0;
  cowmem__code_section(&r, m, &s, &d, &inv);
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

/* A body instruction a snapshot cannot carry. */
static int refuse(void* ctx, uint32_t func, uint32_t op, size_t at) {
  const char* what = refused(op);
  if (!what) return 0;
  return cowmem__preinit_fail(ctx, COWMEM_EUNSUPPORTED, at,
                              "function %u: %s: a snapshot cannot carry %s",
                              func, what,
                              op == COWMEM__OP_DATA_DROP ? "a dropped segment"
                              : op == COWMEM__OP(0xfc, 13)
                                  ? "a dropped element segment"
                                  : "a table's contents");
}

int cowmem_preinit_validate(const cowmem_module_t* m, cowmem_diag_t* diag) {
  cowmem_diag_t local;
  if (!diag) diag = &local; /* a refusal is told apart by its diag code */
  memset(diag, 0, sizeof *diag);
  if (!m) return cowmem__preinit_fail(diag, COWMEM_EINVAL, 0, "module is NULL");
  TRY(validate_imports(m, diag));
  TRY(validate_globals(m, diag));
  return cowmem__code_walk(m, refuse, diag, diag);
}
