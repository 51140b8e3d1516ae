/* Core tests: images and slots. Built twice: against the Linux backend and
 * against the portable one (test_core_posix), where every image is a COPY and
 * the memfd-only tests skip, saying so. */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <dirent.h>

#include "cowmem.h"
#include "image/image.h"
#include "internal.h"
#include "slot/slot.h"
#include "test.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static size_t PS;

static void setup(void) {
  PS = cowmem_page_size();
  cowmem__os_inject_clear();
}

/* Every byte of [off, off+len) of the slot equals v. */
static int expect_bytes(const cowmem_slot_t* s, size_t off, size_t len, uint8_t v) {
  const uint8_t* p = (const uint8_t*)cowmem_slot_base(s) + off;
  for (size_t i = 0; i < len; i++)
    if (p[i] != v) {
      fprintf(stderr, "byte %zu is 0x%02x, expected 0x%02x\n", off + i, p[i], v);
      return 1;
    }
  return 0;
}

/* The slot's accessible memory equals the image, and zeros elsewhere. */
static int expect_image(const cowmem_slot_t* s, const cowmem_image_t* img) {
  size_t n = cowmem_slot_accessible(s);
  uint8_t* want = malloc(n ? n : 1);
  if (want == NULL) return 1;
  memset(want, 0, n);
  if (img != NULL && cowmem_image_read(img, 0, want, n) != 0) {
    free(want);
    return 1;
  }
  const uint8_t* p = cowmem_slot_base(s);
  int r = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] != want[i]) {
      fprintf(stderr, "byte %zu is 0x%02x, expected 0x%02x\n", i, p[i], want[i]);
      r = 1;
      break;
    }
  free(want);
  return r;
}

static int count_fds(void) {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

/* An image of `len` bytes at `off`, every byte `fill`. */
static cowmem_image_t* make_image(size_t off, size_t len, uint8_t fill) {
  uint8_t* b = malloc(len);
  memset(b, fill, len);
  cowmem_image_t* img = NULL;
  if (cowmem_image_new_from_bytes(b, len, off, &img) != 0) img = NULL;
  free(b);
  return img;
}

static bool is_copy(const cowmem_image_t* img) {
  cowmem_image_info_t info;
  return cowmem_image_info(img, &info) == 0 && info.kind == COWMEM_IMAGE_COPY;
}

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

TEST_MAIN(TEST_ENTRY(errors_have_names) TEST_ENTRY(slot_no_image)
          TEST_ENTRY(slot_images) TEST_ENTRY(reset_restores_every_page)
          TEST_ENTRY(image_bytes_layout) TEST_ENTRY(image_holes_not_resident)
          TEST_ENTRY(image_sealed) TEST_ENTRY(file_image_shared_between_processes)
          TEST_ENTRY(file_image_mutable_is_copied) TEST_ENTRY(file_image_errors)
          TEST_ENTRY(guard_pages_fault) TEST_ENTRY(misuse)
          TEST_ENTRY(slot_in_caller_reservation) TEST_ENTRY(injected_failures)
          TEST_ENTRY(injected_image_failures) TEST_ENTRY(image_refcount)
          TEST_ENTRY(options_and_stats))
