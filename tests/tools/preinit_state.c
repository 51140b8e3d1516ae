/* A module's state as cowmem preinit's runner sees it, for the preinit
 * tests (tests/preinit/diff.js).
 *   preinit_state instrument IN.wasm OUT.wasm
 *     write the instrumented module (for V8 to read its state);
 *   preinit_state wamr IN.wasm OUTDIR [CALL...]
 *     instantiate IN (instrumented) in WAMR, call each CALL in order and
 *     write each memory to OUTDIR/memN and, to OUTDIR/state.txt, a line per
 *     memory, global and call:
 *       memory N PAGES    global N TYPE LO HI    result CALL BITS   (hex)
 * Imported memories are fresh (COWMEM_MODULE_FRESH_IMPORTS). Exit 0, or 1
 * with the reason on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cowmem.h>

#include "cowmem_wamr_preinit.h"

static int die(const char* what, const char* why) {
  fprintf(stderr, "preinit_state: %s: %s\n", what, why);
  return 1;
}

static int write_file(const char* path, const void* p, size_t n) {
  FILE* f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = n ? fwrite(p, 1, n, f) : 0;
  return fclose(f) == 0 && w == n ? 0 : -1;
}

static const char* type_name(uint8_t t) {
  switch (t) {
  case COWMEM_TYPE_I32: return "i32";
  case COWMEM_TYPE_I64: return "i64";
  case COWMEM_TYPE_F32: return "f32";
  case COWMEM_TYPE_F64: return "f64";
  default: return "v128";
  }
}

/* Memory i's bytes, pages long, from its image (NULL: zeros). */
static int dump_memory(const char* dir, uint32_t i, const cowmem_preinit_memory_t* mem) {
  size_t len = (size_t)mem->pages * 65536;
  uint8_t* buf = calloc(len ? len : 1, 1);
  if (!buf) return -1;
  cowmem_image_info_t ii;
  if (mem->image && cowmem_image_info(mem->image, &ii) == 0 && ii.len > 0 &&
      cowmem_image_read(mem->image, ii.mem_offset, buf + ii.mem_offset, ii.len) != 0) {
    free(buf);
    return -1;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/mem%u", dir, i);
  int r = write_file(path, buf, len);
  free(buf);
  return r;
}

static int run(const cowmem_module_t* m, const uint8_t* inst, size_t len, const char* dir,
               const char* const* calls, size_t ncalls) {
  cowmem_wamr_preinit_state_t st;
  char err[512];
  if (cowmem_wamr_preinit_run(m, inst, len, calls, ncalls, NULL, &st, err, sizeof err) != 0)
    return die("run", err);
  char path[4096];
  snprintf(path, sizeof path, "%s/state.txt", dir);
  FILE* f = fopen(path, "w");
  int rc = f ? 0 : die(path, "cannot write");
  for (uint32_t i = 0; f && i < st.nmemories; i++) {
    fprintf(f, "memory %u %llu\n", i, (unsigned long long)st.memories[i].pages);
    if (dump_memory(dir, i, &st.memories[i]) != 0) rc = die(dir, "cannot write a memory");
  }
  for (uint32_t i = 0; f && i < st.nglobals; i++) {
    const cowmem_preinit_global_t* g = &st.globals[i];
    fprintf(f, "global %u %s %llx %llx\n", g->index, type_name(g->type),
            (unsigned long long)g->bits[0], (unsigned long long)g->bits[1]);
  }
  for (size_t i = 0; f && i < ncalls; i++)
    fprintf(f, "result %s %llx\n", calls[i], (unsigned long long)st.results[i]);
  if (f && fclose(f) != 0) rc = die(path, "cannot write");
  cowmem_wamr_preinit_state_free(&st);
  return rc;
}

int main(int argc, char** argv) {
  if (argc < 4 || (strcmp(argv[1], "instrument") != 0 && strcmp(argv[1], "wamr") != 0)) {
    fprintf(stderr, "usage: preinit_state instrument IN OUT | wamr IN OUTDIR [CALL...]\n");
    return 2;
  }
  uint8_t* bytes = NULL;
  size_t len = 0;
  FILE* f = fopen(argv[2], "rb");
  if (!f) return die(argv[2], "cannot open");
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  bytes = malloc(n > 0 ? (size_t)n : 1);
  len = bytes && n > 0 ? fread(bytes, 1, (size_t)n, f) : 0;
  fclose(f);
  if (!bytes || n <= 0 || len != (size_t)n) {
    free(bytes);
    return die(argv[2], "cannot read");
  }
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  uint8_t* inst = NULL;
  size_t inst_len = 0;
  int rc;
  if (cowmem_module_parse(bytes, len, COWMEM_MODULE_FRESH_IMPORTS, &m, &d) != 0)
    rc = die(argv[2], d.reason);
  else if (cowmem_preinit_instrument(m, &inst, &inst_len, &d) != 0)
    rc = die(argv[2], d.reason);
  else if (strcmp(argv[1], "instrument") == 0)
    rc = write_file(argv[3], inst, inst_len) == 0 ? 0 : die(argv[3], "cannot write");
  else if (!cowmem_wamr_runtime_init(NULL))
    rc = die("WAMR", "the runtime did not initialize");
  else {
    rc = run(m, inst, inst_len, argv[3], (const char* const*)argv + 4, (size_t)argc - 4);
    wasm_runtime_destroy();
  }
  free(inst);
  cowmem_module_free(m);
  free(bytes);
  return rc;
}
