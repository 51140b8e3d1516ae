/* Snapshots: a slot's bytes captured as an image (holes kept), instances of
 * it, the same without PAGEMAP_SCAN, and a snapshot written to an image
 * file, opened again and instantiated. */
#include <fcntl.h>
#include <sys/stat.h>

#include "test_slots.h"

TEST_IMPL(snapshot_equals_slot) {
  PS = cowmem_page_size();
  const size_t n = 48;
  cowmem_image_t* img = holed_image(4, 20, 8, 11, 0x71);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &s));
  cowmem_image_t* snap = NULL;
  ASSERT_ERR(cowmem_snapshot(s, &snap), COWMEM_ESTATE);
  ASSERT_ERR(cowmem_snapshot(NULL, &snap), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_snapshot(s, NULL), COWMEM_EINVAL);
  ASSERT_OK(cowmem_slot_instantiate(s, n * PS, img));
  uint8_t* m = cowmem_slot_base(s);
  /* "Initialization": globals inside the image, a heap above it, a page
   * of the image zeroed, and pages never touched in between. */
  memset(m + 5 * PS + 10, 0xab, 100);
  memset(m + 30 * PS, 0xcd, 2 * PS);
  memset(m + 6 * PS, 0, PS);
  m[44 * PS + 7] = 1;
  ASSERT_OK(cowmem_snapshot(s, &snap));
  ASSERT_NOT_NULL(snap);
  /* Never-touched pages were not faulted in by the snapshot. */
  ASSERT_FALSE(resident(m + 40 * PS));
  ASSERT_FALSE(resident(m + 2 * PS));
  uint8_t* got = calloc(n, PS);
  ASSERT_OK(cowmem_image_read(snap, 0, got, n * PS));
  CHECK(same_bytes(got, m, n * PS, "snapshot vs slot"));
  cowmem_image_info_t info;
  ASSERT_OK(cowmem_image_info(snap, &info));
  size_t nonzero = 0;
  for (size_t p = 0; p < n; p++) {
    bool z = true;
    for (size_t i = 0; i < PS && z; i++)
      z = m[p * PS + i] == 0;
    nonzero += !z;
  }
  ASSERT_UEQ(info.data_pages, nonzero);
  ASSERT_UEQ(info.mem_offset, 4 * PS);
  ASSERT_UEQ(info.mem_offset + info.len, 45 * PS);
  if (info.kind == COWMEM_IMAGE_MEMFD) {
    struct stat st;
    ASSERT_EQ(fstat(info.fd, &st), 0);
    ASSERT_LE((uint64_t)st.st_blocks * 512, nonzero * PS); /* holes stay holes */
  }
  /* Instances of the snapshot see it and reset to it. */
  cowmem_slot_t* t = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &t));
  for (int round = 0; round < 3; round++) {
    ASSERT_OK(cowmem_slot_instantiate(t, n * PS, snap));
    uint8_t* tm = cowmem_slot_base(t);
    if (round == 0) ASSERT_FALSE(resident(tm + 35 * PS)); /* a hole */
    CHECK(same_bytes(tm, got, n * PS, "instance of the snapshot"));
    memset(tm + 29 * PS, 0x11, 4 * PS);
    ASSERT_OK(cowmem_slot_reset(t));
  }
  /* Through a pool with every strategy. */
  for (int st = 0; st < COWMEM_RESET_COUNT_; st++) {
    cowmem_pool_t* pool = make_pool((cowmem_reset_strategy_t)st, 1, 64, 8, 2);
    ASSERT_NOT_NULL(pool);
    for (int i = 0; i < 10; i++) {
      cowmem_slot_t* ps = NULL;
      ASSERT_OK(cowmem_pool_acquire(pool, snap, n * PS, 64 * PS, &ps));
      CHECK(same_bytes(cowmem_slot_base(ps), got, n * PS, "pooled snapshot"));
      memset((uint8_t*)cowmem_slot_base(ps) + (size_t)(i % 40) * PS, 0x99, 2 * PS);
      ASSERT_OK(cowmem_pool_release(pool, ps));
    }
    ASSERT_OK(cowmem_pool_flush(pool));
    ASSERT_OK(cowmem_pool_free(pool));
  }
  /* A snapshot of a snapshot's instance, and of an all-zero memory. */
  ASSERT_OK(cowmem_slot_instantiate(t, n * PS, snap));
  cowmem_image_t* snap2 = NULL;
  ASSERT_OK(cowmem_snapshot(t, &snap2));
  uint8_t* got2 = calloc(n, PS);
  ASSERT_OK(cowmem_image_read(snap2, 0, got2, n * PS));
  CHECK(same_bytes(got2, got, n * PS, "snapshot of a snapshot"));
  ASSERT_OK(cowmem_slot_reset(t));
  ASSERT_OK(cowmem_slot_decommit(t));
  ASSERT_OK(cowmem_slot_instantiate(t, 8 * PS, NULL));
  cowmem_image_t* zero = NULL;
  ASSERT_OK(cowmem_snapshot(t, &zero));
  ASSERT_OK(cowmem_image_info(zero, &info));
  ASSERT_UEQ(info.len, 0);
  cowmem_image_release(zero);
  /* No gap between the first and the last written page: read in place. */
  memset((uint8_t*)cowmem_slot_base(t) + 2 * PS, 0x3c, 3 * PS);
  ASSERT_OK(cowmem_snapshot(t, &zero));
  ASSERT_OK(cowmem_image_info(zero, &info));
  ASSERT_UEQ(info.mem_offset, 2 * PS);
  ASSERT_UEQ(info.len, 3 * PS);
  ASSERT_OK(cowmem_image_read(zero, 0, got2, 8 * PS));
  CHECK(same_bytes(got2, cowmem_slot_base(t), 8 * PS, "gapless snapshot"));
  cowmem_image_release(zero);
  cowmem_image_release(snap2);
  free(got2);
  ASSERT_OK(cowmem_slot_free(t));
  cowmem_image_release(snap);
  free(got);
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  return 0;
}

/* A snapshot written to an image file, opened again, and instantiated. */
TEST_IMPL(snapshot_to_file) {
  PS = cowmem_page_size();
  const size_t n = 32;
  cowmem_image_t* img = holed_image(2, 10, 4, 6, 0x15);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, n * PS, img));
  uint8_t* m = cowmem_slot_base(s);
  memset(m + 3 * PS + 5, 0x6b, 300);
  memset(m + 20 * PS, 0x2d, 3 * PS);
  char path[] = "/tmp/cowmem-snapXXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_ERR(cowmem_imgfile_write_snapshot(NULL, fd, NULL, NULL), COWMEM_EINVAL);
  int w = cowmem_imgfile_write_snapshot(s, fd, NULL, NULL);
  if (w == COWMEM_ENOSYS) { /* the posix backend writes no image files */
    close(fd);
    ASSERT_OK(cowmem_slot_free(s));
    cowmem_image_release(img);
    TEST_SKIP("the posix backend writes no image files (ENOSYS)");
  }
  ASSERT_OK(w);
  cowmem_imgfile_t* f = NULL;
  cowmem_diag_t diag;
  ASSERT_OK(cowmem_imgfile_open(fd, NULL, 0, &f, &diag));
  ASSERT_EQ(cowmem_imgfile_memory_count(f), 1);
  cowmem_image_t* snap = NULL;
  cowmem_diag_t why;
  snap = cowmem_image_retain(cowmem_imgfile_image(f, 0, &why));
  ASSERT_NOT_NULL(snap);
  cowmem_slot_t* t = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &t));
  for (int round = 0; round < 2; round++) {
    ASSERT_OK(cowmem_slot_instantiate(t, n * PS, snap));
    CHECK(same_bytes(cowmem_slot_base(t), m, n * PS, "instance of the snapshot file"));
    memset(cowmem_slot_base(t), 0x01, 8 * PS);
    ASSERT_OK(cowmem_slot_reset(t));
  }
  /* With a descriptor: the memory's index and limits are the caller's. */
  cowmem_imgfile_memory_t desc;
  memset(&desc, 0, sizeof desc);
  desc.index = 3;
  desc.min_pages = 2;
  desc.has_max = true;
  desc.max_pages = 10;
  ASSERT_OK(cowmem_imgfile_write_snapshot(s, fd, &desc, NULL));
  cowmem_imgfile_t* g = NULL;
  ASSERT_OK(cowmem_imgfile_open(fd, NULL, 0, &g, &diag));
  cowmem_imgfile_memory_t got;
  ASSERT_OK(cowmem_imgfile_memory(g, 0, &got));
  ASSERT_EQ(got.index, 3);
  ASSERT_EQ(got.max_pages, 10);
  cowmem_imgfile_free(g);
  ASSERT_OK(cowmem_slot_free(t));
  cowmem_image_release(snap);
  cowmem_imgfile_free(f);
  close(fd);
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  return 0;
}

TEST_IMPL(snapshot_no_scan) {
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, 1);
  return test_snapshot_equals_slot();
}

TEST_MAIN(TEST_ENTRY(snapshot_equals_slot) TEST_ENTRY(snapshot_to_file) TEST_ENTRY(snapshot_no_scan))
