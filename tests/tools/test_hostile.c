/* The cowmem command on hostile inputs: each runs the command (its path in
 * COWMEM_TOOL) on a crafted file and asserts that it finishes, with the
 * right exit code and output. No time is asserted; ctest's timeout is the
 * bound (the old inspect took 44 s and 43 s on the first two). */
#include <cowmem.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test.h"

static char dir[] = "/tmp/cowmem-hostile-XXXXXX";

/* Minor page faults of the last run_tool's command (and its shell): a
 * count, unlike a time, does not depend on the machine's load. */
static long last_minflt;

/* Run `cowmem ARGS...`; *out (malloc'd, NUL-terminated) its stdout and
 * stderr, through a file in dir. */
static int run_tool(char** out, const char* const* args) {
  char cmd[4096], file[300];
  snprintf(file, sizeof file, "%s/out.txt", dir);
  size_t k = (size_t)snprintf(cmd, sizeof cmd, "'%s'", COWMEM_TOOL);
  for (int i = 0; args[i]; i++)
    k += (size_t)snprintf(cmd + k, sizeof cmd - k, " '%s'", args[i]);
  snprintf(cmd + k, sizeof cmd - k, " >'%s' 2>&1", file);
  struct rusage before, after;
  getrusage(RUSAGE_CHILDREN, &before);
  int st = system(cmd);
  getrusage(RUSAGE_CHILDREN, &after);
  last_minflt = after.ru_minflt - before.ru_minflt;
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

static const uint8_t wasm_header[8] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00};

/* path = dir/name holding the module header then n section bytes. */
static int write_module(char* path, size_t size, const char* name, const uint8_t* sec,
                        size_t n) {
  uint8_t b[256];
  if (n > sizeof b - 8) return -1;
  memcpy(b, wasm_header, 8);
  memcpy(b + 8, sec, n);
  snprintf(path, size, "%s/%s", dir, name);
  return write_file(path, b, n + 8);
}

/* (memory 65536) with one byte, 0x5a, at 4 GiB - 1: the dump is a 4 GiB
 * sparse file with that byte, made in work proportional to the data. The
 * old dump read every page of the 4 GiB (2^20 page faults). */
TEST_IMPL(dump_sparse_claim) {
  ASSERT_NOT_NULL(mkdtemp(dir));
  static const uint8_t sec[] = {0x05, 0x05, 0x01, 0x00, 0x80, 0x80, 0x04, /* memory */
                                0x0b, 0x07, 0x01, 0x00, 0x41, 0x7f, 0x0b, 0x01, 0x5a};
  char path[256], out_path[300];
  ASSERT_EQ(write_module(path, sizeof path, "big.wasm", sec, sizeof sec), 0);
  snprintf(out_path, sizeof out_path, "%s/big.bin", dir);
  char* out = NULL;
  ASSERT_EQ(run_tool(&out, (const char*[]){"dump", path, "-o", out_path, NULL}), 0);
  free(out);
  ASSERT_LT(last_minflt, 100000); /* the old dump: more than 1048576 */
  int fd = open(out_path, O_RDONLY);
  ASSERT_GE(fd, 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  ASSERT_UEQ((uint64_t)st.st_size, (uint64_t)1 << 32);
  ASSERT_LT(st.st_blocks * 512, 1 << 20); /* holes, not 4 GiB of zeros */
  uint8_t tail[2];
  ASSERT_EQ(pread(fd, tail, 2, ((off_t)1 << 32) - 2), 2);
  ASSERT_EQ(tail[0], 0);
  ASSERT_EQ(tail[1], 0x5a);
  close(fd);
  unlink(out_path);
  unlink(path);
  rmdir(dir);
  return 0;
}

/* (memory 1) (memory 1), memory 1's second segment at 65535 with 2 bytes:
 * instantiation traps, so dumping memory 0 (whose own segment fits) has
 * nothing to show: exit 1 naming the trap, no output. */
TEST_IMPL(dump_trap_in_other_memory) {
  ASSERT_NOT_NULL(mkdtemp(dir));
  static const uint8_t sec[] = {
      0x05, 0x05, 0x02, 0x00, 0x01, 0x00, 0x01,                         /* memories */
      0x0b, 0x11, 0x02, 0x00, 0x41, 0x00, 0x0b, 0x01, 0x11,             /* mem 0 @0 */
      0x02, 0x01, 0x41, 0xff, 0xff, 0x03, 0x0b, 0x02, 0x22, 0x33};     /* mem 1 @65535 */
  char path[256], out_path[300];
  ASSERT_EQ(write_module(path, sizeof path, "trap.wasm", sec, sizeof sec), 0);
  snprintf(out_path, sizeof out_path, "%s/trap.bin", dir);
  char* out = NULL;
  ASSERT_EQ(run_tool(&out, (const char*[]){"dump", path, "--memory", "0", "-o", out_path,
                                           NULL}),
            1);
  ASSERT_NOT_NULL(strstr(out, "instantiation traps: out of bounds memory access"));
  free(out);
  ASSERT_NE(access(out_path, F_OK), 0);
  unlink(path);
  rmdir(dir);
  return 0;
}

/* A module whose memory's two segments are instantiation's (one at an
 * imported global's value), compiled; then one descriptor field forged at
 * a time with the header hash recomputed. The opener cannot tell (the
 * module hash is right); the module can. */
TEST_IMPL(forged_descriptor_vs_module) {
  ASSERT_NOT_NULL(mkdtemp(dir));
  static const uint8_t sec[] = {
      0x02, 0x08, 0x01, 0x01, 0x6d, 0x01, 0x67, 0x03, 0x7f, 0x00, /* import m.g i32 */
      0x05, 0x03, 0x01, 0x00, 0x01,                               /* memory 1 */
      0x0b, 0x10, 0x02, 0x00, 0x23, 0x00, 0x0b, 0x02, 0x61, 0x62, /* at g: "ab" */
      0x00, 0x41, 0x10, 0x0b, 0x03, 0x78, 0x79, 0x7a};            /* at 16: "xyz" */
  char wasm[256], img[300], bin[300];
  ASSERT_EQ(write_module(wasm, sizeof wasm, "g.wasm", sec, sizeof sec), 0);
  snprintf(img, sizeof img, "%s/g.cwimg", dir);
  snprintf(bin, sizeof bin, "%s/g.bin", dir);
  cowmem_module_t* m = NULL;
  uint8_t bytes[64];
  memcpy(bytes, wasm_header, 8);
  memcpy(bytes + 8, sec, sizeof sec);
  ASSERT_OK(cowmem_module_parse(bytes, 8 + sizeof sec, 0, &m, NULL));
  static const struct {
    unsigned at, value; /* descriptor byte and its forged value */
    const char* field;
  } forge[] = {
      {64, 0, "segments_left is 0 in the file, 2 for the module"},
      {4, 0x2, "the memory64 flag is 1 in the file, 0 for the module"},
      {8, 2, "min_pages is 2 in the file, 1 for the module"},
      {68, 0, "the no-image reason is 0 in the file, 2 for the module"},
  };
  for (size_t k = 0; k < sizeof forge / sizeof forge[0]; k++) {
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_OK(cowmem_module_compile(m, fd));
    cowmem_imgfile_t* f = NULL;
    ASSERT_OK(cowmem_imgfile_open(fd, NULL, 0, &f, NULL));
    ASSERT_OK(cowmem_imgfile_check_module(f, m, NULL)); /* as compiled: fine */
    cowmem_imgfile_free(f);
    uint8_t hdr[176];
    ASSERT_EQ(pread(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
    hdr[96 + forge[k].at] = (uint8_t)forge[k].value;
    memset(hdr + 64, 0, 32);
    cowmem_sha256(hdr, sizeof hdr, hdr + 64);
    ASSERT_EQ(pwrite(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
    uint8_t mh[32];
    ASSERT_OK(cowmem_module_hash(m, mh));
    ASSERT_OK(cowmem_imgfile_open(fd, mh, 0, &f, NULL)); /* the hash cannot tell */
    cowmem_diag_t d;
    ASSERT_ERR(cowmem_imgfile_check_module(f, m, &d), COWMEM_EBADIMG);
    ASSERT_NOT_NULL(strstr(d.reason, forge[k].field));
    ASSERT_UEQ(d.offset, 96 + forge[k].at);
    cowmem_imgfile_free(f);
    close(fd);
    char* out = NULL;
    ASSERT_EQ(run_tool(&out, (const char*[]){"dump", img, "--module", wasm, "--global",
                                             "g=0", "-o", bin, NULL}),
              1);
    ASSERT_NOT_NULL(strstr(out, forge[k].field));
    free(out);
    ASSERT_NE(access(bin, F_OK), 0);
  }
  cowmem_module_free(m);
  unlink(img);
  unlink(wasm);
  rmdir(dir);
  return 0;
}

/* Names are the module's bytes: an import named with a terminal escape
 * (ESC, and U+009B, the one-byte CSI, in UTF-8) is shown escaped; a path
 * with ESC and a byte that is not UTF-8 is valid JSON. */
TEST_IMPL(inspect_escapes_names) {
  ASSERT_NOT_NULL(mkdtemp(dir));
  static const uint8_t sec[] = {0x02, 0x0e, 0x01, 0x04, 0x1b, 0x5b, 0x32, 0x4a, 0x04,
                                0x6d, 0xc2, 0x9b, 0x78, 0x02, 0x00, 0x01};
  char path[256];
  ASSERT_EQ(write_module(path, sizeof path, "e\x1bq\xff.wasm", sec, sizeof sec), 0);
  char* out = NULL;
  ASSERT_EQ(run_tool(&out, (const char*[]){"inspect", path, NULL}), 0);
  ASSERT_NOT_NULL(strstr(out, "from \"\\x1b[2J\" \"m\\xc2\\x9bx\""));
  ASSERT_NULL(strstr(out, "\x1b[2J"));
  ASSERT_NULL(strstr(out, "\xc2\x9b"));
  free(out);
  ASSERT_EQ(run_tool(&out, (const char*[]){"inspect", "--json", path, NULL}), 0);
  ASSERT_NOT_NULL(strstr(out, "e\\u001bq\\ufffd.wasm\""));
  ASSERT_NULL(strstr(out, "\xff"));
  free(out);
  unlink(path);
  rmdir(dir);
  return 0;
}

/* An unlinked temporary file of len bytes, all holes but the byte v at
 * at; -1 on failure. */
static int sparse_tmp(uint64_t len, uint64_t at, uint8_t v) {
  char path[] = "/tmp/cowmem-sparse-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  unlink(path);
  if (ftruncate(fd, (off_t)len) != 0 || pwrite(fd, &v, 1, (off_t)at) != 1) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A sparse file of 1 TiB holding two data pages (first and last): the
 * copy path of cowmem_image_new_from_file (a file that may change) reads
 * what the file holds. The old copy allocated and read the whole claim
 * (malloc of 1 TiB: ENOMEM). */
TEST_IMPL(file_copy_sparse_claim) {
  uint64_t len = (uint64_t)1 << 40;
  int fd = sparse_tmp(len, 5, 0x11);
  ASSERT_GE(fd, 0);
  uint8_t b = 0x22;
  ASSERT_EQ(pwrite(fd, &b, 1, (off_t)(len - 1)), 1);
  struct rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_file(fd, 0, len, 0, 0, &img));
  getrusage(RUSAGE_SELF, &after);
  ASSERT_LT(after.ru_minflt - before.ru_minflt, 10000);
  cowmem_image_info_t ii;
  ASSERT_OK(cowmem_image_info(img, &ii));
  ASSERT_NE(ii.kind, COWMEM_IMAGE_FILE); /* a copy: the file may change */
  ASSERT_UEQ(ii.data_pages, 2);
  ASSERT_UEQ(ii.len, len);
  uint8_t got[2];
  ASSERT_OK(cowmem_image_read(img, 4, got, 2));
  ASSERT_EQ(got[0], 0);
  ASSERT_EQ(got[1], 0x11);
  ASSERT_OK(cowmem_image_read(img, len - 2, got, 2));
  ASSERT_EQ(got[0], 0);
  ASSERT_EQ(got[1], 0x22);
  /* The file changing afterwards changes nothing: the copy is private. */
  ASSERT_EQ(ftruncate(fd, 0), 0);
  ASSERT_OK(cowmem_image_read(img, len - 1, got, 1));
  ASSERT_EQ(got[0], 0x22);
  cowmem_image_release(img);
  close(fd);
  return 0;
}

/* Reading 256 MiB of a file image (holes) into the caller's buffer costs
 * no second buffer of that size: in a child whose address space has room
 * for the caller's buffer and 64 MiB more, the read succeeds. The old read
 * allocated the whole overlap first (ENOMEM there). */
TEST_IMPL(image_read_bounded) {
#ifdef UNDER_SANITIZER
  TEST_SKIP("RLIMIT_AS: sanitizers reserve terabytes of shadow");
#endif
  size_t len = (size_t)256 << 20;
  int fd = sparse_tmp(len, len - 1, 0x33);
  ASSERT_GE(fd, 0);
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_file(fd, 0, len, 0, COWMEM_IMAGE_FILE_IMMUTABLE, &img));
  uint8_t* dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_PTR_NE(dst, MAP_FAILED);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    long pages = 0;
    FILE* f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld", &pages) != 1) _exit(3);
    fclose(f);
    uint64_t as = (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE) + ((uint64_t)64 << 20);
    struct rlimit rl = {as, as};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(4);
    int r = cowmem_image_read(img, 0, dst, len);
    _exit(r == 0 && dst[len - 1] == 0x33 && dst[0] == 0 ? 0 : 1);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  ASSERT_EQ(WEXITSTATUS(st), 0);
  munmap(dst, len);
  cowmem_image_release(img);
  close(fd);
  return 0;
}

TEST_MAIN(TEST_ENTRY(inspect_folder) TEST_ENTRY(forged_max_without_flag) TEST_ENTRY(inspect_memories_by_segments) TEST_ENTRY(inspect_sparse_claim)
              TEST_ENTRY(dump_sparse_claim) TEST_ENTRY(dump_trap_in_other_memory)
              TEST_ENTRY(forged_descriptor_vs_module) TEST_ENTRY(inspect_escapes_names)
              TEST_ENTRY(file_copy_sparse_claim) TEST_ENTRY(image_read_bounded))
