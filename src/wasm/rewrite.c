/* What the passes that rewrite a module share. See rewrite.h.
 *
 * Why data segments may be removed at all: a runtime instantiating a
 * module walks every segment, empty or not (CPython's module has
 * thousands), and only memory.init and data.drop name a segment by index
 * in a module that is not relocatable. Without them in any body, the
 * segments left can be renumbered freely; what else names them (the name
 * section's data segment names) is renumbered here too. */
#include <stdlib.h>
#include <string.h>

#include "wasm/code.h"
#include "wasm/reader.h"
#include "wasm/rewrite.h"

void cowmem__pbuf_add(cowmem__pbuf_t* b, const void* src, size_t n) {
  if (b->failed || n == 0) return;
  if (n > b->cap - b->len) {
    size_t want = b->len + n, cap = b->cap < 256 ? 256 : b->cap;
    while (cap < want)
      cap = cap > SIZE_MAX / 2 ? want : cap * 2;
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

void cowmem__pbuf_section(cowmem__pbuf_t* b, uint8_t id, const cowmem__pbuf_t* payload) {
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

bool cowmem__custom_named(const cowmem_module_t* m, const cowmem_section_info_t* s,
                          const char* name) {
  cowmem__rd_t r;
  cowmem_diag_t d, inv;
  size_t off;
  uint32_t len;
  if (s->id != WASM_SEC_CUSTOM) return false;
  cowmem__code_section(&r, m, s, &d, &inv);
  return cowmem__rd_name(&r, &off, &len) == 0 && len == strlen(name) &&
         memcmp(r.base + off, name, len) == 0;
}

bool cowmem__data_removable(const cowmem_module_t* m) {
  uint32_t n = cowmem_module_section_count(m);
  bool uses = true, datacount = false;
  for (uint32_t i = 0; i < n; i++) {
    cowmem_section_info_t s;
    if (cowmem_module_section_info(m, i, &s) != 0 ||
        cowmem__custom_named(m, &s, "linking"))
      return false;
    datacount |= s.id == WASM_SEC_DATACOUNT;
  }
  /* memory.init and data.drop are valid only with a data count section:
   * without one there is nothing to look for. Decoding the bodies is the
   * cost (CPython's 6 MB of code: 200 million instructions, 14 times the
   * rest of strip), and most toolchains write the section only when
   * their code uses those instructions. */
  if (!datacount) return true;
  return cowmem__code_uses_data(m, &uses) == 0 && !uses;
}

int cowmem__data_renumber(const cowmem_module_t* m,
                          bool (*gone)(const cowmem_segment_info_t* s), uint32_t** map,
                          uint32_t* kept) {
  uint32_t n = cowmem_module_segment_count(m), k = 0;
  uint32_t* v = malloc((n ? n : 1) * sizeof *v);
  if (!v) return COWMEM_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    cowmem_segment_info_t s;
    int err = cowmem_module_segment_info(m, i, &s);
    if (err != 0) {
      free(v);
      return err;
    }
    v[i] = gone(&s) ? COWMEM__SEGMENT_GONE : k++;
  }
  *map = v;
  *kept = k;
  return 0;
}

/* A name map (index, name)* renumbered into *b; false if it cannot be
 * read. Indices rise in a valid map, and renumbering keeps their order. */
static bool renumber_map(cowmem__rd_t* r, const uint32_t* map, uint32_t n,
                         cowmem__pbuf_t* b) {
  cowmem__pbuf_t list = {0};
  uint32_t count, kept = 0;
  bool ok = cowmem__rd_count(r, 2, &count) == 0;
  for (uint32_t i = 0; i < count && ok; i++) {
    uint32_t idx, len;
    size_t off;
    ok = cowmem__rd_u32(r, &idx) == 0 && cowmem__rd_name(r, &off, &len) == 0;
    if (!ok || idx >= n || map[idx] == COWMEM__SEGMENT_GONE) continue;
    cowmem__pbuf_uleb(&list, map[idx]);
    cowmem__pbuf_uleb(&list, len);
    cowmem__pbuf_add(&list, r->base + off, len);
    kept++;
  }
  ok = ok && r->pos == r->end;
  if (ok) {
    cowmem__pbuf_uleb(b, kept);
    cowmem__pbuf_add(b, list.p, list.len);
    b->failed |= list.failed;
  }
  free(list.p);
  return ok;
}

void cowmem__data_names(const cowmem_module_t* m, const cowmem_section_info_t* s,
                        const uint32_t* map, uint32_t n, cowmem__pbuf_t* out) {
  enum { DATA_NAMES = 9 };
  cowmem__pbuf_t payload = {0};
  cowmem__rd_t r;
  cowmem_diag_t d, inv;
  size_t off;
  uint32_t len;
  cowmem__code_section(&r, m, s, &d, &inv);
  if (cowmem__rd_name(&r, &off, &len) != 0) return; /* the parser read it */
  cowmem__pbuf_add(&payload, r.base + s->payload_offset,
                   r.pos - (size_t)s->payload_offset);
  while (r.pos < r.end) {
    size_t at = r.pos, end = r.end, next;
    uint8_t id;
    uint32_t size;
    if (cowmem__rd_u8(&r, &id) != 0 || cowmem__rd_u32(&r, &size) != 0 ||
        size > cowmem__rd_left(&r))
      break;
    next = r.pos + size;
    if (id != DATA_NAMES) {
      cowmem__pbuf_add(&payload, r.base + at, next - at);
    } else {
      cowmem__pbuf_t sub = {0};
      r.end = next;
      if (renumber_map(&r, map, n, &sub)) cowmem__pbuf_section(&payload, id, &sub);
      payload.failed |= sub.failed;
      free(sub.p);
    }
    r.pos = next;
    r.end = end;
  }
  cowmem__pbuf_section(out, WASM_SEC_CUSTOM, &payload);
  free(payload.p);
}
