/* w2c_strip.c: the build-time helper the recipe strips with where the
 * cowmem command is not built (COWMEM_BUILD_TOOLS=OFF):
 * cowmem_module_strip on a file, as `cowmem strip`, whose summary line it
 * prints (cowmem_module_strip_summary). The active data segments an image
 * covers go, so wasm2c's init_memories copies nothing (NOTES.md, "strip").
 *
 * Usage: cowmem_w2c_strip in.wasm out.wasm [--fresh-imports]
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cowmem.h>

static uint8_t* read_file(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  uint8_t* p = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)n + 1)) &&
        fread(p, 1, (size_t)n, f) != (size_t)n) {
      free(p);
      p = NULL;
    }
    *len = (size_t)n;
  }
  fclose(f);
  return p;
}

int main(int argc, char** argv) {
  /* --fresh-imports: as `cowmem strip --fresh-imports`. */
  bool fresh = argc == 4 && strcmp(argv[3], "--fresh-imports") == 0;
  if (argc != 3 && !fresh) {
    fprintf(stderr, "usage: %s in.wasm out.wasm [--fresh-imports]\n", argv[0]);
    return 2;
  }
  size_t len = 0;
  uint8_t* bytes = read_file(argv[1], &len);
  if (!bytes) {
    perror(argv[1]);
    return 1;
  }
  cowmem_module_t* m = NULL;
  cowmem_diag_t diag;
  int r = cowmem_module_parse(
      bytes, len, COWMEM_MODULE_BORROW | (fresh ? COWMEM_MODULE_FRESH_IMPORTS : 0), &m,
      &diag);
  if (r != 0) {
    fprintf(stderr, "%s: %s at byte %llu: %s\n", argv[1], cowmem_strerror(r),
            (unsigned long long)diag.offset, diag.reason);
    free(bytes);
    return 1;
  }
  uint8_t* out = NULL;
  size_t out_len = 0;
  uint32_t stripped = 0;
  char summary[PATH_MAX + 128];
  r = cowmem_module_strip(m, &out, &out_len, &stripped);
  if (r == 0)
    r = cowmem_module_strip_summary(m, out, out_len, stripped, argv[2], summary,
                                    sizeof summary);
  int fail = r != 0;
  if (fail) {
    fprintf(stderr, "%s: strip: %s\n", argv[1], cowmem_strerror(r));
  } else {
    FILE* f = fopen(argv[2], "wb");
    int bad = !f || fwrite(out, 1, out_len, f) != out_len;
    if ((f && fclose(f) != 0) || bad) {
      perror(argv[2]);
      fail = 1;
    }
  }
  if (!fail) printf("%s\n", summary); /* `cowmem strip`'s line */
  cowmem_module_free(m);
  free(bytes);
  free(out);
  return fail;
}
