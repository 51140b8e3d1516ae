/* test_wamr_preinit.c: cowmem_wamr_module(... PREINIT <func>), the WAMR
 * recipe's pre-initialization at build time, on demo_init.wasm (the demo
 * with an init function that builds its dictionary).
 *
 * An instance of the original, after its init function, is the reference:
 * a fresh instance of the pre-initialized module set (the stripped module
 * and its images) and of the standalone pre-initialized module (its state
 * as data segments, images built at run time) must hold the same memory,
 * export no init function and answer the same report. */
#include "cowmem_wamr.h"
#include "test.h"
#include "wamr_util.h"

#define INIT_FUNC "wizer-initialize"

static int instance(wamr_inst_t* x, const cowmem_wamr_module_t* m) {
  char err[128] = "";
  wasm_module_inst_t inst = cowmem_wamr_instantiate(m, WAMR_STACK, 0, err, sizeof err);
  if (wamr_inst_wrap(x, &wamr_api_cowmem, inst) != 0) TEST_FAIL_("instantiate: %s", err);
  return 0;
}

/* The checksum of the whole memory, as the module computes it. */
static uint32_t mem_checksum(wamr_inst_t* x, uint64_t* pages) {
  wamr_memory(x, pages);
  return wamr_call1(x, "checksum", 2, 0, (uint32_t)*pages * COWMEM_WASM_PAGE_SIZE);
}

/* A fresh instance of m against the reference: memory, pages, report. */
static int same_as_initialized(const cowmem_wamr_module_t* m, uint32_t sum, uint64_t pages,
                               const char* report) {
  wamr_inst_t x;
  CHECK(instance(&x, m));
  ASSERT_NULL(wamr_api_cowmem.lookup_function(x.inst, INIT_FUNC));
  uint64_t p;
  ASSERT_EQ(mem_checksum(&x, &p), sum);
  ASSERT_EQ(p, pages);
  char out[256];
  wamr_serve(&x, demo_default_request, (uint32_t)strlen(demo_default_request), out,
             sizeof out);
  wamr_inst_free(&x);
  ASSERT_STR_EQ(out, report);
  return 0;
}

static int open_all(cowmem_wamr_module_t* m[3]) {
  cowmem_diag_t d;
  int r = cowmem_wamr_module_open(COWMEM_WAMR_WASM_demo_init, &m[0], &d);
  if (r == 0)
    r = cowmem_wamr_module_open_images(COWMEM_WAMR_IMAGES_demo_preinit,
                                       COWMEM_WAMR_STRIPPED_demo_preinit, NULL, &m[1], &d);
  if (r == 0) r = cowmem_wamr_module_open(COWMEM_WAMR_WASM_demo_preinit, &m[2], &d);
  if (r != 0) TEST_FAIL_("%s (%s)", cowmem_err_name(r), d.reason);
  return 0;
}

TEST_IMPL(preinit_recipe) {
  cowmem_wamr_config_t cfg;
  cowmem_wamr_config_init(&cfg);
  cfg.max_memories = 2;
  ASSERT_OK(cowmem_wamr_init(&cfg, NULL));
  ASSERT_TRUE(cowmem_wamr_runtime_init(NULL));
  cowmem_wamr_module_t* m[3] = {NULL, NULL, NULL};
  CHECK(open_all(m));
  /* The reference: the original, fresh, then after its init function. */
  wamr_inst_t x;
  CHECK(instance(&x, m[0]));
  uint64_t pages;
  uint32_t fresh = mem_checksum(&x, &pages);
  uint32_t argv[1] = {0};
  ASSERT_TRUE(wamr_call(&x, INIT_FUNC, 0, argv));
  uint32_t sum = mem_checksum(&x, &pages);
  ASSERT_NE(sum, fresh); /* the dictionary is built: the state differs */
  char report[256];
  wamr_serve(&x, demo_default_request, (uint32_t)strlen(demo_default_request), report,
             sizeof report);
  wamr_inst_free(&x);
  ASSERT_EQ(strncmp(report, "req=1 ", 6), 0); /* the init served no request */
  /* Twice each: the second instance reuses the first one's slot. */
  for (int i = 0; i < 4; i++) CHECK(same_as_initialized(m[1 + i % 2], sum, pages, report));
  for (int i = 0; i < 3; i++) cowmem_wamr_module_free(m[i]);
  wasm_runtime_destroy();
  ASSERT_OK(cowmem_wamr_shutdown());
  return 0;
}

TEST_MAIN(TEST_ENTRY(preinit_recipe))
