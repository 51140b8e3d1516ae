/* Strip: rewrite a module so that the data segments its images hold are
 * gone. See cowmem_module_strip in cowmem.h.
 *
 * Two ways, by what the code allows (rewrite.h): when no body names a data
 * index, the covered segments are removed and the others renumbered, so
 * that a runtime walks only the segments it applies. Otherwise each covered
 * segment becomes an empty passive one: segment indices are what
 * memory.init and data.drop name, so the count must stay. An active
 * segment is dropped once instantiation applied it; an empty passive one
 * behaves the same for both instructions (memory.init of 0 bytes at
 * offset 0 succeeds, anything longer traps; data.drop is a no-op), so code
 * that refers to a stripped segment keeps its meaning.
 *
 * Everything but the data section, the data count section when removing,
 * and the name section's data segment names is copied byte for byte from
 * the module's own bytes. No data count section is ever inserted: only
 * memory.init and data.drop need one, and a module whose bodies use them
 * already has it (it would not validate otherwise); passive segments do
 * not. Inserting one would also shift the section indices a relocatable
 * object's reloc.* sections name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem.h"
#include "wasm/reader.h"
#include "wasm/rewrite.h"

/* Only the public accessors are used here: the module's internal layout is
 * the parser's business and may change under us. */

typedef struct {
  const cowmem_module_t* m;
  const uint8_t* bytes;
  uint32_t* map; /* new segment indices, NULL when indices stay */
  uint32_t nseg, kept, stripped;
} strip_t;

static bool covered(const cowmem_segment_info_t* s) {
  return s->covered_by_image;
}

/* The data section's payload: covered segments removed (with a map) or
 * as flags 1 and length 0, every other segment's bytes as they were. */
static int data_payload(strip_t* st, cowmem__pbuf_t* b) {
  cowmem__pbuf_uleb(b, st->map ? st->kept : st->nseg);
  for (uint32_t i = 0; i < st->nseg; i++) {
    static const uint8_t empty_passive[2] = {0x01, 0x00};
    cowmem_segment_info_t s;
    TRY(cowmem_module_segment_info(st->m, i, &s));
    if (!s.covered_by_image)
      cowmem__pbuf_add(b, st->bytes + s.segment_offset,
                       (size_t)(s.segment_end - s.segment_offset));
    else if (!st->map)
      cowmem__pbuf_add(b, empty_passive, sizeof empty_passive);
    st->stripped += s.covered_by_image;
  }
  return 0;
}

/* Section s into *o: rewritten, or copied. */
static int section(strip_t* st, const cowmem_section_info_t* s, cowmem__pbuf_t* o) {
  cowmem__pbuf_t payload = {0};
  int err = 0;
  if (s->id == WASM_SEC_DATA) {
    err = data_payload(st, &payload);
    cowmem__pbuf_section(o, WASM_SEC_DATA, &payload);
  } else if (s->id == WASM_SEC_DATACOUNT && st->map) {
    cowmem__pbuf_uleb(&payload, st->kept);
    cowmem__pbuf_section(o, WASM_SEC_DATACOUNT, &payload);
  } else if (st->map && cowmem__custom_named(st->m, s, "name")) {
    cowmem__data_names(st->m, s, st->map, st->nseg, o);
  } else {
    cowmem__pbuf_add(o, st->bytes + s->offset,
                     (size_t)(s->payload_offset + s->payload_len - s->offset));
  }
  free(payload.p);
  return err;
}

/* Section for section: no section is added or removed, so the indices a
 * relocatable object's reloc.* sections name their target section by
 * still name the same sections. */
static int strip(strip_t* st, cowmem__pbuf_t* o) {
  uint32_t nsec = cowmem_module_section_count(st->m);
  cowmem__pbuf_add(o, st->bytes, 8); /* magic and version */
  for (uint32_t i = 0; i < nsec; i++) {
    cowmem_section_info_t s;
    TRY(cowmem_module_section_info(st->m, i, &s));
    TRY(section(st, &s, o));
  }
  return 0;
}

int cowmem_module_strip(const cowmem_module_t* m, uint8_t** out, size_t* out_len,
                        uint32_t* nstripped) {
  if (!m || !out || !out_len) return COWMEM_EINVAL;
  size_t len = 0;
  strip_t st = {.m = m, .bytes = cowmem_module_bytes(m, &len)};
  cowmem__pbuf_t o = {0};
  uint32_t ncovered = 0;
  int err = 0;
  st.nseg = cowmem_module_segment_count(m);
  for (uint32_t i = 0; i < st.nseg && err == 0; i++) {
    cowmem_segment_info_t s;
    err = cowmem_module_segment_info(m, i, &s);
    ncovered += err == 0 && s.covered_by_image;
  }
  if (err == 0 && ncovered > 0 && cowmem__data_removable(m))
    err = cowmem__data_renumber(m, covered, &st.map, &st.kept);
  if (err == 0 && ncovered > 0)
    err = strip(&st, &o);
  else if (err == 0) /* nothing to strip: the module as it is */
    cowmem__pbuf_add(&o, st.bytes, len);
  free(st.map);
  if (err == 0) err = cowmem__pbuf_done(&o);
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
  if (nstripped) *nstripped = st.stripped;
  return 0;
}

int cowmem_module_strip_summary(const cowmem_module_t* m, const uint8_t* out,
                                size_t out_len, uint32_t nstripped, const char* name,
                                char* buf, size_t cap) {
  if (!m || !out || !name || !buf || cap == 0) return COWMEM_EINVAL;
  buf[0] = 0;
  cowmem_module_t* s = NULL;
  int r = cowmem_module_parse(out, out_len, COWMEM_MODULE_BORROW | COWMEM_MODULE_NO_IMAGES,
                              &s, NULL);
  if (r != 0) return r;
  size_t in_len = 0;
  cowmem_module_bytes(m, &in_len);
  snprintf(buf, cap, "%s: %u of %u data segments stripped (%u left), %zu -> %zu bytes",
           name, nstripped, cowmem_module_segment_count(m), cowmem_module_segment_count(s),
           in_len, out_len);
  cowmem_module_free(s);
  return 0;
}
