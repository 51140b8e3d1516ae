/* cowmem compile module.wasm -o module.cwimg */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools.h"

static void help(FILE* f) {
  fprintf(f, "Usage: cowmem compile MODULE.wasm -o MODULE.cwimg\n"
             "\n"
             "Write the module's precompiled image file: each memory's initial\n"
             "image at page-aligned offsets (zero pages left as holes), with a\n"
             "header of limits, layout, the segments left for instantiation\n"
             "and the SHA-256 of the module. Opening the file maps the images\n"
             "straight from it, shared by every process that opens it.\n"
             "\n"
             "The file is written beside the target and renamed over it, so a\n"
             "file that processes have open is never changed under them.\n"
             "\n"
             "Options:\n"
             "  -o FILE          output image file (required)\n");
  fputs(TOOL_FRESH_HELP
        "                   (the file marks them fresh; strip with the same\n"
        "                   option)\n"
        "  --help           this text\n",
        f);
}

int cmd_compile(int argc, char** argv) {
  const char *in, *out;
  unsigned flags;
  int args = tool_args_in_out(argc, argv, help, &in, &out, &flags);
  if (args >= 0) return args;
  cowmem_module_t* m = tool_load_module(in, flags);
  if (!m) return EXIT_RUNTIME;
  char tmp[PATH_MAX];
  int rc = EXIT_OK;
  int fd = tool_tmp_beside(out, tmp, sizeof tmp);
  if (fd < 0) {
    rc = tool_fail(out, "%s", strerror(errno));
    goto done;
  }
  int r = cowmem_module_compile(m, fd);
  struct stat st;
  if (r == 0 && fstat(fd, &st) != 0) r = -errno;
  if (close(fd) != 0 && r == 0) r = -errno;
  if (r == 0 && rename(tmp, out) != 0) r = -errno;
  if (r != 0) {
    unlink(tmp);
    rc = tool_fail(out, "cannot write the image file: %s", cowmem_strerror(r));
    goto done;
  }
  uint64_t image_bytes = 0;
  uint32_t images = 0;
  for (uint32_t i = 0; i < cowmem_module_memory_count(m); i++) {
    cowmem_image_t* img = NULL;
    cowmem_image_info_t ii;
    if ((img = cowmem_image_retain(cowmem_module_image(m, i, NULL))) != NULL &&
        cowmem_image_info(img, &ii) == 0) {
      image_bytes += ii.len;
      images++;
    }
    cowmem_image_release(img);
  }
  printf("%s: %u memories, %u images, %llu image bytes, %lld bytes "
         "(%lld allocated)\n",
         out, cowmem_module_memory_count(m), images, (unsigned long long)image_bytes,
         (long long)st.st_size, (long long)st.st_blocks * 512);
done:
  cowmem_module_free(m);
  return rc;
}
