/* Slots: instances with and without an image, reuse and switches, resets
 * to exactly image and zeros, guard pages, misuse, caller reservations,
 * injected failures; error names, options and statistics. Built twice:
 * against the Linux backend and the portable one. */
#include <fcntl.h>
#include <signal.h>

#include "test_slots.h"

TEST_IMPL(errors_have_names) {
  ASSERT_STR_EQ(cowmem_err_name(COWMEM_ESTATE), "ESTATE");
  ASSERT_STR_EQ(cowmem_err_name(COWMEM_EINVAL), "EINVAL");
  ASSERT_EQ(COWMEM_ENOMEM, -ENOMEM);
  ASSERT_STR_EQ(cowmem_strerror(COWMEM_EOOB), "out of bounds memory access");
  ASSERT_STR_EQ(cowmem_err_name(12345), "UNKNOWN");
  ASSERT_NOT_NULL(cowmem_strerror(-EHOSTDOWN));
  ASSERT_STR_EQ(cowmem_strerror(0), "success");
  return 0;
}

/* The seed's first scenario: no image. */
TEST_IMPL(slot_no_image) {
  setup();
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(1 * MiB, &s));
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_EMPTY);
  ASSERT_OK(cowmem_slot_instantiate(s, 64 * KiB, NULL));
  ASSERT_TRUE((cowmem_slot_state(s) == COWMEM_SLOT_DIRTY));
  ASSERT_FALSE((cowmem_slot_image(s) != NULL));
  ASSERT_UEQ(cowmem_slot_accessible(s), 64 * KiB);
  CHECK(expect_bytes(s, 0, 64 * KiB, 0));
  uint8_t* p = cowmem_slot_base(s);
  p[0] = 1;
  p[64 * KiB - 1] = 2;
  ASSERT_OK(cowmem_slot_grow(s, 128 * KiB));
  CHECK(expect_bytes(s, 64 * KiB, 64 * KiB, 0));
  p[128 * KiB - 1] = 3;
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_READY);
  ASSERT_UEQ(cowmem_slot_accessible(s), 64 * KiB);
  CHECK(expect_bytes(s, 0, 64 * KiB, 0));
  ASSERT_OK(cowmem_slot_instantiate(s, 64 * KiB, NULL));
  CHECK(expect_bytes(s, 0, 64 * KiB, 0));
  ASSERT_OK(cowmem_slot_grow(s, 128 * KiB));
  CHECK(expect_bytes(s, 64 * KiB, 64 * KiB, 0)); /* the 3 is gone */
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_OK(cowmem_slot_free(s));
  return 0;
}

/* The seed's second scenario: images, reuse, switches. */
TEST_IMPL(slot_images) {
  setup();
  cowmem_image_t* a = make_image(PS, PS, 0xaa);
  cowmem_image_t* b = make_image(4 * PS, 3 * PS, 0xbb);
  ASSERT_NOT_NULL(a);
  ASSERT_NOT_NULL(b);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 4 * PS, a));
  ASSERT_TRUE((cowmem_slot_image(s) != NULL));
  CHECK(expect_bytes(s, 0, PS, 0));
  CHECK(expect_bytes(s, PS, PS, 0xaa));
  CHECK(expect_bytes(s, 2 * PS, 2 * PS, 0));
  memset(cowmem_slot_base(s), 0x11, 4 * PS);
  ASSERT_OK(cowmem_slot_reset(s));
  CHECK(expect_image(s, a));

  /* Reuse: same image and size, no system call. */
  cowmem_stats_t before, after;
  cowmem_stats_get(&before);
  ASSERT_OK(cowmem_slot_instantiate(s, 4 * PS, a));
  cowmem_stats_get(&after);
  ASSERT_UEQ(after.syscalls_total, before.syscalls_total);
  CHECK(expect_image(s, a));
  ASSERT_OK(cowmem_slot_reset(s));

  /* Switch to no image. */
  ASSERT_OK(cowmem_slot_instantiate(s, 4 * PS, NULL));
  ASSERT_FALSE((cowmem_slot_image(s) != NULL));
  CHECK(expect_bytes(s, 0, 4 * PS, 0));
  ASSERT_OK(cowmem_slot_reset(s));

  /* Switch to b with a larger size. */
  ASSERT_OK(cowmem_slot_instantiate(s, 8 * PS, b));
  CHECK(expect_bytes(s, 0, 4 * PS, 0));
  CHECK(expect_bytes(s, 4 * PS, 3 * PS, 0xbb));
  CHECK(expect_bytes(s, 7 * PS, PS, 0));
  ((uint8_t*)cowmem_slot_base(s))[5 * PS] = 1;
  ASSERT_OK(cowmem_slot_reset(s));

  /* Back to a, smaller again: everything above is gone. */
  ASSERT_OK(cowmem_slot_instantiate(s, 2 * PS, a));
  CHECK(expect_image(s, a));
  ASSERT_OK(cowmem_slot_grow(s, 8 * PS));
  CHECK(expect_bytes(s, 2 * PS, 6 * PS, 0)); /* no trace of b */
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(a);
  cowmem_image_release(b);
  return 0;
}

TEST_IMPL(reset_restores_every_page) {
  setup();
  size_t n = 256 * KiB;
  uint8_t* data = malloc(n);
  for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 7 + 1);
  memset(data + 64 * KiB, 0, 32 * KiB); /* a hole in the middle */
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_bytes(data, n, 3 * PS + 5, &img));
  free(data);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(4 * MiB, &s));
  for (int round = 0; round < 3; round++) {
    ASSERT_OK(cowmem_slot_instantiate(s, 1 * MiB, img));
    CHECK(expect_image(s, img));
    ASSERT_OK(cowmem_slot_grow(s, 2 * MiB));
    memset(cowmem_slot_base(s), 0xff - round, 2 * MiB);
    ASSERT_OK(cowmem_slot_reset(s));
    CHECK(expect_image(s, img));
  }
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  return 0;
}


static cowmem_slot_t* guard_slot;
static size_t guard_off;
static void touch_guard(void* arg) {
  (void)arg;
  ((volatile uint8_t*)cowmem_slot_base(guard_slot))[guard_off] = 1;
}

TEST_IMPL(guard_pages_fault) {
  setup();
  ASSERT_OK(cowmem_slot_new(64 * PS, &guard_slot));
  ASSERT_OK(cowmem_slot_instantiate(guard_slot, 4 * PS, NULL));
  guard_off = 4 * PS - 1;
  ASSERT_EQ(test_run_in_child(touch_guard, NULL), 0);
  guard_off = 4 * PS;
  ASSERT_EQ(test_run_in_child(touch_guard, NULL), SIGSEGV);
  guard_off = 64 * PS - 1;
  ASSERT_EQ(test_run_in_child(touch_guard, NULL), SIGSEGV);
  ASSERT_OK(cowmem_slot_grow(guard_slot, 8 * PS));
  guard_off = 4 * PS;
  ASSERT_EQ(test_run_in_child(touch_guard, NULL), 0);
  guard_off = 8 * PS;
  ASSERT_EQ(test_run_in_child(touch_guard, NULL), SIGSEGV);
  /* After reset the grown part is closed again. */
  ASSERT_OK(cowmem_slot_reset(guard_slot));
  guard_off = 4 * PS;
  ASSERT_EQ(test_run_in_child(touch_guard, NULL), SIGSEGV);
  ASSERT_OK(cowmem_slot_decommit(guard_slot));
  guard_off = 0;
  ASSERT_EQ(test_run_in_child(touch_guard, NULL), SIGSEGV);
  ASSERT_OK(cowmem_slot_free(guard_slot));
  return 0;
}

TEST_IMPL(misuse) {
  setup();
  cowmem_slot_t* s = NULL;
  ASSERT_ERR(cowmem_slot_new(0, &s), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_slot_new(PS + 1, &s), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_slot_new(PS, NULL), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_slot_new_at((void*)(uintptr_t)(PS + 8), PS, &s), COWMEM_EINVAL);
  ASSERT_NULL(s);
  ASSERT_ERR(cowmem_slot_instantiate(NULL, PS, NULL), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_slot_reset(NULL), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_new_from_bytes(NULL, 1, 0, NULL), COWMEM_EINVAL);
  cowmem_image_t* img = NULL;
  ASSERT_ERR(cowmem_image_new_from_bytes(NULL, 10, 0, &img), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_new_from_bytes("x", 1, UINT64_MAX, &img), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_info(NULL, NULL), COWMEM_EINVAL);

  img = make_image(2 * PS, PS, 1);
  ASSERT_OK(cowmem_slot_new(16 * PS, &s));
  ASSERT_ERR(cowmem_slot_reset(s), COWMEM_ESTATE);       /* reset while clean */
  ASSERT_ERR(cowmem_slot_grow(s, 2 * PS), COWMEM_ESTATE); /* grow while clean */
  ASSERT_ERR(cowmem_slot_instantiate(s, PS + 1, NULL), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_slot_instantiate(s, 17 * PS, NULL), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_slot_instantiate(s, 2 * PS, img), COWMEM_EINVAL); /* too big */
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_EMPTY);
  ASSERT_OK(cowmem_slot_instantiate(s, 4 * PS, img));
  ASSERT_ERR(cowmem_slot_instantiate(s, 4 * PS, img), COWMEM_ESTATE); /* dirty */
  ASSERT_ERR(cowmem_slot_grow(s, 2 * PS), COWMEM_EINVAL);   /* shrink */
  ASSERT_ERR(cowmem_slot_grow(s, 5 * PS + 3), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_slot_grow(s, 17 * PS), COWMEM_ERANGE);
  ASSERT_OK(cowmem_slot_grow(s, 4 * PS)); /* no-op */
  /* None of it disturbed the instance. */
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_DIRTY);
  ASSERT_UEQ(cowmem_slot_accessible(s), 4 * PS);
  CHECK(expect_image(s, img));
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_ERR(cowmem_slot_reset(s), COWMEM_ESTATE);
  ASSERT_OK(cowmem_slot_decommit(s));
  ASSERT_OK(cowmem_slot_decommit(s)); /* releasing an empty slot is fine */
  ASSERT_OK(cowmem_slot_free(s));
  ASSERT_OK(cowmem_slot_free(NULL));
  cowmem_image_release(img);
  cowmem_image_release(NULL);
  return 0;
}

/* A caller-reserved range: cowmem never unmaps any of it. */
TEST_IMPL(slot_in_caller_reservation) {
  setup();
  size_t len = 32 * PS;
  uint8_t* r = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_PTR_NE(r, MAP_FAILED);
  cowmem_image_t* img = make_image(0, PS, 3);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new_at(r + 8 * PS, 16 * PS, &s));
  ASSERT_PTR_EQ(cowmem_slot_base(s), r + 8 * PS);
  ASSERT_OK(cowmem_slot_instantiate(s, 2 * PS, img));
  CHECK(expect_image(s, img));
  ASSERT_OK(cowmem_slot_free(s));
  /* Still mapped (PROT_NONE): mprotect succeeds on every page. */
  ASSERT_EQ(mprotect(r, len, PROT_READ), 0);
  ASSERT_EQ(r[8 * PS], 0);
  ASSERT_EQ(munmap(r, len), 0);
  cowmem_image_release(img);
  return 0;
}

/* Each injected failure: the call reports the error; the slot is usable
 * afterwards (or released to EMPTY), and nothing leaks. */
TEST_IMPL(injected_failures) {
  setup();
  int fds_before = count_fds();
  cowmem_image_t* a = make_image(PS, 2 * PS, 0xa1);
  cowmem_image_t* b = make_image(0, PS, 0xb2);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &s));

  /* mprotect failing at instantiate: EMPTY, then usable. */
  cowmem__os_inject_fail(COWMEM__OS_mprotect, 0, ENOMEM);
  ASSERT_ERR(cowmem_slot_instantiate(s, 8 * PS, a), COWMEM_ENOMEM);
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_EMPTY);
  ASSERT_OK(cowmem_slot_instantiate(s, 8 * PS, a));
  CHECK(expect_image(s, a));
  memset(cowmem_slot_base(s), 0x33, 8 * PS);
  /* madvise failing at reset: released to EMPTY, none of the data stays. */
  cowmem__os_inject_fail(COWMEM__OS_madvise, 0, EAGAIN);
  ASSERT_ERR(cowmem_slot_reset(s), COWMEM_EAGAIN);
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_EMPTY);
  ASSERT_OK(cowmem_slot_instantiate(s, 8 * PS, a));
  CHECK(expect_image(s, a));
  ASSERT_OK(cowmem_slot_reset(s));
  /* Failing while switching images: taking a out is an mmap, or in the
   * fallback a discard. */
  cowmem__os_inject_fail(cowmem__os_has_memfd() ? COWMEM__OS_mmap : COWMEM__OS_madvise, 0, ENOMEM);
  ASSERT_ERR(cowmem_slot_instantiate(s, 8 * PS, b), COWMEM_ENOMEM);
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_EMPTY);
  ASSERT_OK(cowmem_slot_instantiate(s, 8 * PS, b));
  CHECK(expect_image(s, b));
  /* grow failing: still DIRTY at the old size, the new part inaccessible. */
  cowmem__os_inject_fail(COWMEM__OS_mprotect, 0, ENOMEM);
  ASSERT_ERR(cowmem_slot_grow(s, 16 * PS), COWMEM_ENOMEM);
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_DIRTY);
  ASSERT_UEQ(cowmem_slot_accessible(s), 8 * PS);
  ASSERT_OK(cowmem_slot_grow(s, 16 * PS));
  ASSERT_OK(cowmem_slot_reset(s));
  /* Reset failing and then the release failing too: BROKEN, then a retry
   * of release recovers. */
  ASSERT_OK(cowmem_slot_instantiate(s, 8 * PS, b));
  cowmem__os_inject_fail(COWMEM__OS_madvise, 0, EIO);
  cowmem__os_inject_fail(COWMEM__OS_mmap, 0, ENOMEM);
  ASSERT_ERR(cowmem_slot_reset(s), COWMEM_EIO);
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_BROKEN);
  ASSERT_ERR(cowmem_slot_instantiate(s, 8 * PS, b), COWMEM_EBROKEN);
  ASSERT_ERR(cowmem_slot_reset(s), COWMEM_EBROKEN);
  ASSERT_OK(cowmem_slot_decommit(s));
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_EMPTY);
  ASSERT_OK(cowmem_slot_instantiate(s, 8 * PS, b));
  CHECK(expect_image(s, b));
  ASSERT_OK(cowmem_slot_free(s));

  /* Reserving fails: no slot. */
  s = NULL;
  cowmem__os_inject_fail(COWMEM__OS_mmap, 0, ENOMEM);
  ASSERT_ERR(cowmem_slot_new(64 * PS, &s), COWMEM_ENOMEM);
  ASSERT_NULL(s);
  cowmem_image_release(a);
  cowmem_image_release(b);
  cowmem__os_inject_clear();
  ASSERT_EQ(count_fds(), fds_before);
  return 0;
}


static void print_to_file(const char* line, void* arg) { fputs(line, arg); }

TEST_IMPL(options_and_stats) {
  ASSERT_STR_EQ(cowmem_option_name(COWMEM_OPTION_FORCE_COPY), "FORCE_COPY");
  long old = cowmem_option_get(COWMEM_OPTION_VERBOSE);
  cowmem_option_set(COWMEM_OPTION_VERBOSE, 3);
  ASSERT_EQ(cowmem_option_get(COWMEM_OPTION_VERBOSE), 3);
  cowmem_option_set(COWMEM_OPTION_VERBOSE, old);
  ASSERT_EQ(cowmem_option_get((cowmem_option_t)999), 0);
  cowmem_stats_t st;
  cowmem_stats_get(&st);
  ASSERT_EQ(st.version, COWMEM_STATS_VERSION);
  char buf[4096] = {0};
  FILE* f = fmemopen(buf, sizeof buf - 1, "w");
  cowmem_stats_print(print_to_file, f);
  fclose(f);
  ASSERT_NOT_NULL(strstr(buf, "sys.madvise"));
  ASSERT_NOT_NULL(strstr(buf, "syscalls.total"));
  return 0;
}
TEST_MAIN(TEST_ENTRY(errors_have_names) TEST_ENTRY(slot_no_image) TEST_ENTRY(slot_images) TEST_ENTRY(reset_restores_every_page) TEST_ENTRY(guard_pages_fault) TEST_ENTRY(misuse) TEST_ENTRY(slot_in_caller_reservation) TEST_ENTRY(injected_failures) TEST_ENTRY(options_and_stats))
