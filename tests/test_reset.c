/* Resets, for every strategy: what the dirty-page detection sees (with and
 * without PAGEMAP_SCAN) and the model test (random write patterns, each
 * reset must leave exactly image and zeros). Randomized tests print their
 * seed; COWMEM_TEST_SEED replays one, COWMEM_TEST_OPS changes the op count. */
#include <fcntl.h>
#include <time.h>

#include "reset/adaptive.h"
#include "test_slots.h"

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

/* An instance's writes, drawn from patterns a program shows: a few pages
 * (biased to a "working set" that moves every few thousand ops), a dense
 * run, growth and writes above the initial size, every page, writes of the
 * bytes already there (a page "written" with its own contents), and reads
 * of a span of image pages and zeros with a few of them written. */
static void scribble(cowmem_slot_t* s, const size_t* hot, size_t nhot, bool steady) {
  uint8_t* m = cowmem_slot_base(s);
  size_t pages = cowmem_slot_accessible(s) / PS;
  if (steady && rnd_below(8) != 0) { /* the working set only: no fault, once learnt */
    for (size_t i = 0; i < nhot; i++)
      if (hot[i] < pages) write_page(m, hot[i], (uint8_t)rnd());
    return;
  }
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
 * scanning to sample; 1 a scan per reset; 3 quiet wherever nothing
 * faulted, blind otherwise. */
static int model_mode = 2;
/* The pool's slots: with 3, as many as are held, ADAPTIVE queues nothing;
 * with 8 its blind resets queue their discards, 4 slots at a time. */
static size_t model_slots = M_MAX_HELD;

static int model(cowmem_reset_strategy_t reset, bool no_scan, size_t ops,
                 const char* name) {
  PS = cowmem_page_size();
  cowmem__os_inject_clear();
  cowmem__adaptive_test_mode(model_mode);
  cowmem_option_set(COWMEM_OPTION_NO_PAGEMAP_SCAN, no_scan);
  seed_init(name);
  ops = test_ops(ops);
  cowmem_pool_t* pool = make_pool(reset, model_slots, M_SLOT_PAGES, 12, 8);
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
  bool quiet_checks = model_mode == 3 && cowmem__dirty_exact();
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
      /* Quiet resets need instances that fault nothing: most checks read
       * only the pages already mapped, every page an instance could have
       * written among them. */
      if (quiet_checks && checks % 16 != 0)
        CHECK(same_pages_mapped(cowmem_slot_base(s), want[k], initial, what_s));
      else
        CHECK(same_bytes(cowmem_slot_base(s), want[k], initial * PS, what_s));
      checks++;
      held[nheld++] = (held_t){s, k};
    } else if (what < 8) {
      scribble(held[rnd_below(nheld)].slot, hot, 6, model_mode == 3);
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
            "discarded %llu calls %llu scans %llu quiet %llu; %zu checks\n",
            (unsigned long long)im.resets, (unsigned long long)im.samples,
            (unsigned long long)im.hot_pages,
            im.samples ? (double)im.sampled_dirty_pages / (double)im.samples : 0.0,
            (unsigned long long)im.copied_pages, (unsigned long long)im.discarded_pages,
            (unsigned long long)im.discard_calls, (unsigned long long)im.scans,
            (unsigned long long)im.quiet_resets, checks);
    ASSERT_GT(im.resets, 0);
    ASSERT_GT(im.samples, 0);
    ASSERT_GT(im.copied_pages, 0);
    if (no_scan || !cowmem__os_has_pagemap_scan())
      ASSERT_EQ(im.scans, 0);
    else if (model_mode == 1)
      ASSERT_EQ(im.scans, im.resets);
    else if (model_mode == 2 || model_mode == 3)
      ASSERT_EQ(im.scans, im.samples); /* blind: a scan only to sample */
    else
      ASSERT_GE(im.scans, im.samples); /* decided per reset */
    cowmem_pool_metrics_t pm;
    ASSERT_OK(cowmem_pool_metrics(pool, &pm));
    uint64_t f;
    if (model_mode == 3 && cowmem__os_fault_count(&f) == 0)
      ASSERT_GT(im.quiet_resets, 0);
    else if (model_mode != 0 && model_mode != 3)
      ASSERT_EQ(im.quiet_resets, 0);
    if (model_slots > M_MAX_HELD && model_mode == 2 && cowmem__os_discards_batch())
      ASSERT_GT(pm.flushes, 0); /* blind resets were queued */
    else if (model_slots <= M_MAX_HELD)
      ASSERT_EQ(pm.flushes, 0);
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
  return model(COWMEM_RESET_ADAPTIVE, false, 50000, "model_adaptive");
}
TEST_IMPL(model_adaptive_scan_each) {
  model_mode = 1;
  return model(COWMEM_RESET_ADAPTIVE, false, 50000, "model_adaptive_scan_each");
}
TEST_IMPL(model_adaptive_decide) {
  model_mode = 0; /* blind or scan as the pool decides, reads weighing in */
  return model(COWMEM_RESET_ADAPTIVE, false, 50000, "model_adaptive_decide");
}
TEST_IMPL(model_adaptive_queued) {
  model_slots = 8;
  return model(COWMEM_RESET_ADAPTIVE, false, 50000, "model_adaptive_queued");
}
TEST_IMPL(model_adaptive_queued_decide) {
  model_slots = 8;
  model_mode = 0;
  return model(COWMEM_RESET_ADAPTIVE, false, 50000, "model_adaptive_queued_decide");
}
TEST_IMPL(model_adaptive_quiet) {
  model_mode = 3; /* instances mostly write their working set only */
  return model(COWMEM_RESET_ADAPTIVE, false, 50000, "model_adaptive_quiet");
}
TEST_IMPL(model_adaptive_quiet_queued) {
  model_slots = 8;
  model_mode = 3;
  return model(COWMEM_RESET_ADAPTIVE, false, 50000, "model_adaptive_quiet_queued");
}
TEST_IMPL(model_adaptive_no_scan) {
  return model(COWMEM_RESET_ADAPTIVE, true, 50000, "model_adaptive_no_scan");
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
TEST_MAIN(TEST_ENTRY(scan_sees_writes_and_discards) TEST_ENTRY(candidates_without_scan) TEST_ENTRY(model_adaptive) TEST_ENTRY(model_adaptive_scan_each) TEST_ENTRY(model_adaptive_decide) TEST_ENTRY(model_adaptive_queued) TEST_ENTRY(model_adaptive_queued_decide) TEST_ENTRY(model_adaptive_quiet) TEST_ENTRY(model_adaptive_quiet_queued) TEST_ENTRY(model_adaptive_no_scan) TEST_ENTRY(model_madvise) TEST_ENTRY(model_madvise_no_scan) TEST_ENTRY(model_keep_resident) TEST_ENTRY(model_keep_resident_no_scan) TEST_ENTRY(model_batched) TEST_ENTRY(model_batched_no_scan))
