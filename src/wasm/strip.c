/* Strip: rewrite a module so that the data segments its images hold become
 * empty passive segments. See cowmem_module_strip in cowmem.h.
 *
 * Why empty passive segments rather than deleting them: segment indices are
 * what memory.init and data.drop name, so the count must stay. An active
 * segment is dropped once instantiation applied it; an empty passive one
 * behaves the same for both instructions (memory.init of 0 bytes at
 * offset 0 succeeds, anything longer traps; data.drop is a no-op), so code
 * that refers to a stripped segment keeps its meaning.
 *
 * Everything but the data section is copied byte for byte from the
 * module's own bytes; a data count section is inserted when the module had
 * none, in the only place the spec's section order allows: before the code
 * section (or before the data section when there is no code). */
#include <stdlib.h>
#include <string.h>

#include "cowmem.h"
#include "wasm/reader.h"

/* Only the public accessors are used here: the module's internal layout is
 * the parser's business and may change under us. */

typedef struct {
  uint8_t* p;
  size_t len, cap;
  bool failed;
} sbuf_t;

static void put(sbuf_t* b, const void* src, size_t n) {
  if (b->failed || n == 0) return;
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n) {
      if (cap > SIZE_MAX / 2) {
        b->failed = true;
        return;
      }
      cap *= 2;
    }
    uint8_t* p = realloc(b->p, cap);
    if (!p) {
      b->failed = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put_u8(sbuf_t* b, uint8_t v) {
  put(b, &v, 1);
}

static void put_leb(sbuf_t* b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    tmp[n++] = byte | (v ? 0x80 : 0);
  } while (v);
  put(b, tmp, n);
}

/* The data section's payload: the same count, covered segments as flags 1
 * and length 0, every other segment's bytes as they were. */
static int data_payload(const cowmem_module_t* m, const uint8_t* bytes, sbuf_t* b,
                        uint32_t* stripped) {
  uint32_t n = cowmem_module_segment_count(m);
  put_leb(b, n);
  for (uint32_t i = 0; i < n; i++) {
    cowmem_segment_info_t s;
    int err = cowmem_module_segment_info(m, i, &s);
    if (err != 0) return err;
    if (s.covered_by_image) {
      static const uint8_t empty_passive[2] = {0x01, 0x00};
      put(b, empty_passive, sizeof empty_passive);
      ++*stripped;
    } else {
      put(b, bytes + s.segment_offset, (size_t)(s.segment_end - s.segment_offset));
    }
  }
  return 0;
}

int cowmem_module_strip(const cowmem_module_t* m, uint8_t** out, size_t* out_len,
                        uint32_t* nstripped) {
  if (!m || !out || !out_len) return COWMEM_EINVAL;
  size_t len = 0;
  const uint8_t* bytes = cowmem_module_bytes(m, &len);
  uint32_t nseg = cowmem_module_segment_count(m), covered = 0;
  uint32_t nsec = cowmem_module_section_count(m);
  bool has_datacount = false;
  int err = 0;
  for (uint32_t i = 0; i < nseg && err == 0; i++) {
    cowmem_segment_info_t s;
    err = cowmem_module_segment_info(m, i, &s);
    covered += err == 0 && s.covered_by_image;
  }
  for (uint32_t i = 0; i < nsec && err == 0; i++) {
    cowmem_section_info_t s;
    err = cowmem_module_section_info(m, i, &s);
    has_datacount |= err == 0 && s.id == WASM_SEC_DATACOUNT;
  }
  if (err != 0) return err;

  sbuf_t o = {0}, payload = {0};
  uint32_t stripped = 0;
  bool need_datacount = covered > 0 && !has_datacount;
  size_t copied = 0; /* bytes of the input written so far */
  for (uint32_t i = 0; i < nsec && err == 0; i++) {
    cowmem_section_info_t s;
    err = cowmem_module_section_info(m, i, &s);
    if (err != 0) break;
    if (need_datacount && (s.id == WASM_SEC_CODE || s.id == WASM_SEC_DATA)) {
      sbuf_t dc = {0};
      put(&o, bytes + copied, (size_t)(s.offset - copied));
      copied = (size_t)s.offset;
      put_leb(&dc, nseg);
      put_u8(&o, WASM_SEC_DATACOUNT);
      put_leb(&o, dc.len);
      put(&o, dc.p, dc.len);
      o.failed |= dc.failed;
      free(dc.p);
      need_datacount = false;
    }
    if (s.id != WASM_SEC_DATA || covered == 0) continue;
    put(&o, bytes + copied, (size_t)(s.offset - copied));
    err = data_payload(m, bytes, &payload, &stripped);
    put_u8(&o, WASM_SEC_DATA);
    put_leb(&o, payload.len);
    put(&o, payload.p, payload.len);
    o.failed |= payload.failed;
    copied = (size_t)(s.payload_offset + s.payload_len);
  }
  put(&o, bytes + copied, len - copied);
  free(payload.p);
  if (err == 0 && o.failed) err = COWMEM_ENOMEM;
  if (err == 0 && !o.p) { /* an empty input cannot parse; keep *out valid */
    o.p = malloc(1);
    if (!o.p) err = COWMEM_ENOMEM;
  }
  if (err != 0) {
    free(o.p);
    return err;
  }
  *out = o.p;
  *out_len = o.len;
  if (nstripped) *nstripped = stripped;
  return 0;
}
