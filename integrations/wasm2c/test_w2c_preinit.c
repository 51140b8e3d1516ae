/* test_w2c_preinit.c: cowmem_wasm2c_module(... PREINIT <func>), on
 * demo_init.wasm (the demo with an init function that builds its
 * dictionary; module demopre), against the stock demo (no init: its first
 * request builds the dictionary). Before any request the pre-initialized
 * instance's memory differs (the dictionary is there); after each request
 * both hold the same memory and gave the same report. */
#include "demo.h"
#include "demo_w.h"
#include "demopre.h"
#include "test_w2c.h"

#define PAGE 65536u

W2C_DEFINE_SERVE(demo)
W2C_DEFINE_SERVE(demopre)

static int same_requests(cowmem_w2c_module_t* m) {
  for (size_t i = 0; i < DEMO_NREQUESTS; i++) {
    const char* req = demo_requests[i];
    uint32_t len = (uint32_t)strlen(req);
    W2C_T(demo) s;
    W2C_T(demopre) c;
    W2C_FN(demo, instantiate)(&s);
    ASSERT_OK(COWMEM_W2C_INSTANTIATE(m, W2C_FN(demopre, instantiate), &c));
    uint32_t pages = W2C_X(demo, pages)(&s);
    ASSERT_EQ(pages, W2C_X(demopre, pages)(&c));
    ASSERT_NE(W2C_X(demo, checksum)(&s, 0, pages * PAGE),
              W2C_X(demopre, checksum)(&c, 0, pages * PAGE));
    for (int round = 0; round < 2; round++) {
      char a[256], b[256];
      ASSERT_EQ(w2c_serve_demo(&s, req, len, a, sizeof a),
                w2c_serve_demopre(&c, req, len, b, sizeof b));
      ASSERT_STR_EQ(a, b);
      pages = W2C_X(demo, pages)(&s);
      ASSERT_EQ(pages, W2C_X(demopre, pages)(&c));
      ASSERT_EQ(W2C_X(demo, checksum)(&s, 0, pages * PAGE),
                W2C_X(demopre, checksum)(&c, 0, pages * PAGE));
    }
    W2C_FN(demo, free)(&s);
    W2C_FN(demopre, free)(&c);
  }
  return 0;
}

TEST_IMPL(preinit_recipe) {
  CHECK(init_pool(1, COWMEM_RESET_ADAPTIVE)); /* one slot: reused each time */
  cowmem_w2c_module_t* m = NULL;
  CHECK(open_set(NULL, COWMEM_W2C_IMAGES_demopre, &m));
  wasm_rt_init();
  COWMEM_W2C_INIT_MODULE(demo);
  COWMEM_W2C_INIT_MODULE(demopre);
  int r = same_requests(m);
  CHECK(close_set(&m));
  wasm_rt_free();
  return r;
}

TEST_MAIN(TEST_ENTRY(preinit_recipe))
