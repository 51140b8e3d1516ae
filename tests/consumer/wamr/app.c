/* Instantiate a WAMR module whose linear memory comes from cowmem, call it,
 * trap it, deinstantiate it, in a loop: every instance starts from the
 * module's data and zeros, whatever the previous one wrote. */
#include <stdio.h>
#include <string.h>

#include "cowmem_wamr.h"
#include "wasm_export.h"

#define CHECK(c)                                                     \
  do {                                                               \
    if (!(c)) {                                                      \
      fprintf(stderr, "wamr app: line %d: %s\n", __LINE__, #c);      \
      return 1;                                                      \
    }                                                                \
  } while (0)

/* Call an export with up to two arguments; *ok is WAMR's verdict. */
static uint32_t call(wasm_exec_env_t env, wasm_module_inst_t inst, const char* name,
                     uint32_t nargs, uint32_t a, uint32_t b, bool* ok) {
  uint32_t argv[2] = {a, b};
  wasm_function_inst_t f = wasm_runtime_lookup_function(inst, name);
  *ok = f != NULL && wasm_runtime_call_wasm(env, f, nargs, argv);
  return argv[0];
}

static int run(const cowmem_wamr_module_t* m) {
  char err[128];
  bool ok = false;
  wasm_module_inst_t inst = cowmem_wamr_instantiate(m, 64 * 1024, 0, err, sizeof err);
  CHECK(inst != NULL);
  wasm_exec_env_t env = wasm_runtime_create_exec_env(inst, 64 * 1024);
  CHECK(env != NULL);
  CHECK(call(env, inst, "get", 1, 32, 0, &ok) == 0x524d4157u && ok); /* "WAMR" */
  /* The previous instance wrote word 256 and the note: not this one's. */
  CHECK(call(env, inst, "get", 1, 256, 0, &ok) == 0 && ok);
  call(env, inst, "set", 2, 256, 0xc0ffee, &ok);
  CHECK(ok);
  call(env, inst, "set", 2, 32, 0, &ok);
  CHECK(call(env, inst, "get", 1, 256, 0, &ok) == 0xc0ffee && ok);
  call(env, inst, "farthest", 0, 0, 0, &ok);
  CHECK(!ok);
  const char* ex = wasm_runtime_get_exception(inst);
  CHECK(ex != NULL && strstr(ex, "out of bounds memory access") != NULL);
  wasm_runtime_destroy_exec_env(env);
  wasm_runtime_deinstantiate(inst);
  return 0;
}

int main(void) {
  if (!cowmem_wamr_runtime_init(NULL)) {
    fprintf(stderr, "wamr app: wasm_runtime_full_init failed\n");
    return 1;
  }
  cowmem_wamr_module_t* m = NULL;
  cowmem_diag_t diag;
  int r = cowmem_wamr_module_open_images(COWMEM_WAMR_IMAGES_notes, COWMEM_WAMR_STRIPPED_notes,
                                         NULL, &m, &diag);
  if (r != 0) {
    fprintf(stderr, "wamr app: %s: %s\n", cowmem_err_name(r), diag.reason);
    return 1;
  }
  int bad = 0;
  for (int i = 0; i < 200 && !bad; i++) bad = run(m);
  cowmem_wamr_counters_t c;
  cowmem_wamr_counters(&c);
  cowmem_wamr_module_free(m);
  bad = bad || c.image_allocs != 200 || c.frees != 200 || c.live != 0;
  bad = bad || cowmem_wamr_shutdown() != 0;
  wasm_runtime_destroy();
  printf("wamr app: %s (%llu memories from cowmem)\n", bad ? "FAILED" : "ok",
         (unsigned long long)c.image_allocs);
  return bad;
}
