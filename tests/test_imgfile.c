/* Image files: SHA-256 vectors, compile -> open -> instantiate equals the
 * module's own images (demo.wasm and a sparse synthetic module), holes kept,
 * files written from images alone (snapshots), and every way a file can be
 * wrong: truncated at each length, each header byte corrupted, another
 * version, another page size, another module. */
#include <cowmem.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "test.h"

static int tmp_file(char* path, size_t n) {
  const char* dir = getenv("TMPDIR");
  snprintf(path, n, "%s/cowmem_test_XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  if (fd >= 0) unlink(path);
  return fd;
}

static int hex_eq(const uint8_t h[32], const char* hex) {
  char buf[65];
  for (int i = 0; i < 32; i++) snprintf(buf + 2 * i, 3, "%02x", h[i]);
  return strcmp(buf, hex) == 0;
}

TEST_IMPL(sha256_vectors) {
  uint8_t h[32];
  cowmem_sha256("", 0, h);
  ASSERT_TRUE(hex_eq(h, "e3b0c44298fc1c149afbf4c8996fb924"
                        "27ae41e4649b934ca495991b7852b855"));
  cowmem_sha256("abc", 3, h);
  ASSERT_TRUE(hex_eq(h, "ba7816bf8f01cfea414140de5dae2223"
                        "b00361a396177a9cb410ff61f20015ad"));
  const char* two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  cowmem_sha256(two, strlen(two), h);
  ASSERT_TRUE(hex_eq(h, "248d6a61d20638b8e5c026930c3e6039"
                        "a33ce45964ff2167f6ecedd419db06c1"));
  static char million[1000000];
  memset(million, 'a', sizeof million);
  cowmem_sha256(million, sizeof million, h);
  ASSERT_TRUE(hex_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67"
                        "f1809a48a497200e046d39ccc7112cd0"));
  return 0;
}

/* A module with one 4-page memory (max 8) and segments at 16 and at
 * 200000, so its image has a run of zero pages inside. */
static size_t sparse_module(uint8_t* b, uint8_t fill) {
  size_t n = 0;
  static const uint8_t head[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00,
                                 0x00, 0x05, 0x04, 0x01, 0x01, 0x04, 0x08};
  memcpy(b, head, sizeof head);
  n = sizeof head;
  /* data: 2 segments of 100 bytes: 1 + (1+1+1+1+1+100) + (1+1+3+1+1+100) */
  b[n++] = 0x0b;
  b[n++] = 0x80 | (213 & 0x7f);
  b[n++] = 213 >> 7;
  b[n++] = 2;
  b[n++] = 0x00, b[n++] = 0x41, b[n++] = 0x10, b[n++] = 0x0b, b[n++] = 100;
  for (int i = 0; i < 100; i++) b[n++] = (uint8_t)(fill + i);
  /* i32.const 200000 = sleb 0xc0 0x9a 0x0c */
  b[n++] = 0x00, b[n++] = 0x41, b[n++] = 0xc0, b[n++] = 0x9a, b[n++] = 0x0c;
  b[n++] = 0x0b, b[n++] = 100;
  for (int i = 0; i < 100; i++) b[n++] = (uint8_t)(fill ^ i) | 1;
  return n;
}

/* Instantiate a slot with each image and compare every byte. */
static int same_memory(cowmem_image_t* a, cowmem_image_t* b, size_t size) {
  cowmem_slot_t *sa = NULL, *sb = NULL;
  if (cowmem_slot_new(size, &sa) || cowmem_slot_new(size, &sb)) return 1;
  int r = cowmem_slot_instantiate(sa, size, a) ||
          cowmem_slot_instantiate(sb, size, b) ||
          memcmp(cowmem_slot_base(sa), cowmem_slot_base(sb), size) != 0;
  cowmem_slot_free(sa);
  cowmem_slot_free(sb);
  return r;
}

static int roundtrip(const uint8_t* bytes, size_t len, bool expect_holes) {
  cowmem_module_t* m = NULL;
  ASSERT_OK(cowmem_module_parse(bytes, len, 0, &m, NULL));
  char path[256];
  int fd = tmp_file(path, sizeof path);
  ASSERT_GE(fd, 0);
  ASSERT_OK(cowmem_module_compile(m, fd));
  for (unsigned flags = 0; flags <= COWMEM_IMGFILE_COPY; flags++) {
    cowmem_imgfile_t* f = NULL;
    cowmem_diag_t d;
    uint8_t mh[32];
    ASSERT_OK(cowmem_module_hash(m, mh));
    ASSERT_OK(cowmem_imgfile_open(fd, mh, flags, &f, &d));
    ASSERT_EQ(d.code, 0);
    ASSERT_EQ(cowmem_imgfile_memory_count(f), cowmem_module_memory_count(m));
    ASSERT_EQ(cowmem_imgfile_version(f), COWMEM_IMGFILE_VERSION);
    uint8_t h1[32], h2[32];
    cowmem_imgfile_module_hash(f, h1);
    ASSERT_OK(cowmem_module_hash(m, h2));
    ASSERT_EQ(memcmp(h1, h2, 32), 0);
    for (uint32_t i = 0; i < cowmem_module_memory_count(m); i++) {
      cowmem_memory_info_t mi;
      ASSERT_OK(cowmem_module_memory_info(m, i, &mi));
      cowmem_image_t *mod_img = NULL, *file_img = NULL;
      cowmem_diag_t w1, w2;
      mod_img = cowmem_image_retain(cowmem_module_image(m, i, &w1));
      file_img = cowmem_image_retain(cowmem_imgfile_image(f, i, &w2));
      ASSERT_EQ(w1.noimage, w2.noimage);
      ASSERT_EQ(mod_img == NULL, file_img == NULL);
      if (file_img) {
        cowmem_image_info_t ii;
        ASSERT_OK(cowmem_image_info(file_img, &ii));
#ifdef TEST_POSIX_BACKEND /* no memfd: images are copies in memory */
        ASSERT_EQ(ii.kind, COWMEM_IMAGE_COPY);
#else
        ASSERT_EQ(ii.kind, flags ? COWMEM_IMAGE_MEMFD : COWMEM_IMAGE_FILE);
#endif
        cowmem_imgfile_memory_t fm;
        ASSERT_OK(cowmem_imgfile_memory(f, i, &fm));
        if (expect_holes) ASSERT_LT(fm.data_pages * cowmem_page_size(), fm.mem_len);
        CHECK(same_memory(mod_img, file_img, (size_t)mi.min_pages * 65536));
      }
      cowmem_image_release(mod_img);
      cowmem_image_release(file_img);
    }
    cowmem_imgfile_free(f);
  }
  if (expect_holes) { /* sparse on disk (where the filesystem supports it) */
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    fprintf(stderr, "file %lld bytes, %lld allocated\n", (long long)st.st_size,
            (long long)st.st_blocks * 512);
    ASSERT_LT((long long)st.st_blocks * 512, (long long)st.st_size);
  }
  close(fd);
  cowmem_module_free(m);
  return 0;
}

TEST_IMPL(roundtrip_sparse) {
  uint8_t b[512];
  size_t n = sparse_module(b, 7);
  return roundtrip(b, n, true);
}

TEST_IMPL(roundtrip_demo) {
#ifndef COWMEM_DEMO_WASM
  TEST_SKIP("demo.wasm is not built");
#else
  FILE* fp = fopen(COWMEM_DEMO_WASM, "rb");
  if (!fp) TEST_SKIP("demo.wasm not found (build target cowmem_demo_wasm)");
  static uint8_t buf[8 << 20];
  size_t n = fread(buf, 1, sizeof buf, fp);
  fclose(fp);
  return roundtrip(buf, n, false);
#endif
}

/* A file of the sparse module: fd and its bytes (header page + image). */
static int make_file(uint8_t fill, int* fd_out, uint8_t** bytes, size_t* len,
                     cowmem_module_t** mod) {
  uint8_t b[512];
  size_t n = sparse_module(b, fill);
  cowmem_module_t* m = NULL;
  ASSERT_OK(cowmem_module_parse(b, n, 0, &m, NULL));
  char path[256];
  int fd = tmp_file(path, sizeof path);
  ASSERT_GE(fd, 0);
  ASSERT_OK(cowmem_module_compile(m, fd));
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  *len = (size_t)st.st_size;
  *bytes = malloc(*len);
  ASSERT_NOT_NULL(*bytes);
  ASSERT_EQ(pread(fd, *bytes, *len, 0), (ssize_t)*len);
  *fd_out = fd;
  if (mod) *mod = m;
  else cowmem_module_free(m);
  return 0;
}

static int open_bytes(const uint8_t* b, size_t n, const cowmem_module_t* m,
                      cowmem_diag_t* d) {
  char path[256];
  int fd = tmp_file(path, sizeof path);
  if (fd < 0) return -9999;
  if (n && write(fd, b, n) != (ssize_t)n) return -9998;
  cowmem_imgfile_t* f = NULL;
  uint8_t mh[32];
  if (m != NULL) cowmem_module_hash(m, mh);
  int r = cowmem_imgfile_open(fd, m != NULL ? mh : NULL, 0, &f, d);
  if (r == 0) {
    /* Whatever opened must be usable. */
    for (uint32_t i = 0; i < cowmem_imgfile_memory_count(f); i++) {
      cowmem_imgfile_memory_t fm;
      cowmem_imgfile_memory(f, i, &fm);
      uint8_t tmp[64];
      if (fm.image) cowmem_image_read(fm.image, fm.mem_offset, tmp, sizeof tmp);
    }
  }
  cowmem_imgfile_free(f);
  close(fd);
  return r;
}

TEST_IMPL(truncated_every_length) {
  int fd;
  uint8_t* b;
  size_t n;
  CHECK(make_file(3, &fd, &b, &n, NULL));
  close(fd);
  for (size_t len = 0; len < n; len += len < 8192 ? 1 : 4096) {
    cowmem_diag_t d;
    int r = open_bytes(b, len, NULL, &d);
    if (r != COWMEM_EBADIMG)
      TEST_FAIL_("length %zu: got %s (%s)", len, cowmem_err_name(r), d.reason);
    ASSERT_EQ(d.code, r);
    ASSERT_TRUE(d.reason[0] != 0);
  }
  cowmem_diag_t d;
  ASSERT_EQ(open_bytes(b, n - 1, NULL, &d), COWMEM_EBADIMG);
  ASSERT_TRUE(strstr(d.reason, "truncated") != NULL);
  free(b);
  return 0;
}

TEST_IMPL(corrupt_every_header_byte) {
  int fd;
  uint8_t* b;
  size_t n;
  CHECK(make_file(3, &fd, &b, &n, NULL));
  close(fd);
  size_t hdr = 96 + 80; /* one memory */
  for (size_t i = 0; i < hdr; i++) {
    for (int bit = 0; bit < 8; bit += 3) {
      b[i] ^= (uint8_t)(1u << bit);
      cowmem_diag_t d;
      int r = open_bytes(b, n, NULL, &d);
      b[i] ^= (uint8_t)(1u << bit);
      if (r != COWMEM_EBADIMG && r != COWMEM_EVERSION && r != COWMEM_EPAGESIZE)
        TEST_FAIL_("byte %zu bit %d: got %s (%s)", i, bit, cowmem_err_name(r),
                   d.reason);
    }
  }
  free(b);
  return 0;
}

static void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

TEST_IMPL(version_pagesize_module) {
  int fd;
  uint8_t* b;
  size_t n;
  cowmem_module_t* m = NULL;
  CHECK(make_file(3, &fd, &b, &n, &m));
  close(fd);
  cowmem_diag_t d;
  ASSERT_OK(open_bytes(b, n, m, &d));
  ASSERT_OK(open_bytes(b, n, NULL, &d));
  put32(b + 8, 2);
  ASSERT_EQ(open_bytes(b, n, m, &d), COWMEM_EVERSION);
  ASSERT_TRUE(strstr(d.reason, "version 2") != NULL);
  put32(b + 8, 1);
  put32(b + 16, (uint32_t)cowmem_page_size() * 4);
  ASSERT_EQ(open_bytes(b, n, m, &d), COWMEM_EPAGESIZE);
  ASSERT_TRUE(strstr(d.reason, "pages") != NULL);
  put32(b + 16, (uint32_t)cowmem_page_size());
  ASSERT_OK(open_bytes(b, n, m, &d));
  /* Another module: same layout, other bytes. */
  cowmem_module_t* other = NULL;
  uint8_t ob[512];
  size_t on = sparse_module(ob, 9);
  ASSERT_OK(cowmem_module_parse(ob, on, 0, &other, NULL));
  ASSERT_EQ(open_bytes(b, n, other, &d), COWMEM_EMISMATCH);
  ASSERT_TRUE(strstr(d.reason, "module") != NULL);
  cowmem_module_free(other);
  cowmem_module_free(m);
  free(b);
  /* Not an image file at all. */
  ASSERT_EQ(open_bytes((const uint8_t*)"\0asm\1\0\0\0", 8, NULL, &d),
            COWMEM_EBADIMG);
  ASSERT_TRUE(strstr(d.reason, "magic") != NULL);
  cowmem_imgfile_t* f = NULL;
  ASSERT_ERR(cowmem_imgfile_open(-1, NULL, 0, &f, NULL), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_imgfile_open(0, NULL, 0, NULL, NULL), COWMEM_EINVAL);
  return 0;
}

/* What a snapshot does: a file from images alone, without a module. */
TEST_IMPL(write_from_images) {
  size_t page = cowmem_page_size();
  uint8_t* data = calloc(1, 8 * page);
  ASSERT_NOT_NULL(data);
  memset(data, 0xab, page);
  memset(data + 6 * page, 0xcd, 10);
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_bytes(data, 8 * page, 2 * page, &img));
  cowmem_imgfile_memory_t mems[2];
  memset(mems, 0, sizeof mems);
  mems[0].index = 0;
  mems[0].min_pages = 1;
  mems[0].image = img;
  mems[1].index = 3;
  mems[1].min_pages = 2;
  mems[1].has_max = true;
  mems[1].max_pages = 2;
  mems[1].segments_left = 5;
  mems[1].noimage = COWMEM_NOIMAGE_GLOBAL_OFFSET;
  char path[256];
  int fd = tmp_file(path, sizeof path);
  ASSERT_GE(fd, 0);
  ASSERT_OK(cowmem_imgfile_write(fd, mems, 2, NULL));
  cowmem_imgfile_t* f = NULL;
  ASSERT_OK(cowmem_imgfile_open(fd, NULL, 0, &f, NULL));
  ASSERT_EQ(cowmem_imgfile_memory_count(f), 2);
  cowmem_imgfile_memory_t fm;
  ASSERT_OK(cowmem_imgfile_memory(f, 0, &fm));
  ASSERT_UEQ(fm.mem_offset, 2 * page);
  ASSERT_UEQ(fm.mem_len, 7 * page); /* trailing zero page trimmed */
  ASSERT_UEQ(fm.data_pages, 2);
  ASSERT_UEQ(fm.file_offset % page, 0);
  CHECK(same_memory(img, fm.image, 65536));
  ASSERT_OK(cowmem_imgfile_memory(f, 1, &fm));
  ASSERT_EQ(fm.index, 3);
  ASSERT_EQ(fm.segments_left, 5);
  ASSERT_EQ(fm.noimage, COWMEM_NOIMAGE_GLOBAL_OFFSET);
  ASSERT_TRUE(fm.has_max);
  ASSERT_NULL(fm.image);
  cowmem_diag_t why;
  ASSERT_NULL(cowmem_imgfile_image(f, 3, &why));
  ASSERT_EQ(why.code, 0);
  ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_GLOBAL_OFFSET);
  ASSERT_NULL(cowmem_imgfile_image(f, 1, &why)); /* no memory 1 */
  ASSERT_EQ(why.code, COWMEM_EINVAL);
  cowmem_imgfile_free(f);
  /* The zero hash is not this module's. */
  uint8_t h[32];
  memset(h, 1, sizeof h);
  cowmem_diag_t d;
  ASSERT_ERR(cowmem_imgfile_open(fd, h, 0, &f, &d), COWMEM_EMISMATCH);
  /* Bad input writes nothing useful and is refused. */
  mems[1].index = 0;
  ASSERT_ERR(cowmem_imgfile_write(fd, mems, 2, NULL), COWMEM_EINVAL);
  mems[1].index = 3;
  mems[1].noimage = (cowmem_noimage_t)99;
  ASSERT_ERR(cowmem_imgfile_write(fd, mems, 2, NULL), COWMEM_EINVAL);
  mems[1].noimage = COWMEM_NOIMAGE_NONE;
  mems[1].max_pages = 70000; /* beyond a 32-bit memory's limit */
  ASSERT_ERR(cowmem_imgfile_write(fd, mems, 2, NULL), COWMEM_EINVAL);
  mems[1].max_pages = 2;
  mems[0].min_pages = 0; /* the image ends beyond the initial size */
  ASSERT_ERR(cowmem_imgfile_write(fd, mems, 2, NULL), COWMEM_EINVAL);
  close(fd);
  cowmem_image_release(img);
  free(data);
  return 0;
}

/* A file image over a sparse file that claims 64 MiB and holds 2 pages:
 * writing it into an image file reads its data extents alone (2 reads,
 * where reading the whole range took 64 of 1 MiB), keeps the file offset
 * of the caller's fd (the image's fd shares it), and the new file holds
 * the same bytes. */
TEST_IMPL(write_reads_extents) {
  size_t page = cowmem_page_size();
  const size_t len = (size_t)64 << 20, far = (size_t)40 << 20;
  char path[256];
  int src = tmp_file(path, sizeof path);
  ASSERT_GE(src, 0);
  uint8_t* buf = malloc(2 * page);
  ASSERT_NOT_NULL(buf);
  memset(buf, 0x5a, page);
  ASSERT_EQ(pwrite(src, buf, page, 0), (ssize_t)page);
  ASSERT_EQ(pwrite(src, buf, page, (off_t)far), (ssize_t)page);
  ASSERT_EQ(ftruncate(src, (off_t)len), 0);
  off_t hole = lseek(src, 0, SEEK_HOLE);
  if (hole < 0 || (size_t)hole >= len) {
    close(src);
    free(buf);
    TEST_SKIP("the file system does not report holes");
  }
  ASSERT_EQ(lseek(src, 12345, SEEK_SET), 12345);
  cowmem_image_t* img = NULL;
  ASSERT_OK(
      cowmem_image_new_from_file(src, 0, len, 0, COWMEM_IMAGE_FILE_IMMUTABLE, &img));
  cowmem_imgfile_memory_t mem;
  memset(&mem, 0, sizeof mem);
  mem.min_pages = len / 65536;
  mem.image = img;
  int out = tmp_file(path, sizeof path);
  ASSERT_GE(out, 0);
  cowmem_stats_t a, b;
  cowmem_stats_get(&a);
  ASSERT_OK(cowmem_imgfile_write(out, &mem, 1, NULL));
  cowmem_stats_get(&b);
  ASSERT_LE(b.sys_read - a.sys_read, 2);
  ASSERT_EQ(lseek(src, 0, SEEK_CUR), 12345);
  cowmem_imgfile_t* f = NULL;
  ASSERT_OK(cowmem_imgfile_open(out, NULL, 0, &f, NULL));
  cowmem_imgfile_memory_t fm;
  ASSERT_OK(cowmem_imgfile_memory(f, 0, &fm));
  ASSERT_UEQ(fm.data_pages, 2);
  const size_t at[] = {0, page, far, len - page};
  for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
    ASSERT_OK(cowmem_image_read(img, at[i], buf, page));
    ASSERT_OK(cowmem_image_read(fm.image, at[i], buf + page, page));
    ASSERT_EQ(memcmp(buf, buf + page, page), 0);
    ASSERT_EQ(buf[0], at[i] == 0 || at[i] == far ? 0x5a : 0);
  }
  cowmem_imgfile_free(f);
  cowmem_image_release(img);
  close(out);
  close(src);
  free(buf);
  return 0;
}

/* An imported memory compiled with COWMEM_MODULE_FRESH_IMPORTS: its image
 * goes into the file, marked fresh; the writer refuses an imported image
 * without the mark and the mark on a defined memory, and so does the
 * opener for a header that says so (hash recomputed, so only the rule
 * rejects it). */
static size_t fresh_module(uint8_t* b) {
  static const uint8_t mod[] = {
      0, 'a', 's', 'm', 1, 0, 0, 0,
      /* import "e" "m" (memory 2) */
      2, 8, 1, 1, 'e', 1, 'm', 2, 0, 2,
      /* data: i32.const 70000 "hi" */
      11, 10, 1, 0, 0x41, 0xf0, 0xa2, 0x04, 0x0b, 2, 'h', 'i'};
  memcpy(b, mod, sizeof mod);
  return sizeof mod;
}

static void rehash(uint8_t* b, size_t hdr_len) {
  memset(b + 64, 0, 32);
  uint8_t h[32];
  cowmem_sha256(b, hdr_len, h);
  memcpy(b + 64, h, 32);
}

TEST_IMPL(fresh_import) {
  uint8_t wasm[64];
  size_t wn = fresh_module(wasm);
  cowmem_module_t *m = NULL, *plain = NULL;
  ASSERT_OK(cowmem_module_parse(wasm, wn, COWMEM_MODULE_FRESH_IMPORTS, &m, NULL));
  ASSERT_OK(cowmem_module_parse(wasm, wn, 0, &plain, NULL));
  char path[256];
  int fd = tmp_file(path, sizeof path);
  ASSERT_GE(fd, 0);
  ASSERT_OK(cowmem_module_compile(m, fd));
  uint8_t mh[32];
  ASSERT_OK(cowmem_module_hash(m, mh));
  cowmem_imgfile_t* f = NULL;
  cowmem_diag_t d;
  ASSERT_OK(cowmem_imgfile_open(fd, mh, 0, &f, &d));
  cowmem_imgfile_memory_t fm;
  ASSERT_OK(cowmem_imgfile_memory(f, 0, &fm));
  ASSERT_TRUE(fm.imported);
  ASSERT_TRUE(fm.fresh);
  ASSERT_EQ(fm.segments_left, 0);
  ASSERT_NOT_NULL(fm.image);
  CHECK(same_memory(cowmem_module_image(m, 0, NULL), fm.image, 2 * 65536));
  uint8_t hi[2];
  ASSERT_OK(cowmem_image_read(fm.image, 70000, hi, 2));
  ASSERT_EQ(memcmp(hi, "hi", 2), 0);
  cowmem_imgfile_free(f);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  size_t n = (size_t)st.st_size;
  uint8_t* b = malloc(n);
  ASSERT_NOT_NULL(b);
  ASSERT_EQ(pread(fd, b, n, 0), (ssize_t)n);
  close(fd);
  /* Without the flag: no image, not fresh, the segment left. */
  fd = tmp_file(path, sizeof path);
  ASSERT_GE(fd, 0);
  ASSERT_OK(cowmem_module_compile(plain, fd));
  ASSERT_OK(cowmem_imgfile_open(fd, mh, 0, &f, &d));
  ASSERT_OK(cowmem_imgfile_memory(f, 0, &fm));
  ASSERT_FALSE(fm.fresh);
  ASSERT_NULL(fm.image);
  ASSERT_EQ(fm.noimage, COWMEM_NOIMAGE_IMPORTED);
  ASSERT_EQ(fm.segments_left, 1);
  cowmem_imgfile_free(f);
  /* The writer's rules. */
  cowmem_imgfile_memory_t w = {0};
  w.index = 0;
  w.imported = true;
  w.min_pages = 2;
  w.image = cowmem_module_image(m, 0, NULL);
  ASSERT_ERR(cowmem_imgfile_write(fd, &w, 1, NULL), COWMEM_EINVAL);
  w.imported = false;
  w.fresh = true;
  ASSERT_ERR(cowmem_imgfile_write(fd, &w, 1, NULL), COWMEM_EINVAL);
  w.image = NULL;
  ASSERT_ERR(cowmem_imgfile_write(fd, &w, 1, NULL), COWMEM_EINVAL);
  w.imported = true;
  ASSERT_OK(cowmem_imgfile_write(fd, &w, 1, NULL));
  close(fd);
  /* The opener's: descriptor 0's flags at byte 96 + 4. */
  size_t hdr = 96 + 80;
  ASSERT_OK(open_bytes(b, n, m, &d));
  b[100] &= (uint8_t)~0x10; /* image, imported, not fresh */
  rehash(b, hdr);
  ASSERT_EQ(open_bytes(b, n, m, &d), COWMEM_EBADIMG);
  ASSERT_TRUE(strstr(d.reason, "cannot have one") != NULL);
  b[100] = (b[100] & (uint8_t)~0x01) | 0x10; /* fresh, not imported */
  rehash(b, hdr);
  ASSERT_EQ(open_bytes(b, n, m, &d), COWMEM_EBADIMG);
  ASSERT_TRUE(strstr(d.reason, "fresh but not imported") != NULL);
  b[100] |= 0x20; /* a bit nobody defines */
  rehash(b, hdr);
  ASSERT_EQ(open_bytes(b, n, m, &d), COWMEM_EBADIMG);
  free(b);
  cowmem_module_free(plain);
  cowmem_module_free(m);
  return 0;
}

/* Opening costs the same for any image size: it reads the header only.
 * Printed, not asserted (timing varies with the machine's load). */
TEST_IMPL(open_time) {
  size_t page = cowmem_page_size();
  for (size_t mib = 1; mib <= 64; mib *= 8) {
    size_t len = mib << 20;
    uint8_t* data = malloc(len);
    ASSERT_NOT_NULL(data);
    for (size_t i = 0; i < len; i += page) memset(data + i, (int)(i / page) | 1, page);
    cowmem_image_t* img = NULL;
    ASSERT_OK(cowmem_image_new_from_bytes(data, len, 0, &img));
    free(data);
    cowmem_imgfile_memory_t mem;
    memset(&mem, 0, sizeof mem);
    mem.min_pages = len / 65536;
    mem.image = img;
    char path[256];
    int fd = tmp_file(path, sizeof path);
    ASSERT_GE(fd, 0);
    ASSERT_OK(cowmem_imgfile_write(fd, &mem, 1, NULL));
    cowmem_image_release(img);
    /* At most 200 opens or about a second: the posix backend copies every
     * image at open (64 MiB x 200 took 2 minutes), the Linux one maps it. */
    double best = 1e9, spent = 0;
    int k = 0;
    for (; k < 200 && spent < 1e6; k++) {
      struct timespec a, b;
      cowmem_imgfile_t* f = NULL;
      clock_gettime(CLOCK_MONOTONIC, &a);
      ASSERT_OK(cowmem_imgfile_open(fd, NULL, 0, &f, NULL));
      clock_gettime(CLOCK_MONOTONIC, &b);
      cowmem_imgfile_free(f);
      double us = (double)(b.tv_sec - a.tv_sec) * 1e6 +
                  (double)(b.tv_nsec - a.tv_nsec) / 1e3;
      if (us < best) best = us;
      spent += us;
    }
    printf("open of a %zu MiB image file: %.1f us (best of %d)\n", mib, best, k);
    close(fd);
  }
  return 0;
}

/* cowmem_module_read: a file's bytes exactly, empty files, and refusals
 * that leave the outputs alone. */
TEST_IMPL(module_read) {
  char path[256];
  int fd = tmp_file(path, sizeof path);
  ASSERT_GE(fd, 0);
  uint8_t* bytes = (uint8_t*)1;
  size_t len = 7;
  ASSERT_EQ(cowmem_module_read(fd, &bytes, &len), 0); /* empty */
  ASSERT_EQ(len, 0);
  free(bytes);
  static uint8_t want[100000];
  for (size_t i = 0; i < sizeof want; i++) want[i] = (uint8_t)(i * 7 + i / 251);
  ASSERT_EQ(write(fd, want, sizeof want), (ssize_t)sizeof want);
  ASSERT_EQ(cowmem_module_read(fd, &bytes, &len), 0); /* from 0, not from fd's offset */
  ASSERT_EQ(len, sizeof want);
  ASSERT_EQ(memcmp(bytes, want, len), 0);
  free(bytes);
  close(fd);

  bytes = NULL;
  len = 7;
  ASSERT_EQ(cowmem_module_read(-1, &bytes, &len), COWMEM_EINVAL);
  ASSERT_EQ(cowmem_module_read(0, NULL, &len), COWMEM_EINVAL);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(cowmem_module_read(p[0], &bytes, &len), COWMEM_EINVAL); /* not a file */
  ASSERT_EQ(cowmem_module_read(p[1] + 100, &bytes, &len), -EBADF);
  ASSERT_TRUE(bytes == NULL && len == 7);
  close(p[0]);
  close(p[1]);
  return 0;
}

/* A snapshot memory (pre-initialized state) is not what the module's
 * segments write: checked against the module, its image need only fit the
 * memory, while every other field (here min_pages) is still compared; the
 * same image without the flag is refused as not the module's. */
TEST_IMPL(snapshot_against_module) {
  /* (module (memory 2 4)): no data, so the module itself has no image. */
  static const uint8_t wasm[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
                                 0x05, 0x04, 0x01, 0x01, 0x02, 0x04};
  cowmem_module_t* m = NULL;
  ASSERT_OK(cowmem_module_parse(wasm, sizeof wasm, 0, &m, NULL));
  uint8_t hash[32];
  ASSERT_OK(cowmem_module_hash(m, hash));
  static const char state[] = "state after init";
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_bytes(state, sizeof state, 70000, &img));
  cowmem_imgfile_memory_t mem;
  memset(&mem, 0, sizeof mem);
  mem.min_pages = 2;
  mem.has_max = true;
  mem.max_pages = 4;
  mem.image = img;
  mem.snapshot = true;
  char path[256];
  for (int round = 0; round < 3; round++) {
    mem.snapshot = round != 1;
    mem.min_pages = round == 2 ? 3 : 2;
    int fd = tmp_file(path, sizeof path);
    ASSERT_GE(fd, 0);
    ASSERT_OK(cowmem_imgfile_write(fd, &mem, 1, hash));
    cowmem_imgfile_t* f = NULL;
    cowmem_diag_t d;
    ASSERT_OK(cowmem_imgfile_open(fd, hash, 0, &f, &d));
    cowmem_imgfile_memory_t fm;
    ASSERT_OK(cowmem_imgfile_memory(f, 0, &fm));
    ASSERT_EQ(fm.snapshot, mem.snapshot);
    int r = cowmem_imgfile_check_module(f, m, &d);
    if (round == 0) {
      ASSERT_OK(r);
      char got[sizeof state];
      ASSERT_OK(cowmem_image_read(fm.image, 70000, got, sizeof got));
      ASSERT_EQ(memcmp(got, state, sizeof state), 0);
    } else {
      ASSERT_ERR(r, COWMEM_EBADIMG);
      ASSERT_NOT_NULL(strstr(d.reason, round == 1 ? "image" : "min_pages"));
    }
    cowmem_imgfile_free(f);
    close(fd);
  }
  cowmem_image_release(img);
  cowmem_module_free(m);
  return 0;
}

TEST_MAIN(TEST_ENTRY(sha256_vectors) TEST_ENTRY(roundtrip_sparse) TEST_ENTRY(roundtrip_demo)
              TEST_ENTRY(truncated_every_length) TEST_ENTRY(corrupt_every_header_byte)
                  TEST_ENTRY(version_pagesize_module) TEST_ENTRY(write_from_images)
                      TEST_ENTRY(write_reads_extents)
                      TEST_ENTRY(fresh_import) TEST_ENTRY(open_time) TEST_ENTRY(module_read)
                          TEST_ENTRY(snapshot_against_module))
