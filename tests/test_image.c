/* Images: their bytes and holes, sealed memfds, file images shared between
 * processes or copied, errors, injected failures and reference counts.
 * Built twice: against the Linux backend and the portable one. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "image/image.h"
#include "image/lines.h"
#include "dirty.h"
#include "test_slots.h"

TEST_IMPL(image_bytes_layout) {
  setup();
  /* Leading and trailing zero pages are not part of the image. */
  size_t n = 10 * PS;
  uint8_t* data = calloc(1, n);
  data[3 * PS + 1] = 9;
  data[6 * PS] = 8;
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_bytes(data, n, 2 * PS, &img));
  cowmem_image_info_t info;
  ASSERT_OK(cowmem_image_info(img, &info));
  ASSERT_UEQ(info.mem_offset, 5 * PS);
  ASSERT_UEQ(info.len, 4 * PS);
  ASSERT_UEQ(info.data_pages, 2);
  uint8_t got[4];
  ASSERT_OK(cowmem_image_read(img, 5 * PS, got, 2));
  ASSERT_EQ(got[0], 0);
  ASSERT_EQ(got[1], 9);
  ASSERT_OK(cowmem_image_read(img, 8 * PS, got, 1));
  ASSERT_EQ(got[0], 8);
  cowmem_image_release(img);
  /* All zeros: an empty image that instantiates as no image. */
  memset(data, 0, n);
  ASSERT_OK(cowmem_image_new_from_bytes(data, n, 0, &img));
  ASSERT_OK(cowmem_image_info(img, &info));
  ASSERT_UEQ(info.len, 0);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(16 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, PS, img));
  CHECK(expect_bytes(s, 0, PS, 0));
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  free(data);
  return 0;
}

TEST_IMPL(image_holes_not_resident) {
  setup();
  size_t n = 64 * PS;
  uint8_t* data = calloc(1, n);
  data[0] = 1;
  data[40 * PS + 7] = 2;
  data[63 * PS] = 3;
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_bytes(data, n, 0, &img));
  free(data);
  if (is_copy(img)) {
    /* The fallback keeps the image in anonymous memory: only the three data
     * pages were ever written, so only they are resident. */
    size_t resident = 0;
    cowmem_image_info_t info;
    ASSERT_OK(cowmem_image_info(img, &info));
    ASSERT_TRUE(cowmem__image_readable(img));
    uint8_t* bytes = (uint8_t*)cowmem__image_page(img, 0); /* COPY: its memory */
    ASSERT_EQ(cowmem__os_resident(bytes, info.len, &resident), 0);
    ASSERT_UEQ(resident, 3 * PS);
    cowmem_image_release(img);
    return 0;
  }
  cowmem_image_info_t info;
  ASSERT_OK(cowmem_image_info(img, &info));
  ASSERT_UEQ(info.len, n);
  ASSERT_UEQ(info.data_pages, 3);
  struct stat st;
  ASSERT_EQ(fstat(info.fd, &st), 0);
  ASSERT_EQ((int64_t)st.st_size, (int64_t)n);
  /* Only the three written pages hold storage. */
  ASSERT_EQ((int64_t)st.st_blocks * 512, (int64_t)(3 * PS));
  /* And mapping the image and reading it all does not fill the holes. */
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(128 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 64 * PS, img));
  CHECK(expect_image(s, img));
  ASSERT_EQ(fstat(info.fd, &st), 0);
  ASSERT_EQ((int64_t)st.st_blocks * 512, (int64_t)(3 * PS));
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  return 0;
}

TEST_IMPL(image_sealed) {
  setup();
  cowmem_image_t* img = make_image(0, PS, 0x5a);
  ASSERT_NOT_NULL(img);
  if (is_copy(img)) {
    cowmem_image_release(img);
    TEST_SKIP("fallback build: no memfd to seal; COPY images are read-only memory");
  }
  cowmem_image_info_t info;
  ASSERT_OK(cowmem_image_info(img, &info));
  ASSERT_EQ(pwrite(info.fd, "x", 1, 0), -1);
  ASSERT_EQ(errno, EPERM);
  ASSERT_EQ(ftruncate(info.fd, 0), -1);
  ASSERT_EQ(errno, EPERM);
  ASSERT_EQ(ftruncate(info.fd, 2 * PS), -1);
  ASSERT_EQ(errno, EPERM);
  void* m = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_SHARED, info.fd, 0);
  ASSERT_PTR_EQ(m, MAP_FAILED);
  ASSERT_EQ(errno, EPERM);
  ASSERT_EQ(fcntl(info.fd, F_ADD_SEALS, 0), -1); /* F_SEAL_SEAL */
  ASSERT_EQ(errno, EPERM);
  cowmem_image_release(img);
  return 0;
}

static int write_temp_file(const uint8_t* data, size_t n, char* path) {
  strcpy(path, "/tmp/cowmem-test-XXXXXX");
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  if (write(fd, data, n) != (ssize_t)n) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Proportional set size of the mappings inside [lo, hi) of this process. */
static long pss_kib_in(const void* lo, const void* hi) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return -1;
  char line[512];
  long total = 0;
  bool in = false;
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b;
    if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      in = a >= (uintptr_t)lo && b <= (uintptr_t)hi;
      continue;
    }
    long kb;
    if (in && sscanf(line, "Pss: %ld kB", &kb) == 1) total += kb;
  }
  fclose(f);
  return total;
}

TEST_IMPL(file_image_shared_between_processes) {
  setup();
  size_t n = 256 * PS;
  uint8_t* data = malloc(n);
  for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i % 251 + 1);
  char path[64];
  int fd = write_temp_file(data, n, path);
  ASSERT_GE(fd, 0);
  unlink(path);
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_file(fd, 0, n, 0, COWMEM_IMAGE_FILE_IMMUTABLE, &img));
  close(fd);
  if (is_copy(img)) {
    cowmem_image_release(img);
    free(data);
    TEST_SKIP("fallback build: file images are copies, not shared mappings");
  }
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(512 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 256 * PS, img));
  CHECK(expect_image(s, img));
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    /* Child: its own instance of the image, touched everywhere. */
    cowmem_slot_t* cs = NULL;
    char c = 0;
    if (cowmem_slot_new(512 * PS, &cs) || cowmem_slot_instantiate(cs, 256 * PS, img)) _exit(3);
    unsigned sum = 0;
    for (size_t i = 0; i < n; i += PS) sum += ((volatile uint8_t*)cowmem_slot_base(cs))[i];
    if (sum == 0) _exit(6);
    ((uint8_t*)cowmem_slot_base(cs))[0] = 0xee; /* a private write */
    if (write(to_parent[1], "r", 1) != 1 || read(to_child[0], &c, 1) != 1) _exit(4);
    _exit(((uint8_t*)cowmem_slot_base(cs))[PS] == data[PS] ? 0 : 5);
  }
  char c;
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  /* Both processes map the same page cache pages: each pays half. */
  long pss = pss_kib_in(cowmem_slot_base(s), (uint8_t*)cowmem_slot_base(s) + 512 * PS);
  long full = (long)(n / 1024);
  ((uint8_t*)cowmem_slot_base(s))[PS] = 0x77; /* the child must not see it */
  ASSERT_EQ(write(to_child[1], "g", 1), 1);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  fprintf(stderr, "image %ld KiB, parent PSS %ld KiB\n", full, pss);
  ASSERT_LE(pss, full / 2 + 8);
  ASSERT_EQ(((uint8_t*)cowmem_slot_base(s))[0], data[0]); /* not the child's 0xee */
  close(to_child[0]); close(to_child[1]); close(to_parent[0]); close(to_parent[1]);
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  free(data);
  return 0;
}

/* A file that is not declared immutable is copied: later writes to the file
 * never reach an instance. */
TEST_IMPL(file_image_mutable_is_copied) {
  setup();
  size_t n = 8 * PS;
  uint8_t* data = malloc(n);
  memset(data, 0x42, n);
  char path[64];
  int fd = write_temp_file(data, n, path);
  ASSERT_GE(fd, 0);
  unlink(path);
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_file(fd, 2 * PS, 4 * PS, 0, 0, &img));
  cowmem_image_info_t info;
  ASSERT_OK(cowmem_image_info(img, &info));
  ASSERT_NE(info.kind, COWMEM_IMAGE_FILE);
  memset(data, 0x99, n);
  ASSERT_EQ(pwrite(fd, data, n, 0), (ssize_t)n);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(16 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 8 * PS, img));
  CHECK(expect_bytes(s, 0, 4 * PS, 0x42));
  CHECK(expect_bytes(s, 4 * PS, 4 * PS, 0));
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  close(fd);
  free(data);
  return 0;
}

TEST_IMPL(file_image_errors) {
  setup();
  size_t n = 4 * PS + 100;
  uint8_t* data = malloc(n);
  memset(data, 1, n);
  char path[64];
  int fd = write_temp_file(data, n, path);
  ASSERT_GE(fd, 0);
  unlink(path);
  cowmem_image_t* img = NULL;
  unsigned im = COWMEM_IMAGE_FILE_IMMUTABLE;
  ASSERT_ERR(cowmem_image_new_from_file(fd, 1, PS, 0, im, &img), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_new_from_file(fd, 0, PS, 7, im, &img), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_new_from_file(fd, 0, 0, 0, im, &img), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_new_from_file(fd, 0, 8 * PS, 0, im, &img), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_new_from_file(fd, 0, PS + 1, 0, im, &img), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_new_from_file(fd, 0, PS, 0, 0x80, &img), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_new_from_file(-1, 0, PS, 0, im, &img), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_image_new_from_file(1000, 0, PS, 0, im, &img), COWMEM_EBADF);
  ASSERT_NULL(img);
  /* A range ending at EOF mid-page: the rest of the page reads as zeros. */
  ASSERT_OK(cowmem_image_new_from_file(fd, 4 * PS, 100, 0, im, &img));
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(4 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, PS, img));
  CHECK(expect_bytes(s, 0, 100, 1));
  CHECK(expect_bytes(s, 100, PS - 100, 0));
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  close(fd);
  free(data);
  return 0;
}


TEST_IMPL(injected_image_failures) {
  setup();
  int fds_before = count_fds();
  cowmem_stats_t st0, st1;
  cowmem_stats_get(&st0);
  uint8_t data[3 * 4096];
  memset(data, 7, sizeof data);
  cowmem_image_t* img = NULL;
  /* memfd_create unavailable: the image is a COPY with the same contents. */
  cowmem__os_inject_fail(COWMEM__OS_memfd_create, 0, ENOSYS);
  ASSERT_OK(cowmem_image_new_from_bytes(data, sizeof data, 0, &img));
  ASSERT_TRUE(is_copy(img));
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(16 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 4 * PS, img));
  CHECK(expect_bytes(s, 0, sizeof data, 7));
  ((uint8_t*)cowmem_slot_base(s))[5] = 0;
  ASSERT_OK(cowmem_slot_reset(s));
  CHECK(expect_bytes(s, 0, sizeof data, 7));
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  img = NULL;
  if (cowmem__os_has_memfd()) {
    /* A write or seal failing for another reason is an error, without a
     * leaked fd. */
    cowmem__os_inject_fail(COWMEM__OS_write, 0, EIO);
    ASSERT_ERR(cowmem_image_new_from_bytes(data, sizeof data, 0, &img), COWMEM_EIO);
    cowmem__os_inject_fail(COWMEM__OS_ftruncate, 0, ENOSPC);
    ASSERT_ERR(cowmem_image_new_from_bytes(data, sizeof data, 0, &img), COWMEM_ENOSPC);
    cowmem__os_inject_fail(COWMEM__OS_fcntl, 0, EBUSY);
    ASSERT_ERR(cowmem_image_new_from_bytes(data, sizeof data, 0, &img), COWMEM_EBUSY);
    ASSERT_NULL(img);
  }
  /* The fallback's own mapping failing. */
  cowmem_option_set(COWMEM_OPTION_FORCE_COPY, 1);
  cowmem__os_inject_fail(COWMEM__OS_mmap, 0, ENOMEM);
  ASSERT_ERR(cowmem_image_new_from_bytes(data, sizeof data, 0, &img), COWMEM_ENOMEM);
  ASSERT_NULL(img);
  cowmem_option_set(COWMEM_OPTION_FORCE_COPY, 0);
  cowmem__os_inject_clear();
  ASSERT_EQ(count_fds(), fds_before);
  cowmem_stats_get(&st1);
  ASSERT_UEQ(st1.images_live, st0.images_live);
  return 0;
}

/* The image outlives the caller's reference while a slot holds it. */
/* A reset restores its pages with one call over many ranges, walking the
 * image's runs once: ranges before the image, across its start, in a hole,
 * across holes and runs, across its end and after it each get exactly the
 * image's bytes and zeros, and no byte outside them is written. */
TEST_IMPL(image_restore_ranges) {
  setup();
  /* Memory pages [3, 15) hold the image; relative pages 2, 5, 6 and 9 are
   * zeros: runs [0, 2), [3, 5), [7, 9), [10, 12). */
  size_t first = 3, npages = 12, mem = 20;
  uint8_t* data = malloc(npages * PS);
  for (size_t i = 0; i < npages * PS; i++)
    data[i] = (uint8_t)(i * 7 + i / PS) | 1;
  size_t holes[] = {2, 5, 6, 9};
  for (size_t i = 0; i < sizeof holes / sizeof holes[0]; i++)
    memset(data + holes[i] * PS, 0, PS);
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_bytes(data, npages * PS, first * PS, &img));
  ASSERT_TRUE(cowmem__image_readable(img));
  uint8_t* want = calloc(mem, PS);
  memcpy(want + first * PS, data, npages * PS);
  uint8_t* m = aligned_alloc(PS, mem * PS);
  size_t ranges[][2] = {{0, 1}, {2, 4}, {5, 6}, {6, 8}, {9, 14}, {14, 17}, {18, 20}};
  size_t nr = sizeof ranges / sizeof ranges[0];
  cowmem__os_range_t r[sizeof ranges / sizeof ranges[0]];
  for (int own = 0; own < 2; own++) {
    memset(m, 0xaa, mem * PS);
    for (size_t i = 0; i < nr; i++) {
      r[i].addr = m + ranges[i][0] * PS;
      r[i].len = (ranges[i][1] - ranges[i][0]) * PS;
    }
    ASSERT_OK(cowmem__image_restore_many(img, m, r, nr, own, false));
    for (size_t p = 0, i = 0; p < mem; p++) {
      while (i < nr && ranges[i][1] <= p) i++;
      bool in = i < nr && ranges[i][0] <= p;
      if (in)
        CHECK(same_bytes(m + p * PS, want + p * PS, PS, "restored page"));
      else
        for (size_t b = 0; b < PS; b++)
          ASSERT_EQ(m[p * PS + b], 0xaa);
    }
  }
  free(m);
  free(want);
  free(data);
  cowmem_image_release(img);
  return 0;
}

/* Restores compare a line at a time and write the lines that differ
 * (image/lines.h): whichever lines and however many an instance changed,
 * with comparing on and off, every restored byte is the image's and no
 * byte outside the range is touched, at any start and length. */
static int lines_case(const uint8_t* src, uint8_t* buf, size_t cap, size_t off, size_t len,
                      const size_t* flips, size_t nflips) {
  for (int own = 0; own < 2; own++) {
    memset(buf, 0xc3, cap);
    memcpy(buf + off, src + off, len);
    for (size_t i = 0; i < nflips; i++)
      if (flips[i] < len) buf[off + flips[i]] ^= 0x5a;
    cowmem__lines_copy(buf + off, src + off, len, own);
    CHECK(same_bytes(buf + off, src + off, len, "copied lines"));
    for (size_t i = 0; i < cap; i++)
      if (i < off || i >= off + len) ASSERT_EQ(buf[i], 0xc3);
  }
  return 0;
}

TEST_IMPL(image_restore_lines) {
  setup();
  size_t cap = 4 * 4096 + 256;
  /* aligned_alloc wants a multiple of the alignment */
  uint8_t* src = aligned_alloc(4096, 5 * 4096);
  uint8_t* buf = aligned_alloc(4096, 5 * 4096);
  for (size_t i = 0; i < cap; i++)
    src[i] = (uint8_t)(i * 13 + i / 4096 + 1);
  /* Lines changed: none, the first, the last, one in the middle, seven,
   * eight and nine spread over a block (around where the rest is copied
   * whole), every other line, every line, and bytes across a block's end. */
  size_t none[1], first[] = {0}, last[] = {4095}, mid[] = {2048 + 17};
  size_t spread[9], alt[32], all[64], across[] = {4095, 4096, 8191, 8192};
  for (size_t i = 0; i < 9; i++)
    spread[i] = i * 448 + i;
  for (size_t i = 0; i < 32; i++)
    alt[i] = i * 128 + 5;
  for (size_t i = 0; i < 64; i++)
    all[i] = i * 64 + (i % 64);
  struct {
    const size_t* at;
    size_t n;
  } pats[] = {{none, 0}, {first, 1}, {last, 1}, {mid, 1}, {spread, 7}, {spread, 8},
              {spread, 9}, {alt, 32}, {all, 64}, {across, 4}};
  size_t offs[] = {0, 1, 63, 64, 4000, 4096};
  size_t lens[] = {1, 63, 64, 65, 4096, 4096 + 100, 3 * 4096 - 7, 3 * 4096};
  /* modes: plain copies; comparing; comparing where the page may map the
   * image and copying plainly where it is owned (what a machine whose
   * plain copy is the faster measures) */
  for (int mode = 0; mode < 3; mode++) {
    bool on = cowmem__lines_compare_set(mode >= 1);
    if (mode == 2) cowmem__lines_own_compare_set(false);
    if (mode == 1 && !on) fprintf(stderr, "note: no AVX2 here, restores copy plainly\n");
    for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++)
      for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (size_t p = 0; p < sizeof pats / sizeof pats[0]; p++) {
          if (offs[o] + lens[l] > cap) continue;
          CHECK(lines_case(src, buf, cap, offs[o], lens[l], pats[p].at, pats[p].n));
        }
  }
  cowmem__lines_compare_set(true);
  free(src);
  free(buf);
  return 0;
}

/* Comparing leaves a page nobody changed as it was: a restore over an
 * image page the slot still maps from the image's memfd keeps mapping it
 * (nothing is copied, no page of the slot's own is made), where a plain
 * copy would have written it and made one. That holds whichever way the
 * machine measured owned pages to be faster (ways: 0 comparing, 1
 * comparing but owned pages copied plainly, 2 plain copies). */
TEST_IMPL(image_restore_keeps_clean_pages) {
  setup();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  if (!cowmem__lines_compare_set(true)) TEST_SKIP("no AVX2: restores copy plainly");
  cowmem_image_t* img = make_image(0, 4 * PS, 0x37);
  ASSERT_TRUE(cowmem__image_readable(img));
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(8 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 8 * PS, img));
  uint8_t* base = cowmem_slot_base(s);
  base[2 * PS + 100] = 1; /* one line of page 2 */
  for (int way = 0; way < 3; way++) {
    cowmem__lines_compare_set(way < 2);
    if (way == 1) ASSERT_FALSE(cowmem__lines_own_compare_set(false));
    /* Read every page first: a restore of a page not yet mapped reads it. */
    uint64_t sum = 0;
    for (size_t p = 0; p < 4; p++)
      sum += ((volatile uint8_t*)base)[p * PS];
    ASSERT_UEQ(sum, 4 * 0x37);
    ASSERT_OK(cowmem__image_restore(img, base, 0, 4 * PS, false));
    CHECK(expect_bytes(s, 0, 4 * PS, 0x37));
    size_t written = written_pages(base, 4 * PS);
    /* Comparing: page 2 only (the instance's own copy, now the image's
     * bytes again). Plainly: every page. */
    ASSERT_UEQ(written, way == 2 ? 4 : 1);
  }
  cowmem__lines_compare_set(true);
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  return 0;
}

/* Which way owned pages take is measured: the answer is the faster of the
 * two figures it measured, and on a machine that compares at all both
 * were measured. */
TEST_IMPL(image_restore_measured) {
  setup();
  uint64_t cmp = 0, copy = 0;
  bool on = cowmem__lines_measure(&cmp, &copy);
  if (!cowmem__lines_compare_set(true)) {
    ASSERT_FALSE(on);
    TEST_SKIP("no AVX2: restores copy plainly");
  }
  fprintf(stderr, "note: 8 pages with a line changed: comparing %llu ns, copying %llu ns\n",
          (unsigned long long)cmp, (unsigned long long)copy);
  ASSERT_TRUE(cmp > 0 && copy > 0);
  ASSERT_TRUE(cmp < copy ? on : !on);
  cowmem__lines_compare_set(true);
  return 0;
}

TEST_IMPL(image_refcount) {
  setup();
  cowmem_stats_t st;
  cowmem_stats_get(&st);
  uint64_t live0 = st.images_live;
  cowmem_image_t* img = make_image(0, 2 * PS, 0x61);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(8 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 4 * PS, img));
  cowmem_image_release(img);
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, live0 + 1);
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_OK(cowmem_slot_instantiate(s, 4 * PS, cowmem_slot_image(s)));
  CHECK(expect_bytes(s, 0, 2 * PS, 0x61));
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_OK(cowmem_slot_decommit(s));
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, live0);
  ASSERT_OK(cowmem_slot_free(s));
  return 0;
}

TEST_MAIN(TEST_ENTRY(image_bytes_layout) TEST_ENTRY(image_holes_not_resident) TEST_ENTRY(image_sealed) TEST_ENTRY(file_image_shared_between_processes) TEST_ENTRY(file_image_mutable_is_copied) TEST_ENTRY(file_image_errors) TEST_ENTRY(injected_image_failures) TEST_ENTRY(image_refcount) TEST_ENTRY(image_restore_ranges) TEST_ENTRY(image_restore_lines) TEST_ENTRY(image_restore_keeps_clean_pages) TEST_ENTRY(image_restore_measured))
