/* The WebAssembly front end: reader errors, images, fallback. Modules are
 * built byte by byte with the small emitter below, so each test shows the
 * exact binary it feeds in. */
#include "test.h"

#include "cowmem.h"

typedef struct {
  uint8_t b[1 << 16];
  size_t n;
} buf_t;

static void e8(buf_t* b, uint8_t v) { b->b[b->n++] = v; }
static void eraw(buf_t* b, const void* p, size_t n) {
  memcpy(b->b + b->n, p, n);
  b->n += n;
}
static void eu(buf_t* b, uint64_t v) {
  do {
    uint8_t c = v & 0x7f;
    v >>= 7;
    e8(b, c | (v ? 0x80 : 0));
  } while (v);
}
static void es(buf_t* b, int64_t v) {
  for (;;) {
    uint8_t c = v & 0x7f;
    v >>= 7; /* arithmetic on the compilers we build with */
    bool done = (v == 0 && !(c & 0x40)) || (v == -1 && (c & 0x40));
    e8(b, c | (done ? 0 : 0x80));
    if (done) return;
  }
}
static void header(buf_t* b) {
  b->n = 0;
  eraw(b, "\0asm\1\0\0\0", 8);
}
static void section(buf_t* b, uint8_t id, const buf_t* payload) {
  e8(b, id);
  eu(b, payload->n);
  eraw(b, payload->b, payload->n);
}
/* One memory section with the given memories: (flags, min, max). */
static void memories(buf_t* b, int n, const uint64_t (*m)[3]) {
  static buf_t p;
  p.n = 0;
  eu(&p, (uint64_t)n);
  for (int i = 0; i < n; i++) {
    e8(&p, (uint8_t)m[i][0]);
    eu(&p, m[i][1]);
    if (m[i][0] & 1) eu(&p, m[i][2]);
  }
  section(b, 5, &p);
}
/* An active segment with an i32.const (or i64.const) offset. */
static void seg_const(buf_t* p, uint32_t mem, bool i64, int64_t off,
                      const char* data, size_t len) {
  if (mem == 0) {
    e8(p, 0);
  } else {
    e8(p, 2);
    eu(p, mem);
  }
  e8(p, i64 ? 0x42 : 0x41);
  es(p, off);
  e8(p, 0x0b);
  eu(p, len);
  eraw(p, data, len);
}

static int parse(const buf_t* b, unsigned flags, cowmem_module_t** m,
                 cowmem_diag_t* d) {
  return cowmem_module_parse(b->b, b->n, flags, m, d);
}

/* Parsing must fail with this code and a reason starting with `reason`. */
static int expect_error(const buf_t* b, unsigned flags, int code,
                        const char* reason) {
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  int r = parse(b, flags, &m, &d);
  if (r != code || d.code != code ||
      strncmp(d.reason, reason, strlen(reason)) != 0) {
    fprintf(stderr, "expected %s \"%s\", got %s \"%s\" @%" PRIu64 "\n",
            cowmem_err_name(code), reason, cowmem_err_name(r), d.reason,
            d.offset);
    cowmem_module_free(m);
    return 1;
  }
  return m != NULL;
}

static buf_t B, P;

TEST_IMPL(header_errors) {
  B.n = 0;
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "unexpected end"));
  eraw(&B, "\0as", 3);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "unexpected end"));
  B.n = 0;
  eraw(&B, "\0ASM\1\0\0\0", 8);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "magic header not detected"));
  B.n = 0;
  eraw(&B, "\0asm\2\0\0\0", 8);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "unknown binary version"));
  B.n = 0;
  eraw(&B, "\0asm\1\0\0", 7);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "unexpected end"));
  header(&B);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL));
  ASSERT_EQ(cowmem_module_memory_count(m), 0);
  cowmem_module_free(m);
  ASSERT_ERR(cowmem_module_parse(NULL, 1, 0, &m, NULL), COWMEM_EINVAL);
  return 0;
}

TEST_IMPL(leb_errors) {
  /* memory min as a 6-byte LEB: too long. */
  header(&B);
  eraw(&B, "\x05\x08\x01\x00\x80\x80\x80\x80\x80\x00", 10);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED,
                     "integer representation too long"));
  /* 5-byte u32 with bits above 32. */
  header(&B);
  eraw(&B, "\x05\x07\x01\x00\x80\x80\x80\x80\x10", 9);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "integer too large"));
  /* i32.const with a 5th byte whose unused bits are not the sign. */
  header(&B);
  eraw(&B, "\x05\x03\x01\x00\x01", 5);
  eraw(&B, "\x0b\x0a\x01\x00\x41\xff\xff\xff\xff\x4f\x0b\x00", 12);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "integer too large"));
  /* ... and the same with a proper sign extension parses (offset -1 = 2^32-1
   * is out of bounds, so the memory has no image). */
  header(&B);
  eraw(&B, "\x05\x03\x01\x00\x01", 5);
  eraw(&B, "\x0b\x0a\x01\x00\x41\xff\xff\xff\xff\x7f\x0b\x00", 12);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL));
  cowmem_segment_info_t s;
  ASSERT_OK(cowmem_module_segment_info(m, 0, &s));
  ASSERT_UEQ(s.offset, 0xffffffffu);
  cowmem_diag_t why;
  cowmem_image_t* img;
  img = cowmem_image_retain(cowmem_module_image(m, 0, &why));
  ASSERT_NULL(img);
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_OUT_OF_BOUNDS);
  cowmem_module_free(m);
  /* Truncated inside a LEB. */
  header(&B);
  eraw(&B, "\x05\x03\x01\x00\x80", 5);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED,
                     "unexpected end of section or function"));
  return 0;
}

TEST_IMPL(section_errors) {
  header(&B);
  eraw(&B, "\x0e\x00", 2);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "malformed section id"));
  header(&B);
  eraw(&B, "\x05\x01\x00\x05\x01\x00", 6); /* two memory sections */
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED,
                     "unexpected content after last section"));
  header(&B);
  eraw(&B, "\x06\x01\x00\x05\x01\x00", 6); /* global before memory */
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED,
                     "unexpected content after last section"));
  header(&B);
  eraw(&B, "\x05\x04\x01\x00\x01", 5); /* size 4, content 3 ... */
  eraw(&B, "\x00", 1);                 /* ... plus a stray byte */
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "section size mismatch"));
  header(&B);
  eraw(&B, "\x05\x03\x01\x00", 4); /* section runs past the end */
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED,
                     "unexpected end of section or function"));
  header(&B);
  eraw(&B, "\x00\x03\x02\xc0\x80", 5); /* custom name: overlong UTF-8 */
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "malformed UTF-8 encoding"));
  header(&B);
  eraw(&B, "\x00\x02\x05\x61", 4); /* custom name longer than section */
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "length out of bounds"));
  header(&B); /* function section says 1, no code section */
  eraw(&B, "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00", 10);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED,
                     "function and code section have inconsistent lengths"));
  header(&B); /* data count 2, data section 1 */
  eraw(&B, "\x05\x03\x01\x00\x01\x0c\x01\x02", 8);
  eraw(&B, "\x0b\x03\x01\x01\x00", 5);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED,
                     "data count and data section have inconsistent lengths"));
  header(&B); /* import kind 5 */
  eraw(&B, "\x02\x06\x01\x01\x61\x01\x62\x05", 8);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "malformed import kind"));
  header(&B); /* data segment kind 3 */
  eraw(&B, "\x0b\x03\x01\x03\x00", 5);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "malformed data segment kind"));
  header(&B); /* passive element segment with an opcode nobody defines */
  eraw(&B, "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00", 10);
  eraw(&B, "\x09\x07\x01\x05\x70\x01\xf3\x00\x0b", 9);
  eraw(&B, "\x0a\x04\x01\x02\x00\x0b", 6);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "illegal opcode"));
  B.b[24] = 0xd2; /* ref.func 0: fine */
  cowmem_module_t* ok;
  ASSERT_OK(parse(&B, 0, &ok, NULL));
  cowmem_module_free(ok);
  B.b[25] = 0x01; /* ref.func 1: no such function */
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "unknown function 1"));
  header(&B); /* a tag import before exception handling */
  eraw(&B, "\x02\x08\x01\x01\x61\x01\x62\x04\x00\x00", 10);
  CHECK(expect_error(&B, COWMEM_MODULE_NO_EXCEPTIONS, COWMEM_EMALFORMED,
                     "malformed import kind"));
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "unknown type"));
  return 0;
}

TEST_IMPL(validation_errors) {
  const uint64_t one[][3] = {{0, 1, 0}};
  header(&B); /* data for memory 1 of 1 */
  memories(&B, 1, one);
  P.n = 0;
  eu(&P, 1);
  seg_const(&P, 1, false, 0, "a", 1);
  section(&B, 11, &P);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "unknown memory 1"));
  header(&B); /* data offset global.get 0 without globals */
  memories(&B, 1, one);
  eraw(&B, "\x0b\x07\x01\x00\x23\x00\x0b\x01\x61", 9);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "unknown global 0"));
  header(&B); /* offset (nop) */
  memories(&B, 1, one);
  eraw(&B, "\x0b\x06\x01\x00\x01\x0b\x01\x61", 8);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "constant expression required"));
  header(&B); /* offset i64.const for a 32-bit memory */
  memories(&B, 1, one);
  eraw(&B, "\x0b\x07\x01\x00\x42\x00\x0b\x01\x61", 9);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "type mismatch"));
  header(&B); /* empty offset */
  memories(&B, 1, one);
  eraw(&B, "\x0b\x05\x01\x00\x0b\x01\x61", 7);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "type mismatch"));
  const uint64_t big[][3] = {{0, 65537, 0}};
  header(&B);
  memories(&B, 1, big);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID,
                     "memory size must be at most 65536 pages (4GiB)"));
  const uint64_t minmax[][3] = {{1, 2, 1}};
  header(&B);
  memories(&B, 1, minmax);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID,
                     "size minimum must not be greater than maximum"));
  const uint64_t two[][3] = {{0, 1, 0}, {0, 1, 0}};
  header(&B);
  memories(&B, 2, two);
  CHECK(expect_error(&B, COWMEM_MODULE_NO_MULTI_MEMORY, COWMEM_EINVALID,
                     "multiple memories"));
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL)); /* multi-memory is the default */
  ASSERT_EQ(cowmem_module_memory_count(m), 2);
  cowmem_module_free(m);
  /* A malformed byte after a validation error wins (spec order). */
  header(&B);
  memories(&B, 1, big);
  eraw(&B, "\x0e\x00", 2);
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "malformed section id"));
  /* Mutable imported global as an offset. */
  header(&B);
  eraw(&B, "\x02\x08\x01\x01\x61\x01\x67\x03\x7f\x01", 10);
  memories(&B, 1, one);
  eraw(&B, "\x0b\x07\x01\x00\x23\x00\x0b\x01\x61", 9);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "constant expression required"));
  /* Duplicate export names. */
  header(&B);
  memories(&B, 1, one);
  eraw(&B, "\x07\x09\x02\x01\x6d\x02\x00\x01\x6d\x02\x00", 11);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "duplicate export name"));
  return 0;
}

/* A module with one memory (1 page) and three segments, the third
 * overlapping the first two. */
static void overlap_module(buf_t* b) {
  const uint64_t one[][3] = {{0, 1, 0}};
  header(b);
  memories(b, 1, one);
  P.n = 0; /* export "m" memory 0 */
  eraw(&P, "\x01\x01\x6d\x02\x00", 5);
  section(b, 7, &P);
  P.n = 0;
  eu(&P, 3);
  seg_const(&P, 0, false, 100, "aaaaaaaa", 8);
  seg_const(&P, 0, false, 10, "bbbb", 4);
  seg_const(&P, 0, false, 104, "cc", 2);
  section(b, 11, &P);
}

TEST_IMPL(truncation_every_byte) {
  overlap_module(&B);
  for (size_t n = 0; n < B.n; n++) {
    cowmem_module_t* m = NULL;
    cowmem_diag_t d;
    int r = cowmem_module_parse(B.b, n, 0, &m, &d);
    /* Cutting exactly between sections leaves a valid module. */
    bool boundary = n == 8 || n == 13 || n == 20;
    if (r == 0) {
      ASSERT_TRUE(boundary);
      cowmem_module_free(m);
      continue;
    }
    ASSERT_EQ(r, COWMEM_EMALFORMED);
    ASSERT_NULL(m);
    ASSERT_LE(d.offset, n);
    ASSERT_TRUE(strncmp(d.reason, "unexpected end", 14) == 0);
  }
  return 0;
}

TEST_IMPL(overlapping_segments) {
  overlap_module(&B);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL));
  cowmem_image_t* img;
  cowmem_diag_t why;
  img = cowmem_image_retain(cowmem_module_image(m, 0, &why));
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_NONE);
  ASSERT_NOT_NULL(img);
  uint8_t mem[65536], want[65536];
  memset(want, 0, sizeof want);
  memcpy(want + 100, "aaaaccaa", 8);
  memcpy(want + 10, "bbbb", 4);
  ASSERT_OK(cowmem_image_read(img, 0, mem, sizeof mem));
  ASSERT_TRUE(memcmp(mem, want, sizeof mem) == 0);
  /* The fallback gives the same bytes. */
  memset(mem, 0, sizeof mem);
  ASSERT_OK(cowmem_module_apply(m, 0, &(cowmem_memory_view_t){mem, sizeof mem}, 1, NULL, 0, 0, NULL));
  ASSERT_TRUE(memcmp(mem, want, sizeof mem) == 0);
  /* Byte ranges for tools. */
  cowmem_segment_info_t s;
  ASSERT_OK(cowmem_module_segment_info(m, 2, &s));
  ASSERT_TRUE(s.covered_by_image);
  ASSERT_EQ(s.data_len, 2);
  ASSERT_TRUE(memcmp(B.b + s.data_offset, "cc", 2) == 0);
  ASSERT_EQ(s.segment_end, s.data_offset + 2);
  ASSERT_EQ(B.b[s.segment_offset], 0);
  ASSERT_EQ(cowmem_module_section_count(m), 3);
  cowmem_section_info_t sec;
  ASSERT_OK(cowmem_module_section_info(m, 2, &sec));
  ASSERT_EQ(sec.id, 11);
  ASSERT_EQ(sec.payload_offset + sec.payload_len, s.segment_end);
  cowmem_memory_info_t mi;
  ASSERT_OK(cowmem_module_memory_info(m, 0, &mi));
  ASSERT_EQ(mi.export_count, 1);
  ASSERT_EQ(mi.active_segments, 3);
  cowmem_image_release(img);
  cowmem_module_free(m);
  return 0;
}

/* Three memories: 0 has an image, 1 a segment at an imported global's
 * offset, 2 a segment beyond its size. Then an imported memory 3 ... no:
 * imports come first, so the imported memory is memory 0 here. */
static void decisions_module(buf_t* b) {
  header(b);
  P.n = 0; /* imports: memory "a" "m" (min 1), global "a" "g" i32 */
  eraw(&P, "\x02\x01\x61\x01\x6d\x02\x00\x01", 8);
  eraw(&P, "\x01\x61\x01\x67\x03\x7f\x00", 7);
  buf_t tmp = {{0}, 0};
  eu(&tmp, 2);
  eraw(&tmp, P.b, P.n);
  section(b, 2, &tmp);
  const uint64_t mems[][3] = {{0, 1, 0}, {0, 1, 0}, {0, 1, 0}};
  memories(b, 3, mems);
  P.n = 0;
  eu(&P, 5);
  seg_const(&P, 1, false, 5, "xy", 2);        /* mem 1: image */
  e8(&P, 2); eu(&P, 2); eraw(&P, "\x23\x00\x0b\x01\x67", 5); /* mem 2: global */
  seg_const(&P, 3, false, 65535, "zz", 2);    /* mem 3: out of bounds */
  seg_const(&P, 0, false, 7, "i", 1);         /* mem 0: imported */
  seg_const(&P, 1, false, 9, "w", 1);         /* mem 1 again */
  section(b, 11, &P);
}

TEST_IMPL(per_memory_decisions) {
  decisions_module(&B);
  cowmem_module_t* m;
  cowmem_diag_t d;
  ASSERT_OK(parse(&B, 0, &m, &d));
  ASSERT_EQ(cowmem_module_memory_count(m), 4);
  const cowmem_noimage_t want[] = {COWMEM_NOIMAGE_IMPORTED, COWMEM_NOIMAGE_NONE,
                                   COWMEM_NOIMAGE_GLOBAL_OFFSET,
                                   COWMEM_NOIMAGE_OUT_OF_BOUNDS};
  for (uint32_t k = 0; k < 4; k++) {
    cowmem_image_t* img;
    cowmem_diag_t why;
    img = cowmem_image_retain(cowmem_module_image(m, k, &why));
    ASSERT_EQ(why.noimage, want[k]);
    ASSERT_EQ(img != NULL, k == 1);
    ASSERT_EQ(why.reason[0] != 0, k != 1);
    cowmem_image_release(img);
  }
  cowmem_memory_info_t mi;
  ASSERT_OK(cowmem_module_memory_info(m, 0, &mi));
  ASSERT_TRUE(mi.imported);
  ASSERT_EQ(mi.import_name_len, 1);
  ASSERT_EQ(mi.import_name[0], 'm');
  cowmem_segment_info_t s;
  ASSERT_OK(cowmem_module_segment_info(m, 1, &s));
  ASSERT_EQ(s.offset_kind, COWMEM_OFFSET_GLOBAL);
  ASSERT_EQ(s.offset, 0);
  ASSERT_FALSE(s.covered_by_image);
  ASSERT_OK(cowmem_module_segment_info(m, 4, &s));
  ASSERT_TRUE(s.covered_by_image);

  /* Instantiation: memory 3's segment traps. */
  cowmem_memory_desc_t md = {1, 0, false, false, false};
  cowmem_global_value_t g = {COWMEM_TYPE_I32, false, 100};
  ASSERT_ERR(cowmem_module_instantiate_check(m, &md, 1, &g, 1, &d), COWMEM_EOOB);
  ASSERT_STR_EQ(d.reason, "out of bounds memory access");
  ASSERT_OK(cowmem_module_segment_info(m, 2, &s));
  ASSERT_UEQ(d.offset, s.segment_offset);
  /* Linking: an imported memory smaller than its minimum, a global of
   * another type. */
  cowmem_memory_desc_t small = {0, 0, false, false, false};
  ASSERT_ERR(cowmem_module_instantiate_check(m, &small, 1, &g, 1, &d),
             COWMEM_EUNLINKABLE);
  cowmem_global_value_t g64 = {COWMEM_TYPE_I64, false, 100};
  ASSERT_ERR(cowmem_module_instantiate_check(m, &md, 1, &g64, 1, &d),
             COWMEM_EUNLINKABLE);
  ASSERT_ERR(cowmem_module_instantiate_check(m, &md, 1, NULL, 0, &d),
             COWMEM_EINVAL);

  /* Fallback across memories in module order: segments 0 and 1 are
   * written, segment 2 traps, 3 and 4 are not applied. */
  static uint8_t mem[4][65536];
  memset(mem, 0, sizeof mem);
  cowmem_memory_view_t v[4] = {{mem[0], 65536}, {mem[1], 65536},
                               {mem[2], 65536}, {mem[3], 65536}};
  ASSERT_ERR(cowmem_module_apply(m, 0, v, 4, &g, 1, 0, &d), COWMEM_EOOB);
  ASSERT_TRUE(memcmp(mem[1] + 5, "xy", 2) == 0);
  ASSERT_EQ(mem[1][9], 0);
  ASSERT_EQ(mem[2][100], 'g');
  ASSERT_EQ(mem[0][7], 0);
  ASSERT_EQ(mem[3][65535], 0);
  /* Per memory: memory 1 alone succeeds; skip_covered writes nothing. */
  memset(mem, 0, sizeof mem);
  ASSERT_OK(cowmem_module_apply(m, 1, &(cowmem_memory_view_t){mem[1], 65536}, 1, &g, 1, COWMEM_APPLY_SKIP_COVERED, &d));
  ASSERT_EQ(mem[1][5], 0);
  ASSERT_OK(cowmem_module_apply(m, 1, &(cowmem_memory_view_t){mem[1], 65536}, 1, &g, 1, 0, &d));
  ASSERT_EQ(mem[1][9], 'w');
  ASSERT_OK(cowmem_module_apply(m, 0, &(cowmem_memory_view_t){mem[0], 65536}, 1, &g, 1, 0, &d));
  ASSERT_EQ(mem[0][7], 'i');
  /* The global's value puts memory 2's segment out of bounds. */
  g.bits = 65536;
  ASSERT_ERR(cowmem_module_apply(m, 2, &(cowmem_memory_view_t){mem[2], 65536}, 1, &g, 1, 0, &d), COWMEM_EOOB);
  cowmem_module_free(m);
  return 0;
}

/* COWMEM_MODULE_FRESH_IMPORTS: the imported memory 0 of decisions_module
 * gets an image like a defined one (its segment covered), the other
 * memories decide as before; strip then drops its segment too. */
TEST_IMPL(fresh_imports) {
  decisions_module(&B);
  cowmem_module_t* m;
  cowmem_diag_t d;
  ASSERT_OK(parse(&B, COWMEM_MODULE_FRESH_IMPORTS, &m, &d));
  const cowmem_noimage_t want[] = {COWMEM_NOIMAGE_NONE, COWMEM_NOIMAGE_NONE,
                                   COWMEM_NOIMAGE_GLOBAL_OFFSET,
                                   COWMEM_NOIMAGE_OUT_OF_BOUNDS};
  for (uint32_t k = 0; k < 4; k++) {
    cowmem_diag_t why;
    cowmem_image_t* img = cowmem_module_image(m, k, &why);
    ASSERT_EQ(why.noimage, want[k]);
    ASSERT_EQ(img != NULL, k <= 1);
    cowmem_memory_info_t mi;
    ASSERT_OK(cowmem_module_memory_info(m, k, &mi));
    ASSERT_EQ(mi.fresh, k == 0);
  }
  uint8_t byte = 0;
  ASSERT_OK(cowmem_image_read(cowmem_module_image(m, 0, NULL), 7, &byte, 1));
  ASSERT_EQ(byte, 'i');
  cowmem_segment_info_t s;
  ASSERT_OK(cowmem_module_segment_info(m, 3, &s));
  ASSERT_TRUE(s.covered_by_image);
  ASSERT_OK(cowmem_module_segment_info(m, 1, &s));
  ASSERT_FALSE(s.covered_by_image);
  /* Skipping covered segments writes nothing into the imported memory. */
  static uint8_t mem0[65536];
  memset(mem0, 0, sizeof mem0);
  cowmem_global_value_t g = {COWMEM_TYPE_I32, false, 100};
  ASSERT_OK(cowmem_module_apply(m, 0, &(cowmem_memory_view_t){mem0, 65536}, 1, &g, 1,
                                COWMEM_APPLY_SKIP_COVERED, &d));
  ASSERT_EQ(mem0[7], 0);
  /* Strip: segments 0, 3 and 4 (memories 0 and 1) become empty passive. */
  uint8_t* out = NULL;
  size_t out_len = 0;
  uint32_t nstripped = 0;
  ASSERT_OK(cowmem_module_strip(m, &out, &out_len, &nstripped));
  ASSERT_EQ(nstripped, 3);
  cowmem_module_t* sm;
  ASSERT_OK(cowmem_module_parse(out, out_len, COWMEM_MODULE_FRESH_IMPORTS, &sm, &d));
  cowmem_memory_info_t mi;
  ASSERT_OK(cowmem_module_memory_info(sm, 0, &mi));
  ASSERT_EQ(mi.active_segments, 0);
  ASSERT_NULL(cowmem_module_image(sm, 0, NULL));
  cowmem_module_free(sm);
  free(out);
  cowmem_module_free(m);
  /* Without the flag, unchanged; with NO_IMAGES, not built for it either. */
  ASSERT_OK(parse(&B, 0, &m, &d));
  ASSERT_OK(cowmem_module_memory_info(m, 0, &mi));
  ASSERT_FALSE(mi.fresh);
  cowmem_diag_t why;
  ASSERT_NULL(cowmem_module_image(m, 0, &why));
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_IMPORTED);
  cowmem_module_free(m);
  ASSERT_OK(parse(&B, COWMEM_MODULE_FRESH_IMPORTS | COWMEM_MODULE_NO_IMAGES, &m, &d));
  ASSERT_NULL(cowmem_module_image(m, 0, &why));
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_NOT_BUILT);
  cowmem_module_free(m);
  /* An imported memory whose segment's offset is an imported global: no
   * image even when fresh. Imports: memory "a" "m" (min 1), global "a" "g"
   * i32; one segment at global.get 0. */
  header(&B);
  P.n = 0;
  eu(&P, 2);
  eraw(&P, "\x01\x61\x01\x6d\x02\x00\x01", 7);
  eraw(&P, "\x01\x61\x01\x67\x03\x7f\x00", 7);
  section(&B, 2, &P);
  P.n = 0;
  eu(&P, 1);
  eraw(&P, "\x00\x23\x00\x0b\x01\x67", 6);
  section(&B, 11, &P);
  ASSERT_OK(parse(&B, COWMEM_MODULE_FRESH_IMPORTS, &m, &d));
  ASSERT_NULL(cowmem_module_image(m, 0, &why));
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_GLOBAL_OFFSET);
  ASSERT_OK(cowmem_module_segment_info(m, 0, &s));
  ASSERT_FALSE(s.covered_by_image);
  cowmem_module_free(m);
  return 0;
}

/* 2^48 pages (a memory of 2^64 bytes) with one byte in its last page:
 * a valid module whose image ends at byte 2^64. Rounding that end up to a
 * page overflowed and the parse failed ("invalid argument at byte 0"). The
 * image is built, read back, and survives an image file and back. */
TEST_IMPL(memory64_last_page) {
  static const uint8_t mod[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x09,
                                0x01, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x0b,
                                0x08, 0x01, 0x00, 0x42, 0x80, 0x7e, 0x0b, 0x01, 0x54};
  size_t ps = cowmem_page_size();
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  ASSERT_OK(cowmem_module_parse(mod, sizeof mod, 0, &m, &d));
  cowmem_diag_t why;
  cowmem_image_t* img = cowmem_module_image(m, 0, &why);
  ASSERT_NOT_NULL(img);
  cowmem_image_info_t ii;
  ASSERT_OK(cowmem_image_info(img, &ii));
  ASSERT_UEQ(ii.mem_offset, 0 - (uint64_t)ps);
  ASSERT_UEQ(ii.len, ps);
  ASSERT_UEQ(ii.data_pages, 1);
  uint8_t tail[256];
  ASSERT_OK(cowmem_image_read(img, 0 - (uint64_t)256, tail, sizeof tail));
  ASSERT_EQ(tail[0], 0x54);
  for (size_t i = 1; i < sizeof tail; i++) ASSERT_EQ(tail[i], 0);
  ASSERT_ERR(cowmem_image_read(img, 0 - (uint64_t)256, tail, 257), COWMEM_EINVAL);
  /* No slot is that large: instantiating it is refused, not wrapped. */
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(16 * ps, &s));
  ASSERT_ERR(cowmem_slot_instantiate(s, 16 * ps, img), COWMEM_EINVAL);
  ASSERT_OK(cowmem_slot_free(s));
  /* Through an image file: written, opened, the same byte. */
  char path[] = "/tmp/cowmem-m64-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_OK(cowmem_module_compile(m, fd));
  uint8_t h[32];
  ASSERT_OK(cowmem_module_hash(m, h));
  cowmem_imgfile_t* f = NULL;
  ASSERT_OK(cowmem_imgfile_open(fd, h, 0, &f, &d));
  cowmem_image_t* fi = cowmem_imgfile_image(f, 0, NULL);
  ASSERT_NOT_NULL(fi);
  memset(tail, 0xff, sizeof tail);
  ASSERT_OK(cowmem_image_read(fi, 0 - (uint64_t)256, tail, sizeof tail));
  ASSERT_EQ(tail[0], 0x54);
  ASSERT_EQ(tail[255], 0);
  cowmem_imgfile_free(f);
  close(fd);
  cowmem_module_free(m);
  return 0;
}

TEST_IMPL(memory64) {
  /* memory64 with min 0x20001 pages (8 GiB + 64 KiB) and a segment at
   * 8 GiB: the image sits at its offset, small. */
  const uint64_t m64[][3] = {{4, 0x20001, 0}};
  header(&B);
  memories(&B, 1, m64);
  P.n = 0;
  eu(&P, 1);
  seg_const(&P, 0, true, (int64_t)1 << 33, "hi", 2);
  section(&B, 11, &P);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL));
  cowmem_memory_info_t mi;
  ASSERT_OK(cowmem_module_memory_info(m, 0, &mi));
  ASSERT_TRUE(mi.memory64);
  ASSERT_UEQ(mi.min_pages, 0x20001);
  cowmem_image_t* img;
  cowmem_diag_t why;
  img = cowmem_image_retain(cowmem_module_image(m, 0, &why));
  ASSERT_NOT_NULL(img);
  cowmem_image_info_t ii;
  ASSERT_OK(cowmem_image_info(img, &ii));
  ASSERT_UEQ(ii.mem_offset, (uint64_t)1 << 33);
  char two[2];
  ASSERT_OK(cowmem_image_read(img, (uint64_t)1 << 33, two, 2));
  ASSERT_TRUE(memcmp(two, "hi", 2) == 0);
  cowmem_image_release(img);
  cowmem_module_free(m);
  /* i32.const offset for a 64-bit memory: type mismatch; memory64 off:
   * the flag is malformed. */
  header(&B);
  memories(&B, 1, m64);
  P.n = 0;
  eu(&P, 1);
  seg_const(&P, 0, false, 0, "hi", 2);
  section(&B, 11, &P);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "type mismatch"));
  CHECK(expect_error(&B, COWMEM_MODULE_NO_MEMORY64, COWMEM_EMALFORMED,
                     "integer too large")); /* the pre-memory64 wording */
  B.b[11] = 0x08; /* flags byte of the memory: no such flag */
  CHECK(expect_error(&B, 0, COWMEM_EMALFORMED, "malformed limits flags"));
  /* 2^48 pages is the cap. */
  const uint64_t huge[][3] = {{4, ((uint64_t)1 << 48) + 1, 0}};
  header(&B);
  memories(&B, 1, huge);
  CHECK(expect_error(&B, 0, COWMEM_EINVALID, "memory size must be at most"));
  return 0;
}

TEST_IMPL(defined_global_offset) {
  const uint64_t one[][3] = {{0, 1, 0}};
  header(&B);
  memories(&B, 1, one);
  eraw(&B, "\x06\x06\x01\x7f\x00\x41\x20\x0b", 8); /* global i32 = 32 */
  eraw(&B, "\x0b\x07\x01\x00\x23\x00\x0b\x01\x61", 9);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL));
  cowmem_segment_info_t s;
  ASSERT_OK(cowmem_module_segment_info(m, 0, &s));
  ASSERT_EQ(s.offset_kind, COWMEM_OFFSET_CONST);
  ASSERT_EQ(s.offset, 32);
  cowmem_image_t* img;
  img = cowmem_image_retain(cowmem_module_image(m, 0, NULL));
  char c;
  ASSERT_OK(cowmem_image_read(img, 32, &c, 1));
  ASSERT_EQ(c, 'a');
  cowmem_image_release(img);
  cowmem_module_free(m);
  CHECK(expect_error(&B, COWMEM_MODULE_NO_DEFINED_GLOBAL_GET, COWMEM_EINVALID,
                     "unknown global 0"));
  return 0;
}

TEST_IMPL(borrow_and_no_images) {
  overlap_module(&B);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, COWMEM_MODULE_BORROW | COWMEM_MODULE_NO_IMAGES, &m, NULL));
  size_t len;
  ASSERT_PTR_EQ(cowmem_module_bytes(m, &len), B.b);
  ASSERT_EQ(len, B.n);
  cowmem_segment_info_t s;
  ASSERT_OK(cowmem_module_segment_info(m, 0, &s));
  ASSERT_TRUE(s.data >= B.b && s.data < B.b + B.n);
  ASSERT_FALSE(s.covered_by_image);
  cowmem_image_t* img;
  cowmem_diag_t why;
  img = cowmem_image_retain(cowmem_module_image(m, 0, &why));
  ASSERT_NULL(img);
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_NOT_BUILT);
  cowmem_module_free(m);
  /* Copied by default: the caller's buffer may change afterwards. */
  ASSERT_OK(parse(&B, 0, &m, NULL));
  ASSERT_PTR_NE(cowmem_module_bytes(m, NULL), B.b);
  cowmem_module_free(m);
  return 0;
}

/* Many small segments in descending offset order (esbuild-wasm's shape):
 * one image, every byte right. */
TEST_IMPL(many_unsorted_segments) {
  const uint64_t mem[][3] = {{0, 2, 0}};
  header(&B);
  memories(&B, 1, mem);
  P.n = 0;
  eu(&P, 5000);
  for (int i = 4999; i >= 0; i--) {
    char v = (char)(1 + i % 250);
    seg_const(&P, 0, false, i * 20, &v, 1);
  }
  section(&B, 11, &P);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL));
  cowmem_image_t* img;
  img = cowmem_image_retain(cowmem_module_image(m, 0, NULL));
  static uint8_t got[131072];
  ASSERT_OK(cowmem_image_read(img, 0, got, sizeof got));
  for (int i = 0; i < 131072; i++)
    ASSERT_EQ(got[i], (i % 20 == 0 && i / 20 < 5000) ? 1 + (i / 20) % 250 : 0);
  cowmem_image_release(img);
  cowmem_module_free(m);
  return 0;
}

TEST_IMPL(passive_and_empty) {
  const uint64_t one[][3] = {{0, 1, 0}};
  header(&B);
  memories(&B, 1, one);
  P.n = 0;
  eu(&P, 3);
  eraw(&P, "\x01\x03xyz", 5);               /* passive */
  seg_const(&P, 0, false, 65536, "", 0);    /* empty at the end: fine */
  seg_const(&P, 0, false, 0, "\0\0", 2);    /* zeros only */
  section(&B, 11, &P);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL));
  cowmem_segment_info_t s;
  ASSERT_OK(cowmem_module_segment_info(m, 0, &s));
  ASSERT_EQ(s.mode, COWMEM_SEGMENT_PASSIVE);
  ASSERT_FALSE(s.covered_by_image);
  cowmem_image_t* img;
  cowmem_diag_t why;
  img = cowmem_image_retain(cowmem_module_image(m, 0, &why));
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_NONE);
  if (img) {
    cowmem_image_info_t ii;
    ASSERT_OK(cowmem_image_info(img, &ii));
    ASSERT_EQ(ii.data_pages, 0);
    cowmem_image_release(img);
  }
  cowmem_module_free(m);
  /* Empty segment one past the end traps. */
  header(&B);
  memories(&B, 1, one);
  P.n = 0;
  eu(&P, 1);
  seg_const(&P, 0, false, 65537, "", 0);
  section(&B, 11, &P);
  ASSERT_OK(parse(&B, 0, &m, NULL));
  img = cowmem_image_retain(cowmem_module_image(m, 0, &why));
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_OUT_OF_BOUNDS);
  ASSERT_ERR(cowmem_module_instantiate_check(m, NULL, 0, NULL, 0, NULL),
             COWMEM_EOOB);
  cowmem_module_free(m);
  return 0;
}

/* Import matching as the spec's linking defines it, for memories and
 * globals. */
TEST_IMPL(linking) {
  header(&B); /* memory "a" "m" (min 2 max 4); global "a" "g" (mut i64) */
  eraw(&B, "\x02\x10\x02\x01\x61\x01\x6d\x02\x01\x02\x04", 11);
  eraw(&B, "\x01\x61\x01\x67\x03\x7e\x01", 7);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL));
  ASSERT_EQ(cowmem_module_import_count(m, COWMEM_EXTERN_MEMORY), 1);
  ASSERT_EQ(cowmem_module_import_count(m, COWMEM_EXTERN_GLOBAL), 1);
  cowmem_global_value_t g = {COWMEM_TYPE_I64, true, 0};
  const struct {
    cowmem_memory_desc_t md;
    int want;
  } cases[] = {
      {{2, 4, true, false, false}, 0},
      {{3, 3, true, false, false}, 0},                  /* tighter: fine */
      {{1, 4, true, false, false}, COWMEM_EUNLINKABLE}, /* too small */
      {{2, 0, false, false, false}, COWMEM_EUNLINKABLE}, /* no maximum */
      {{2, 5, true, false, false}, COWMEM_EUNLINKABLE}, /* maximum larger */
      {{2, 4, true, true, false}, COWMEM_EUNLINKABLE},  /* memory64 */
      {{2, 4, true, false, true}, COWMEM_EUNLINKABLE},  /* shared */
  };
  cowmem_diag_t d;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int r = cowmem_module_instantiate_check(m, &cases[i].md, 1, &g, 1, &d);
    if (r != cases[i].want) TEST_FAIL_("case %zu: got %s", i, cowmem_err_name(r));
  }
  cowmem_memory_desc_t okm = {2, 4, true, false, false};
  g.is_mutable = false;
  ASSERT_ERR(cowmem_module_instantiate_check(m, &okm, 1, &g, 1, &d),
             COWMEM_EUNLINKABLE);
  ASSERT_STR_EQ(d.reason, "incompatible import type");
  cowmem_module_free(m);
  return 0;
}

/* Data 3.75 GiB apart: more than COWMEM_MODULE_IMAGE_SPAN_MAX, so no
 * image, and the reason says by how much. */
TEST_IMPL(too_sparse) {
  const uint64_t mem[][3] = {{0, 65536, 0}};
  header(&B);
  memories(&B, 1, mem);
  P.n = 0;
  eu(&P, 2);
  seg_const(&P, 0, false, 0, "a", 1);
  seg_const(&P, 0, false, (int32_t)0xf0000000u, "b", 1);
  section(&B, 11, &P);
  cowmem_module_t* m;
  ASSERT_OK(parse(&B, 0, &m, NULL));
  cowmem_image_t* img;
  cowmem_diag_t why;
  img = cowmem_image_retain(cowmem_module_image(m, 0, &why));
  ASSERT_NULL(img);
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_TOO_SPARSE);
  ASSERT_STR_EQ(why.reason,
                "data spans 4026531841 bytes, more than 1073741824");
  cowmem_segment_info_t s;
  ASSERT_OK(cowmem_module_segment_info(m, 1, &s));
  ASSERT_FALSE(s.covered_by_image);
  cowmem_module_free(m);
  return 0;
}

/* Random mutations of a valid module: never a crash, a leak or an
 * unexpected code. Prints its seed; COWMEM_TEST_SEED replays. */
TEST_IMPL(random_mutations) {
  unsigned seed = getenv("COWMEM_TEST_SEED")
                      ? (unsigned)strtoul(getenv("COWMEM_TEST_SEED"), 0, 0)
                      : (unsigned)getpid();
  printf("seed %u\n", seed);
  srand(seed);
  decisions_module(&B);
  static buf_t M;
  for (int it = 0; it < 3000; it++) {
    M = B;
    int edits = 1 + rand() % 4;
    for (int e = 0; e < edits; e++) M.b[rand() % M.n] = (uint8_t)rand();
    cowmem_module_t* m = NULL;
    cowmem_diag_t d;
    int r = cowmem_module_parse(M.b, M.n, 0, &m, &d);
    if (r == 0) {
      cowmem_module_free(m);
      continue;
    }
    ASSERT_TRUE(r == COWMEM_EMALFORMED || r == COWMEM_EINVALID ||
                r == COWMEM_EUNSUPPORTED);
    ASSERT_EQ(d.code, r);
    ASSERT_LE(d.offset, M.n);
  }
  return 0;
}

TEST_MAIN(TEST_ENTRY(header_errors) TEST_ENTRY(leb_errors)
              TEST_ENTRY(section_errors) TEST_ENTRY(validation_errors)
                  TEST_ENTRY(truncation_every_byte)
                      TEST_ENTRY(overlapping_segments)
                          TEST_ENTRY(per_memory_decisions) TEST_ENTRY(fresh_imports)
                              TEST_ENTRY(memory64)
                                  TEST_ENTRY(defined_global_offset)
                                      TEST_ENTRY(borrow_and_no_images)
                                          TEST_ENTRY(many_unsorted_segments)
                                              TEST_ENTRY(passive_and_empty) TEST_ENTRY(too_sparse) TEST_ENTRY(linking)
                                                  TEST_ENTRY(random_mutations)
                                                      TEST_ENTRY(memory64_last_page))
