/* Instantiate a wasm2c module whose memory comes from cowmem, call it,
 * trap it, free it, in a loop: every instance starts from the module's data
 * and zeros, whatever the previous one wrote. */
#include <stdio.h>

#include "counter.h"
#include "cowmem_wasm2c.h"
#include "wasm-rt-impl.h" /* wasm_rt_impl_try: catching traps */

#define CHECK(c)                                                     \
  do {                                                               \
    if (!(c)) {                                                      \
      fprintf(stderr, "wasm2c app: line %d: %s\n", __LINE__, #c);    \
      return 1;                                                      \
    }                                                                \
  } while (0)

static int run(cowmem_w2c_module_t* m) {
  COWMEM_W2C_INSTANCE(counter) inst;
  CHECK(COWMEM_W2C_NEW(m, counter, &inst) == 0);
  CHECK(COWMEM_W2C_EXPORT(counter, peek)(&inst, 16) == 'c');
  /* The previous instance bumped byte 100 of its memory: not this one's. */
  CHECK(COWMEM_W2C_EXPORT(counter, peek)(&inst, 100) == 0);
  CHECK(COWMEM_W2C_EXPORT(counter, bump)(&inst, 100) == 1);
  CHECK(COWMEM_W2C_EXPORT(counter, bump)(&inst, 16) == 'c' + 1);
  wasm_rt_trap_t t = (wasm_rt_trap_t)wasm_rt_impl_try();
  if (t == WASM_RT_TRAP_NONE) {
    COWMEM_W2C_EXPORT(counter, farthest)(&inst);
    CHECK(!"the farthest load did not trap");
  }
  CHECK(t == WASM_RT_TRAP_OOB);
  COWMEM_W2C_FN(counter, free)(&inst);
  return 0;
}

int main(void) {
  wasm_rt_init();
  COWMEM_W2C_INIT_MODULE(counter);
  cowmem_w2c_module_t* m = NULL;
  cowmem_diag_t diag;
  int r = cowmem_w2c_module_open_images(COWMEM_W2C_IMAGES_counter, NULL, &m, &diag);
  if (r != 0) {
    fprintf(stderr, "wasm2c app: %s: %s\n", cowmem_err_name(r), diag.reason);
    return 1;
  }
  int bad = 0;
  for (int i = 0; i < 200 && !bad; i++) bad = run(m);
  cowmem_w2c_counters_t c;
  cowmem_w2c_counters(&c);
  cowmem_w2c_module_free(m);
  bad = bad || c.cowmem_allocs != 200 || c.cowmem_frees != 200 || c.live != 0;
  bad = bad || cowmem_w2c_shutdown() != 0;
  wasm_rt_free();
  printf("wasm2c app: %s (%llu memories from cowmem)\n", bad ? "FAILED" : "ok",
         (unsigned long long)c.cowmem_allocs);
  return bad;
}
