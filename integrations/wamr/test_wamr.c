/* test_wamr.c: cowmem as WAMR's linear-memory provider, against the stock
 * WAMR runtime in the same process. ctest runs each as wamr_<name> (fast
 * interpreter), and a subset as wamr_classic_<name> and
 * wamr_swbounds_<name> (the same file linked with the other runtimes).
 *   stock   demo.wasm as it is, stock WAMR (the reference)
 *   cowmem  the stripped demo.wasm, its memory from the cowmem pool */
#include <fcntl.h>

#include "cowmem_wamr.h"
#include "test.h"
#include "test_death.h"
#include "test_images.h"
#include "test_integ.h"
#include "test_wamr.h"
#include "wamr_internal.h"
#include "wamr_util.h"

#define PAGE COWMEM_WASM_PAGE_SIZE
#define DEMO_PAGES 9u
#define DEMO_MAX 1024u
#define NEG1 0xffffffffu /* memory.grow failed */

static cowmem_wamr_module_t* g_mod; /* demo, cowmem side */
static wasm_module_t g_stock;       /* demo, stock side */
static uint8_t* g_stock_bytes;      /* WAMR keeps them until unload */

static int read_all(const char* path, uint8_t** out, uint32_t* len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  size_t n = 0;
  int r = cowmem_module_read(fd, out, &n);
  close(fd);
  ASSERT_OK(r);
  ASSERT_GT(n, 0);
  ASSERT_LE(n, UINT32_MAX);
  *len = (uint32_t)n;
  return 0;
}

/* The unstripped module in the stock runtime; *bytes (WAMR keeps pointers
 * into them) are freed after wamr_api_stock.unload. */
static int stock_load(const char* path, uint8_t** bytes, wasm_module_t* out) {
  uint32_t len;
  CHECK(read_all(path, bytes, &len));
  char err[128] = "";
  *out = wamr_api_stock.load(*bytes, len, err, sizeof err);
  if (!*out) TEST_FAIL_("stock load %s: %s", path, err);
  return 0;
}

/* cowmem_wamr_init with `slots` memories and the given reset (as
 * test_w2c.h's for the wasm2c integration). */
static int init_pool(size_t slots, cowmem_reset_strategy_t reset) {
  return test_integ_init(cowmem_wamr_init, slots, reset);
}

static int setup_reset(size_t slots, cowmem_reset_strategy_t reset) {
  static bool once; /* WAMR's runtimes: once per process */
  if (!once) {
    RuntimeInitArgs args;
    memset(&args, 0, sizeof args);
    args.mem_alloc_type = Alloc_With_System_Allocator;
    ASSERT_TRUE(wamr_api_stock.full_init(&args));
    ASSERT_TRUE(cowmem_wamr_runtime_init(NULL));
    once = true;
  }
  CHECK(init_pool(slots, reset));
  CHECK(OPEN_SET(demo, &g_mod));
  ASSERT_EQ(cowmem_wamr_module_memories(g_mod), 1);
  ASSERT_NOT_NULL(cowmem_wamr_module_image(g_mod, 0));
  CHECK(stock_load(COWMEM_WAMR_WASM_demo, &g_stock_bytes, &g_stock));
  return 0;
}

static int setup(size_t slots) {
  return setup_reset(slots, COWMEM_RESET_ADAPTIVE);
}

static int teardown(void) {
  cowmem_wamr_module_free(g_mod);
  wamr_api_stock.unload(g_stock);
  free(g_stock_bytes);
  g_mod = NULL;
  g_stock = NULL;
  return pool_done();
}

/* The default request through a stock instance and a cowmem one: the same
 * report. */
static int same_report(wamr_inst_t* s, wamr_inst_t* c) {
  char a[256], b[256];
  uint32_t len = (uint32_t)strlen(demo_default_request);
  wamr_serve(s, demo_default_request, len, a, sizeof a);
  wamr_serve(c, demo_default_request, len, b, sizeof b);
  ASSERT_STR_EQ(a, b);
  return 0;
}

static int cow_heap(wamr_inst_t* x, const cowmem_wamr_module_t* m, uint32_t heap) {
  char err[128] = "";
  wasm_module_inst_t inst = cowmem_wamr_instantiate(m, WAMR_STACK, heap, err, sizeof err);
  if (wamr_inst_wrap(x, &wamr_api_cowmem, inst) != 0) TEST_FAIL_("cowmem: %s", err);
  return 0;
}

static int stock_heap(wamr_inst_t* x, uint32_t heap) {
  char err[128] = "";
  wasm_module_inst_t inst =
      wamr_api_stock.instantiate(g_stock, WAMR_STACK, heap, err, sizeof err);
  if (wamr_inst_wrap(x, &wamr_api_stock, inst) != 0) TEST_FAIL_("stock: %s", err);
  return 0;
}

#define COW(x) CHECK(cow_heap(x, g_mod, 0))
#define STOCK(x) CHECK(stock_heap(x, 0))

/* The checksum of the instance's whole memory, as the module computes it. */
static uint32_t mem_checksum(wamr_inst_t* x) {
  uint64_t pages;
  wamr_memory(x, &pages);
  return wamr_call1(x, "checksum", 2, 0, (uint32_t)pages * PAGE);
}

TEST_IMPL(same_outputs) {
  CHECK(setup(8));
  char* big = demo_big_request(DEMO_BIG_LEN);
  ASSERT_NOT_NULL(big);
  for (size_t i = 0; i <= DEMO_NREQUESTS; i++) {
    uint32_t len;
    const char* req = demo_input(i, big, &len);
    wamr_inst_t s, c;
    STOCK(&s);
    COW(&c);
    /* Two requests per instance: the second sees the first's state. */
    for (int round = 0; round < 2; round++) {
      char a[256], b[256];
      ASSERT_EQ(wamr_serve(&s, req, len, a, sizeof a),
                wamr_serve(&c, req, len, b, sizeof b));
      ASSERT_STR_EQ(a, b);
    }
    uint64_t ps, pc;
    wamr_memory(&s, &ps);
    wamr_memory(&c, &pc);
    ASSERT_EQ(ps, pc);
    if (i == DEMO_NREQUESTS) ASSERT_GT(pc, DEMO_PAGES); /* it grew */
    ASSERT_EQ(mem_checksum(&s), mem_checksum(&c));
    wamr_inst_free(&s);
    wamr_inst_free(&c);
  }
  free(big);
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.image_allocs, DEMO_NREQUESTS + 1);
  ASSERT_EQ(n.plain_allocs, 0);
  return teardown();
}

/* Instance a writes a secret (BSS, data, heap), grows, writes the grown
 * pages and an image page from the host; instance b, in the same slot,
 * sees the image and zeros only. Twice, so the second pair starts from a
 * reset slot, for every reset strategy. */
static int isolation_with(cowmem_reset_strategy_t reset) {
  CHECK(setup_reset(1, reset));
  for (int pass = 0; pass < 2; pass++) {
    wamr_inst_t ref, a, b;
    STOCK(&ref);
    uint32_t fresh = wamr_call1(&ref, "checksum", 2, 0, DEMO_PAGES * PAGE);
    wamr_inst_free(&ref);

    COW(&a);
    uint8_t* base_a = wamr_memory(&a, NULL);
    ASSERT_EQ(wamr_call1(&a, "checksum", 2, 0, DEMO_PAGES * PAGE), fresh);
    uint32_t heap = wamr_call1(&a, "write_secret", 1, 0x5ec2e7u, 0);
    ASSERT_NE(heap, 0);
    ASSERT_NE(wamr_call1(&a, "read_secret", 0, 0, 0), 0);
    ASSERT_EQ(wamr_call1(&a, "grow", 1, 3, 0), DEMO_PAGES);
    uint8_t* ma = wamr_memory(&a, NULL);
    memset(ma + DEMO_PAGES * PAGE, 0xA5, 3 * PAGE); /* the grown part */
    memset(ma + 1024, 0x5A, 4096);                  /* the image */
    wamr_inst_free(&a);

    COW(&b);
    uint64_t pages;
    uint8_t* mb = wamr_memory(&b, &pages);
    ASSERT_PTR_EQ(mb, base_a); /* the same slot */
    ASSERT_EQ(pages, DEMO_PAGES);
    ASSERT_EQ(wamr_call1(&b, "read_secret", 0, 0, 0), 0);
    ASSERT_EQ(wamr_call1(&b, "peek", 1, heap, 0), 0);
    ASSERT_EQ(wamr_call1(&b, "checksum", 2, 0, DEMO_PAGES * PAGE), fresh);
    /* The pages a grew are inaccessible again, then zeros after a grow. */
    ASSERT_EQ(wamr_call1(&b, "peek", 1, DEMO_PAGES * PAGE, 0), WAMR_TRAP);
    ASSERT_TRUE(wamr_oob(&b));
    ASSERT_EQ(wamr_call1(&b, "grow", 1, 3, 0), DEMO_PAGES);
    for (uint32_t off = 0; off < 3 * PAGE; off++)
      if (mb[DEMO_PAGES * PAGE + off] != 0)
        TEST_FAIL_("grown byte %u is %u, not 0", off, mb[DEMO_PAGES * PAGE + off]);
    wamr_inst_free(&b);
  }
  return teardown();
}

TEST_IMPL(isolation) {
  CHECK(isolation_with(COWMEM_RESET_ADAPTIVE));
  CHECK(isolation_with(COWMEM_RESET_MADVISE));
  CHECK(isolation_with(COWMEM_RESET_KEEP_RESIDENT));
  CHECK(isolation_with(COWMEM_RESET_BATCHED)); /* the acquire flushes */
  return 0;
}

static void host_write(void* p) {
  *(volatile uint8_t*)p = 1;
}

TEST_IMPL(oob_traps) {
  CHECK(setup(8));
  wamr_inst_t c, s;
  COW(&c);
  STOCK(&s);
  /* Before and after a grow, for both runtimes: the last word reads; the
   * first word past the end, an access straddling it, far beyond it and
   * the last address a u32 names all trap out of bounds. */
  for (int grown = 0; grown < 2; grown++) {
    uint32_t size = (DEMO_PAGES + 7 * (uint32_t)grown) * PAGE;
    uint32_t probes[] = {size - 4, size, size - 2, size + 4096, 0xfffffffcu, 0x80000000u};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
      uint32_t v1 = wamr_call1(&c, "peek", 1, probes[i], 0);
      uint32_t v2 = wamr_call1(&s, "peek", 1, probes[i], 0);
      ASSERT_EQ(v1, v2);
      ASSERT_EQ(wamr_oob(&c), probes[i] > size - 4);
      ASSERT_EQ(wamr_oob(&s), probes[i] > size - 4);
    }
    ASSERT_EQ(wamr_call1(&c, "trap_oob", 0, 0, 0), WAMR_TRAP);
    ASSERT_TRUE(wamr_oob(&c));
    /* The host sees PROT_NONE past the end: a write there kills a child. */
    uint8_t* base = wamr_memory(&c, NULL);
    ASSERT_EQ(test_run_in_child(host_write, base + size), SIGSEGV);
    ASSERT_EQ(test_run_in_child(host_write, base + size - 1), 0);
    if (!grown) {
      ASSERT_EQ(wamr_call1(&c, "grow", 1, 7, 0), DEMO_PAGES);
      ASSERT_EQ(wamr_call1(&s, "grow", 1, 7, 0), DEMO_PAGES);
    }
  }
  /* The instance is intact after traps. */
  CHECK(same_report(&s, &c));
  wamr_inst_free(&c);
  wamr_inst_free(&s);
  return teardown();
}

/* The farthest addresses the interpreter forms (u32 address + u32 static
 * offset: up to base + 8 GiB - 2, plus the access) trap out of bounds in
 * every live instance, with neighbouring slots live and written: each lands
 * in the instance's own slot or guard, never in the next slot. */
TEST_IMPL(far_traps) {
  CHECK(setup(8));
  cowmem_wamr_module_t* fm;
  CHECK(OPEN_SET(far, &fm));
  ASSERT_NOT_NULL(cowmem_wamr_module_image(fm, 0));
  wamr_inst_t live[4];
  for (int i = 0; i < 4; i++) {
    CHECK(cow_heap(&live[i], fm, 0));
    ASSERT_EQ(wamr_call1(&live[i], "peek", 1, 16, 0), 'f'); /* the image */
    if (i == 3) ASSERT_EQ(wamr_call1(&live[i], "grow", 1, 1, 0), 1);
    uint8_t* base = wamr_memory(&live[i], NULL);
    ASSERT_NOT_NULL(base);
    memset(base + 64, 0x11 + i, PAGE - 64);
  }
  static const uint32_t far[] = {0xffffffffu, 0xfffffff8u, 0x80000000u,
                                 0x0000ffffu, 1u,          0};
  for (int i = 0; i < 4; i++)
    for (size_t j = 0; j < sizeof far / sizeof far[0]; j++) {
      ASSERT_EQ(wamr_call1(&live[i], "load_far", 1, far[j], 0), WAMR_TRAP);
      ASSERT_TRUE(wamr_oob(&live[i]));
      ASSERT_EQ(wamr_call1(&live[i], "load64_far", 1, far[j], 0), WAMR_TRAP);
      ASSERT_TRUE(wamr_oob(&live[i]));
    }
  for (int i = 0; i < 4; i++) {
    ASSERT_EQ(wamr_call1(&live[i], "peek", 1, PAGE - 1, 0), 0x11u + (uint32_t)i);
    wamr_inst_free(&live[i]);
  }
  cowmem_wamr_module_free(fm);
  return teardown();
}

TEST_IMPL(grow_to_max) {
  CHECK(setup(8));
  wamr_inst_t c, s;
  COW(&c);
  ASSERT_EQ(wamr_call1(&c, "grow", 1, 0, 0), DEMO_PAGES);
  ASSERT_EQ(wamr_call1(&c, "grow", 1, DEMO_MAX - DEMO_PAGES + 1, 0), NEG1); /* past max */
  ASSERT_EQ(wamr_call1(&c, "grow", 1, 0xffffffffu, 0), NEG1);               /* wraps */
  ASSERT_EQ(wamr_call1(&c, "pages", 0, 0, 0), DEMO_PAGES);
  ASSERT_EQ(wamr_call1(&c, "grow", 1, 100, 0), DEMO_PAGES);
  ASSERT_EQ(wamr_call1(&c, "grow", 1, DEMO_MAX - DEMO_PAGES - 100, 0), DEMO_PAGES + 100);
  ASSERT_EQ(wamr_call1(&c, "pages", 0, 0, 0), DEMO_MAX);
  uint8_t* base = wamr_memory(&c, NULL);
  base[DEMO_MAX * PAGE - 1] = 7; /* the last byte is writable */
  ASSERT_EQ(wamr_call1(&c, "peek", 1, DEMO_MAX * PAGE - 4, 0), 7u << 24);
  ASSERT_EQ(wamr_call1(&c, "peek", 1, DEMO_MAX * PAGE, 0), WAMR_TRAP);
  ASSERT_TRUE(wamr_oob(&c));
  ASSERT_EQ(wamr_call1(&c, "grow", 1, 1, 0), NEG1);
  ASSERT_EQ(wamr_call1(&c, "grow", 1, 0, 0), DEMO_MAX);
  ASSERT_PTR_EQ(wamr_memory(&c, NULL), base); /* grown in place */
  wamr_inst_free(&c);
  /* The stock runtime agrees. */
  STOCK(&s);
  ASSERT_EQ(wamr_call1(&s, "grow", 1, DEMO_MAX - DEMO_PAGES + 1, 0), NEG1);
  ASSERT_EQ(wamr_call1(&s, "grow", 1, DEMO_MAX - DEMO_PAGES, 0), DEMO_PAGES);
  ASSERT_EQ(wamr_call1(&s, "grow", 1, 1, 0), NEG1);
  wamr_inst_free(&s);
  return teardown();
}

/* 10,000 instantiate/deinstantiate cycles (with requests, and a grow every
 * tenth) leave VmSize where it was and RSS flat: nothing leaks. */
/* Two live instances (two slots in turn), a request, a grow every tenth. */
static int leak_cycles(int n) {
  uint32_t len = (uint32_t)strlen(demo_default_request);
  for (int i = 0; i < n; i++) {
    wamr_inst_t x, y;
    COW(&x);
    COW(&y);
    wamr_serve(&x, demo_default_request, len, NULL, 0);
    if (i % 10 == 0) ASSERT_EQ(wamr_call1(&y, "grow", 1, 2, 0), DEMO_PAGES);
    wamr_inst_free(&x);
    wamr_inst_free(&y);
  }
  return 0;
}

TEST_IMPL(no_leak) {
  CHECK(setup(8));
  CHECK(leak_cycles(100)); /* warm slots, caches and malloc's arenas */
  unsigned long vm0 = demo_status_kb("VmSize"), rss0 = demo_status_kb("VmRSS");
  ASSERT_GT(vm0, 0);
  CHECK(leak_cycles(5000));
  unsigned long vm1 = demo_status_kb("VmSize"), rss1 = demo_status_kb("VmRSS");
  printf("10000 cycles: VmSize %lu -> %lu KiB, VmRSS %lu -> %lu KiB\n", vm0, vm1, rss0,
         rss1);
  ASSERT_EQ(vm1, vm0);
  /* One page kept per cycle would be 40 MiB; allow the allocator's noise. */
  ASSERT_LT(rss1, rss0 + 2048);
  return teardown();
}

/* Eight live instances each keep their own secret while the others come
 * and go; a ninth finds no slot and fails cleanly. */
TEST_IMPL(several_live) {
  CHECK(setup(8));
  wamr_inst_t x[8];
  uint32_t heap[8];
  for (uint32_t i = 0; i < 8; i++) {
    COW(&x[i]);
    heap[i] = wamr_call1(&x[i], "write_secret", 1, 1000 + i, 0);
  }
  cowmem_pool_metrics_t pm;
  ASSERT_OK(cowmem_pool_metrics(cowmem_wamr_pool(), &pm));
  ASSERT_EQ(pm.in_use, 8);
  char err[128] = "";
  ASSERT_NULL(cowmem_wamr_instantiate(g_mod, WAMR_STACK, 0, err, sizeof err));
  ASSERT_TRUE(err[0] != 0);
  static const int order[] = {0, 2, 4, 6, 1, 3, 5, 7};
  for (int k = 0; k < 8; k++) {
    for (int j = k; j < 8; j++) {
      int i = order[j];
      ASSERT_EQ(wamr_call1(&x[i], "peek", 1, heap[i], 0), 1000u + (uint32_t)i);
    }
    wamr_inst_free(&x[order[k]]);
  }
  return teardown();
}

/* Failed instantiations: no slot; a module whose instantiation fails after
 * its memory was allocated; the wrong module set. Each gives the memory
 * back, and the slot's next instance sees only its own image. */
TEST_IMPL(instantiate_fails) {
  CHECK(setup(1));
  wamr_inst_t a, b;
  COW(&a);
  char err[128] = "";
  ASSERT_NULL(cowmem_wamr_instantiate(g_mod, WAMR_STACK, 0, err, sizeof err));
  printf("no slot: %s\n", err);
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.refused_allocs, 1);
  wamr_inst_free(&a);

  cowmem_wamr_module_t *fail, *fm;
  cowmem_diag_t diag;
  ASSERT_OK(cowmem_wamr_module_open(COWMEM_WAMR_WASM_fail, &fail, &diag));
  ASSERT_NULL(cowmem_wamr_module_image(fail, 0)); /* out of bounds: no image */
  err[0] = 0;
  ASSERT_NULL(cowmem_wamr_instantiate(fail, WAMR_STACK, 0, err, sizeof err));
  printf("segment out of bounds: %s\n", err);
  ASSERT_TRUE(err[0] != 0);
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.live, 0);
  ASSERT_EQ(n.image_allocs, 2); /* a, and the failed one */

  /* The demo's module set around far's instantiation: its memory is
   * smaller than the demo's image, so the allocation is refused. */
  CHECK(OPEN_SET(far, &fm));
  ASSERT_NULL(COWMEM_WAMR_INSTANTIATE(
      g_mod, wasm_runtime_instantiate(cowmem_wamr_module_wamr(fm), WAMR_STACK, 0, err,
                                      sizeof err)));
  cowmem_wamr_begin(g_mod);
  ASSERT_NULL(wasm_runtime_instantiate(cowmem_wamr_module_wamr(fm), WAMR_STACK, 0, err,
                                       sizeof err));
  ASSERT_ERR(cowmem_wamr_end(), COWMEM_ESTATE);

  /* The one slot: far's image and zeros, nothing the failures wrote. */
  CHECK(cow_heap(&b, fm, 0));
  for (uint32_t i = 0; i < 16; i++)
    ASSERT_EQ(wamr_call1(&b, "peek", 1, i, 0), 0);
  ASSERT_EQ(wamr_call1(&b, "peek", 1, 16, 0), 'f');
  wamr_inst_free(&b);
  cowmem_wamr_module_free(fail);
  cowmem_wamr_module_free(fm);
  return teardown();
}

/* What WAMR changes at load works: a shrunk memory (no memory.grow: one
 * page of __heap_base bytes), and an app heap (heap_size > 0: more pages,
 * heap metadata written into the memory at instantiation). */
TEST_IMPL(rewrites_at_load) {
  CHECK(setup(1));
  cowmem_wamr_module_t* sm;
  CHECK(OPEN_SET(shrink, &sm));
  uint8_t* bytes;
  wasm_module_t stock;
  CHECK(stock_load(COWMEM_WAMR_WASM_shrink, &bytes, &stock));
  char err[128] = "";
  for (int round = 0; round < 2; round++) {
    wamr_inst_t c, s;
    CHECK(cow_heap(&c, sm, 0));
    ASSERT_EQ(
        wamr_inst_wrap(&s, &wamr_api_stock,
                       wamr_api_stock.instantiate(stock, WAMR_STACK, 0, err, sizeof err)),
        0);
    wasm_memory_inst_t mc = wamr_api_cowmem.default_memory(c.inst);
    wasm_memory_inst_t ms = wamr_api_stock.default_memory(s.inst);
    ASSERT_EQ(wamr_api_cowmem.bytes_per_page(mc), 0x12000); /* shrunk */
    ASSERT_EQ(wamr_api_stock.bytes_per_page(ms), 0x12000);
    ASSERT_EQ(wamr_api_cowmem.memory_pages(mc), 1);
    static const uint32_t probes[] = {0x1000, 0x1005, 0x11fff, 0x12000, 0x20000, 0x3ffff};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
      ASSERT_EQ(wamr_call1(&c, "peek", 1, probes[i], 0),
                wamr_call1(&s, "peek", 1, probes[i], 0));
      ASSERT_EQ(wamr_oob(&c), wamr_oob(&s));
    }
    ASSERT_EQ(wamr_call1(&c, "peek", 1, 0x1000, 0), 's');
    wamr_call1(&c, "poke", 2, 0x1000, 'X'); /* gone in the next round */
    wamr_inst_free(&c);
    wamr_inst_free(&s);
  }
  wamr_api_stock.unload(stock);
  free(bytes);
  cowmem_wamr_module_free(sm);

  /* The demo with a 64 KiB app heap: both runtimes add a page for it. */
  for (int round = 0; round < 2; round++) {
    wamr_inst_t c, s;
    CHECK(cow_heap(&c, g_mod, 65536));
    CHECK(stock_heap(&s, 65536));
    uint64_t pc, ps;
    wamr_memory(&c, &pc);
    wamr_memory(&s, &ps);
    ASSERT_EQ(pc, ps);
    ASSERT_GT(pc, DEMO_PAGES);
    /* The app heap's allocator keeps native pointers in its page: compare
     * the module's own pages. */
    ASSERT_EQ(wamr_call1(&c, "checksum", 2, 0, DEMO_PAGES * PAGE),
              wamr_call1(&s, "checksum", 2, 0, DEMO_PAGES * PAGE));
    void *nc = NULL, *ns = NULL;
    uint64_t oc = wamr_api_cowmem.app_malloc(c.inst, 100, &nc);
    uint64_t os = wamr_api_stock.app_malloc(s.inst, 100, &ns);
    ASSERT_NE(oc, 0);
    ASSERT_EQ(oc, os);
    memset(nc, 0x77, 100);
    memset(ns, 0x77, 100);
    CHECK(same_report(&s, &c));
    ASSERT_EQ(wamr_call1(&c, "checksum", 2, 0, DEMO_PAGES * PAGE),
              wamr_call1(&s, "checksum", 2, 0, DEMO_PAGES * PAGE));
    wamr_inst_free(&c);
    wamr_inst_free(&s);
  }
  return teardown();
}

/* An imported memory: WAMR (no multi-module) creates it fresh for every
 * instance, so its data comes from the image and the stripped module has
 * no segment left; contents, traps and isolation as with stock WAMR. */
TEST_IMPL(imported_memory) {
  CHECK(setup(1));
  cowmem_wamr_module_t* im;
  CHECK(OPEN_SET(imported, &im));
  ASSERT_NOT_NULL(cowmem_wamr_module_image(im, 0));
  uint8_t* bytes;
  wasm_module_t stock;
  CHECK(stock_load(COWMEM_WAMR_WASM_imported, &bytes, &stock));
  char err[128] = "";
  static const char data[] = "imported memory data";
  for (int round = 0; round < 2; round++) {
    wamr_inst_t c, s;
    CHECK(cow_heap(&c, im, 0));
    ASSERT_EQ(
        wamr_inst_wrap(&s, &wamr_api_stock,
                       wamr_api_stock.instantiate(stock, WAMR_STACK, 0, err, sizeof err)),
        0);
    for (uint32_t i = 0; i < sizeof data - 1; i++)
      ASSERT_EQ(wamr_call1(&c, "peek", 1, 16 + i, 0), (uint8_t)data[i]);
    static const uint32_t probes[] = {0, 15, 36, PAGE - 1, PAGE, 2 * PAGE};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
      ASSERT_EQ(wamr_call1(&c, "peek", 1, probes[i], 0),
                wamr_call1(&s, "peek", 1, probes[i], 0));
      ASSERT_EQ(wamr_oob(&c), wamr_oob(&s));
    }
    wamr_call1(&c, "poke", 2, 16, 'X'); /* gone in the next round */
    ASSERT_EQ(wamr_call1(&c, "grow", 1, 1, 0), 1);
    ASSERT_EQ(wamr_call1(&c, "grow", 1, 1, 0), NEG1); /* max 2 */
    wamr_inst_free(&c);
    wamr_inst_free(&s);
  }
  wamr_api_stock.unload(stock);
  free(bytes);
  cowmem_wamr_module_free(im);
  return teardown();
}

/* 65536 pages (4 GiB) arrive in the callbacks as size 0: a memory that
 * grows to it and one that starts there get the whole slot, image mapped,
 * the last byte writable. */
TEST_IMPL(four_gib) {
  CHECK(setup(2));
  cowmem_wamr_module_t *grows, *starts;
  CHECK(OPEN_SET(big, &grows));
  CHECK(OPEN_SET(big4g, &starts));
  wamr_inst_t x, y;
  CHECK(cow_heap(&x, grows, 0));
  ASSERT_EQ(wamr_call1(&x, "peek", 1, 16, 0), 'b');
  ASSERT_EQ(wamr_call1(&x, "peek", 1, 0xffffffffu, 0), WAMR_TRAP);
  ASSERT_TRUE(wamr_oob(&x));
  ASSERT_EQ(wamr_call1(&x, "grow", 1, 1, 0), 65535);
  wamr_call1(&x, "poke", 2, 0xffffffffu, 7);
  ASSERT_EQ(wamr_call1(&x, "peek", 1, 0xffffffffu, 0), 7);
  ASSERT_EQ(wamr_call1(&x, "grow", 1, 1, 0), NEG1);
  CHECK(cow_heap(&y, starts, 0));
  uint64_t pages;
  wamr_memory(&y, &pages);
  ASSERT_EQ(pages, 65536);
  ASSERT_EQ(wamr_call1(&y, "peek", 1, 16, 0), 'b');
  wamr_call1(&y, "poke", 2, 0xffffffffu, 9);
  ASSERT_EQ(wamr_call1(&y, "peek", 1, 0xffffffffu, 0), 9);
  wamr_inst_free(&x);
  wamr_inst_free(&y);
  cowmem_wamr_module_free(grows);
  cowmem_wamr_module_free(starts);
  return teardown();
}

/* An app heap makes near4g.wat's 65535 pages 65536 (WAMR adds a page for
 * it), which WAMR asks the hook for as 0 bytes. Through
 * cowmem_wamr_instantiate the hook knows the heap, so 0 is 4 GiB: WAMR
 * writes the heap's header into the last page, and the module writes and
 * reads the last byte. Through COWMEM_WAMR_INSTANTIATE it does not know
 * it, and 0 could be an empty memory: the allocation is refused, and the
 * instantiation fails (the hook once took 0 bytes, and WAMR's write of the
 * heap header killed the host). */
static cowmem_wamr_module_t* g_near;

static void near_without_heap_size(void* arg) {
  (void)arg;
  char err[128] = "";
  wasm_module_inst_t inst = COWMEM_WAMR_INSTANTIATE(
      g_near, wasm_runtime_instantiate(cowmem_wamr_module_wamr(g_near), WAMR_STACK,
                                       8192, err, sizeof err));
  _exit(inst == NULL && strstr(err, "allocate linear memory failed") ? 42 : 43);
}

TEST_IMPL(heap_to_4gib) {
  CHECK(setup(2));
  CHECK(OPEN_SET(near4g, &g_near));
  wamr_inst_t x;
  CHECK(cow_heap(&x, g_near, 8192));
  uint64_t pages;
  uint8_t* base = wamr_memory(&x, &pages);
  ASSERT_EQ(pages, 65536);
  ASSERT_EQ(cowmem_slot_accessible(cowmem_pool_slot_of(cowmem_wamr_pool(), base)),
            (uint64_t)1 << 32);
  wamr_call1(&x, "poke", 2, 0xffffffffu, 9);
  ASSERT_EQ(wamr_call1(&x, "peek", 1, 0xffffffffu, 0), 9);
  ASSERT_EQ(wamr_call1(&x, "grow", 1, 1, 0), NEG1);
  wamr_inst_free(&x);
  test_death_t d;
  ASSERT_EQ(test_death_run(near_without_heap_size, NULL, &d), 0);
  if (d.code != 42 || !strstr(d.err, "cowmem_wamr_instantiate"))
    TEST_FAIL_("expected a refused instantiation naming cowmem_wamr_instantiate; got "
               "signal %d, exit %d, stderr \"%s\"",
               d.signal, d.code, d.err);
  /* Without a heap the memory is what the module declares. */
  CHECK(cow_heap(&x, g_near, 0));
  wamr_memory(&x, &pages);
  ASSERT_EQ(pages, 65535);
  ASSERT_EQ(wamr_call1(&x, "peek", 1, 0xfffeffffu, 0), 0);
  ASSERT_EQ(wamr_call1(&x, "peek", 1, 0xffff0000u, 0), WAMR_TRAP);
  wamr_inst_free(&x);
  cowmem_wamr_module_free(g_near);
  g_near = NULL;
  return teardown();
}

/* WAMR shrinks zero.wat's memory to 0 bytes at load (one page declared, no
 * memory.grow, __heap_base = 0): every load and store traps as in stock
 * WAMR, through either way to instantiate, and the slot holds no accessible
 * byte (the hook once read the 0 as 4 GiB: a readable, writable 4 GiB
 * memory against a declared maximum of 64 KiB). */
TEST_IMPL(shrunk_to_zero) {
  CHECK(setup(1));
  cowmem_wamr_module_t* zm;
  CHECK(OPEN_SET(zero, &zm));
  uint8_t* bytes;
  wasm_module_t stock;
  CHECK(stock_load(COWMEM_WAMR_WASM_zero, &bytes, &stock));
  char err[128] = "";
  static const uint32_t probes[] = {0, 1, 0xffff, 0x10000000, 0xc0000000, 0xffffffffu};
  for (int round = 0; round < 2; round++) {
    wamr_inst_t c, s;
    if (round == 0)
      CHECK(cow_heap(&c, zm, 0));
    else
      ASSERT_EQ(wamr_inst_wrap(&c, &wamr_api_cowmem,
                               COWMEM_WAMR_INSTANTIATE(
                                   zm, wasm_runtime_instantiate(cowmem_wamr_module_wamr(zm),
                                                                WAMR_STACK, 0, err,
                                                                sizeof err))),
                0);
    ASSERT_EQ(
        wamr_inst_wrap(&s, &wamr_api_stock,
                       wamr_api_stock.instantiate(stock, WAMR_STACK, 0, err, sizeof err)),
        0);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
      ASSERT_EQ(wamr_call1(&s, "peek", 1, probes[i], 0), WAMR_TRAP);
      ASSERT_TRUE(wamr_oob(&s));
      ASSERT_EQ(wamr_call1(&c, "peek", 1, probes[i], 0), WAMR_TRAP);
      ASSERT_TRUE(wamr_oob(&c));
      ASSERT_EQ(wamr_call1(&c, "poke", 2, probes[i], 1), WAMR_TRAP);
      ASSERT_TRUE(wamr_oob(&c));
    }
    uint8_t* base = wamr_memory(&c, NULL);
    if (base) { /* software bounds checks allocate nothing for 0 bytes */
      cowmem_slot_t* slot = cowmem_pool_slot_of(cowmem_wamr_pool(), base);
      ASSERT_NOT_NULL(slot);
      ASSERT_EQ(cowmem_slot_accessible(slot), 0);
    }
    wamr_inst_free(&c);
    wamr_inst_free(&s);
  }
  wamr_api_stock.unload(stock);
  free(bytes);
  cowmem_wamr_module_free(zm);
  return teardown();
}

/* twin.wat has far.wat's limits and other data: instantiated inside far's
 * module set it is refused (it once got far's image), and each in its own
 * set sees its own data. */
TEST_IMPL(wrong_module) {
  CHECK(setup(2));
  cowmem_wamr_module_t *fm, *tm;
  CHECK(OPEN_SET(far, &fm));
  CHECK(OPEN_SET(twin, &tm));
  char err[128] = "";
  ASSERT_NULL(COWMEM_WAMR_INSTANTIATE(
      fm, wasm_runtime_instantiate(cowmem_wamr_module_wamr(tm), WAMR_STACK, 0, err,
                                   sizeof err)));
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.live, 0);
  wamr_inst_t f, t;
  CHECK(cow_heap(&f, fm, 0));
  CHECK(cow_heap(&t, tm, 0));
  ASSERT_EQ(wamr_call1(&f, "peek", 1, 16, 0), 'f');
  ASSERT_EQ(wamr_call1(&t, "peek", 1, 16, 0), 't');
  wamr_inst_free(&f);
  wamr_inst_free(&t);
  cowmem_wamr_module_free(fm);
  cowmem_wamr_module_free(tm);
  return teardown();
}

/* The free and grow callbacks given a pointer that is no live linear
 * memory's base (WAMR never passes one; a bug in it or in the host could):
 * an abort naming the pointer, never another instance's slot released or
 * grown. */
static void free_ptr(void* p) {
  cowmem_wamr__free(Alloc_For_LinearMemory, p);
}

static void grow_ptr(void* p) {
  (void)cowmem_wamr__realloc(Alloc_For_LinearMemory, true, p, 2 * PAGE);
}

static int both_abort(void* p) {
  ASSERT_ABORTS(free_ptr, p, test_ptr_text(p));
  ASSERT_ABORTS(free_ptr, p, "no live memory's base");
  ASSERT_ABORTS(grow_ptr, p, test_ptr_text(p));
  return 0;
}

TEST_IMPL(bad_free) {
  CHECK(setup(2));
  wamr_inst_t a;
  COW(&a);
  uint8_t* base = wamr_memory(&a, NULL);
  ASSERT_NOT_NULL(base);
  cowmem_pool_t* pool = cowmem_wamr_pool();
  const size_t stride = COWMEM_WASM32_SLOT_RESERVE + COWMEM_WASM32_GUARD_SIZE;
  uint8_t* idle = cowmem_pool_contains(pool, base + stride) ? base + stride : base - stride;
  CHECK(both_abort(base + PAGE)); /* interior */
  CHECK(both_abort(idle));        /* a slot no instance holds */
  wamr_inst_free(&a);
  CHECK(both_abort(base)); /* a double free: its slot is idle now */
  ASSERT_ABORTS(free_ptr, &a, "not a linear memory of the pool");
  /* The parent's pool is whole. */
  wamr_inst_t s;
  COW(&a);
  STOCK(&s);
  ASSERT_EQ(mem_checksum(&a), mem_checksum(&s));
  wamr_inst_free(&a);
  wamr_inst_free(&s);
  return teardown();
}

/* What cannot be mapped exactly is refused at load, with the reason. */
TEST_IMPL(unsupported) {
  CHECK(setup(1));
  static const uint8_t mem64[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 5, 3, 1, 0x04, 1};
  static const uint8_t mem64_small[] = {0, 'a', 's', 'm', 1,    0, 0,
                                        0, 5,   4,   1,   0x05, 1, 2};
  static const uint8_t shared[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 5, 4, 1, 0x03, 1, 1};
  static const uint8_t two[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 5, 5, 2, 0, 1, 0, 1};
  static const uint8_t plain[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 5, 4, 1, 0x01, 1, 2};
  cowmem_wamr_module_t* m = NULL;
  cowmem_diag_t diag;
  ASSERT_ERR(cowmem_wamr_module_new(mem64, sizeof mem64, &m, &diag), COWMEM_EUNSUPPORTED);
  ASSERT_TRUE(strstr(diag.reason, "memory64") != NULL);
  ASSERT_ERR(cowmem_wamr_module_new(shared, sizeof shared, &m, &diag),
             COWMEM_EUNSUPPORTED);
  ASSERT_TRUE(strstr(diag.reason, "shared") != NULL);
  ASSERT_ERR(cowmem_wamr_module_new(two, sizeof two, &m, &diag), COWMEM_EUNSUPPORTED);
  ASSERT_TRUE(strstr(diag.reason, "2 memories") != NULL);
  /* A memory64 memory of at most 4 GiB passes cowmem; this WAMR build has
   * no memory64 and says so. */
  ASSERT_ERR(cowmem_wamr_module_new(mem64_small, sizeof mem64_small, &m, &diag),
             COWMEM_EINVALID);
  ASSERT_TRUE(strstr(diag.reason, "WAMR") != NULL);
  printf("memory64 <= 4 GiB: %s\n", diag.reason);
  ASSERT_NULL(m);
  ASSERT_OK(cowmem_wamr_module_new(plain, sizeof plain, &m, &diag));
  ASSERT_EQ(cowmem_wamr_module_memories(m), 1);
  ASSERT_NULL(cowmem_wamr_module_image(m, 0)); /* no data: zeros */
  cowmem_wamr_module_free(m);
  ASSERT_ERR(cowmem_wamr_module_open("/nonexistent.wasm", &m, &diag), COWMEM_ENOENT);
  return teardown();
}

/* The image file and the images built from the .wasm at run time hold the
 * same bytes; a wrong hash and another module's stripped file are refused. */
TEST_IMPL(image_file) {
#ifndef COWMEM_WAMR_IMAGES_demo
  TEST_SKIP("built without the cowmem command: no image file");
#else
  CHECK(setup(1));
  cowmem_wamr_module_t *w, *x = NULL;
  cowmem_diag_t diag;
  ASSERT_OK(cowmem_wamr_module_open(COWMEM_WAMR_WASM_demo, &w, &diag));
  CHECK(test_same_image(cowmem_wamr_module_image(g_mod, 0),
                        cowmem_wamr_module_image(w, 0), DEMO_PAGES * PAGE));
  uint8_t zero[32] = {0};
  ASSERT_ERR(cowmem_wamr_module_open_images(COWMEM_WAMR_IMAGES_demo,
                                            COWMEM_WAMR_STRIPPED_demo, zero, &x, &diag),
             COWMEM_EMISMATCH);
  ASSERT_ERR(cowmem_wamr_module_open_images(COWMEM_WAMR_IMAGES_demo,
                                            COWMEM_WAMR_STRIPPED_far, NULL, &x, &diag),
             COWMEM_EMISMATCH);
  printf("%s\n", diag.reason);
  ASSERT_NULL(x);
  cowmem_wamr_module_free(w);
  return teardown();
#endif
}

/* begin without an instantiation ends with ESTATE; an unstripped module
 * instantiated with no module set gets zeros and WAMR copies its data. */
TEST_IMPL(begin_end) {
  CHECK(setup(2));
  cowmem_wamr_begin(g_mod);
  ASSERT_ERR(cowmem_wamr_end(), COWMEM_ESTATE);
  ASSERT_OK(cowmem_wamr_end()); /* nothing set */
  uint8_t* bytes;
  uint32_t len;
  CHECK(read_all(COWMEM_WAMR_WASM_demo, &bytes, &len));
  char err[128] = "";
  wasm_module_t plain = wasm_runtime_load(bytes, len, err, sizeof err);
  ASSERT_NOT_NULL(plain);
  wamr_inst_t p, s;
  ASSERT_EQ(
      wamr_inst_wrap(&p, &wamr_api_cowmem,
                     wasm_runtime_instantiate(plain, WAMR_STACK, 0, err, sizeof err)),
      0);
  STOCK(&s);
  ASSERT_EQ(mem_checksum(&p), mem_checksum(&s));
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.plain_allocs, 1);
  ASSERT_EQ(n.image_allocs, 0);
  /* The pool refuses to go while a memory lives. */
  ASSERT_ERR(cowmem_wamr_shutdown(), COWMEM_EBUSY);
  wamr_inst_free(&p);
  wamr_inst_free(&s);
  wasm_runtime_unload(plain);
  free(bytes);
  return teardown();
}

/* Two threads instantiate, serve and deinstantiate at once. Every report is
 * a fresh instance's. */
static void* thread_loop(void* arg) {
  const char* expect = arg;
  if (!thread_env_init()) return (void*)1;
  uint32_t len = (uint32_t)strlen(demo_default_request);
  void* r = NULL;
  for (int i = 0; i < 2000 && !r; i++) {
    wamr_inst_t c;
    char out[256];
    if (wamr_inst_wrap(&c, &wamr_api_cowmem,
                       cowmem_wamr_instantiate(g_mod, WAMR_STACK, 0, NULL, 0)) != 0)
      r = (void*)1;
    else {
      wamr_serve(&c, demo_default_request, len, out, sizeof out);
      if (i % 16 == 0 && wamr_call1(&c, "grow", 1, 1, 0) != DEMO_PAGES) r = (void*)1;
      wamr_inst_free(&c);
      if (strcmp(out, expect) != 0) r = (void*)1;
    }
  }
  thread_env_destroy();
  return r;
}

TEST_IMPL(threads) {
  CHECK(setup(8));
  char expect[256];
  wamr_inst_t s;
  STOCK(&s);
  wamr_serve(&s, demo_default_request, (uint32_t)strlen(demo_default_request), expect,
             sizeof expect);
  wamr_inst_free(&s);
  CHECK(test_integ_threads(thread_loop, expect, 2));
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.image_allocs, 4000);
  return teardown();
}

TEST_MAIN(TEST_ENTRY(same_outputs) TEST_ENTRY(isolation) TEST_ENTRY(oob_traps)
              TEST_ENTRY(far_traps) TEST_ENTRY(grow_to_max) TEST_ENTRY(no_leak)
                  TEST_ENTRY(several_live) TEST_ENTRY(instantiate_fails)
                      TEST_ENTRY(rewrites_at_load) TEST_ENTRY(imported_memory)
                          TEST_ENTRY(four_gib) TEST_ENTRY(unsupported)
                              TEST_ENTRY(image_file) TEST_ENTRY(begin_end)
                                  TEST_ENTRY(threads) TEST_ENTRY(shrunk_to_zero)
                                      TEST_ENTRY(wrong_module) TEST_ENTRY(bad_free)
                                          TEST_ENTRY(heap_to_4gib))
