/* cowmem_module_strip: byte-exact output for small hand-built modules, the
 * data count section's placement, memories without an image kept intact,
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

static const uint8_t k_two_segments_stripped[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
    0x03, 0x02, 0x01, 0x00,
    0x05, 0x03, 0x01, 0x00, 0x01,
    0x0c, 0x01, 0x02,                                     /* data count 2 */
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
    0x0b, 0x05, 0x02, 0x01, 0x00, 0x01, 0x00,             /* 2 x passive "" */
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

TEST_IMPL(inserts_data_count) {
  uint8_t* out = NULL;
  size_t len = 0;
  uint32_t stripped = 99;
  ASSERT_OK(strip_bytes(k_two_segments, sizeof k_two_segments, &out, &len,
                        &stripped));
  ASSERT_EQ(stripped, 2);
  ASSERT_EQ(len, sizeof k_two_segments_stripped);
  ASSERT_EQ(memcmp(out, k_two_segments_stripped, len), 0);
  /* The output parses, has the same segment count, all passive and empty,
   * and nothing is covered any more (stripping again changes nothing). */
  cowmem_module_t* m = NULL;
  ASSERT_OK(cowmem_module_parse(out, len, 0, &m, NULL));
  ASSERT_EQ(cowmem_module_segment_count(m), 2);
  for (uint32_t i = 0; i < 2; i++) {
    cowmem_segment_info_t s;
    ASSERT_OK(cowmem_module_segment_info(m, i, &s));
    ASSERT_EQ(s.mode, COWMEM_SEGMENT_PASSIVE);
    ASSERT_EQ(s.data_len, 0);
    ASSERT_FALSE(s.covered_by_image);
  }
  uint8_t* again = NULL;
  size_t again_len = 0;
  ASSERT_OK(cowmem_module_strip(m, &again, &again_len, &stripped));
  ASSERT_EQ(stripped, 0);
  ASSERT_EQ(again_len, len);
  ASSERT_EQ(memcmp(again, out, len), 0);
  free(again);
  cowmem_module_free(m);
  free(out);
  return 0;
}

TEST_IMPL(keeps_existing_data_count) {
  /* Memory, data count 1, data: one segment; no code section. */
  static const uint8_t in[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x0c, 0x01, 0x01,
      0x0b, 0x09, 0x01, 0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c'};
  static const uint8_t want[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x0c, 0x01, 0x01,
      0x0b, 0x03, 0x01, 0x01, 0x00};
  uint8_t* out = NULL;
  size_t len = 0;
  ASSERT_OK(strip_bytes(in, sizeof in, &out, &len, NULL));
  ASSERT_EQ(len, sizeof want);
  ASSERT_EQ(memcmp(out, want, len), 0);
  free(out); /* documented: free() works too */
  return 0;
}

TEST_IMPL(no_data_count_without_code) {
  /* Memory and data only: the data count goes right before the data. */
  static const uint8_t in[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x00, 0x03, 0x01, 'x', 0x07,                     /* custom "x" */
      0x0b, 0x09, 0x01, 0x00, 0x41, 0x10, 0x0b, 0x03, 'a', 'b', 'c'};
  static const uint8_t want[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x05, 0x03, 0x01, 0x00, 0x01,
      0x00, 0x03, 0x01, 'x', 0x07,
      0x0c, 0x01, 0x01,
      0x0b, 0x03, 0x01, 0x01, 0x00};
  uint8_t* out = NULL;
  size_t len = 0;
  ASSERT_OK(strip_bytes(in, sizeof in, &out, &len, NULL));
  ASSERT_EQ(len, sizeof want);
  ASSERT_EQ(memcmp(out, want, len), 0);
  free(out);
  return 0;
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
  ASSERT_EQ(cowmem_module_segment_count(s), cowmem_module_segment_count(m));
  ASSERT_EQ(cowmem_module_section_count(s) - cowmem_module_section_count(m),
            1); /* the data count section was added */
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

TEST_MAIN(TEST_ENTRY(inserts_data_count) TEST_ENTRY(keeps_existing_data_count)
              TEST_ENTRY(no_data_count_without_code)
                  TEST_ENTRY(memory_without_image_kept)
                      TEST_ENTRY(demo_module))
