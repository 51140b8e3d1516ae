/* test_images.h: checks on images through the public API, for the tests of
 * the runtime integrations (integrations/<runtime>/test_*.c), each of which
 * opens the same module from its image file and from its .wasm. */
#ifndef COWMEM_TEST_IMAGES_H
#define COWMEM_TEST_IMAGES_H

#include "cowmem.h"
#include "test.h"

/* f, from an image file, maps the file and holds the same first len bytes
 * as w, the image built from the .wasm at run time. */
static inline int test_same_image(cowmem_image_t* f, cowmem_image_t* w, size_t len) {
  cowmem_image_info_t fi, wi;
  ASSERT_OK(cowmem_image_info(f, &fi));
  ASSERT_OK(cowmem_image_info(w, &wi));
  ASSERT_EQ(fi.kind, COWMEM_IMAGE_FILE);
  ASSERT_UEQ(fi.mem_offset, wi.mem_offset);
  ASSERT_UEQ(fi.len, wi.len);
  uint8_t* a = malloc(len);
  uint8_t* b = malloc(len);
  int same = a && b && cowmem_image_read(f, 0, a, len) == 0 &&
             cowmem_image_read(w, 0, b, len) == 0 && memcmp(a, b, len) == 0;
  free(a);
  free(b);
  ASSERT_TRUE(same);
  return 0;
}

#endif
