/* The cowmem command on hostile inputs: each runs the command (its path in
 * COWMEM_TOOL) on a crafted file and asserts that it finishes, with the
 * right exit code and output. No time is asserted; ctest's timeout is the
 * bound (the old inspect took 44 s and 43 s on the first two). */
#include <cowmem.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "test.h"

static char dir[] = "/tmp/cowmem-hostile-XXXXXX";

/* Run `cowmem ARGS...`; *out (malloc'd, NUL-terminated) its stdout and
 * stderr, through a file in dir. */
static int run_tool(char** out, const char* const* args) {
  char cmd[4096], file[300];
  snprintf(file, sizeof file, "%s/out.txt", dir);
  size_t k = (size_t)snprintf(cmd, sizeof cmd, "'%s'", COWMEM_TOOL);
  for (int i = 0; args[i]; i++)
    k += (size_t)snprintf(cmd + k, sizeof cmd - k, " '%s'", args[i]);
  snprintf(cmd + k, sizeof cmd - k, " >'%s' 2>&1", file);
  int st = system(cmd);
  int fd = open(file, O_RDONLY);
  struct stat sb;
  *out = NULL;
  if (fd < 0 || fstat(fd, &sb) != 0) return -1;
  *out = calloc(1, (size_t)sb.st_size + 1);
  if (*out && read(fd, *out, (size_t)sb.st_size) != sb.st_size) (*out)[0] = 0;
  close(fd);
  unlink(file);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Unsigned LEB128 of v at b + *n. */
static void leb(uint8_t* b, size_t* n, uint64_t v) {
  for (;;) {
    uint8_t low = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v == 0) {
      b[(*n)++] = low;
      return;
    }
    b[(*n)++] = (uint8_t)(low | 0x80);
  }
}

static int write_file(const char* path, const void* p, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  ssize_t w = write(fd, p, n);
  close(fd);
  return w == (ssize_t)n ? 0 : -1;
}

/* 10^5 memories and 10^5 empty active segments, one per memory. */
TEST_IMPL(inspect_memories_by_segments) {
  ASSERT_NOT_NULL(mkdtemp(dir));
  enum { N = 100000 };
  uint8_t* b = malloc(16 * N + 64);
  ASSERT_NOT_NULL(b);
  size_t n = 0;
  memcpy(b, "\0asm\1\0\0\0", 8);
  n = 8;
  uint8_t* body = malloc(16 * N);
  size_t bn = 0;
  leb(body, &bn, N);
  for (int i = 0; i < N; i++) body[bn++] = 0x00, body[bn++] = 0x00;
  b[n++] = 5;
  leb(b, &n, bn);
  memcpy(b + n, body, bn), n += bn;
  bn = 0;
  leb(body, &bn, N);
  for (int i = 0; i < N; i++) {
    body[bn++] = 0x02;
    leb(body, &bn, (uint64_t)i);
    body[bn++] = 0x41, body[bn++] = 0x00, body[bn++] = 0x0b, body[bn++] = 0x00;
  }
  b[n++] = 11;
  leb(b, &n, bn);
  memcpy(b + n, body, bn), n += bn;
  char path[256];
  snprintf(path, sizeof path, "%s/many.wasm", dir);
  ASSERT_EQ(write_file(path, b, n), 0);
  free(b);
  free(body);
  char* out = NULL;
  ASSERT_EQ(run_tool(&out, (const char*[]){"inspect", path, "--json", NULL}), 0);
  ASSERT_NOT_NULL(strstr(out, "\"segment_count\": 100000"));
  ASSERT_NOT_NULL(strstr(out, "\"index\": 99999, \"imported\": false"));
  free(out);
  ASSERT_EQ(run_tool(&out, (const char*[]){"inspect", path, NULL}), 0);
  ASSERT_NOT_NULL(strstr(out, "memory 99999: defined, 0 pages initial"));
  free(out);
  unlink(path);
  rmdir(dir);
  return 0;
}

/* An image file of 8 KiB on disk whose header (checksum recomputed) says
 * its one image is 64 GiB: inspect reads what the file holds. */
TEST_IMPL(inspect_sparse_claim) {
  ASSERT_NOT_NULL(mkdtemp(dir));
  size_t ps = cowmem_page_size();
  char path[256];
  snprintf(path, sizeof path, "%s/claim.cwimg", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  uint8_t* page = calloc(1, ps);
  ASSERT_NOT_NULL(page);
  page[7] = 0x42;
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_bytes(page, ps, 0, &img));
  cowmem_imgfile_memory_t m = {0};
  m.memory64 = true;
  m.min_pages = (uint64_t)1 << 20; /* 64 GiB */
  m.image = img;
  ASSERT_OK(cowmem_imgfile_write(fd, &m, 1, NULL));
  cowmem_image_release(img);
  /* Forge: image length 64 GiB in memory and file, file size to match. */
  uint64_t len = (uint64_t)1 << 36, size = ps + len;
  uint8_t hdr[176];
  ASSERT_EQ(pread(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
  for (int i = 0; i < 8; i++) {
    hdr[24 + i] = (uint8_t)(size >> (8 * i));
    hdr[96 + 32 + i] = hdr[96 + 48 + i] = (uint8_t)(len >> (8 * i));
  }
  memset(hdr + 64, 0, 32);
  cowmem_sha256(hdr, sizeof hdr, hdr + 64);
  ASSERT_EQ(pwrite(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
  ASSERT_EQ(ftruncate(fd, (off_t)size), 0);
  close(fd);
  free(page);
  char* out = NULL;
  ASSERT_EQ(run_tool(&out, (const char*[]){"inspect", path, NULL}), 0);
  ASSERT_NOT_NULL(strstr(out, "length 68719476736, resident 4096 bytes, 1 holes "
                              "(68719472640 bytes)"));
  free(out);
  unlink(path);
  rmdir(dir);
  return 0;
}

/* A descriptor with a maximum but without the has-max flag (checksum
 * recomputed) is refused, not read as "no maximum". */
TEST_IMPL(forged_max_without_flag) {
  char path[] = "/tmp/cowmem-forged-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  cowmem_imgfile_memory_t m = {0};
  m.min_pages = 1;
  ASSERT_OK(cowmem_imgfile_write(fd, &m, 1, NULL));
  uint8_t hdr[176];
  ASSERT_EQ(pread(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
  hdr[96 + 16] = 5; /* max_pages 5, flags without has-max */
  memset(hdr + 64, 0, 32);
  cowmem_sha256(hdr, sizeof hdr, hdr + 64);
  ASSERT_EQ(pwrite(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
  cowmem_imgfile_t* f = NULL;
  cowmem_diag_t d;
  ASSERT_ERR(cowmem_imgfile_open(fd, NULL, 0, &f, &d), COWMEM_EBADIMG);
  ASSERT_NULL(f);
  ASSERT_NOT_NULL(strstr(d.reason, "maximum without the flag"));
  close(fd);
  return 0;
}

/* A folder: a clear error (is a directory), not "Input/output error". */
TEST_IMPL(inspect_folder) {
  ASSERT_NOT_NULL(mkdtemp(dir));
  char* out = NULL;
  ASSERT_EQ(run_tool(&out, (const char*[]){"inspect", dir, NULL}), 1);
  ASSERT_NOT_NULL(strstr(out, strerror(EISDIR)));
  ASSERT_NULL(strstr(out, strerror(EIO)));
  free(out);
  rmdir(dir);
  return 0;
}

TEST_MAIN(TEST_ENTRY(inspect_folder) TEST_ENTRY(forged_max_without_flag) TEST_ENTRY(inspect_memories_by_segments) TEST_ENTRY(inspect_sparse_claim))
