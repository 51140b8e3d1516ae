/* ADAPTIVE: the hot set following a workload that moves, sampling that
 * backs off, the budget, a child process that keeps resetting after fork,
 * threads, failures, configuration, metrics, discards taking turns, and
 * the choice between a blind reset and a scan. */
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "image/lines.h"
#include "reset/adaptive.h"
#include "reset/reset.h"
#include "test_slots.h"

/* ---- the hot set follows the workload ---- */

static int cycle_write(cowmem_pool_t* pool, cowmem_image_t* img, size_t initial,
                       const size_t* pages, size_t n, uint8_t** base) {
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, img, initial, initial, &s));
  uint8_t* m = cowmem_slot_base(s);
  for (size_t i = 0; i < n; i++)
    m[pages[i] * PS + 100] = 0x5a;
  *base = m;
  ASSERT_OK(cowmem_pool_release(pool, s));
  return 0;
}

static int follows(bool no_scan) {
  PS = cowmem_page_size();
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, no_scan);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 1, 256, 8, 4);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(32, 16, 4, 6, 0x22);
  ASSERT_NOT_NULL(img);
  /* Stack pages below the image and heap pages above it: anonymous, so
   * mincore tells whether the reset kept them. */
  size_t a[] = {2, 3, 4, 100, 101}, b[] = {10, 11, 200, 201, 202};
  uint8_t* base = NULL;
  for (int i = 0; i < 60; i++)
    CHECK(cycle_write(pool, img, 256 * PS, a, 5, &base));
  for (int i = 0; i < 5; i++)
    ASSERT_TRUE(resident(base + a[i] * PS));
  for (int i = 0; i < 5; i++)
    ASSERT_FALSE(resident(base + b[i] * PS));
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im));
  ASSERT_EQ(im.hot_pages, 5);
  for (int i = 0; i < 60; i++)
    CHECK(cycle_write(pool, img, 256 * PS, b, 5, &base));
  for (int i = 0; i < 5; i++)
    ASSERT_TRUE(resident(base + b[i] * PS));
  for (int i = 0; i < 5; i++)
    ASSERT_FALSE(resident(base + a[i] * PS));
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im));
  ASSERT_EQ(im.hot_pages, 5);
  /* And the memory is exact all along. */
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, img, 256 * PS, 256 * PS, &s));
  uint8_t* want = calloc(256, PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, 256 * PS));
  CHECK(same_bytes(cowmem_slot_base(s), want, 256 * PS, "after the move"));
  free(want);
  ASSERT_OK(cowmem_pool_release(pool, s));
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  return 0;
}

/* Sampling backs off while instances write exactly the hot set (sampled
 * resets were the p99 of a K=0 cycle at 1 in 64) and comes back to
 * sample_every once the workload moves, which is still learnt in full. */
static uint64_t samples_of(cowmem_pool_t* pool, cowmem_image_t* img) {
  cowmem_pool_image_metrics_t im;
  if (cowmem_pool_image_metrics(pool, img, &im) != 0) return UINT64_MAX;
  return im.samples;
}

static int backs_off(int mode) {
  PS = cowmem_page_size();
  cowmem__adaptive_test_mode(mode);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 1, 256, 8, 8);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(32, 16, 4, 6, 0x22);
  ASSERT_NOT_NULL(img);
  size_t a[] = {2, 3, 100}, b[] = {10, 200, 201};
  uint8_t* base = NULL;
  for (int i = 0; i < 400; i++)
    CHECK(cycle_write(pool, img, 256 * PS, a, 3, &base));
  /* 4 warm-up samples, then intervals of 8, 16, 32, 32, ...: about 16;
   * without the back-off 53. */
  uint64_t still = samples_of(pool, img);
  ASSERT_GE(still, 4 + 400 / 32 - 1);
  ASSERT_LE(still, 4 + 400 / 16);
  for (int i = 0; i < 200; i++)
    CHECK(cycle_write(pool, img, 256 * PS, b, 3, &base));
  cowmem__adaptive_test_mode(0);
  /* Moved: back to one in 8 while the old pages decay out. */
  ASSERT_GE(samples_of(pool, img) - still, 200 / 32 + 4);
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im));
  ASSERT_EQ(im.hot_pages, 3);
  for (int i = 0; i < 3; i++) {
    ASSERT_TRUE(resident(base + b[i] * PS));
    ASSERT_FALSE(resident(base + a[i] * PS));
  }
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  return 0;
}
TEST_IMPL(sampling_backs_off) {
  return backs_off(2);
}
TEST_IMPL(sampling_backs_off_scan_each) {
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  return backs_off(1);
}

TEST_IMPL(hot_set_follows_workload) {
  return follows(false);
}
TEST_IMPL(hot_set_follows_workload_no_scan) {
  return follows(true);
}

/* Pages an instance faults in but leaves as they were (the bytes already
 * there written again; zeros written to zeros) cost a fault each time they
 * are decommitted, so with the scan they join the hot set: kept resident,
 * restored by copy. Pages really changed come first within the budget. */
TEST_IMPL(hot_set_keeps_rewritten_pages) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  cowmem_image_t* img = holed_image(8, 8, 3, 3, 0x44);
  ASSERT_NOT_NULL(img);
  uint8_t* want = calloc(64, PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, 64 * PS));
  size_t same[] = {10, 12, 30, 31}; /* two image pages, two zero pages */
  size_t changed[] = {11, 40, 41};
  for (size_t b = 0; b < 2; b++) {
    size_t budget = b == 0 ? 8 : 3;
    cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 1, 64, budget, 2);
    ASSERT_NOT_NULL(pool);
    uint8_t* base = NULL;
    for (int i = 0; i < 30; i++) {
      cowmem_slot_t* s = NULL;
      ASSERT_OK(cowmem_pool_acquire(pool, img, 64 * PS, 64 * PS, &s));
      volatile uint8_t* m = cowmem_slot_base(s);
      base = cowmem_slot_base(s);
      /* Only these pages are touched: on a kernel where a read of an
       * anonymous page allocates it, reading the others would make them
       * faulted in too. */
      for (size_t k = 0; k < 4; k++) {
        CHECK(same_bytes(base + same[k] * PS, want + same[k] * PS, PS, "rewritten page"));
        m[same[k] * PS + 7] = m[same[k] * PS + 7];
      }
      for (size_t k = 0; k < 3; k++) {
        CHECK(same_bytes(base + changed[k] * PS, want + changed[k] * PS, PS,
                         "changed page"));
        m[changed[k] * PS + 9] ^= 0xff;
      }
      ASSERT_OK(cowmem_pool_release(pool, s));
    }
    cowmem_pool_image_metrics_t im;
    ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im));
    ASSERT_EQ(im.hot_pages, budget == 8 ? 7 : 3);
    for (size_t k = 0; k < 3; k++)
      ASSERT_TRUE(resident(base + changed[k] * PS));
    /* mincore sees the page cache behind image pages: ask the zero pages. */
    for (size_t k = 2; k < 4; k++)
      ASSERT_EQ(resident(base + same[k] * PS), budget == 8);
    ASSERT_FALSE(resident(base + 50 * PS));
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, img, 64 * PS, 64 * PS, &s));
    CHECK(same_bytes(cowmem_slot_base(s), want, 64 * PS, "after the cycles"));
    ASSERT_OK(cowmem_pool_release(pool, s));
    ASSERT_OK(cowmem_pool_free(pool));
  }
  free(want);
  cowmem_image_release(img);
  return 0;
}

/* The budget bounds the hot set, and fills it when more pages tie than fit;
 * a budget of 0 keeps nothing. */
TEST_IMPL(budget_bounds_hot_set) {
  PS = cowmem_page_size();
  for (size_t budget = 0; budget <= 3; budget += 3) {
    cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 1, 64, budget, 2);
    ASSERT_NOT_NULL(pool);
    size_t pages[] = {1, 5, 9, 13, 17, 21};
    uint8_t* base = NULL;
    for (int i = 0; i < 30; i++)
      CHECK(cycle_write(pool, NULL, 32 * PS, pages, 6, &base));
    cowmem_pool_image_metrics_t im;
    ASSERT_OK(cowmem_pool_image_metrics(pool, NULL, &im));
    /* Six pages written alike, three fit: the lowest three are kept. */
    ASSERT_EQ(im.hot_pages, budget);
    for (size_t i = 0; i < 6; i++)
      ASSERT_EQ(resident(base + pages[i] * PS), i < budget);
    ASSERT_OK(cowmem_pool_free(pool));
  }
  return 0;
}

/* ---- fork ---- */

static int fork_cycles(cowmem_pool_t* pool, cowmem_image_t* img, const uint8_t* want,
                       size_t n) {
  for (size_t i = 0; i < n; i++) {
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, img, 64 * PS, 64 * PS, &s));
    CHECK(same_bytes(cowmem_slot_base(s), want, 64 * PS, "fork cycle"));
    uint8_t* m = cowmem_slot_base(s);
    for (size_t k = 0; k < 6; k++)
      m[((i * 7 + k * 11) % 64) * PS + k] = (uint8_t)(i + 1);
    ASSERT_OK(cowmem_pool_release(pool, s));
  }
  return 0;
}

TEST_IMPL(fork_child_resets) {
  PS = cowmem_page_size();
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 16, 4);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(8, 24, 10, 12, 0x31);
  uint8_t* want = calloc(64, PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, 64 * PS));
  CHECK(fork_cycles(pool, img, want, 50));
  /* Leave the parent's last instance dirty across the fork, too. */
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, img, 64 * PS, 64 * PS, &s));
  memset(cowmem_slot_base(s), 0xee, 3 * PS);
  fflush(NULL);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int r = cowmem_pool_release(pool, s);
    if (r == 0) r = fork_cycles(pool, img, want, 300);
    _exit(r == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ASSERT_OK(cowmem_pool_release(pool, s));
  CHECK(fork_cycles(pool, img, want, 50));
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  free(want);
  return 0;
}

/* ---- threads (run under TSan too) ---- */

typedef struct {
  cowmem_pool_t* pool;
  cowmem_image_t* img;
  const uint8_t* want;
  int id;
  int failed;
} thr_t;

static void* thr_main(void* p) {
  thr_t* t = p;
  for (int i = 0; i < 1500 && !t->failed; i++) {
    cowmem_slot_t* s = NULL;
    if (cowmem_pool_acquire(t->pool, t->img, 32 * PS, 48 * PS, &s) != 0) {
      t->failed = 1;
      break;
    }
    uint8_t* m = cowmem_slot_base(s);
    if (memcmp(m, t->want, 32 * PS) != 0) t->failed = 2;
    for (int k = 0; k < 4; k++)
      m[((size_t)(t->id * 5 + k * 3 + (i % 50 == 0 ? i : 0)) % 32) * PS] = 9;
    if (i % 97 == 0 && cowmem_slot_grow(s, 40 * PS) == 0) m[36 * PS] = 1;
    if (cowmem_pool_release(t->pool, s) != 0) t->failed = 3;
  }
  return NULL;
}

static int threads_case(bool no_scan) {
  PS = cowmem_page_size();
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, no_scan);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 4, 48, 8, 8);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(2, 12, 3, 5, 0x51);
  uint8_t* want = calloc(32, PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, 32 * PS));
  pthread_t th[2];
  thr_t args[2];
  for (int i = 0; i < 2; i++) {
    args[i] = (thr_t){pool, img, want, i, 0};
    ASSERT_EQ(pthread_create(&th[i], NULL, thr_main, &args[i]), 0);
  }
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++)
    ASSERT_EQ(args[i].failed, 0);
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  free(want);
  return 0;
}

TEST_IMPL(threads_adaptive) {
  return threads_case(false);
}
TEST_IMPL(threads_adaptive_no_scan) {
  return threads_case(true);
}

typedef struct {
  cowmem_pool_t* pool;
  int err;
} cycles_arg_t;

static void* sixteen_cycles(void* p) {
  cycles_arg_t* a = p;
  size_t pages[] = {3, 7};
  uint8_t* base = NULL;
  for (int i = 0; i < 16 && a->err == 0; i++)
    a->err = cycle_write(a->pool, NULL, 48 * PS, pages, 2, &base);
  return NULL;
}

static void* ninety_six_cycles(void* p) {
  for (int i = 0; i < 6; i++)
    sixteen_cycles(p);
  return NULL;
}

/* Counts are exact whatever the number of threads: the first ones own a
 * stripe of counters (plain adds), later ones share the rest (atomic). */

TEST_IMPL(metrics_count_every_thread) {
  PS = cowmem_page_size();
  enum { N = 24 }; /* past the owned stripes */
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, N, 64, 8, 8);
  ASSERT_NOT_NULL(pool);
  pthread_t th[N];
  cycles_arg_t args[N];
  for (int i = 0; i < N; i++) {
    args[i] = (cycles_arg_t){pool, 0};
    ASSERT_EQ(pthread_create(&th[i], NULL, ninety_six_cycles, &args[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    ASSERT_EQ(args[i].err, 0);
  }
  /* A pool counts a reset once it is done: blind and quiet ones may wait
   * in the queue for their discard or their count (and a quiet one whose
   * count moved settles then, copying more). */
  ASSERT_OK(cowmem_pool_flush(pool));
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, NULL, &im));
  ASSERT_EQ(im.resets, N * 96);
  /* Each reset copies or decommits every page it finds written: the two
   * pages at least, and with a scan exactly those. */
  ASSERT_GE(im.copied_pages + im.discarded_pages, 2 * N * 96);
  cowmem_pool_metrics_t pm;
  ASSERT_OK(cowmem_pool_metrics(pool, &pm));
  ASSERT_EQ(pm.pending, 0);
  ASSERT_UEQ(pm.resets[COWMEM_RESET_ADAPTIVE], N * 96);
  ASSERT_UEQ(pm.copied_pages, im.copied_pages);
  ASSERT_UEQ(pm.discarded_pages, im.discarded_pages);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* ---- failures, configuration, metrics ---- */

TEST_IMPL(adaptive_failures) {
  PS = cowmem_page_size();
  cowmem__os_inject_clear();
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 1, 64, 4, 1);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(4, 8, 2, 3, 0x61);
  uint8_t* want = calloc(64, PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, 64 * PS));
  for (int round = 0; round < 3; round++) {
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, img, 32 * PS, 64 * PS, &s));
    CHECK(same_bytes(cowmem_slot_base(s), want, 32 * PS, "after a failure"));
    uint8_t* m = cowmem_slot_base(s);
    for (int p = 0; p < 32; p += 3)
      m[p * PS] = 0x42; /* more than the budget */
    if (round == 0) {
      /* A failed scan: the reset falls back to madvise, still exact. */
      cowmem__os_inject_fail(COWMEM__OS_other, 0, EIO);
      ASSERT_OK(cowmem_pool_release(pool, s));
    } else if (round == 1) {
      /* A failed decommit: an error, the slot decommitted, nothing leaks. */
      cowmem__os_inject_fail(COWMEM__OS_madvise, 0, EIO);
      cowmem__os_inject_fail(COWMEM__OS_process_madvise, 0, EIO);
      cowmem__os_inject_fail(COWMEM__OS_mmap, 0, EIO); /* posix's discard */
      int r = cowmem_pool_release(pool, s);
      cowmem__os_inject_clear();
      ASSERT_EQ(r, COWMEM_EIO);
    } else {
      ASSERT_OK(cowmem_pool_release(pool, s));
    }
    cowmem__os_inject_clear();
  }
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  free(want);
  return 0;
}

/* More written ranges than one PAGEMAP_SCAN vector holds (64), than the
 * reset's range buffer starts with, and than one discard batch: every
 * other page of 1024, with a small hot set; then the same with a failing
 * decommit (an error, the slot decommitted, the next instance exact). */
TEST_IMPL(many_ranges) {
  PS = cowmem_page_size();
  cowmem__os_inject_clear();
  const size_t n = 1024;
  cowmem__adaptive_test_mode(1); /* the scan's hundreds of ranges */
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 1, n, 8, 4);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(100, 300, 50, 60, 0x44);
  uint8_t* want = calloc(n, PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, n * PS));
  for (int round = 0; round < 12; round++) {
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, img, n * PS, n * PS, &s));
    CHECK(same_bytes(cowmem_slot_base(s), want, n * PS, "many ranges"));
    uint8_t* m = cowmem_slot_base(s);
    for (size_t p = (size_t)round % 2; p < n; p += 2)
      m[p * PS + 1] = (uint8_t)(round + 2);
    if (round == 9) {
      /* With the scan, hundreds of ranges: fail the second batch, so the
       * reset goes on past a failure. Without it, a few: fail the first. */
      unsigned after = cowmem__dirty_exact() ? 1 : 0;
      cowmem__os_inject_fail(COWMEM__OS_madvise, after, EIO);
      cowmem__os_inject_fail(COWMEM__OS_process_madvise, after, EIO);
      int r = cowmem_pool_release(pool, s);
      cowmem__os_inject_clear();
      ASSERT_EQ(r, COWMEM_EIO);
    } else {
      ASSERT_OK(cowmem_pool_release(pool, s));
    }
  }
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im));
  ASSERT_LE(im.hot_pages, 8);
  ASSERT_GT(im.discarded_pages, 8 * 400);
  cowmem__adaptive_test_mode(0);
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  free(want);
  return 0;
}

TEST_IMPL(adaptive_config) {
  PS = cowmem_page_size();
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  ASSERT_UEQ(cfg.resident_budget, 1u << 20);
  ASSERT_UEQ(cfg.sample_every, 64);
  cfg.max_slots = 1;
  cfg.slot_reserve = 16 * PS;
  cfg.reset = COWMEM_RESET_ADAPTIVE;
  cfg.resident_budget = PS + 1;
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t why;
  ASSERT_ERR(cowmem_pool_new(&cfg, &pool, &why), COWMEM_EINVAL);
  ASSERT_TRUE(strstr(why.reason, "resident_budget") != NULL);
  cfg.resident_budget = 4 * PS;
  cfg.sample_every = 0;
  ASSERT_ERR(cowmem_pool_new(&cfg, &pool, &why), COWMEM_EINVAL);
  ASSERT_TRUE(strstr(why.reason, "sample_every") != NULL);
  cfg.sample_every = 1;
  ASSERT_OK(cowmem_pool_new(&cfg, &pool, &why));
  cowmem_pool_image_metrics_t im;
  ASSERT_ERR(cowmem_pool_image_metrics(NULL, NULL, &im), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_pool_image_metrics(pool, NULL, NULL), COWMEM_EINVAL);
  ASSERT_OK(cowmem_pool_image_metrics(pool, NULL, &im)); /* nothing yet */
  ASSERT_EQ(im.resets, 0);
  ASSERT_EQ(im.version, COWMEM_POOL_IMAGE_METRICS_VERSION);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* The metrics of 40 cycles writing 3 pages, in each ADAPTIVE mode. */
static int metrics_in_mode(int mode) {
  PS = cowmem_page_size();
  cowmem__adaptive_test_mode(mode);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 8, 4);
  ASSERT_NOT_NULL(pool);
  size_t pages[] = {3, 7, 40};
  uint8_t* base = NULL;
  for (int i = 0; i < 40; i++)
    CHECK(cycle_write(pool, NULL, 48 * PS, pages, 3, &base));
  cowmem__adaptive_test_mode(0);
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, NULL, &im));
  ASSERT_EQ(im.resets, 40);
  ASSERT_EQ(im.hot_pages, 3);
  ASSERT_GE(im.samples, 4);
  ASSERT_EQ(im.sampled_dirty_pages, 3 * im.samples);
  ASSERT_GE(im.copied_pages, 3 * 35);
  cowmem_pool_metrics_t pm;
  ASSERT_OK(cowmem_pool_metrics(pool, &pm));
  ASSERT_UEQ(pm.copied_pages, im.copied_pages);
  ASSERT_UEQ(pm.discarded_pages, im.discarded_pages);
  ASSERT_UEQ(pm.resets[COWMEM_RESET_ADAPTIVE], 40);
  if (cowmem__dirty_exact() && mode == 1) {
    /* Only the hot pages were written: after learning, no decommit. */
    ASSERT_LE(im.discard_calls, 4);
    ASSERT_EQ(im.scans, 40);
  } else {
    /* Blind: one decommit of the rest per reset, a scan only to sample;
     * a sampled reset settles from its scan, and once the 3 pages are hot
     * (its own sample makes them so) needs no decommit. */
    ASSERT_EQ(im.discard_calls, cowmem__dirty_exact() ? 40 - im.samples : 40);
    ASSERT_EQ(im.scans, cowmem__dirty_exact() ? im.samples : 0);
  }
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

TEST_IMPL(adaptive_metrics) {
  return metrics_in_mode(2);
}
TEST_IMPL(adaptive_metrics_scan_each) {
  return metrics_in_mode(1);
}

static uint64_t unsampled_scans(cowmem_pool_t* pool) {
  cowmem_pool_image_metrics_t im;
  if (cowmem_pool_image_metrics(pool, NULL, &im) != 0) return UINT64_MAX;
  return im.scans - im.samples;
}

/* Discards take turns in a process (two madvise calls at once make the
 * kernel flush every CPU's TLBs), so a reset that finds another thread
 * discarding scans instead of queueing: with only hot pages written it
 * needs no discard at all. The other thread here holds the turn. */
typedef struct {
  pthread_mutex_t m;
  pthread_cond_t c;
  int state; /* 1: holding; 2: let go */
} holder_t;

static void* hold_discards(void* p) {
  holder_t* h = p;
  cowmem__os_discard_hold(true);
  pthread_mutex_lock(&h->m);
  h->state = 1;
  pthread_cond_broadcast(&h->c);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10; /* a reset waiting for the turn fails the test, late */
  while (h->state != 2)
    if (pthread_cond_timedwait(&h->c, &h->m, &until) != 0) break;
  pthread_mutex_unlock(&h->m);
  cowmem__os_discard_hold(false);
  return NULL;
}

/* A thread holding the turn until holder_stop. */
static int holder_start(holder_t* h, pthread_t* th) {
  if (pthread_create(th, NULL, hold_discards, h) != 0) return -1;
  pthread_mutex_lock(&h->m);
  while (h->state != 1)
    pthread_cond_wait(&h->c, &h->m);
  pthread_mutex_unlock(&h->m);
  return 0;
}

static int holder_stop(holder_t* h, pthread_t th) {
  pthread_mutex_lock(&h->m);
  h->state = 2;
  pthread_cond_broadcast(&h->c);
  pthread_mutex_unlock(&h->m);
  return pthread_join(th, NULL);
}

/* A pool whose hot set (pages 3 and 7) is learnt, seen resetting blind.
 * Never quiet: the choice between blind and scanning is what is tested,
 * and these instances fault nothing, so each reset would be quiet. */
static int learn_blind(cycles_arg_t* me) {
  cowmem__adaptive_test_mode(0);
  cowmem_option_set(COWMEM_OPTION_NO_FAULT_COUNT, 1);
  me->pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 8, 1000);
  cowmem_option_set(COWMEM_OPTION_NO_FAULT_COUNT, 0);
  me->err = 0;
  ASSERT_NOT_NULL(me->pool);
  sixteen_cycles(me); /* the warm-up samples */
  sixteen_cycles(me);
  ASSERT_OK(me->err);
  uint64_t u0 = unsampled_scans(me->pool);
  sixteen_cycles(me); /* nobody else discards: blind */
  ASSERT_OK(me->err);
  ASSERT_UEQ(unsampled_scans(me->pool), u0);
  return 0;
}

/* Sixteen cycles while another thread holds the turn. */
static int cycles_while_held(cycles_arg_t* me) {
  holder_t h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  pthread_t th;
  ASSERT_EQ(holder_start(&h, &th), 0);
  sixteen_cycles(me);
  ASSERT_EQ(holder_stop(&h, th), 0);
  ASSERT_OK(me->err);
  return 0;
}

TEST_IMPL(scan_while_another_discards) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  cycles_arg_t me;
  CHECK(learn_blind(&me));
  uint64_t u1 = unsampled_scans(me.pool);
  CHECK(cycles_while_held(&me)); /* the turn is taken: every reset scans */
  uint64_t u2 = unsampled_scans(me.pool);
  ASSERT_UEQ(u2 - u1, 16);
  sixteen_cycles(&me); /* free again, and this thread never waited: blind */
  ASSERT_OK(me.err);
  ASSERT_UEQ(unsampled_scans(me.pool), u2);
  ASSERT_OK(cowmem_pool_free(me.pool));
  return 0;
}

/* A thread whose blind discard had to wait for another thread's keeps
 * scanning for a while after the turn is free again (the other thread is
 * likely still resetting blind beside it), then goes back to blind. */
TEST_IMPL(scan_after_waiting_for_discard) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  cycles_arg_t me;
  CHECK(learn_blind(&me));
  cowmem__adaptive_test_mode(2); /* blind while the turn is held: it waits */
  CHECK(cycles_while_held(&me));
  cowmem__adaptive_test_mode(0);
  /* The turn is free, yet the next resets scan. */
  uint64_t u1 = unsampled_scans(me.pool);
  sixteen_cycles(&me);
  ASSERT_OK(me.err);
  uint64_t u2 = unsampled_scans(me.pool);
  ASSERT_UEQ(u2 - u1, 16);
  /* For a bounded while: within 256 more, blind again. */
  for (int i = 0; i < 16; i++)
    sixteen_cycles(&me);
  ASSERT_OK(me.err);
  uint64_t u3 = unsampled_scans(me.pool);
  ASSERT_GT(u3 - u2, 0);
  ASSERT_LT(u3 - u2, 256);
  sixteen_cycles(&me);
  ASSERT_OK(me.err);
  ASSERT_UEQ(unsampled_scans(me.pool), u3);
  ASSERT_OK(cowmem_pool_free(me.pool));
  return 0;
}

/* A child forked while another thread held the discard turn starts with it
 * free (the word is on a wipe-on-fork page, or freed by the fork handler):
 * the holder does not exist there, and every blind discard of the child
 * would otherwise wait for it in vain. */
TEST_IMPL(fork_while_another_discards) {
  PS = cowmem_page_size();
  cowmem__adaptive_test_mode(2); /* blind: its discards take turns */
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 8, 8);
  ASSERT_NOT_NULL(pool);
  cycles_arg_t me = {pool, 0};
  sixteen_cycles(&me);
  ASSERT_OK(me.err);
  holder_t h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  pthread_t th;
  ASSERT_EQ(holder_start(&h, &th), 0);
  fflush(NULL);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (cowmem__os_discard_contended()) _exit(2);
    sixteen_cycles(&me);
    _exit(me.err == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_EQ(holder_stop(&h, th), 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ASSERT_FALSE(cowmem__os_discard_contended());
  sixteen_cycles(&me);
  cowmem__adaptive_test_mode(0);
  ASSERT_OK(me.err);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* Alone, a hot set of many runs for its pages is reset by scan too: a
 * blind reset would decommit each gap between them (blind_cheaper). */
TEST_IMPL(scan_when_hot_set_scattered) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  cowmem__adaptive_test_mode(0);
  cowmem_option_set(COWMEM_OPTION_NO_FAULT_COUNT, 1); /* blind or scan, never quiet */
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 16, 1000);
  ASSERT_NOT_NULL(pool);
  size_t few[] = {3, 4, 5, 20, 21, 40}, many[12];
  for (size_t i = 0; i < 12; i++)
    many[i] = 1 + 3 * i;
  uint8_t* base = NULL;
  for (int i = 0; i < 80; i++) /* past any window of an earlier test */
    CHECK(cycle_write(pool, NULL, 48 * PS, few, 6, &base));
  uint64_t u0 = unsampled_scans(pool);
  for (int i = 0; i < 20; i++)
    CHECK(cycle_write(pool, NULL, 48 * PS, few, 6, &base));
  ASSERT_UEQ(unsampled_scans(pool), u0); /* 3 runs: blind */
  ASSERT_OK(cowmem_pool_free(pool));
  /* A new pool learns the 12 runs in its first (warm-up) samples. */
  pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 16, 1000);
  ASSERT_NOT_NULL(pool);
  for (int i = 0; i < 40; i++)
    CHECK(cycle_write(pool, NULL, 48 * PS, many, 12, &base));
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, NULL, &im));
  ASSERT_EQ(im.hot_pages, 12);
  ASSERT_GE(unsampled_scans(pool), 30);
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_option_set(COWMEM_OPTION_NO_FAULT_COUNT, 0);
  return 0;
}

/* Hot pages spread over a large memory, each in a page table of its own:
 * a scan walks every entry of those tables, a blind reset's discard too
 * but at less than half the cost, so with few runs the pool resets blind.
 * 8 pages 4 MiB apart in a 32 MiB memory (8 tables, 8 runs). */
TEST_IMPL(blind_when_hot_pages_spread) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  cowmem__adaptive_test_mode(0);
  cowmem_option_set(COWMEM_OPTION_NO_FAULT_COUNT, 1); /* blind or scan, never quiet */
  size_t slot_pages = ((size_t)32 << 20) / PS, spread[8];
  for (size_t i = 0; i < 8; i++)
    spread[i] = i * (slot_pages / 8) + 5;
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, slot_pages, 16, 1000);
  ASSERT_NOT_NULL(pool);
  uint8_t* base = NULL;
  for (int i = 0; i < 40; i++) /* the warm-up samples learn the 8 pages */
    CHECK(cycle_write(pool, NULL, slot_pages * PS, spread, 8, &base));
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, NULL, &im));
  ASSERT_EQ(im.hot_pages, 8);
  uint64_t u0 = unsampled_scans(pool);
  for (int i = 0; i < 20; i++) {
    CHECK(cycle_write(pool, NULL, slot_pages * PS, spread, 8, &base));
    for (size_t k = 0; k < 8; k++) /* the hot pages back to zeros */
      ASSERT_EQ(base[spread[k] * PS + 100], 0);
  }
  ASSERT_UEQ(unsampled_scans(pool), u0); /* blind */
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_option_set(COWMEM_OPTION_NO_FAULT_COUNT, 0);
  return 0;
}

/* ---- quiet resets: no page fault since the slot's last reset ---- */

static uint64_t quiet_count(cowmem_pool_t* pool, const cowmem_image_t* img) {
  cowmem_pool_image_metrics_t im;
  if (cowmem_pool_image_metrics(pool, img, &im) != 0) return UINT64_MAX;
  return im.quiet_resets;
}

/* Cycles writing the given pages until two resets in a row were quiet
 * (at most 64); nonzero if they never were. */
static int until_quiet(cowmem_pool_t* pool, cowmem_image_t* img, size_t initial,
                       const size_t* pages, size_t n) {
  uint8_t* base = NULL;
  int row = 0;
  for (int i = 0; i < 64 && row < 2; i++) {
    uint64_t q = quiet_count(pool, img);
    CHECK(cycle_write(pool, img, initial, pages, n, &base));
    row = quiet_count(pool, img) > q ? row + 1 : 0;
  }
  ASSERT_EQ(row, 2);
  return 0;
}

/* A pool of one slot, quiet wherever nothing faulted, blind otherwise;
 * NULL where the fault count is not exact (or without memory). */
static cowmem_pool_t* quiet_pool(void) {
  uint64_t f;
  if (cowmem__os_fault_count(&f) != 0) return NULL;
  cowmem__adaptive_test_mode(3);
  return make_pool(COWMEM_RESET_ADAPTIVE, 1, 64, 8, 1000);
}

/* Release s, whose instance wrote where it should not, and see that its
 * reset was not quiet and that the next instance in the slot (of initial
 * bytes, grown to grow if not 0) holds image and zeros. */
static int release_settles(cowmem_pool_t* pool, cowmem_image_t* img, cowmem_slot_t* s,
                           size_t initial, size_t grow) {
  uint64_t q = quiet_count(pool, img);
  ASSERT_OK(cowmem_pool_release(pool, s));
  ASSERT_UEQ(quiet_count(pool, img), q);
  ASSERT_OK(cowmem_pool_acquire(pool, img, initial, 64 * PS, &s));
  if (grow) ASSERT_OK(cowmem_slot_grow(s, grow));
  CHECK(expect_image(s, img));
  ASSERT_OK(cowmem_pool_release(pool, s));
  return 0;
}

/* n requests writing the 3 hot pages (and the pool flushed): every reset
 * quiet, copying those pages back, with no system call but the count's
 * (their number into *counts): no scan, no madvise, no mapping. */
static int all_quiet(cowmem_pool_t* pool, cowmem_image_t* img, size_t initial,
                     const size_t* hot, int n, uint64_t* counts) {
  cowmem_pool_image_metrics_t im0, im1;
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im0));
  cowmem_stats_t st0, st1;
  cowmem_stats_get(&st0);
  uint8_t* base = NULL;
  for (int i = 0; i < n; i++)
    CHECK(cycle_write(pool, img, initial, hot, 3, &base));
  ASSERT_OK(cowmem_pool_flush(pool));
  cowmem_stats_get(&st1);
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im1));
  ASSERT_UEQ(im1.quiet_resets - im0.quiet_resets, (uint64_t)n);
  ASSERT_UEQ(im1.scans, im0.scans);
  ASSERT_UEQ(im1.discard_calls, im0.discard_calls);
  ASSERT_UEQ(im1.copied_pages - im0.copied_pages, (uint64_t)n * 3);
  ASSERT_UEQ(st1.sys_madvise + st1.sys_process_madvise + st1.sys_mprotect + st1.sys_mmap,
             st0.sys_madvise + st0.sys_process_madvise + st0.sys_mprotect + st0.sys_mmap);
  *counts = st1.sys_other - st0.sys_other;
  return 0;
}

/* Instances that write only hot pages fault nothing: their resets copy
 * the hot pages back and make no other system call than the count's (no
 * scan, no madvise). One that writes any other page, itself or through a
 * system call, faults, and its reset settles every page: the next
 * instance of the slot finds image and zeros there. */
TEST_IMPL(quiet_when_nothing_faults) {
  PS = cowmem_page_size();
  cowmem_pool_t* pool = quiet_pool();
  if (pool == NULL) TEST_SKIP("no exact fault count here");
  cowmem_image_t* img = holed_image(0, 16, 8, 10, 0x31);
  ASSERT_NOT_NULL(img);
  size_t initial = 32 * PS, hot[] = {3, 7, 20};
  CHECK(until_quiet(pool, img, initial, hot, 3));
  uint64_t counts = 0;
  CHECK(all_quiet(pool, img, initial, hot, 16, &counts));
  ASSERT_UEQ(counts, 16);

  /* A page outside the hot set, written by the instance. */
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, img, initial, initial, &s));
  uint8_t* m = cowmem_slot_base(s);
  m[25 * PS + 9] = 0x5a;
  CHECK(release_settles(pool, img, s, initial, 0));

  /* The same through read(2): the kernel's copy faults the page in. */
  CHECK(until_quiet(pool, img, initial, hot, 3));
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(write(fds[1], "leak", 4), 4);
  ASSERT_OK(cowmem_pool_acquire(pool, img, initial, initial, &s));
  m = cowmem_slot_base(s);
  ASSERT_EQ(read(fds[0], m + 26 * PS + 9, 4), 4);
  close(fds[0]);
  close(fds[1]);
  CHECK(release_settles(pool, img, s, initial, 0));

  /* A grown memory written past its initial size. */
  CHECK(until_quiet(pool, img, initial, hot, 3));
  ASSERT_OK(cowmem_pool_acquire(pool, img, initial, 64 * PS, &s));
  ASSERT_OK(cowmem_slot_grow(s, 48 * PS));
  m = cowmem_slot_base(s);
  m[40 * PS] = 0x5a;
  CHECK(release_settles(pool, img, s, initial, 48 * PS));

  cowmem__adaptive_test_mode(0);
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  return 0;
}

/* Every slot of a queued pool (8 slots, queues of 4) after a failed
 * check: all acquired at once (the queues flushed first), so the one
 * whose instance faulted is among them, each holds image and zeros. */
static int queued_slots_exact(cowmem_pool_t* pool, cowmem_image_t* img, size_t initial) {
  cowmem_slot_t* s[8];
  ASSERT_OK(cowmem_pool_flush(pool));
  for (int i = 0; i < 8; i++) {
    ASSERT_OK(cowmem_pool_acquire(pool, img, initial, initial, &s[i]));
    CHECK(expect_image(s[i], img));
  }
  for (int i = 0; i < 8; i++)
    ASSERT_OK(cowmem_pool_release(pool, s[i]));
  return 0;
}

/* In a pool whose resets queue, a quiet reset copies the hot pages back at
 * release and leaves the count to the queue's flush: one count for the
 * whole queue. A slot whose instance faulted (a write of its own, or the
 * kernel's copy into it) is settled at the flush instead. */
TEST_IMPL(quiet_queued_one_count_a_flush) {
  PS = cowmem_page_size();
  uint64_t f;
  if (cowmem__os_fault_count(&f) != 0) TEST_SKIP("no exact fault count here");
  cowmem__adaptive_test_mode(3);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 8, 64, 8, 1000);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(0, 16, 8, 10, 0x31);
  ASSERT_NOT_NULL(img);
  size_t initial = 32 * PS, hot[] = {3, 7, 20};
  uint8_t* base = NULL;
  /* Rounds of 8 requests and a flush, until a whole round was quiet. */
  bool steady = false;
  for (int round = 0; round < 32 && !steady; round++) {
    uint64_t q = quiet_count(pool, img);
    for (int i = 0; i < 8; i++)
      CHECK(cycle_write(pool, img, initial, hot, 3, &base));
    ASSERT_OK(cowmem_pool_flush(pool));
    steady = quiet_count(pool, img) - q == 8;
  }
  ASSERT_TRUE(steady);
  uint64_t counts = 0;
  CHECK(all_quiet(pool, img, initial, hot, 32, &counts));
  /* One count a flush: a queue of 4 flushes 8 times in 32 releases. */
  ASSERT_GE(counts, 1);
  ASSERT_LE(counts, 32 / 2);

  /* A page outside the hot set, written by the instance. */
  cowmem_slot_t* s = NULL;
  uint64_t q = quiet_count(pool, img);
  ASSERT_OK(cowmem_pool_acquire(pool, img, initial, initial, &s));
  ((uint8_t*)cowmem_slot_base(s))[25 * PS + 9] = 0x5a;
  ASSERT_OK(cowmem_pool_release(pool, s));
  CHECK(queued_slots_exact(pool, img, initial));
  ASSERT_UEQ(quiet_count(pool, img), q);

  /* The same through read(2): the kernel's copy faults the page in. */
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(write(fds[1], "leak", 4), 4);
  ASSERT_OK(cowmem_pool_acquire(pool, img, initial, initial, &s));
  ASSERT_EQ(read(fds[0], (uint8_t*)cowmem_slot_base(s) + 26 * PS + 9, 4), 4);
  close(fds[0]);
  close(fds[1]);
  q = quiet_count(pool, img);
  ASSERT_OK(cowmem_pool_release(pool, s));
  CHECK(queued_slots_exact(pool, img, initial));
  ASSERT_UEQ(quiet_count(pool, img), q);

  cowmem__adaptive_test_mode(0);
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  return 0;
}

/* A page the slot still owns above the accessible size is made writable
 * again by growing the memory, with no fault: here hot page 20, kept by
 * instances of 32 pages, written by one of 16 pages grown to 32. Its reset
 * settles every page (a quiet one would copy back the hot pages below 16
 * only, its initial size). */
TEST_IMPL(quiet_not_after_grow) {
  PS = cowmem_page_size();
  cowmem_pool_t* pool = quiet_pool();
  if (pool == NULL) TEST_SKIP("no exact fault count here");
  size_t hot[] = {3, 20};
  CHECK(until_quiet(pool, NULL, 32 * PS, hot, 2));
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 16 * PS, 32 * PS, &s));
  ASSERT_OK(cowmem_slot_grow(s, 32 * PS));
  uint8_t* m = cowmem_slot_base(s);
  m[20 * PS + 100] = 0x5a;
  CHECK(release_settles(pool, NULL, s, 32 * PS, 0));
  cowmem__adaptive_test_mode(0);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* Does the mapping holding p carry the VmFlags flag `flag` (smaps)? -1 if
 * p is in no mapping or smaps cannot be read. */
static int vm_flag(const void* p, const char* flag) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return -1;
  char line[512];
  bool in = false;
  int r = -1;
  while (r < 0 && fgets(line, sizeof line, f)) {
    unsigned long a, b;
    if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      in = a <= (uintptr_t)p && (uintptr_t)p < b;
      continue;
    }
    if (!in || strncmp(line, "VmFlags:", 8) != 0) continue;
    r = 0;
    for (char* t = strtok(line + 8, " \n"); t != NULL && r == 0; t = strtok(NULL, " \n"))
      r = strcmp(t, flag) == 0;
  }
  fclose(f);
  return r;
}

/* khugepaged makes absent anonymous pages present and writable with no
 * fault where transparent huge pages are "always", which a quiet reset
 * would not see: pool and slot memory is kept in base pages (smaps' "nh"),
 * from its reservation and wherever a slot maps fresh memory over it (an
 * image taken out, a decommit). An image's own range is a private mapping
 * of its file, whose writable pages only a fault makes. */
TEST_IMPL(quiet_memory_in_base_pages) {
  PS = cowmem_page_size();
  uint64_t faults;
  if (cowmem__os_fault_count(&faults) != 0) TEST_SKIP("no exact fault count here");
  if (access("/sys/kernel/mm/transparent_hugepage", F_OK) != 0)
    TEST_SKIP("no transparent huge pages here");
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 8, 1000);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* a = holed_image(0, 16, 8, 10, 0x31);
  cowmem_image_t* b = make_image(4 * PS, 8 * PS, 0x5a);
  ASSERT_NOT_NULL(a);
  ASSERT_NOT_NULL(b);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, a, 32 * PS, 64 * PS, &s));
  uint8_t* base = cowmem_slot_base(s);
  if (is_copy(a)) /* else a zero page of the image is the file's */
    ASSERT_EQ(vm_flag(base + 9 * PS, "nh"), 1);
  ASSERT_EQ(vm_flag(base + 20 * PS, "nh"), 1); /* past the image */
  ASSERT_EQ(vm_flag(base + 40 * PS, "nh"), 1); /* past the accessible size */
  ASSERT_OK(cowmem_pool_release(pool, s));
  ASSERT_OK(cowmem_pool_free(pool));

  ASSERT_OK(cowmem_slot_new(64 * PS, &s));
  base = cowmem_slot_base(s);
  ASSERT_EQ(vm_flag(base, "nh"), 1);
  ASSERT_OK(cowmem_slot_instantiate(s, 32 * PS, a));
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_OK(cowmem_slot_instantiate(s, 32 * PS, b)); /* a taken out */
  CHECK(expect_image(s, b));
  for (size_t pg = 0; pg < 32; pg++)
    if (is_copy(b) || pg < 4 || pg >= 12) ASSERT_EQ(vm_flag(base + pg * PS, "nh"), 1);
  ASSERT_OK(cowmem_slot_decommit(s));
  ASSERT_EQ(vm_flag(base, "nh"), 1);
  ASSERT_EQ(vm_flag(base + 40 * PS, "nh"), 1);
  cowmem_slot_free(s);
  cowmem_image_release(a);
  cowmem_image_release(b);
  return 0;
}

/* The count a quiet reset trusts: every fault that maps a page counts,
 * a write to a fresh page and a system call's copy into one alike, and
 * counts from different processes never compare equal (the pid is in
 * them: a child's count starts again from 0). */
static int fault_count_moves(void) {
  uint64_t f0, f1, f2;
  if (cowmem__os_fault_count(&f0) != 0) return 1;
  uint8_t* p =
      mmap(NULL, 2 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  p[0] = 1;
  if (cowmem__os_fault_count(&f1) != 0 || f1 <= f0) return 2;
  int fds[2];
  if (pipe(fds) != 0 || write(fds[1], "x", 1) != 1 || read(fds[0], p + PS, 1) != 1)
    return 1;
  close(fds[0]);
  close(fds[1]);
  if (cowmem__os_fault_count(&f2) != 0 || f2 <= f1) return 3;
  munmap(p, 2 * PS);
  return f2 >> 40 == (uint64_t)getpid() ? 0 : 4;
}

TEST_IMPL(fault_count_counts) {
  PS = cowmem_page_size();
  uint64_t f;
  if (cowmem__os_fault_count(&f) != 0) TEST_SKIP("no exact fault count here");
  ASSERT_EQ(fault_count_moves(), 0);
  fflush(NULL);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(fault_count_moves());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  return 0;
}

/* A slot settled against one hot set is not quiet once a sample changed
 * it, though nothing faulted: a page that left the hot set may still be
 * the slot's own, writable without a fault. Here slot A keeps page 7 of
 * the hot set {3, 7} while slot B's instances write only page 3 until 7
 * leaves the hot set; then A's instance writes 7 (no fault) and A is
 * released. */
TEST_IMPL(quiet_not_after_hot_set_changes) {
  PS = cowmem_page_size();
  uint64_t f0, f1;
  if (cowmem__os_fault_count(&f0) != 0) TEST_SKIP("no exact fault count here");
  cowmem__adaptive_test_mode(3);
  /* A sample every 8 resets: A's release, right after the sample that
   * changed the hot set, is not sampled (a sampled reset settles anyway). */
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 8, 8);
  ASSERT_NOT_NULL(pool);
  size_t initial = 16 * PS, both[] = {3, 7};
  cowmem_slot_t *a = NULL, *b = NULL;
  for (int i = 0; i < 8; i++) { /* both slots own pages 3 and 7 */
    ASSERT_OK(cowmem_pool_acquire(pool, NULL, initial, initial, &a));
    ASSERT_OK(cowmem_pool_acquire(pool, NULL, initial, initial, &b));
    for (size_t k = 0; k < 2; k++) {
      ((uint8_t*)cowmem_slot_base(a))[both[k] * PS + 100] = 0x5a;
      ((uint8_t*)cowmem_slot_base(b))[both[k] * PS + 100] = 0x5a;
    }
    ASSERT_OK(cowmem_pool_release(pool, b));
    ASSERT_OK(cowmem_pool_release(pool, a));
  }
  CHECK(until_quiet(pool, NULL, initial, both, 2));
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, initial, initial, &a));
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, NULL, &im));
  ASSERT_EQ(im.hot_pages, 2);
  ASSERT_OK(cowmem__os_fault_count(&f0));
  size_t three[] = {3};
  for (int i = 0; i < 256 && im.hot_pages == 2; i++) {
    uint8_t* base = NULL;
    CHECK(cycle_write(pool, NULL, initial, three, 1, &base));
    ASSERT_TRUE(base != cowmem_slot_base(a));
    ASSERT_OK(cowmem_pool_image_metrics(pool, NULL, &im));
  }
  ASSERT_EQ(im.hot_pages, 1);
  uint8_t* m = cowmem_slot_base(a);
  m[7 * PS + 100] = 0x77;
  m[3 * PS + 100] = 0x77;
  ASSERT_OK(cowmem__os_fault_count(&f1));
  uint64_t q = quiet_count(pool, NULL);
  ASSERT_OK(cowmem_pool_release(pool, a));
  ASSERT_UEQ(quiet_count(pool, NULL), q);
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, initial, initial, &a));
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, initial, initial, &b));
  CHECK(expect_bytes(a, 0, initial, 0));
  CHECK(expect_bytes(b, 0, initial, 0));
  ASSERT_OK(cowmem_pool_release(pool, b));
  ASSERT_OK(cowmem_pool_release(pool, a));
  /* Nothing faulted while B's samples changed the hot set, so only the
   * hot set's version told A's reset to settle (where this process did
   * fault, the test above covers it). */
  if (f1 != f0)
    fprintf(stderr, "note: %llu faults meanwhile\n", (unsigned long long)(f1 - f0));
  cowmem__adaptive_test_mode(0);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* Once a scan saw every hot page written (so each is the slot's own),
 * blind resets copy them without comparing where that is faster; a hot
 * page that maps the image after all (here: dropped behind the pool's
 * back) then becomes the slot's own copy, with the image's bytes. Once the
 * slot's pages were dropped (cowmem_slot_reset), they are compared again
 * and such a page stays the image's. */
/* One instance writing page 3 of the hot pages {3, 7}, page 7 dropped
 * behind the pool's back; the pages of the slot's own after its release. */
static int drop_and_release(cowmem_pool_t* pool, cowmem_image_t* img, const uint8_t* want,
                            size_t* own) {
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, img, 16 * PS, 16 * PS, &s));
  uint8_t* m = cowmem_slot_base(s);
  m[3 * PS + 100] = 0x5a;
  ASSERT_OK(cowmem__os_discard(m + 7 * PS, PS));
  ASSERT_OK(cowmem_pool_release(pool, s));
  CHECK(same_bytes(m, want, 16 * PS, "after the blind reset"));
  *own = written_pages(m, 16 * PS);
  return 0;
}

TEST_IMPL(blind_copies_owned_hot_pages) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  if (!cowmem__lines_compare_set(true)) TEST_SKIP("no AVX2: restores copy plainly");
  ASSERT_FALSE(cowmem__lines_own_compare_set(false)); /* as measured on a Zen 5 */
  cowmem__adaptive_test_mode(2); /* blind; a scan only to sample */
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 1, 32, 16, 1000);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(0, 16, 12, 13, 0x3c);
  ASSERT_NOT_NULL(img);
  uint8_t* want = malloc(16 * PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, 16 * PS));
  size_t hot[] = {3, 7}, own = 0;
  uint8_t* base = NULL;
  for (int i = 0; i < 20; i++) /* the warm-up samples learn {3, 7}, both written */
    CHECK(cycle_write(pool, img, 16 * PS, hot, 2, &base));
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im));
  ASSERT_EQ(im.hot_pages, 2);
  uint64_t samples = im.samples;
  CHECK(drop_and_release(pool, img, want, &own));
  ASSERT_UEQ(own, 2); /* page 7 copied plainly: the slot's own again */
  /* The slot's pages dropped: compared again, page 7 stays the image's. */
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, img, 16 * PS, 16 * PS, &s));
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_OK(cowmem_pool_release(pool, s));
  CHECK(drop_and_release(pool, img, want, &own));
  ASSERT_UEQ(own, 1);
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im));
  ASSERT_UEQ(im.samples, samples); /* the releases measured were blind */
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  free(want);
  cowmem__lines_compare_set(true);
  cowmem__adaptive_test_mode(0);
  return 0;
}

/* A blind reset walks the hot set's list of runs: runs that cross the
 * bitmap's 64-page words, one at the slot's last page, hot pages above a
 * smaller instance's initial size (discarded, not copied), and more runs
 * than the list holds (the bitmap walked). Every instance starts exact, the
 * hot pages stay resident, the others are decommitted in one call. */
static int blind_round(cowmem_pool_t* pool, cowmem_image_t* img, const uint8_t* want,
                       size_t pages, const size_t* w, size_t n, int cycles) {
  bool zero_allocates = anon_read_allocates();
  for (int i = 0; i < cycles; i++) {
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, img, pages * PS, pages * PS, &s));
    uint8_t* m = cowmem_slot_base(s);
    CHECK(same_pages_unread(m, want, pages, zero_allocates, "blind reset"));
    for (size_t k = 0; k < n; k++)
      if (w[k] < pages) m[w[k] * PS + 7] = (uint8_t)(i + 1);
    ASSERT_OK(cowmem_pool_release(pool, s));
  }
  return 0;
}

TEST_IMPL(blind_walks_hot_runs) {
  PS = cowmem_page_size();
  const size_t pages = 256;
  cowmem__adaptive_test_mode(2);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 1, pages, 160, 4);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(16, 64, 20, 30, 0x33);
  ASSERT_NOT_NULL(img);
  uint8_t* want = calloc(pages, PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, pages * PS));
  size_t few[] = {0, 1, 2, 62, 63, 64, 65, 66, 127, 128, 200, 255};
  CHECK(blind_round(pool, img, want, pages, few, 12, 40));
  cowmem_pool_image_metrics_t a, b;
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &a));
  ASSERT_EQ(a.hot_pages, 12);
  CHECK(blind_round(pool, img, want, pages, few, 12, 8));
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &b));
  ASSERT_UEQ(b.discard_calls - a.discard_calls, b.resets - a.resets);
  ASSERT_UEQ(b.copied_pages - a.copied_pages, 12 * (b.resets - a.resets));
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, img, pages * PS, pages * PS, &s));
  uint8_t* m = cowmem_slot_base(s);
  for (size_t k = 0; k < 12; k++)
    ASSERT_TRUE(resident(m + few[k] * PS));
  ASSERT_FALSE(resident(m + 150 * PS));
  ASSERT_OK(cowmem_pool_release(pool, s));
  /* A smaller instance: the hot pages at and above 128 are past it. */
  CHECK(blind_round(pool, img, want, 128, few, 12, 8));
  /* 100 runs: more than the list holds. */
  size_t many[100];
  for (size_t k = 0; k < 100; k++)
    many[k] = 2 * k + 1;
  CHECK(blind_round(pool, img, want, pages, many, 100, 60));
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &a));
  ASSERT_EQ(a.hot_pages, 100);
  CHECK(blind_round(pool, img, want, pages, many, 100, 8));
  cowmem__adaptive_test_mode(0);
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  free(want);
  return 0;
}

/* A blind reset copies its hot pages back at release and queues its
 * discard with other slots': one call discards the rest of up to the
 * queue's slots (4 in a pool of 8). Until then the slot is nobody's: the
 * pool hands out the other queued ones' neighbours, flushes before it
 * would map the image into a slot never used, and every acquire still
 * finds exactly image and zeros (page 20, written and not hot, among
 * them). */
static int queued_cycles(cowmem_pool_t* pool, cowmem_image_t* img, const uint8_t* want,
                         int n, size_t* max_pending) {
  for (int i = 0; i < n; i++) {
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, img, 32 * PS, 64 * PS, &s));
    uint8_t* m = cowmem_slot_base(s);
    CHECK(same_bytes(m, want, 32 * PS, "queued blind reset"));
    m[3 * PS + 5] = (uint8_t)(i + 1);
    m[7 * PS + 9] = (uint8_t)(i + 2);
    if (i % 2) m[20 * PS] = 0x5a; /* not hot: discarded, in the queue */
    ASSERT_OK(cowmem_pool_release(pool, s));
    cowmem_pool_metrics_t pm;
    ASSERT_OK(cowmem_pool_metrics(pool, &pm));
    if (pm.pending > *max_pending) *max_pending = pm.pending;
  }
  return 0;
}

/* The queue tests' pool of 8 slots, resetting blind (so queueing where
 * process_madvise exists), and their image with its first 64 pages. */
typedef struct {
  cowmem_image_t* img;
  uint8_t* want;
  cowmem_pool_t* pool;
} queued_t;

static int queued_open(queued_t* q, uint8_t salt, bool need_queue) {
  PS = cowmem_page_size();
  if (need_queue && !cowmem__os_discards_batch())
    TEST_SKIP("no process_madvise here: no queue");
  q->img = holed_image(4, 8, 2, 3, salt);
  ASSERT_NOT_NULL(q->img);
  q->want = calloc(64, PS);
  ASSERT_NOT_NULL(q->want);
  ASSERT_OK(cowmem_image_read(q->img, 0, q->want, 64 * PS));
  cowmem__adaptive_test_mode(2);
  q->pool = make_pool(COWMEM_RESET_ADAPTIVE, 8, 64, 8, 1000);
  ASSERT_NOT_NULL(q->pool);
  return 0;
}

static int queued_close(queued_t* q) {
  cowmem__adaptive_test_mode(0);
  ASSERT_OK(cowmem_pool_free(q->pool));
  cowmem_image_release(q->img);
  free(q->want);
  return 0;
}

TEST_IMPL(blind_resets_queue_their_discard) {
  cowmem__os_inject_clear();
  queued_t q;
  CHECK(queued_open(&q, 0x29, false));
  size_t max_pending = 0;
  CHECK(queued_cycles(q.pool, q.img, q.want, 64, &max_pending));
  cowmem_pool_metrics_t pm;
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_metrics(q.pool, &pm));
  ASSERT_OK(cowmem_pool_image_metrics(q.pool, q.img, &im));
  if (!cowmem__os_discards_batch()) {
    /* One madvise a range here: nothing to gain from a queue. */
    ASSERT_EQ(max_pending, 0);
    ASSERT_EQ(pm.flushes, 0);
  } else {
    ASSERT_EQ(max_pending, 3); /* the fourth release flushes them */
    ASSERT_GE(pm.flushes, 64 / 4 - 2);
    /* The resets' own discards: the samples' (which scan), none else. */
    ASSERT_LE(im.discard_calls, im.samples);
    /* Only the queue's slots and the one in use ever held the image. */
    ASSERT_GE(pm.never_used, 8 - 5);
    /* A failing discard at a flush: each queued slot is released
     * decommitted, counted as a failure, and the next instances are exact. */
    uint64_t failures = pm.failures;
    cowmem__os_inject_fail(COWMEM__OS_process_madvise, 0, EIO);
    cowmem__os_inject_fail(COWMEM__OS_madvise, 0, EIO);
    CHECK(queued_cycles(q.pool, q.img, q.want, 4, &max_pending));
    cowmem__os_inject_clear();
    ASSERT_OK(cowmem_pool_metrics(q.pool, &pm));
    ASSERT_GT(pm.failures, failures);
    CHECK(queued_cycles(q.pool, q.img, q.want, 16, &max_pending));
  }
  /* Freed with slots still queued: the queue lets their images go. */
  return queued_close(&q);
}

/* A queue that fills while another thread holds the discard turn does not
 * wait for it: it keeps queueing, up to half its size again (a pool of 8:
 * flushes at 4, holds 6), and only then flushes, waiting (boundedly) for
 * the turn. Every instance is still exact. */
TEST_IMPL(queue_waits_not_for_the_turn) {
  queued_t q;
  int r = queued_open(&q, 0x2b, true);
  if (r != 0) return r;
  size_t max_pending = 0;
  CHECK(queued_cycles(q.pool, q.img, q.want, 8, &max_pending));
  ASSERT_EQ(max_pending, 3); /* the turn free: flushed at the fourth */
  holder_t h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  pthread_t th;
  ASSERT_EQ(holder_start(&h, &th), 0);
  cowmem_pool_metrics_t pm;
  ASSERT_OK(cowmem_pool_metrics(q.pool, &pm));
  uint64_t flushes = pm.flushes;
  max_pending = 0;
  CHECK(queued_cycles(q.pool, q.img, q.want, 12, &max_pending));
  ASSERT_EQ(holder_stop(&h, th), 0);
  ASSERT_EQ(max_pending, 5); /* the sixth release flushes, turn or not */
  ASSERT_OK(cowmem_pool_metrics(q.pool, &pm));
  ASSERT_UEQ(pm.flushes - flushes, 2);
  CHECK(queued_cycles(q.pool, q.img, q.want, 8, &max_pending));
  return queued_close(&q);
}

/* Slots queued by a thread that then exits wait for nobody: an acquire
 * that finds no idle slot flushes its own queue, and a queue that had no
 * push since the last such acquire. A pool of 8 (queues flush at 4): the
 * other thread leaves 3 queued; this one holds 5, releases 2 (queued),
 * and the next acquire finds nothing idle (it flushes its own 2, and
 * shrinks the queues' size to 3); the next such acquire flushes the
 * exited thread's 3 as well (and the size becomes 2). The size grows back
 * while acquires find slots. */
typedef struct {
  cowmem_pool_t* pool;
  cowmem_image_t* img;
  int err;
  int stripe;
} leaver_t;

static int pending_of(cowmem_pool_t* pool);

static void* queue_and_leave(void* p) {
  leaver_t* l = p;
  cowmem_slot_t* s[3];
  l->stripe = cowmem__os_stripe();
  /* This thread's first resets are samples (they do not queue); then
   * cycles until its queue is empty. */
  for (int i = 0; i < 24 && l->err == 0; i++) {
    l->err = cowmem_pool_acquire(l->pool, l->img, 32 * PS, 64 * PS, &s[0]);
    if (l->err == 0) l->err = cowmem_pool_release(l->pool, s[0]);
    if (i >= 16 && pending_of(l->pool) == 0) break;
  }
  if (l->err == 0 && pending_of(l->pool) != 0) l->err = COWMEM_ESTATE;
  for (int i = 0; i < 3 && l->err == 0; i++)
    l->err = cowmem_pool_acquire(l->pool, l->img, 32 * PS, 64 * PS, &s[i]);
  for (int i = 0; i < 3 && l->err == 0; i++) {
    ((uint8_t*)cowmem_slot_base(s[i]))[3 * PS] ^= 1;
    l->err = cowmem_pool_release(l->pool, s[i]);
  }
  return NULL;
}

static int pending_of(cowmem_pool_t* pool) {
  cowmem_pool_metrics_t pm;
  if (cowmem_pool_metrics(pool, &pm) != 0) return -1;
  return (int)pm.pending;
}

/* Cycles past this thread's first resets (samples, which do not queue)
 * until its queue is empty. */
static int queue_settled(queued_t* q) {
  size_t max_pending = 0;
  CHECK(queued_cycles(q->pool, q->img, q->want, 16, &max_pending));
  for (int i = 0; i < 4 && pending_of(q->pool) != 0; i++)
    CHECK(queued_cycles(q->pool, q->img, q->want, 1, &max_pending));
  ASSERT_EQ(pending_of(q->pool), 0);
  return 0;
}

/* Another thread queues 3 slots and exits. Skips (the pool freed) when
 * both threads share a stripe, so a queue. */
static int left_queued(queued_t* q) {
  leaver_t l = {q->pool, q->img, 0, -1};
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, NULL, queue_and_leave, &l), 0);
  ASSERT_EQ(pthread_join(th, NULL), 0);
  ASSERT_OK(l.err);
  if (l.stripe == cowmem__os_stripe()) {
    CHECK(queued_close(q));
    TEST_SKIP("both threads on one stripe");
  }
  return 0;
}

TEST_IMPL(exited_threads_queue_flushed) {
  queued_t q;
  int r = queued_open(&q, 0x2d, true);
  if (r != 0) return r;
  CHECK(queue_settled(&q));
  size_t max_pending = 0;
  r = left_queued(&q);
  if (r != 0) return r;
  ASSERT_EQ(pending_of(q.pool), 3);
  cowmem_slot_t* s[6];
  for (int i = 0; i < 5; i++)
    ASSERT_OK(cowmem_pool_acquire(q.pool, q.img, 32 * PS, 64 * PS, &s[i]));
  for (int i = 0; i < 2; i++)
    ASSERT_OK(cowmem_pool_release(q.pool, s[i]));
  ASSERT_EQ(pending_of(q.pool), 5);
  /* Nothing idle: this thread's 2 come back; the exited one's are looked at. */
  ASSERT_OK(cowmem_pool_acquire(q.pool, q.img, 32 * PS, 64 * PS, &s[0]));
  ASSERT_EQ(pending_of(q.pool), 3);
  ASSERT_OK(cowmem_pool_acquire(q.pool, q.img, 32 * PS, 64 * PS, &s[1]));
  for (int i = 2; i < 4; i++)
    ASSERT_OK(cowmem_pool_release(q.pool, s[i])); /* below the size of 3 */
  ASSERT_EQ(pending_of(q.pool), 5);
  /* Nothing idle again, and no push to the exited thread's queue since. */
  ASSERT_OK(cowmem_pool_acquire(q.pool, q.img, 32 * PS, 64 * PS, &s[2]));
  ASSERT_EQ(pending_of(q.pool), 0);
  int held[] = {0, 1, 2, 4};
  for (size_t i = 0; i < 4; i++)
    CHECK(same_bytes(cowmem_slot_base(s[held[i]]), q.want, 32 * PS, "after the flush"));
  /* Two such acquires made the queues' size 2. */
  ASSERT_EQ(cowmem__pool_queue_size(q.pool), 2);
  ASSERT_OK(cowmem_pool_release(q.pool, s[0]));
  ASSERT_EQ(pending_of(q.pool), 1);
  ASSERT_OK(cowmem_pool_release(q.pool, s[1]));
  ASSERT_EQ(pending_of(q.pool), 0);
  ASSERT_OK(cowmem_pool_release(q.pool, s[2]));
  ASSERT_OK(cowmem_pool_release(q.pool, s[4]));
  /* With slots to spare, it grows back to 4 (a slot per 64 flushes). */
  CHECK(queued_cycles(q.pool, q.img, q.want, 64 * 2 + 64 * 3, &max_pending));
  max_pending = 0;
  CHECK(queued_cycles(q.pool, q.img, q.want, 8, &max_pending));
  ASSERT_EQ(max_pending, 3);
  ASSERT_EQ(cowmem__pool_queue_size(q.pool), 4);
  return queued_close(&q);
}

/* The flushes metric counts each queue a flush empties (each is one
 * discard call): a thread that exited left 3 queued, this one 2, and
 * cowmem_pool_flush empties both queues. */
TEST_IMPL(flush_counts_each_queue) {
  queued_t q;
  int r = queued_open(&q, 0x33, true);
  if (r != 0) return r;
  CHECK(queue_settled(&q));
  r = left_queued(&q);
  if (r != 0) return r;
  size_t max_pending = 0;
  CHECK(queued_cycles(q.pool, q.img, q.want, 2, &max_pending));
  ASSERT_EQ(pending_of(q.pool), 5);
  cowmem_pool_metrics_t m0, m1;
  ASSERT_OK(cowmem_pool_metrics(q.pool, &m0));
  ASSERT_OK(cowmem_pool_flush(q.pool));
  ASSERT_OK(cowmem_pool_metrics(q.pool, &m1));
  ASSERT_EQ(m1.pending, 0);
  ASSERT_UEQ(m1.flushes - m0.flushes, 2);
  return queued_close(&q);
}

/* An acquire that finds no idle slot of its image while other images'
 * are idle is not short of slots: the queues keep their size. Ten images
 * take turns in the pool of 8, so nearly every acquire misses (and
 * flushes its queue, or steals). */
TEST_IMPL(queue_keeps_size_among_images) {
  queued_t q;
  int r = queued_open(&q, 0x31, true);
  if (r != 0) return r;
  cowmem_image_t* imgs[10];
  for (int i = 0; i < 10; i++) {
    imgs[i] = holed_image(4, 8, 2, 3, (uint8_t)(0x40 + i));
    ASSERT_NOT_NULL(imgs[i]);
  }
  for (int i = 0; i < 200; i++) {
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(q.pool, imgs[i % 10], 32 * PS, 64 * PS, &s));
    ((uint8_t*)cowmem_slot_base(s))[3 * PS] ^= 1;
    ASSERT_OK(cowmem_pool_release(q.pool, s));
  }
  cowmem_pool_metrics_t pm;
  ASSERT_OK(cowmem_pool_metrics(q.pool, &pm));
  ASSERT_GT(pm.steals, 100);
  ASSERT_GT(pm.flushes, 100);
  ASSERT_EQ(cowmem__pool_queue_size(q.pool), 4);
  for (int i = 0; i < 10; i++)
    cowmem_image_release(imgs[i]);
  return queued_close(&q);
}

/* Pages an instance only reads stay mapped across ADAPTIVE's resets: they
 * are the image's (or zeros) already, so decommitting them would only make
 * the next instance fault them in again. An instance that reads all 40
 * pages of a holed image and writes 2 of them: after the hot set is
 * learnt, the next instance's reads make no page fault, and the reset
 * decommits nothing. The contents are checked at every acquire. */
static int reads_stay_mapped_in(size_t slots, bool no_scan) {
  cowmem__adaptive_test_mode(0);
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, no_scan);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, slots, 64, 16, 8);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(0, 40, 6, 26, 0x21);
  ASSERT_NOT_NULL(img);
  uint8_t* want = calloc(48, PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, 48 * PS));
  size_t writes[] = {3, 30};
  /* Without the scan a hole's read maps the zero page, which pagemap
   * cannot tell from a written page: the holes are not read then. */
  bool zero_allocates = anon_read_allocates() || no_scan;
  uint64_t faults = 0, sum = 0;
  cowmem_pool_image_metrics_t m0 = {0}, m1;
  for (int i = 0; i < 60; i++) {
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, img, 48 * PS, 48 * PS, &s));
    uint8_t* m = cowmem_slot_base(s);
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    if (zero_allocates) /* reads of the holes would look written */
      sum += read_pages(m, 0, 6) + read_pages(m, 26, 40);
    else
      sum += read_pages(m, 0, 48);
    getrusage(RUSAGE_THREAD, &r1);
    if (i == 40) ASSERT_OK(cowmem_pool_image_metrics(pool, img, &m0));
    if (i >= 40) faults += (uint64_t)(r1.ru_minflt - r0.ru_minflt);
    CHECK(same_pages_unread(m, want, 48, zero_allocates, "acquire")); /* after the reads */
    for (size_t k = 0; k < 2; k++)
      m[writes[k] * PS + 8] ^= 0xff;
    ASSERT_OK(cowmem_pool_release(pool, s));
  }
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &m1));
  fprintf(stderr, "reads_stay_mapped: %llu faults in 20 instances (sum %llu)\n",
          (unsigned long long)faults, (unsigned long long)sum);
  ASSERT_EQ(m1.hot_pages, 2);
  ASSERT_UEQ(faults, 0);
  /* A blind reset (no scan) still decommits the 8 pages past the image,
   * where nothing is; none of the image's. */
  uint64_t past = no_scan ? 8 * (m1.resets - m0.resets) : 0;
  ASSERT_TRUE(m1.discarded_pages - m0.discarded_pages <= past);
  ASSERT_UEQ(m1.copied_pages - m0.copied_pages, 2 * (m1.resets - m0.resets));
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, 0);
  cowmem_image_release(img);
  free(want);
  return 0;
}

/* The same with 8 slots, where blind resets would queue their discards
 * (cheaper by a system call): reading 20-48 pages must still outweigh that
 * (it did not while a clean page weighed a tenth of its cost, and the
 * wasm2c demo faulted twice a request). */
TEST_IMPL(reads_stay_mapped) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  CHECK(reads_stay_mapped_in(1, false));
  return reads_stay_mapped_in(8, false);
}

/* Without PAGEMAP_SCAN (kernels before 6.7) every reset is blind: it keeps
 * the image's pages that pagemap shows are still the file's, so instances
 * that read the image make no fault once the hot set is learnt, and their
 * resets are quiet (a blind reset that decommitted them made the next
 * instance fault them in again: 16 faults a request in bench_adaptive's
 * 10% read). */
TEST_IMPL(reads_stay_mapped_no_scan) {
  PS = cowmem_page_size();
  uint64_t f;
  if (cowmem__os_fault_count(&f) != 0) TEST_SKIP("no exact fault count here");
  CHECK(reads_stay_mapped_in(1, true));
  return reads_stay_mapped_in(8, true);
}
TEST_MAIN(
    TEST_ENTRY(sampling_backs_off) TEST_ENTRY(sampling_backs_off_scan_each) TEST_ENTRY(
        hot_set_follows_workload) TEST_ENTRY(hot_set_follows_workload_no_scan)
        TEST_ENTRY(hot_set_keeps_rewritten_pages) TEST_ENTRY(
            budget_bounds_hot_set) TEST_ENTRY(fork_child_resets)
            TEST_ENTRY(threads_adaptive) TEST_ENTRY(threads_adaptive_no_scan) TEST_ENTRY(
                metrics_count_every_thread) TEST_ENTRY(adaptive_failures)
                TEST_ENTRY(many_ranges) TEST_ENTRY(adaptive_config) TEST_ENTRY(
                    adaptive_metrics) TEST_ENTRY(adaptive_metrics_scan_each)
                    TEST_ENTRY(scan_while_another_discards) TEST_ENTRY(
                        scan_after_waiting_for_discard) TEST_ENTRY(fork_while_another_discards)
                        TEST_ENTRY(scan_when_hot_set_scattered) TEST_ENTRY(
                            blind_when_hot_pages_spread) TEST_ENTRY(reads_stay_mapped)
                            TEST_ENTRY(reads_stay_mapped_no_scan)
                            TEST_ENTRY(blind_walks_hot_runs) TEST_ENTRY(
                                blind_copies_owned_hot_pages)
                                TEST_ENTRY(blind_resets_queue_their_discard) TEST_ENTRY(
                                    queue_waits_not_for_the_turn)
                                    TEST_ENTRY(exited_threads_queue_flushed) TEST_ENTRY(
                                        queue_keeps_size_among_images)
                                        TEST_ENTRY(flush_counts_each_queue) TEST_ENTRY(
                                            quiet_when_nothing_faults)
                                            TEST_ENTRY(quiet_queued_one_count_a_flush)
                                                TEST_ENTRY(
                                                    quiet_not_after_hot_set_changes)
                                                    TEST_ENTRY(fault_count_counts)
                                                        TEST_ENTRY(quiet_not_after_grow)
                                                            TEST_ENTRY(
                                                                quiet_memory_in_base_pages))
