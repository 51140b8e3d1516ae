/* Adaptive reset and snapshots: a model test (random write patterns, every
 * strategy, with and without PAGEMAP_SCAN: each reset must leave exactly
 * image and zeros), the hot set following a workload that moves, a child
 * process that keeps resetting after fork, threads, failures, metrics, and
 * snapshots (bytes, instances, holes). Randomized tests print their seed;
 * COWMEM_TEST_SEED replays one, COWMEM_TEST_OPS changes the op count. */
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "cowmem.h"
#include "dirty.h"
#include "reset/adaptive.h"
#include "internal.h"
#include "slot/slot.h"
#include "test.h"

static size_t PS;

/* ---- helpers ---- */

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}
static size_t rnd_below(size_t n) {
  return n ? (size_t)(rnd() % n) : 0;
}

static uint64_t seed_init(const char* test) {
  const char* e = getenv("COWMEM_TEST_SEED");
  uint64_t seed =
      e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
  if (seed == 0) seed = 1;
  fprintf(stderr, "%s: seed %llu (replay: COWMEM_TEST_SEED=%llu)\n", test,
          (unsigned long long)seed, (unsigned long long)seed);
  rng_state = seed;
  return seed;
}

static size_t ops_from_env(size_t def) {
  const char* e = getenv("COWMEM_TEST_OPS");
  return e ? (size_t)strtoull(e, NULL, 0) : def;
}

/* An image over pages [first, first + npages) whose pages in [hole_lo,
 * hole_hi) (relative) are zero: two runs, so copies and holes are tested. */
static cowmem_image_t* holed_image(size_t first, size_t npages, size_t hole_lo,
                                   size_t hole_hi, uint8_t salt) {
  size_t len = npages * PS;
  uint8_t* b = malloc(len);
  for (size_t i = 0; i < len; i++)
    b[i] = (uint8_t)(i * 31 + salt + i / PS) | 1;
  memset(b + hole_lo * PS, 0, (hole_hi - hole_lo) * PS);
  cowmem_image_t* img = NULL;
  if (cowmem_image_new_from_bytes(b, len, first * PS, &img) != 0) img = NULL;
  free(b);
  return img;
}

static cowmem_pool_t* make_pool(cowmem_reset_strategy_t reset, size_t slots,
                                size_t slot_pages, size_t budget_pages, size_t every) {
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.max_slots = slots;
  cfg.slot_reserve = slot_pages * PS;
  cfg.guard_size = 16 * PS;
  cfg.reset = reset;
  cfg.keep_resident = 8 * PS;
  cfg.batch_size = 2;
  cfg.resident_budget = budget_pages * PS;
  cfg.sample_every = every;
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t why;
  int r = cowmem_pool_new(&cfg, &pool, &why);
  if (r != 0) fprintf(stderr, "pool: %s: %s\n", cowmem_err_name(r), why.reason);
  return pool;
}

/* Slot bytes [0, n) equal want? Prints the first difference. */
static int same_bytes(const uint8_t* have, const uint8_t* want, size_t n,
                      const char* what) {
  if (memcmp(have, want, n) == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (have[i] != want[i]) {
      fprintf(stderr, "%s: byte %zu (page %zu) is 0x%02x, expected 0x%02x\n", what, i,
              i / PS, have[i], want[i]);
      break;
    }
  return 1;
}

static bool resident(const void* p) {
  size_t bytes = 0;
  if (cowmem__os_resident((void*)p, PS, &bytes) != 0) return false;
  return bytes != 0;
}

/* ---- detection ---- */

typedef struct {
  uint8_t* base;
  uint8_t seen[64];
} seen_t;

static void note_range(void* arg, uint8_t* addr, size_t len) {
  seen_t* s = arg;
  for (size_t p = (size_t)(addr - s->base) / PS; p < (size_t)(addr - s->base + len) / PS;
       p++)
    s->seen[p]++;
}

/* Whether a read of untouched anonymous memory maps the shared zero page
 * (most kernels) or allocates a page of its own (seen on one 6.18 VM: two
 * read pages had different frames). Where it allocates, PAGEMAP_SCAN cannot
 * tell the read from a write, and the reset decommits it like one. */
static bool anon_read_allocates(void) {
  size_t ps = cowmem_page_size();
  volatile uint8_t* p =
      mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  uint8_t sink = p[0];
  (void)sink;
  seen_t seen = {(uint8_t*)p, {0}};
  bool allocated =
      cowmem__dirty_scan((void*)p, ps, note_range, &seen) == 0 && seen.seen[0];
  munmap((void*)p, ps);
  return allocated;
}

/* What PAGEMAP_SCAN calls written, and how madvise resets it: a page
 * written in anonymous memory or copied-on-write from the image is
 * written; a read is not (a file page; the zero page, where the kernel maps
 * it); after MADV_DONTNEED nothing is, until the next write. */
TEST_IMPL(scan_sees_writes_and_discards) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  cowmem_image_t* img = holed_image(8, 16, 20, 20, 0x33);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 64 * PS, img));
  volatile uint8_t* m = cowmem_slot_base(s);
  seen_t seen = {cowmem_slot_base(s), {0}};
  uint8_t sink = 0;
  sink += m[1 * PS] + m[10 * PS] + m[40 * PS]; /* reads only */
  m[2 * PS] = 1;                               /* anonymous */
  m[12 * PS] = 1;                              /* copy-on-write of an image page */
  m[13 * PS] = m[13 * PS]; /* written with its own byte: still written */
  ASSERT_OK(cowmem__dirty_scan(cowmem_slot_base(s), 64 * PS, note_range, &seen));
  bool reads_allocate = anon_read_allocates();
  if (reads_allocate)
    printf("anonymous reads allocate pages here: they count as written\n");
  for (size_t p = 0; p < 64; p++)
    ASSERT_EQ(seen.seen[p],
              p == 2 || p == 12 || p == 13 || (reads_allocate && (p == 1 || p == 40)));
  ASSERT_OK(cowmem_slot_reset(s)); /* one madvise */
  memset(seen.seen, 0, sizeof seen.seen);
  ASSERT_OK(cowmem__dirty_scan(cowmem_slot_base(s), 64 * PS, note_range, &seen));
  for (size_t p = 0; p < 64; p++)
    ASSERT_EQ(seen.seen[p], 0);
  ASSERT_OK(cowmem_slot_instantiate(s, 64 * PS, img));
  m[12 * PS] = 2;
  ASSERT_OK(cowmem__dirty_scan(cowmem_slot_base(s), 64 * PS, note_range, &seen));
  ASSERT_EQ(seen.seen[12], 1);
  (void)sink;
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  return 0;
}

/* Without PAGEMAP_SCAN, a sampled reset and a snapshot compare only the
 * candidates: pages this process may have written. They come from
 * /proc/self/pagemap (anonymous pages), not mincore, which over the image
 * reports the page cache: with it, every cached image page was compared
 * and read through the slot, faulting it in (bench_adaptive's no-scan p99
 * was 400 us). Image pages only read must not be candidates. */
TEST_IMPL(candidates_without_scan) {
  PS = cowmem_page_size();
  if (!cowmem__os_has_memfd() || access("/proc/self/pagemap", R_OK) != 0)
    TEST_SKIP("the portable backend, or no /proc/self/pagemap: mincore's superset");
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, 1);
  cowmem_image_t* img = holed_image(8, 16, 20, 20, 0x33);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 64 * PS, img));
  volatile uint8_t* m = cowmem_slot_base(s);
  uint8_t sink = 0;
  for (size_t p = 8; p < 24; p++) sink += m[p * PS]; /* every image page read */
  sink += m[1 * PS] + m[40 * PS];                    /* zeros read */
  m[2 * PS] = 1;                                     /* anonymous */
  m[12 * PS] = 1;                                    /* copy-on-write */
  m[13 * PS] = m[13 * PS];
  seen_t seen = {cowmem_slot_base(s), {0}};
  ASSERT_OK(cowmem__dirty_candidates(cowmem_slot_base(s), 64 * PS, note_range, &seen));
  for (size_t p = 0; p < 64; p++) {
    if (p == 1 || p == 40) continue; /* the zero page: no file page, may show */
    ASSERT_EQ(seen.seen[p], p == 2 || p == 12 || p == 13);
  }
  ASSERT_OK(cowmem_slot_reset(s));
  memset(seen.seen, 0, sizeof seen.seen);
  ASSERT_OK(cowmem__dirty_candidates(cowmem_slot_base(s), 64 * PS, note_range, &seen));
  for (size_t p = 0; p < 64; p++)
    ASSERT_EQ(seen.seen[p], 0);
  (void)sink;
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, 0);
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  return 0;
}

/* Why the adaptive reset does not use userfaultfd write-protection (see
 * dirty.c), measured: with UFFD_FEATURE_WP_ASYNC on an anonymous range,
 * PAGEMAP_SCAN's WP_MATCHING arms tracking and a write shows as WRITTEN;
 * but MADV_DONTNEED (the reset) drops the tracking of what it zaps, so those
 * pages read as written until armed again, and arming populates page
 * tables (a 16 MiB WP scan costs about 6 us here, a plain one 0.4-1.2 us).
 * The test asserts the detection and reports the interaction. */
#if defined(__linux__)
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#endif

typedef struct {
  uint64_t start, end, categories;
} wp_region_t;
typedef struct {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
} wp_scan_arg_t;

TEST_IMPL(uffd_wp_vs_madvise) {
  PS = cowmem_page_size();
#if defined(__linux__) && defined(UFFDIO_REGISTER_MODE_WP)
  if (!cowmem__os_has_pagemap_scan()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (pm < 0 || uffd < 0) {
    if (pm >= 0) close(pm);
    TEST_SKIP("userfaultfd not permitted (vm.unprivileged_userfaultfd=0?)");
  }
  struct uffdio_api api = {.api = UFFD_API, .features = 1u << 15 /* WP_ASYNC */};
  if (ioctl(uffd, UFFDIO_API, &api) != 0) {
    close(uffd);
    close(pm);
    TEST_SKIP("UFFD_FEATURE_WP_ASYNC missing (Linux >= 6.7)");
  }
  const size_t n = 64;
  uint8_t* m =
      mmap(NULL, n * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_TRUE(m != MAP_FAILED);
  struct uffdio_register reg = {.range = {(uintptr_t)m, n * PS},
                                .mode = UFFDIO_REGISTER_MODE_WP};
  ASSERT_EQ(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);
  wp_region_t v[16];
  unsigned long op = _IOWR('f', 16, wp_scan_arg_t);
  wp_scan_arg_t a;
#define WP_SCAN(fl)                                                                      \
  (memset(&a, 0, sizeof a), a.size = sizeof a, a.flags = (fl), a.start = (uintptr_t)m,   \
   a.end = (uintptr_t)m + n * PS, a.vec = (uintptr_t)v, a.vec_len = 16,                  \
   a.category_mask = 2 /* WRITTEN */, a.return_mask = 2, ioctl(pm, op, &a))
  ASSERT_GE(WP_SCAN(3 /* WP_MATCHING | CHECK_WPASYNC */), 0); /* arm */
  ASSERT_EQ(WP_SCAN(0), 0);
  m[3 * PS] = 1;
  ASSERT_EQ(WP_SCAN(0), 1);
  ASSERT_UEQ(v[0].start, (uintptr_t)m + 3 * PS);
  ASSERT_UEQ(v[0].end, (uintptr_t)m + 4 * PS);
  ASSERT_GE(WP_SCAN(3), 0); /* re-arm */
  madvise(m + 8 * PS, 8 * PS, MADV_DONTNEED);
  long r = WP_SCAN(0);
  fprintf(stderr, "after MADV_DONTNEED of 8 armed, unwritten pages: %s\n",
          r > 0 ? "they read as written (tracking lost until re-armed)"
                : "still tracked (not written)");
#undef WP_SCAN
  munmap(m, n * PS);
  close(uffd);
  close(pm);
  return 0;
#else
  TEST_SKIP("no userfaultfd write-protect headers");
#endif
}

/* ---- the model test ---- */

#define M_SLOT_PAGES 64
#define M_MAX_HELD 3

typedef struct {
  cowmem_slot_t* slot;
  size_t img;
} held_t;

static void write_page(uint8_t* m, size_t page, uint8_t v) {
  size_t at = page * PS + rnd_below(PS - 64);
  memset(m + at, v, 1 + rnd_below(63));
}

/* Read pages [lo, hi) of an instance (image pages and zeros), as a program
 * reads its data: mapped, never written. */
static uint64_t read_pages(const uint8_t* m, size_t lo, size_t hi) {
  uint64_t sum = 0;
  for (size_t p = lo; p < hi; p++)
    sum += ((const volatile uint8_t*)m)[p * PS + (p * 97) % PS];
  return sum;
}

/* An instance's writes, drawn from patterns a program shows: a few pages
 * (biased to a "working set" that moves every few thousand ops), a dense
 * run, growth and writes above the initial size, every page, writes of the
 * bytes already there (a page "written" with its own contents), and reads
 * of a span of image pages and zeros with a few of them written. */
static void scribble(cowmem_slot_t* s, const size_t* hot, size_t nhot) {
  uint8_t* m = cowmem_slot_base(s);
  size_t pages = cowmem_slot_accessible(s) / PS;
  switch (rnd_below(10)) {
  case 0:
  case 1:
  case 2: /* the working set, plus a stray page or two */
    for (size_t i = 0; i < nhot; i++)
      if (hot[i] < pages && rnd_below(4) != 0) write_page(m, hot[i], (uint8_t)rnd());
    for (size_t i = rnd_below(3); i > 0; i--)
      write_page(m, rnd_below(pages), (uint8_t)rnd());
    break;
  case 3: /* scattered */
    for (size_t i = 1 + rnd_below(12); i > 0; i--)
      write_page(m, rnd_below(pages), (uint8_t)rnd());
    break;
  case 4: { /* dense */
    size_t lo = rnd_below(pages), n = 1 + rnd_below(16);
    if (lo + n > pages) n = pages - lo;
    memset(m + lo * PS, (int)(rnd() | 1), n * PS);
    break;
  }
  case 5: { /* grow, then write in the new part and below it */
    size_t add = 1 + rnd_below(8);
    if ((pages + add) * PS <= M_SLOT_PAGES * PS &&
        cowmem_slot_grow(s, (pages + add) * PS) == 0) {
      for (size_t p = pages; p < pages + add; p++)
        if (rnd_below(2)) write_page(m, p, (uint8_t)(rnd() | 1));
      write_page(m, rnd_below(pages), 0x77);
    }
    break;
  }
  case 6: /* all pages */
    for (size_t p = 0; p < pages; p++)
      write_page(m, p, (uint8_t)(p + 1));
    break;
  case 8:
  case 9: { /* read a span (most of the memory, or a part), write a few */
    size_t lo = rnd_below(2) ? 0 : rnd_below(pages);
    (void)read_pages(m, lo, pages);
    for (size_t i = rnd_below(3); i > 0; i--)
      write_page(m, lo + rnd_below(pages - lo), (uint8_t)rnd());
    break;
  }
  default: /* rewrite with the same bytes, and zero a page */
    for (size_t i = 1 + rnd_below(4); i > 0; i--) {
      size_t p = rnd_below(pages);
      volatile uint8_t* q = m + p * PS + rnd_below(PS);
      *q = *q;
    }
    if (rnd_below(2)) memset(m + rnd_below(pages) * PS, 0, PS);
    break;
  }
}

/* ADAPTIVE's mode for the model (cowmem__adaptive_test_mode): 2 blind,
 * scanning to sample; 1 a scan per reset. */
static int model_mode = 2;

static int model(cowmem_reset_strategy_t reset, bool no_scan, size_t ops,
                 const char* name) {
  PS = cowmem_page_size();
  cowmem__os_inject_clear();
  cowmem__adaptive_test_mode(model_mode);
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, no_scan);
  seed_init(name);
  ops = ops_from_env(ops);
  cowmem_pool_t* pool = make_pool(reset, M_MAX_HELD, M_SLOT_PAGES, 12, 8);
  ASSERT_NOT_NULL(pool);
  /* A: a small hole (mapped from the memfd), B: a large one (anonymous in
   * the slot), and the all-zeros memory. */
  cowmem_image_t* imgs[3] = {holed_image(4, 20, 8, 11, 0x10),
                             holed_image(0, 40, 6, 26, 0x40), NULL};
  ASSERT_NOT_NULL(imgs[0]);
  ASSERT_NOT_NULL(imgs[1]);
  size_t img_end[3] = {24, 40, 0};
  uint8_t* want[3];
  for (int i = 0; i < 3; i++) {
    want[i] = calloc(M_SLOT_PAGES, PS);
    if (imgs[i] != NULL)
      ASSERT_OK(cowmem_image_read(imgs[i], 0, want[i], M_SLOT_PAGES * PS));
  }
  held_t held[M_MAX_HELD];
  size_t nheld = 0, checks = 0;
  size_t hot[6];
  for (size_t op = 0; op < ops; op++) {
    if (op % 4000 == 0) /* the working set moves */
      for (int i = 0; i < 6; i++)
        hot[i] = rnd_below(48);
    size_t what = rnd_below(10);
    if (nheld == 0 || (what < 3 && nheld < M_MAX_HELD)) {
      size_t k = rnd_below(3);
      size_t initial = img_end[k] + rnd_below(48 - img_end[k] + 1);
      if (initial == 0) initial = 1;
      cowmem_slot_t* s = NULL;
      int r = cowmem_pool_acquire(pool, imgs[k], initial * PS, M_SLOT_PAGES * PS, &s);
      if (r != 0) {
        fprintf(stderr, "op %zu: acquire: %s\n", op, cowmem_err_name(r));
        return 1;
      }
      ASSERT_UEQ(cowmem_slot_accessible(s), initial * PS);
      char what_s[64];
      snprintf(what_s, sizeof what_s, "op %zu image %zu", op, k);
      CHECK(same_bytes(cowmem_slot_base(s), want[k], initial * PS, what_s));
      checks++;
      held[nheld++] = (held_t){s, k};
    } else if (what < 8) {
      scribble(held[rnd_below(nheld)].slot, hot, 6);
    } else {
      size_t i = rnd_below(nheld);
      ASSERT_OK(cowmem_pool_release(pool, held[i].slot));
      held[i] = held[--nheld];
      if (rnd_below(16) == 0) ASSERT_OK(cowmem_pool_flush(pool));
    }
  }
  while (nheld > 0)
    ASSERT_OK(cowmem_pool_release(pool, held[--nheld].slot));
  if (reset == COWMEM_RESET_ADAPTIVE) {
    cowmem_pool_image_metrics_t im;
    ASSERT_OK(cowmem_pool_image_metrics(pool, imgs[0], &im));
    fprintf(stderr,
            "image A: resets %llu samples %llu hot %llu dirty/sample %.1f copied %llu "
            "discarded %llu calls %llu scans %llu; %zu checks\n",
            (unsigned long long)im.resets, (unsigned long long)im.samples,
            (unsigned long long)im.hot_pages,
            im.samples ? (double)im.sampled_dirty_pages / (double)im.samples : 0.0,
            (unsigned long long)im.copied_pages, (unsigned long long)im.discarded_pages,
            (unsigned long long)im.discard_calls, (unsigned long long)im.scans, checks);
    ASSERT_GT(im.resets, 0);
    ASSERT_GT(im.samples, 0);
    ASSERT_GT(im.copied_pages, 0);
    if (no_scan || !cowmem__os_has_pagemap_scan())
      ASSERT_EQ(im.scans, 0);
    else if (model_mode == 1)
      ASSERT_EQ(im.scans, im.resets);
    else if (model_mode == 2)
      ASSERT_EQ(im.scans, im.samples); /* blind: a scan only to sample */
    else
      ASSERT_GE(im.scans, im.samples); /* decided per reset */
  }
  cowmem__adaptive_test_mode(0);
  ASSERT_OK(cowmem_pool_free(pool));
  for (int i = 0; i < 3; i++) {
    cowmem_image_release(imgs[i]);
    free(want[i]);
  }
  return 0;
}

TEST_IMPL(model_adaptive) {
  return model(COWMEM_RESET_ADAPTIVE, false, 100000, "model_adaptive");
}
TEST_IMPL(model_adaptive_scan_each) {
  model_mode = 1;
  return model(COWMEM_RESET_ADAPTIVE, false, 50000, "model_adaptive_scan_each");
}
TEST_IMPL(model_adaptive_decide) {
  model_mode = 0; /* blind or scan as the pool decides, reads weighing in */
  return model(COWMEM_RESET_ADAPTIVE, false, 50000, "model_adaptive_decide");
}
TEST_IMPL(model_adaptive_no_scan) {
  return model(COWMEM_RESET_ADAPTIVE, true, 100000, "model_adaptive_no_scan");
}
TEST_IMPL(model_madvise) {
  return model(COWMEM_RESET_MADVISE, false, 30000, "model_madvise");
}
TEST_IMPL(model_madvise_no_scan) {
  return model(COWMEM_RESET_MADVISE, true, 30000, "model_madvise_no_scan");
}
TEST_IMPL(model_keep_resident) {
  return model(COWMEM_RESET_KEEP_RESIDENT, false, 30000, "model_keep_resident");
}
TEST_IMPL(model_keep_resident_no_scan) {
  return model(COWMEM_RESET_KEEP_RESIDENT, true, 30000, "model_keep_resident_no_scan");
}
TEST_IMPL(model_batched) {
  return model(COWMEM_RESET_BATCHED, false, 30000, "model_batched");
}
TEST_IMPL(model_batched_no_scan) {
  return model(COWMEM_RESET_BATCHED, true, 30000, "model_batched_no_scan");
}

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
  cowmem_pool_image_metrics_t im;
  ASSERT_OK(cowmem_pool_image_metrics(pool, NULL, &im));
  ASSERT_EQ(im.resets, N * 96);
  /* Each reset copies or decommits every page it finds written: the two
   * pages at least, and with a scan exactly those. */
  ASSERT_GE(im.copied_pages + im.discarded_pages, 2 * N * 96);
  cowmem_pool_metrics_t pm;
  ASSERT_OK(cowmem_pool_metrics(pool, &pm));
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

TEST_IMPL(scan_while_another_discards) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  cowmem__adaptive_test_mode(0);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 8, 1000);
  ASSERT_NOT_NULL(pool);
  cycles_arg_t me = {pool, 0};
  sixteen_cycles(&me); /* learns pages 3 and 7 (warm-up samples) */
  ASSERT_OK(me.err);
  uint64_t u0 = unsampled_scans(pool);
  sixteen_cycles(&me); /* nobody else discards: blind */
  ASSERT_OK(me.err);
  uint64_t u1 = unsampled_scans(pool);
  ASSERT_UEQ(u1, u0);
  holder_t h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  pthread_t th;
  ASSERT_EQ(holder_start(&h, &th), 0);
  sixteen_cycles(&me); /* the turn is taken: every reset scans */
  ASSERT_EQ(holder_stop(&h, th), 0);
  ASSERT_OK(me.err);
  uint64_t u2 = unsampled_scans(pool);
  ASSERT_UEQ(u2 - u1, 16);
  sixteen_cycles(&me); /* free again: blind */
  ASSERT_OK(me.err);
  ASSERT_UEQ(unsampled_scans(pool), u2);
  ASSERT_OK(cowmem_pool_free(pool));
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
    if (cowmem__os_discard_busy()) _exit(2);
    sixteen_cycles(&me);
    _exit(me.err == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_EQ(holder_stop(&h, th), 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ASSERT_FALSE(cowmem__os_discard_busy());
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
  return 0;
}

/* Pages an instance only reads stay mapped across ADAPTIVE's resets: they
 * are the image's (or zeros) already, so decommitting them would only make
 * the next instance fault them in again. An instance that reads all 40
 * pages of a holed image and writes 2 of them: after the hot set is
 * learnt, the next instance's reads make no page fault, and the reset
 * decommits nothing. The contents are checked at every acquire. */
TEST_IMPL(reads_stay_mapped) {
  PS = cowmem_page_size();
  if (!cowmem__dirty_exact()) TEST_SKIP("no PAGEMAP_SCAN here (Linux >= 6.7)");
  cowmem__adaptive_test_mode(0);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 1, 64, 16, 8);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(0, 40, 6, 26, 0x21);
  ASSERT_NOT_NULL(img);
  uint8_t* want = calloc(48, PS);
  ASSERT_OK(cowmem_image_read(img, 0, want, 48 * PS));
  size_t writes[] = {3, 30};
  bool zero_allocates = anon_read_allocates();
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
    CHECK(same_bytes(m, want, 48 * PS, "acquire")); /* after: it reads every page */
    for (size_t k = 0; k < 2; k++)
      m[writes[k] * PS + 8] ^= 0xff;
    ASSERT_OK(cowmem_pool_release(pool, s));
  }
  ASSERT_OK(cowmem_pool_image_metrics(pool, img, &m1));
  fprintf(stderr, "reads_stay_mapped: %llu faults in 20 instances (sum %llu)\n",
          (unsigned long long)faults, (unsigned long long)sum);
  ASSERT_EQ(m1.hot_pages, 2);
  ASSERT_UEQ(faults, 0);
  ASSERT_UEQ(m1.discarded_pages - m0.discarded_pages, 0);
  ASSERT_UEQ(m1.copied_pages - m0.copied_pages, 2 * (m1.resets - m0.resets));
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  free(want);
  return 0;
}

/* ---- snapshots ---- */

TEST_IMPL(snapshot_equals_slot) {
  PS = cowmem_page_size();
  const size_t n = 48;
  cowmem_image_t* img = holed_image(4, 20, 8, 11, 0x71);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &s));
  cowmem_image_t* snap = NULL;
  ASSERT_ERR(cowmem_snapshot(s, &snap), COWMEM_ESTATE);
  ASSERT_ERR(cowmem_snapshot(NULL, &snap), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_snapshot(s, NULL), COWMEM_EINVAL);
  ASSERT_OK(cowmem_slot_instantiate(s, n * PS, img));
  uint8_t* m = cowmem_slot_base(s);
  /* "Initialization": globals inside the image, a heap above it, a page
   * of the image zeroed, and pages never touched in between. */
  memset(m + 5 * PS + 10, 0xab, 100);
  memset(m + 30 * PS, 0xcd, 2 * PS);
  memset(m + 6 * PS, 0, PS);
  m[44 * PS + 7] = 1;
  ASSERT_OK(cowmem_snapshot(s, &snap));
  ASSERT_NOT_NULL(snap);
  /* Never-touched pages were not faulted in by the snapshot. */
  ASSERT_FALSE(resident(m + 40 * PS));
  ASSERT_FALSE(resident(m + 2 * PS));
  uint8_t* got = calloc(n, PS);
  ASSERT_OK(cowmem_image_read(snap, 0, got, n * PS));
  CHECK(same_bytes(got, m, n * PS, "snapshot vs slot"));
  cowmem_image_info_t info;
  ASSERT_OK(cowmem_image_info(snap, &info));
  size_t nonzero = 0;
  for (size_t p = 0; p < n; p++) {
    bool z = true;
    for (size_t i = 0; i < PS && z; i++)
      z = m[p * PS + i] == 0;
    nonzero += !z;
  }
  ASSERT_UEQ(info.data_pages, nonzero);
  ASSERT_UEQ(info.mem_offset, 4 * PS);
  ASSERT_UEQ(info.mem_offset + info.len, 45 * PS);
  if (info.kind == COWMEM_IMAGE_MEMFD) {
    struct stat st;
    ASSERT_EQ(fstat(info.fd, &st), 0);
    ASSERT_LE((uint64_t)st.st_blocks * 512, nonzero * PS); /* holes stay holes */
  }
  /* Instances of the snapshot see it and reset to it. */
  cowmem_slot_t* t = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &t));
  for (int round = 0; round < 3; round++) {
    ASSERT_OK(cowmem_slot_instantiate(t, n * PS, snap));
    uint8_t* tm = cowmem_slot_base(t);
    if (round == 0) ASSERT_FALSE(resident(tm + 35 * PS)); /* a hole */
    CHECK(same_bytes(tm, got, n * PS, "instance of the snapshot"));
    memset(tm + 29 * PS, 0x11, 4 * PS);
    ASSERT_OK(cowmem_slot_reset(t));
  }
  /* Through a pool with every strategy. */
  for (int st = 0; st < COWMEM_RESET_COUNT_; st++) {
    cowmem_pool_t* pool = make_pool((cowmem_reset_strategy_t)st, 1, 64, 8, 2);
    ASSERT_NOT_NULL(pool);
    for (int i = 0; i < 10; i++) {
      cowmem_slot_t* ps = NULL;
      ASSERT_OK(cowmem_pool_acquire(pool, snap, n * PS, 64 * PS, &ps));
      CHECK(same_bytes(cowmem_slot_base(ps), got, n * PS, "pooled snapshot"));
      memset((uint8_t*)cowmem_slot_base(ps) + (size_t)(i % 40) * PS, 0x99, 2 * PS);
      ASSERT_OK(cowmem_pool_release(pool, ps));
    }
    ASSERT_OK(cowmem_pool_flush(pool));
    ASSERT_OK(cowmem_pool_free(pool));
  }
  /* A snapshot of a snapshot's instance, and of an all-zero memory. */
  ASSERT_OK(cowmem_slot_instantiate(t, n * PS, snap));
  cowmem_image_t* snap2 = NULL;
  ASSERT_OK(cowmem_snapshot(t, &snap2));
  uint8_t* got2 = calloc(n, PS);
  ASSERT_OK(cowmem_image_read(snap2, 0, got2, n * PS));
  CHECK(same_bytes(got2, got, n * PS, "snapshot of a snapshot"));
  ASSERT_OK(cowmem_slot_reset(t));
  ASSERT_OK(cowmem_slot_decommit(t));
  ASSERT_OK(cowmem_slot_instantiate(t, 8 * PS, NULL));
  cowmem_image_t* zero = NULL;
  ASSERT_OK(cowmem_snapshot(t, &zero));
  ASSERT_OK(cowmem_image_info(zero, &info));
  ASSERT_UEQ(info.len, 0);
  cowmem_image_release(zero);
  /* No gap between the first and the last written page: read in place. */
  memset((uint8_t*)cowmem_slot_base(t) + 2 * PS, 0x3c, 3 * PS);
  ASSERT_OK(cowmem_snapshot(t, &zero));
  ASSERT_OK(cowmem_image_info(zero, &info));
  ASSERT_UEQ(info.mem_offset, 2 * PS);
  ASSERT_UEQ(info.len, 3 * PS);
  ASSERT_OK(cowmem_image_read(zero, 0, got2, 8 * PS));
  CHECK(same_bytes(got2, cowmem_slot_base(t), 8 * PS, "gapless snapshot"));
  cowmem_image_release(zero);
  cowmem_image_release(snap2);
  free(got2);
  ASSERT_OK(cowmem_slot_free(t));
  cowmem_image_release(snap);
  free(got);
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  return 0;
}

/* A snapshot written to an image file, opened again, and instantiated. */
TEST_IMPL(snapshot_to_file) {
  PS = cowmem_page_size();
  const size_t n = 32;
  cowmem_image_t* img = holed_image(2, 10, 4, 6, 0x15);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, n * PS, img));
  uint8_t* m = cowmem_slot_base(s);
  memset(m + 3 * PS + 5, 0x6b, 300);
  memset(m + 20 * PS, 0x2d, 3 * PS);
  char path[] = "/tmp/cowmem-snapXXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_ERR(cowmem_imgfile_write_snapshot(NULL, fd, NULL, NULL), COWMEM_EINVAL);
  int w = cowmem_imgfile_write_snapshot(s, fd, NULL, NULL);
  if (w == COWMEM_ENOSYS) { /* the posix backend writes no image files */
    close(fd);
    ASSERT_OK(cowmem_slot_free(s));
    cowmem_image_release(img);
    TEST_SKIP("the posix backend writes no image files (ENOSYS)");
  }
  ASSERT_OK(w);
  cowmem_imgfile_t* f = NULL;
  cowmem_diag_t diag;
  ASSERT_OK(cowmem_imgfile_open(fd, NULL, 0, &f, &diag));
  ASSERT_EQ(cowmem_imgfile_memory_count(f), 1);
  cowmem_image_t* snap = NULL;
  cowmem_diag_t why;
  snap = cowmem_image_retain(cowmem_imgfile_image(f, 0, &why));
  ASSERT_NOT_NULL(snap);
  cowmem_slot_t* t = NULL;
  ASSERT_OK(cowmem_slot_new(64 * PS, &t));
  for (int round = 0; round < 2; round++) {
    ASSERT_OK(cowmem_slot_instantiate(t, n * PS, snap));
    CHECK(same_bytes(cowmem_slot_base(t), m, n * PS, "instance of the snapshot file"));
    memset(cowmem_slot_base(t), 0x01, 8 * PS);
    ASSERT_OK(cowmem_slot_reset(t));
  }
  /* With a descriptor: the memory's index and limits are the caller's. */
  cowmem_imgfile_memory_t desc;
  memset(&desc, 0, sizeof desc);
  desc.index = 3;
  desc.min_pages = 2;
  desc.has_max = true;
  desc.max_pages = 10;
  ASSERT_OK(cowmem_imgfile_write_snapshot(s, fd, &desc, NULL));
  cowmem_imgfile_t* g = NULL;
  ASSERT_OK(cowmem_imgfile_open(fd, NULL, 0, &g, &diag));
  cowmem_imgfile_memory_t got;
  ASSERT_OK(cowmem_imgfile_memory(g, 0, &got));
  ASSERT_EQ(got.index, 3);
  ASSERT_EQ(got.max_pages, 10);
  cowmem_imgfile_free(g);
  ASSERT_OK(cowmem_slot_free(t));
  cowmem_image_release(snap);
  cowmem_imgfile_free(f);
  close(fd);
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(img);
  return 0;
}

TEST_IMPL(snapshot_no_scan) {
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, 1);
  return test_snapshot_equals_slot();
}

TEST_MAIN(
    TEST_ENTRY(scan_sees_writes_and_discards) TEST_ENTRY(candidates_without_scan) TEST_ENTRY(uffd_wp_vs_madvise) TEST_ENTRY(
        model_adaptive) TEST_ENTRY(model_adaptive_scan_each) TEST_ENTRY(model_adaptive_no_scan) TEST_ENTRY(model_madvise)
        TEST_ENTRY(model_madvise_no_scan) TEST_ENTRY(model_keep_resident)
            TEST_ENTRY(model_keep_resident_no_scan) TEST_ENTRY(model_batched)
                TEST_ENTRY(model_batched_no_scan) TEST_ENTRY(hot_set_follows_workload)
                    TEST_ENTRY(hot_set_follows_workload_no_scan) TEST_ENTRY(sampling_backs_off) TEST_ENTRY(sampling_backs_off_scan_each) TEST_ENTRY(
                        hot_set_keeps_rewritten_pages) TEST_ENTRY(budget_bounds_hot_set)
                        TEST_ENTRY(fork_child_resets) TEST_ENTRY(threads_adaptive)
                            TEST_ENTRY(threads_adaptive_no_scan) TEST_ENTRY(metrics_count_every_thread)
                                TEST_ENTRY(adaptive_failures) TEST_ENTRY(many_ranges)
                                    TEST_ENTRY(adaptive_config)
                                        TEST_ENTRY(adaptive_metrics) TEST_ENTRY(adaptive_metrics_scan_each) TEST_ENTRY(scan_while_another_discards) TEST_ENTRY(fork_while_another_discards) TEST_ENTRY(scan_when_hot_set_scattered) TEST_ENTRY(reads_stay_mapped) TEST_ENTRY(blind_when_hot_pages_spread) TEST_ENTRY(model_adaptive_decide)
                                            TEST_ENTRY(snapshot_equals_slot)
                                                TEST_ENTRY(snapshot_no_scan)
                                                    TEST_ENTRY(snapshot_to_file))
