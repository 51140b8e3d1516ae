/* w2c_strip.c: a build-time helper, used by the recipe only until the
 * `cowmem strip` command exists. It writes the module with every active
 * data segment that an image covers turned into an empty passive segment,
 * so that wasm2c's init_memories copies nothing (NOTES.md, "strip"), and
 * with every other byte unchanged. Segment indices stay the same, so
 * memory.init / data.drop in the code keep their meaning; a dropped active
 * segment and an empty passive one behave alike for both.
 *
 * Usage: cowmem_w2c_strip in.wasm out.wasm
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cowmem.h>

typedef struct {
  uint8_t* p;
  size_t len, cap;
} buf_t;

static int put(buf_t* b, const void* src, size_t n) {
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
      cap *= 2;
    uint8_t* p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
  return 0;
}

static int put_leb(buf_t* b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    tmp[n++] = byte | (v ? 0x80 : 0);
  } while (v);
  return put(b, tmp, n);
}

static uint8_t* read_file(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  uint8_t* p = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)n + 1)) &&
        fread(p, 1, (size_t)n, f) != (size_t)n) {
      free(p);
      p = NULL;
    }
    *len = (size_t)n;
  }
  fclose(f);
  return p;
}

/* The data section's new payload: the same count, covered segments empty
 * and passive (flags 1, length 0), the others copied byte for byte. */
static int data_payload(const cowmem_module_t* m, const uint8_t* bytes, buf_t* out,
                        uint32_t* stripped) {
  uint32_t n = cowmem_module_segment_count(m);
  if (put_leb(out, n)) return -1;
  for (uint32_t i = 0; i < n; i++) {
    cowmem_segment_info_t s;
    if (cowmem_module_segment_info(m, i, &s) != 0) return -1;
    if (s.covered_by_image) {
      static const uint8_t empty_passive[2] = {0x01, 0x00};
      if (put(out, empty_passive, 2)) return -1;
      ++*stripped;
    } else if (put(out, bytes + s.segment_offset,
                   (size_t)(s.segment_end - s.segment_offset))) {
      return -1;
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s in.wasm out.wasm\n", argv[0]);
    return 2;
  }
  size_t len = 0;
  uint8_t* bytes = read_file(argv[1], &len);
  if (!bytes) {
    perror(argv[1]);
    return 1;
  }
  cowmem_module_t* m = NULL;
  cowmem_diag_t diag;
  int r = cowmem_module_parse(bytes, len, COWMEM_MODULE_BORROW, &m, &diag);
  if (r != 0) {
    fprintf(stderr, "%s: %s at byte %llu: %s\n", argv[1], cowmem_strerror(r),
            (unsigned long long)diag.offset, diag.reason);
    free(bytes);
    return 1;
  }
  buf_t out = {0}, payload = {0};
  uint32_t stripped = 0;
  int fail = 0;
  uint64_t copied = 0; /* bytes of the input written so far */
  for (uint32_t i = 0; i < cowmem_module_section_count(m) && !fail; i++) {
    cowmem_section_info_t s;
    fail = cowmem_module_section_info(m, i, &s) != 0;
    if (fail || s.id != 11) continue;
    static const uint8_t id = 11;
    fail = put(&out, bytes + copied, (size_t)(s.offset - copied)) ||
           data_payload(m, bytes, &payload, &stripped) || put(&out, &id, 1) ||
           put_leb(&out, payload.len) || put(&out, payload.p, payload.len);
    copied = s.payload_offset + s.payload_len;
  }
  if (!fail) fail = put(&out, bytes + copied, (size_t)(len - copied));
  if (fail) {
    fprintf(stderr, "%s: cannot rewrite the module\n", argv[1]);
  } else {
    FILE* f = fopen(argv[2], "wb");
    int bad = !f || fwrite(out.p, 1, out.len, f) != out.len;
    if ((f && fclose(f) != 0) || bad) {
      perror(argv[2]);
      fail = 1;
    }
  }
  if (!fail)
    printf("%s: %u of %u data segments stripped, %zu -> %zu bytes\n", argv[2], stripped,
           cowmem_module_segment_count(m), len, out.len);
  cowmem_module_free(m);
  free(bytes);
  free(out.p);
  free(payload.p);
  return fail;
}
