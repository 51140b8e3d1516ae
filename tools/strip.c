/* cowmem strip module.wasm -o out.wasm */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tools.h"

static void help(FILE* f) {
  fprintf(f, "Usage: cowmem strip MODULE.wasm -o OUT.wasm\n"
             "\n"
             "Rewrite the module without the active data segments whose bytes\n"
             "are already in its memory's image. When no function uses\n"
             "memory.init or data.drop (and the module is not a relocatable\n"
             "object), those segments are removed and the others renumbered,\n"
             "names included; otherwise each becomes an empty passive segment,\n"
             "so that segment indices stay valid. All other sections are copied\n"
             "byte for byte, and none is added. A runtime that instantiates\n"
             "OUT.wasm with memory from cowmem skips data initialization.\n"
             "\n"
             "OUT.wasm is only correct with cowmem's memory: on zeroed memory it\n"
             "lacks the stripped data. Segments of imported memories are kept\n"
             "unless --fresh-imports (then the host must give each instance\n"
             "its imported memory from the image, e.g. cowmem_w2c_import_memory).\n"
             "\n"
             "Options:\n"
             "  -o FILE          output module (required; written atomically)\n");
  fputs(TOOL_FRESH_HELP "  --help           this text\n", f);
}

int cmd_strip(int argc, char** argv) {
  const char *in, *out;
  unsigned flags;
  int args = tool_args_in_out(argc, argv, help, &in, &out, &flags);
  if (args >= 0) return args;
  cowmem_module_t* m = tool_load_module(in, flags);
  if (!m) return EXIT_RUNTIME;
  uint8_t* bytes = NULL;
  size_t len = 0;
  uint32_t stripped = 0;
  char summary[PATH_MAX + 128];
  int r = cowmem_module_strip(m, &bytes, &len, &stripped);
  int rc = EXIT_OK;
  if (r == 0)
    r = cowmem_module_strip_summary(m, bytes, len, stripped, out, summary, sizeof summary);
  if (r != 0) {
    rc = tool_fail(in, "cannot strip: %s", cowmem_strerror(r));
  } else if (tool_write_atomic(out, bytes, len) != 0) {
    rc = tool_fail(out, "%s", strerror(errno));
  } else {
    printf("%s\n", summary);
  }
  free(bytes);
  cowmem_module_free(m);
  return rc;
}
