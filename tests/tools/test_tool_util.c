/* The cowmem command's shared helpers (tools/util.c), called in process. */
#include <cowmem.h>
#include <fcntl.h>

#include "test.h"
#include "tools.h"

typedef struct {
  uint64_t off[8], len[8];
  size_t n;
} stretches_t;

static int add_stretch(void* arg, uint64_t off, uint64_t len) {
  stretches_t* s = arg;
  if (s->n == 8) return 1;
  s->off[s->n] = off;
  s->len[s->n] = len;
  s->n++;
  return 0;
}

/* The data extents of a sparse file image, in memory offsets, and the file
 * offset of the fd it was made from kept: the image's fd is a dup sharing
 * it, and the old helper left it at the last hole it looked for. */
TEST_IMPL(image_extents_keep_offset) {
  size_t page = cowmem_page_size();
  char path[] = "/tmp/cowmem-util-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  uint8_t* buf = malloc(page);
  ASSERT_NOT_NULL(buf);
  memset(buf, 0x33, page);
  ASSERT_EQ(pwrite(fd, buf, page, 0), (ssize_t)page);
  ASSERT_EQ(pwrite(fd, buf, page, (off_t)(10 * page)), (ssize_t)page);
  ASSERT_EQ(ftruncate(fd, (off_t)(16 * page)), 0);
  free(buf);
  cowmem_image_t* img = NULL;
  ASSERT_OK(cowmem_image_new_from_file(fd, 0, 16 * page, 2 * page,
                                       COWMEM_IMAGE_FILE_IMMUTABLE, &img));
  ASSERT_EQ(lseek(fd, 777, SEEK_SET), 777);
  stretches_t s = {{0}, {0}, 0};
  ASSERT_EQ(tool_image_extents(img, add_stretch, &s), 0);
  ASSERT_EQ(lseek(fd, 0, SEEK_CUR), 777);
  cowmem_image_info_t ii;
  ASSERT_OK(cowmem_image_info(img, &ii));
  off_t hole = lseek(fd, 0, SEEK_HOLE);
  ASSERT_EQ(lseek(fd, 777, SEEK_SET), 777);
  if (ii.fd >= 0 && hole == (off_t)page && ii.kind == COWMEM_IMAGE_FILE) {
    /* The file system reports holes: exactly the two data pages. */
    ASSERT_UEQ(s.n, 2);
    ASSERT_UEQ(s.off[0], 2 * page);
    ASSERT_UEQ(s.len[0], page);
    ASSERT_UEQ(s.off[1], 12 * page);
    ASSERT_UEQ(s.len[1], page);
  } else {
    ASSERT_GE(s.n, 1);
  }
  cowmem_image_release(img);
  close(fd);
  return 0;
}

TEST_MAIN(TEST_ENTRY(image_extents_keep_offset))
