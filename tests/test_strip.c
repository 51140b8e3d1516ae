/* cowmem_module_strip: byte-exact output for small hand-built modules:
 * covered segments removed when no body names a data index (the others
 * renumbered, with their names), kept as empty passive segments when one
 * does (or the module is relocatable, or a body cannot be decoded) with
 * no section added (a relocatable object's reloc sections keep their
 * targets), memories without an image kept intact,
 * and the bundled demo (when built) stripped and parsed again. */
#include <cowmem.h>

#include "test.h"

/* A module: one function type, one function, memory 0 (1 page), a code
 * section, and two active segments at 16 ("abc") and 32 ("z"). */
static const uint8_t k_two_segments[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,       /* header */
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00,                   /* type */
    0x03, 0x02, 0x01, 0x00,                               /* function */
    0x05, 0x03, 0x01, 0x00, 0x01,                         /* memory */
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,                   /* code */
    0x0b, 0x0f, 0x02,                                     /* data: 2 */
    0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c',          /* seg 0 */
    0x00, 0x41, 0x20, 0x0b, 0x01, 'z',                    /* seg 1 */
};

/* Nothing names a data index: both segments go. */
static const uint8_t k_two_segments_stripped[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
    0x03, 0x02, 0x01, 0x00,
    0x05, 0x03, 0x01, 0x00, 0x01,
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
    0x0b, 0x01, 0x00,                                     /* data: 0 */
};

/* What k_two_segments becomes as a relocatable object: a "linking" custom
 * section (version 2), and reloc.CODE and reloc.DATA naming their target
 * sections by index (3, the code; 4, the data), with no entries. */
static const uint8_t k_relocation[] = {
    0x00, 0x09, 0x07, 'l', 'i', 'n', 'k', 'i', 'n', 'g', 0x02,
    0x00, 0x0d, 0x0a, 'r', 'e', 'l', 'o', 'c', '.', 'C', 'O', 'D', 'E', 0x03, 0x00,
    0x00, 0x0d, 0x0a, 'r', 'e', 'l', 'o', 'c', '.', 'D', 'A', 'T', 'A', 0x04, 0x00,
};

/* Stripped, its indices stay: each segment an empty passive one, and no
 * section added, so the reloc sections' targets are the same sections. */
static const uint8_t k_relocatable_stripped[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
    0x03, 0x02, 0x01, 0x00,
    0x05, 0x03, 0x01, 0x00, 0x01,
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
    0x0b, 0x05, 0x02, 0x01, 0x00, 0x01, 0x00,             /* 2 x passive "" */
    0x00, 0x09, 0x07, 'l', 'i', 'n', 'k', 'i', 'n', 'g', 0x02,
    0x00, 0x0d, 0x0a, 'r', 'e', 'l', 'o', 'c', '.', 'C', 'O', 'D', 'E', 0x03, 0x00,
    0x00, 0x0d, 0x0a, 'r', 'e', 'l', 'o', 'c', '.', 'D', 'A', 'T', 'A', 0x04, 0x00,
};

static int strip_bytes(const uint8_t* in, size_t n, uint8_t** out,
                       size_t* out_len, uint32_t* stripped) {
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  int r = cowmem_module_parse(in, n, 0, &m, &d);
  if (r != 0) return r;
  r = cowmem_module_strip(m, out, out_len, stripped);
  cowmem_module_free(m);
  return r;
}

/* Strip `in`: the output is want with want_stripped segments stripped,
 * and stripping it again changes nothing. */
static int strip_expect(const uint8_t* in, size_t n, const uint8_t* want,
                        size_t want_len, uint32_t want_stripped) {
  uint8_t* out = NULL;
  size_t len = 0;
  uint32_t stripped = 99;
  ASSERT_OK(strip_bytes(in, n, &out, &len, &stripped));
  ASSERT_EQ(stripped, want_stripped);
  ASSERT_EQ(len, want_len);
  ASSERT_EQ(memcmp(out, want, len), 0);
  uint8_t* again = NULL;
  size_t again_len = 0;
  ASSERT_OK(strip_bytes(out, len, &again, &again_len, &stripped));
  ASSERT_EQ(stripped, 0);
  ASSERT_EQ(again_len, len);
  ASSERT_EQ(memcmp(again, out, len), 0);
  free(again);
  free(out);
  return 0;
}

/* A module with one function type, one function and memory 0 (1 page):
 * the sections before those under test. */
static const uint8_t k_head[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, /* header */
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00,             /* type */
    0x03, 0x02, 0x01, 0x00,                         /* function */
    0x05, 0x03, 0x01, 0x00, 0x01,                   /* memory */
};

/* strip_expect of k_head + in against k_head + want. */
static int strip_tail(const uint8_t* in, size_t n, const uint8_t* want,
                      size_t want_len, uint32_t want_stripped) {
  uint8_t a[256], b[256];
  ASSERT_LE(sizeof k_head + n, sizeof a);
  ASSERT_LE(sizeof k_head + want_len, sizeof b);
  memcpy(a, k_head, sizeof k_head);
  memcpy(a + sizeof k_head, in, n);
  memcpy(b, k_head, sizeof k_head);
  memcpy(b + sizeof k_head, want, want_len);
  return strip_expect(a, sizeof k_head + n, b, sizeof k_head + want_len, want_stripped);
}

TEST_IMPL(removes_segments) {
  uint8_t* out = NULL;
  size_t len = 0;
  ASSERT_OK(strip_expect(k_two_segments, sizeof k_two_segments,
                         k_two_segments_stripped, sizeof k_two_segments_stripped, 2));
  /* The output parses with no segment and no data count section. */
  cowmem_module_t* m = NULL;
  ASSERT_OK(strip_bytes(k_two_segments, sizeof k_two_segments, &out, &len, NULL));
  ASSERT_OK(cowmem_module_parse(out, len, 0, &m, NULL));
  ASSERT_EQ(cowmem_module_segment_count(m), 0);
  cowmem_module_free(m);
  free(out);
  return 0;
}

/* The id of the section that reloc section i of bytes (a module) names
 * as its target; -1 if i is not a reloc.* section or its index is out of
 * range. The index is read as one LEB128 byte: the tests' are small. */
static int reloc_target(const uint8_t* bytes, size_t n, uint32_t i) {
  cowmem_module_t* m = NULL;
  if (cowmem_module_parse(bytes, n, COWMEM_MODULE_BORROW | COWMEM_MODULE_NO_IMAGES, &m,
                          NULL) != 0)
    return -1;
  cowmem_section_info_t s, t;
  int id = -1;
  if (cowmem_module_section_info(m, i, &s) == 0 && s.id == 0 && s.payload_len > 8) {
    const uint8_t* p = bytes + s.payload_offset;
    size_t name = p[0];
    if (name >= 6 && name + 2 <= s.payload_len && memcmp(p + 1, "reloc.", 6) == 0 &&
        p[1 + name] < 0x80 && cowmem_module_section_info(m, p[1 + name], &t) == 0)
      id = (int)t.id;
  }
  cowmem_module_free(m);
  return id;
}

TEST_IMPL(relocatable_keeps_indices) {
  uint8_t in[sizeof k_two_segments + sizeof k_relocation];
  memcpy(in, k_two_segments, sizeof k_two_segments);
  memcpy(in + sizeof k_two_segments, k_relocation, sizeof k_relocation);
  ASSERT_OK(strip_expect(in, sizeof in, k_relocatable_stripped,
                         sizeof k_relocatable_stripped, 2));
  /* reloc.CODE (section 6) and reloc.DATA (7) name the code and the data
   * section, before and after (inserting a data count section moved both
   * one further: they named the code section and the data section's
   * predecessor). */
  enum { CODE = 10, DATA = 11 };
  ASSERT_EQ(reloc_target(in, sizeof in, 6), CODE);
  ASSERT_EQ(reloc_target(in, sizeof in, 7), DATA);
  ASSERT_EQ(reloc_target(k_relocatable_stripped, sizeof k_relocatable_stripped, 6), CODE);
  ASSERT_EQ(reloc_target(k_relocatable_stripped, sizeof k_relocatable_stripped, 7), DATA);
  return 0;
}

TEST_IMPL(memory_init_keeps_indices) {
  /* (func (memory.init $p ...)) with segments $a @16 "abc", $z @32 "z",
   * passive $p "p" (wat2wasm): memory.init names segment 2, so the active
   * ones become empty passive segments and $p stays segment 2. */
  static const uint8_t in[] = {
      0x0c, 0x01, 0x03,
      0x0a, 0x0e, 0x01, 0x0c, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x01,
      0xfc, 0x08, 0x02, 0x00, 0x0b,                     /* memory.init 2 0 */
      0x0b, 0x12, 0x03,
      0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c',
      0x00, 0x41, 0x20, 0x0b, 0x01, 'z',
      0x01, 0x01, 'p'};
  static const uint8_t want[] = {
      0x0c, 0x01, 0x03,
      0x0a, 0x0e, 0x01, 0x0c, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x01,
      0xfc, 0x08, 0x02, 0x00, 0x0b,
      0x0b, 0x08, 0x03, 0x01, 0x00, 0x01, 0x00, 0x01, 0x01, 'p'};
  return strip_tail(in, sizeof in, want, sizeof want, 2);
}

TEST_IMPL(data_count_without_init_removes) {
  /* A data count section, which memory.init would need, but the body
   * only uses memory.fill: the bodies are decoded, nothing names a
   * segment, both go and the data count says 0. */
  static const uint8_t in[] = {
      0x0c, 0x01, 0x02,
      0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00,
      0xfc, 0x0b, 0x00, 0x0b,                           /* memory.fill 0 */
      0x0b, 0x0f, 0x02,
      0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c',
      0x00, 0x41, 0x20, 0x0b, 0x01, 'z'};
  static const uint8_t want[] = {
      0x0c, 0x01, 0x00,
      0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00,
      0xfc, 0x0b, 0x00, 0x0b,
      0x0b, 0x01, 0x00};
  return strip_tail(in, sizeof in, want, sizeof want, 2);
}

TEST_IMPL(undecodable_body_keeps_indices) {
  /* A body with a GC instruction (0xfb: array.new_data names a data
   * index) that the decoder does not walk: indices stay. */
  static const uint8_t in[] = {
      0x0c, 0x01, 0x01,
      0x0a, 0x08, 0x01, 0x06, 0x00, 0xfb, 0x09, 0x00, 0x00, 0x0b,
      0x0b, 0x09, 0x01, 0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c'};
  static const uint8_t want[] = {
      0x0c, 0x01, 0x01,
      0x0a, 0x08, 0x01, 0x06, 0x00, 0xfb, 0x09, 0x00, 0x00, 0x0b,
      0x0b, 0x03, 0x01, 0x01, 0x00};
  return strip_tail(in, sizeof in, want, sizeof want, 1);
}

TEST_IMPL(names_renumbered) {
  /* wat2wasm --debug-names of (func $fill (memory.fill ...)) and segments
   * $a @16 "abc", passive $p "p", $z @32 "z": $a and $z go, $p becomes
   * segment 0 and so does its name; the function and local names stay. */
  static const uint8_t in[] = {
      0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00,
      0xfc, 0x0b, 0x00, 0x0b,                           /* memory.fill 0 */
      0x0b, 0x12, 0x03,
      0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c',
      0x01, 0x01, 'p',
      0x00, 0x41, 0x20, 0x0b, 0x01, 'z',
      0x00, 0x1f, 0x04, 'n', 'a', 'm', 'e',
      0x01, 0x07, 0x01, 0x00, 0x04, 'f', 'i', 'l', 'l', /* function names */
      0x02, 0x03, 0x01, 0x00, 0x00,                     /* local names */
      0x09, 0x0a, 0x03, 0x00, 0x01, 'a', 0x01, 0x01, 'p', 0x02, 0x01, 'z'};
  static const uint8_t want[] = {
      0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00,
      0xfc, 0x0b, 0x00, 0x0b,
      0x0b, 0x04, 0x01, 0x01, 0x01, 'p',
      0x00, 0x19, 0x04, 'n', 'a', 'm', 'e',
      0x01, 0x07, 0x01, 0x00, 0x04, 'f', 'i', 'l', 'l',
      0x02, 0x03, 0x01, 0x00, 0x00,
      0x09, 0x04, 0x01, 0x00, 0x01, 'p'};
  return strip_tail(in, sizeof in, want, sizeof want, 2);
}

TEST_IMPL(unreadable_names_dropped) {
  /* A data segment name map that does not parse (its count says 2, one
   * entry follows) goes; so does everything after a subsection whose size
   * runs past the section. Runtimes ignore a malformed name section, so
   * strip does not fail on one, and never leaves a stale segment name. */
  static const uint8_t in[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x0b, 0x09, 0x01, 0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c',
      0x00, 0x12, 0x04, 'n', 'a', 'm', 'e',
      0x00, 0x02, 0x01, 'M',                            /* module name */
      0x09, 0x04, 0x02, 0x00, 0x01, 'a',                /* count 2, 1 entry */
      0x07, 0x05, 0x01};                                /* size past the end */
  static const uint8_t want[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x0b, 0x01, 0x00,
      0x00, 0x09, 0x04, 'n', 'a', 'm', 'e',
      0x00, 0x02, 0x01, 'M'};
  return strip_expect(in, sizeof in, want, sizeof want, 1);
}

TEST_IMPL(data_count_follows_removal) {
  /* Memory, data count 1, data: one segment; no code section, so nothing
   * names the segment: it goes and the data count says 0. */
  static const uint8_t in[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x0c, 0x01, 0x01,
      0x0b, 0x09, 0x01, 0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c'};
  static const uint8_t want[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x0c, 0x01, 0x00,
      0x0b, 0x01, 0x00};
  return strip_expect(in, sizeof in, want, sizeof want, 1);
}

TEST_IMPL(no_data_count_added) {
  /* Memory and data only, relocatable (indices stay): the segment becomes
   * an empty passive one, which needs no data count section, and none is
   * added. */
  static const uint8_t in[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x00, 0x09, 0x07, 'l', 'i', 'n', 'k', 'i', 'n', 'g', 0x02,
      0x0b, 0x09, 0x01, 0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c'};
  static const uint8_t want[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x00, 0x09, 0x07, 'l', 'i', 'n', 'k', 'i', 'n', 'g', 0x02,
      0x0b, 0x03, 0x01, 0x01, 0x00};
  return strip_expect(in, sizeof in, want, sizeof want, 1);
}

TEST_IMPL(memory_without_image_kept) {
  /* An imported i32 global gives segment 0's offset: memory 0 has no
   * image, so neither segment is stripped and the output is the input. */
  static const uint8_t in[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x02, 0x08, 0x01, 0x01, 'm', 0x01, 'g', 0x03, 0x7f, 0x00, /* import */
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x0b, 0x0f, 0x02,
      0x00, 0x23, 0x00, 0x0b, 0x03, 'a', 'b', 'c',
      0x00, 0x41, 0x20, 0x0b, 0x01, 'z'};
  cowmem_module_t* m = NULL;
  ASSERT_OK(cowmem_module_parse(in, sizeof in, 0, &m, NULL));
  cowmem_diag_t why;
  cowmem_image_t* img = NULL;
  img = cowmem_image_retain(cowmem_module_image(m, 0, &why));
  ASSERT_NULL(img);
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_GLOBAL_OFFSET);
  uint8_t* out = NULL;
  size_t len = 0;
  uint32_t stripped = 1;
  ASSERT_OK(cowmem_module_strip(m, &out, &len, &stripped));
  ASSERT_EQ(stripped, 0);
  ASSERT_EQ(len, sizeof in);
  ASSERT_EQ(memcmp(out, in, len), 0);
  free(out);
  cowmem_module_free(m);
  ASSERT_ERR(cowmem_module_strip(NULL, &out, &len, NULL), COWMEM_EINVAL);
  return 0;
}

TEST_IMPL(summary_line) {
  cowmem_module_t* m = NULL;
  ASSERT_OK(cowmem_module_parse(k_two_segments, sizeof k_two_segments, 0, &m, NULL));
  uint8_t* out = NULL;
  size_t len = 0;
  uint32_t stripped = 0;
  ASSERT_OK(cowmem_module_strip(m, &out, &len, &stripped));
  char buf[128], want[128];
  snprintf(want, sizeof want,
           "out.wasm: 2 of 2 data segments stripped (0 left), %zu -> %zu bytes",
           sizeof k_two_segments, sizeof k_two_segments_stripped);
  ASSERT_OK(cowmem_module_strip_summary(m, out, len, stripped, "out.wasm", buf, sizeof buf));
  ASSERT_STR_EQ(buf, want);
  /* Cut short to fit, still a string. */
  ASSERT_OK(cowmem_module_strip_summary(m, out, len, stripped, "out.wasm", buf, 9));
  ASSERT_STR_EQ(buf, "out.wasm");
  /* An output that does not parse: its error, and no line. */
  static const uint8_t junk[] = {0x00, 0x61, 0x73, 0x6d, 0x02};
  ASSERT_ERR(cowmem_module_strip_summary(m, junk, sizeof junk, 0, "x", buf, sizeof buf),
             COWMEM_EMALFORMED);
  ASSERT_STR_EQ(buf, "");
  ASSERT_ERR(cowmem_module_strip_summary(NULL, out, len, 0, "x", buf, sizeof buf),
             COWMEM_EINVAL);
  ASSERT_ERR(cowmem_module_strip_summary(m, out, len, 0, NULL, buf, sizeof buf),
             COWMEM_EINVAL);
  ASSERT_ERR(cowmem_module_strip_summary(m, out, len, 0, "x", buf, 0), COWMEM_EINVAL);
  free(out);
  cowmem_module_free(m);
  return 0;
}

TEST_IMPL(demo_module) {
#ifndef COWMEM_DEMO_WASM
  TEST_SKIP("demo.wasm is not built (COWMEM_BUILD_EXAMPLES off or no clang)");
#else
  FILE* f = fopen(COWMEM_DEMO_WASM, "rb");
  if (!f) TEST_SKIP("demo.wasm not found");
  static uint8_t buf[8 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  cowmem_module_t *m = NULL, *s = NULL;
  ASSERT_OK(cowmem_module_parse(buf, n, 0, &m, NULL));
  uint8_t* out = NULL;
  size_t len = 0;
  uint32_t stripped = 0;
  ASSERT_OK(cowmem_module_strip(m, &out, &len, &stripped));
  ASSERT_GT(stripped, 0);
  ASSERT_LT(len, n);
  ASSERT_OK(cowmem_module_parse(out, len, 0, &s, NULL));
  /* No body names a data index (C has no memory.init): the covered
   * segments are gone and no data count section was added. */
  ASSERT_EQ(cowmem_module_segment_count(s) + stripped, cowmem_module_segment_count(m));
  ASSERT_EQ(cowmem_module_section_count(s), cowmem_module_section_count(m));
  /* The stripped module's memory starts empty: the image is what fills it. */
  cowmem_image_t* img = NULL;
  cowmem_diag_t why;
  img = cowmem_image_retain(cowmem_module_image(s, 0, &why));
  ASSERT_NULL(img);
  cowmem_module_free(s);
  cowmem_module_free(m);
  free(out);
  return 0;
#endif
}

TEST_MAIN(TEST_ENTRY(removes_segments) TEST_ENTRY(relocatable_keeps_indices)
              TEST_ENTRY(memory_init_keeps_indices)
                  TEST_ENTRY(data_count_without_init_removes)
                  TEST_ENTRY(undecodable_body_keeps_indices)
                      TEST_ENTRY(names_renumbered) TEST_ENTRY(unreadable_names_dropped)
                          TEST_ENTRY(data_count_follows_removal)
                              TEST_ENTRY(no_data_count_added) TEST_ENTRY(summary_line)
                                  TEST_ENTRY(memory_without_image_kept)
                                      TEST_ENTRY(demo_module))
