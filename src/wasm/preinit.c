/* Pre-initialization: the instrumented module (the rewritten one is
 * preinit_rewrite.c's). See cowmem_preinit_* in cowmem.h.
 *
 * Both outputs are the input's sections in the input's order, each either
 * copied byte for byte or re-encoded whole; no section is moved, so every
 * index space keeps its numbering and custom sections (names, producers,
 * DWARF) stay valid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm/preinit.h"
#include "wasm/reader.h"

/* Would the export section come before a section with this id? */
static bool after_exports(uint32_t id) {
  return id == WASM_SEC_START || id == 9 || id == WASM_SEC_DATACOUNT ||
         id == WASM_SEC_CODE || id == WASM_SEC_DATA;
}

static void put_export(cowmem__pbuf_t* b, const char* name, size_t len,
                       uint8_t kind, uint32_t index) {
  cowmem__pbuf_uleb(b, len);
  cowmem__pbuf_add(b, name, len);
  cowmem__pbuf_byte(b, kind);
  cowmem__pbuf_uleb(b, index);
}

static void put_reserved(cowmem__pbuf_t* b, const char* prefix, uint8_t kind,
                         uint32_t index) {
  char name[64];
  int n = snprintf(name, sizeof name, "%s%u", prefix, index);
  put_export(b, name, (size_t)n, kind, index);
}

/* The instrumented export section's payload. */
static int instrumented_exports(const cowmem_module_t* m, cowmem__pbuf_t* b,
                                cowmem_diag_t* diag) {
  const size_t plen = strlen(COWMEM_PREINIT_EXPORT_PREFIX);
  uint32_t nexp = cowmem_module_export_count(m);
  uint32_t nmem = cowmem_module_memory_count(m);
  uint32_t nglob = cowmem_module_global_count(m), added = 0;
  size_t len;
  const uint8_t* bytes = cowmem_module_bytes(m, &len);
  for (uint32_t i = 0; i < nglob; i++) {
    cowmem_global_info_t g;
    added += cowmem_module_global_info(m, i, &g) == 0 && !g.imported &&
             g.is_mutable;
  }
  cowmem__pbuf_uleb(b, (uint64_t)nexp + nmem + added);
  for (uint32_t i = 0; i < nexp; i++) {
    cowmem_export_info_t e;
    TRY(cowmem_module_export_info(m, i, &e));
    if (e.name_len >= plen && memcmp(e.name, COWMEM_PREINIT_EXPORT_PREFIX, plen) == 0)
      return cowmem__preinit_fail(diag, COWMEM_EUNSUPPORTED,
                                  (uint64_t)((const uint8_t*)e.name - bytes),
                                  "export %u uses the reserved prefix \"%s\"",
                                  i, COWMEM_PREINIT_EXPORT_PREFIX);
    put_export(b, e.name, e.name_len, (uint8_t)e.kind, e.index);
  }
  for (uint32_t i = 0; i < nmem; i++)
    put_reserved(b, COWMEM_PREINIT_MEMORY_EXPORT, COWMEM_EXTERN_MEMORY, i);
  for (uint32_t i = 0; i < nglob; i++) {
    cowmem_global_info_t g;
    if (cowmem_module_global_info(m, i, &g) == 0 && !g.imported && g.is_mutable)
      put_reserved(b, COWMEM_PREINIT_GLOBAL_EXPORT, COWMEM_EXTERN_GLOBAL, i);
  }
  return 0;
}

int cowmem_preinit_instrument(const cowmem_module_t* m, uint8_t** out,
                              size_t* out_len, cowmem_diag_t* diag) {
  cowmem__pbuf_t o = {0}, exports = {0};
  size_t len, copied = 0;
  const uint8_t* bytes;
  uint32_t nsec;
  bool written = false;
  int err;
  if (diag) memset(diag, 0, sizeof *diag);
  if (!m || !out || !out_len)
    return cowmem__preinit_fail(diag, COWMEM_EINVAL, 0, "NULL argument");
  bytes = cowmem_module_bytes(m, &len);
  nsec = cowmem_module_section_count(m);
  err = instrumented_exports(m, &exports, diag);
  for (uint32_t i = 0; i < nsec && err == 0 && !written; i++) {
    cowmem_section_info_t s;
    err = cowmem_module_section_info(m, i, &s);
    if (err != 0 || (s.id != WASM_SEC_EXPORT && !after_exports(s.id)))
      continue;
    cowmem__pbuf_add(&o, bytes + copied, (size_t)(s.offset - copied));
    cowmem__pbuf_section(&o, WASM_SEC_EXPORT, &exports);
    copied = s.id == WASM_SEC_EXPORT ? (size_t)(s.payload_offset + s.payload_len)
                                        : (size_t)s.offset;
    written = true;
  }
  if (err == 0 && !written) {
    cowmem__pbuf_add(&o, bytes + copied, len - copied);
    copied = len;
    cowmem__pbuf_section(&o, WASM_SEC_EXPORT, &exports);
  }
  cowmem__pbuf_add(&o, bytes + copied, len - copied);
  free(exports.p);
  if (err == 0) err = cowmem__pbuf_done(&o);
  if (err != 0) {
    free(o.p);
    if (err == COWMEM_ENOMEM) cowmem__preinit_fail(diag, err, 0, "out of memory");
    return err;
  }
  *out = o.p;
  *out_len = o.len;
  return 0;
}
