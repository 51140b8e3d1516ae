/* Pre-initialization: the output buffer, the instrumented module and the
 * rewritten one. See cowmem_preinit_* in cowmem.h.
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

void cowmem__pbuf_add(cowmem__pbuf_t* b, const void* src, size_t n) {
  if (b->failed || n == 0) return;
  if (n > b->cap - b->len) {
    size_t want = b->len + n, cap = b->cap < 256 ? 256 : b->cap;
    while (cap < want) cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    uint8_t* p = want < b->len ? NULL : realloc(b->p, cap);
    if (!p) {
      b->failed = true;
      return;
    }
    b->p = p, b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

void cowmem__pbuf_byte(cowmem__pbuf_t* b, uint8_t v) {
  cowmem__pbuf_add(b, &v, 1);
}

void cowmem__pbuf_uleb(cowmem__pbuf_t* b, uint64_t v) {
  uint8_t enc[10];
  size_t n = 0;
  for (;;) {
    enc[n] = v & 0x7f;
    v >>= 7;
    if (v == 0) break;
    enc[n++] |= 0x80;
  }
  cowmem__pbuf_add(b, enc, n + 1);
}

void cowmem__pbuf_sleb(cowmem__pbuf_t* b, int64_t v) {
  uint8_t enc[10];
  size_t n = 0;
  for (;;) {
    uint8_t low = v & 0x7f;
    v >>= 7; /* arithmetic: what every compiler cowmem builds with does */
    bool done = (v == 0 && !(low & 0x40)) || (v == -1 && (low & 0x40));
    enc[n++] = done ? low : (uint8_t)(low | 0x80);
    if (done) break;
  }
  cowmem__pbuf_add(b, enc, n);
}

void cowmem__pbuf_section(cowmem__pbuf_t* b, uint8_t id,
                          const cowmem__pbuf_t* payload) {
  cowmem__pbuf_byte(b, id);
  cowmem__pbuf_uleb(b, payload->len);
  cowmem__pbuf_add(b, payload->p, payload->len);
  b->failed |= payload->failed;
}

int cowmem__pbuf_done(cowmem__pbuf_t* b) {
  if (!b->failed) return 0;
  free(b->p);
  memset(b, 0, sizeof *b);
  return COWMEM_ENOMEM;
}

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
