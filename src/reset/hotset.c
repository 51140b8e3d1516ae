/* The hot set of an image (see hotset.h): which pages its instances write.
 *
 * A sampled reset finds the pages the instance wrote by comparing contents
 * with the image (candidates: the scan's ranges, or without it the anonymous
 * pages /proc/self/pagemap shows) - a kept page that still equals the image
 * was not written, which a scan alone cannot tell. A page outside the hot
 * set that the scan reports counts whatever its contents: the last reset
 * left it absent, so this instance faulted it in, and the next will again
 * unless it is kept (a write of the bytes already there; or, on kernels that
 * give an anonymous read a page of its own instead of the zero page, a read:
 * about 12 us a fault on such a VM against 0.1 us to zero the page). Such
 * pages gain half a written page's score, so within the budget the pages
 * instances really change come first. Each page has a score that decays by a
 * quarter per sample and gains 64 when written; the hot set is the pages
 * scoring at least 32, the highest first, at most resident_budget of them
 * (ties at the budget: the lowest pages). A page written at every sample
 * stays near 255; one the workload left drops out after about 8 samples,
 * sooner when new pages outscore it for the budget. One reset in
 * sample_every is sampled, the first 4 of an image too, and with a scan, one
 * in sample_every/16 while instances write pages outside the hot set (the
 * workload moved); while instances write exactly the hot set, the interval
 * doubles up to 4 * sample_every (cowmem__hotset_due). */
#include <stdlib.h>
#include <string.h>

#include "dirty.h"
#include "reset/hotset.h"
#include "image/image.h"

#define SCORE_GAIN 64
#define FAULT_GAIN 32          /* faulted in, contents unchanged */
#define FAULT_ONLY 0x80000000u /* in a sample's page list: that kind */
#define SCORE_HOT 32
#define WARMUP_SAMPLES 4
#define BACKOFF_MAX 4 /* a still hot set is sampled 1 in sample_every * 4 */

#define LOAD(field) atomic_load_explicit(&(field), memory_order_relaxed)
#define ADD(field, v) atomic_fetch_add_explicit(&(field), (v), memory_order_relaxed)

int cowmem__hotset_init(cowmem__hotset_t* hs, size_t npages) {
  memset(hs, 0, sizeof *hs);
  hs->npages = npages;
  hs->score_lo = npages;
  hs->hot = calloc((npages + 63) / 64 + 1, sizeof *hs->hot);
  hs->score = calloc((npages + 63) / 64 + 1, 64);
  if (hs->hot == NULL || hs->score == NULL) {
    free((void*)hs->hot);
    free(hs->score);
    return ENOMEM;
  }
  pthread_mutex_init(&hs->lock, NULL);
  return 0;
}

void cowmem__hotset_destroy(cowmem__hotset_t* hs) {
  pthread_mutex_destroy(&hs->lock);
  free((void*)hs->hot);
  free(hs->score);
}

/* A word of the bitmap at a time (a 16 MiB memory is 64 words). */
size_t cowmem__hotset_run_end(const cowmem__hotset_t* hs, size_t i, size_t hi,
                              size_t limit, bool h) {
  size_t lim = limit < hi ? limit : hi;
  if (!h && i >= lim) return hi;
  size_t j = i;
  while (j < lim) {
    size_t b = j % 64, avail = 64 - b;
    uint64_t w = atomic_load_explicit(&hs->hot[j / 64], memory_order_relaxed);
    uint64_t x = (h ? ~w : w) >> b; /* 1: the page's hotness differs */
    if (avail < 64) x &= ((uint64_t)1 << avail) - 1;
    if (x != 0) {
      j += (size_t)__builtin_ctzll(x);
      break;
    }
    j += avail;
  }
  if (j > lim) j = lim;
  if (!h && j >= lim) j = hi;
  /* A sample may rewrite the word between two reads: always move on. */
  return j > i ? j : i + 1;
}

/* ---- learning ---- */

typedef struct {
  const cowmem__hotset_t* hs;
  const cowmem_image_t* img;
  uint8_t* base;
  size_t ps;
  size_t limit; /* pages below it can be hot */
  bool exact;   /* the candidates are the scan's: absent at the last reset */
  uint32_t* written;
  size_t nw, cap;
  bool oom;
} sample_ctx_t;

static void sample_range(void* arg, uint8_t* addr, size_t len) {
  sample_ctx_t* s = arg;
  size_t lo = (size_t)(addr - s->base) / s->ps, hi = lo + len / s->ps;
  if (hi > s->limit) hi = s->limit;
  for (size_t p = lo; p < hi; p++) {
    bool faulted = s->exact && !cowmem__hotset_has(s->hs, p);
    bool changed =
        cowmem__image_page_differs(s->img, s->base + p * s->ps, (uint64_t)p * s->ps);
    if (!changed && !faulted) continue;
    if (s->nw == s->cap) {
      size_t ncap = s->cap ? s->cap * 2 : 256;
      uint32_t* nw = realloc(s->written, ncap * sizeof *nw);
      if (nw == NULL) {
        s->oom = true;
        return;
      }
      s->written = nw;
      s->cap = ncap;
    }
    s->written[s->nw++] = (uint32_t)p | (faulted && !changed ? FAULT_ONLY : 0);
  }
}

/* List the hot runs of bitmap words [w_lo, w_hi) (every hot bit lies
 * there), at most COWMEM__HOTSET_LISTED of them. */
static void list_runs(cowmem__hotset_t* hs, size_t w_lo, size_t w_hi) {
  size_t n = 0, lo = 0;
  bool in = false;
  for (size_t w = w_lo; w < w_hi; w++) {
    uint64_t bits = atomic_load_explicit(&hs->hot[w], memory_order_relaxed);
    size_t b = 0;
    while (b < 64) {
      /* The next bit that ends the run (a 0) or starts one (a 1). */
      uint64_t x = (in ? ~bits : bits) >> b;
      if (x == 0) break;
      b += (size_t)__builtin_ctzll(x);
      if (in && n < COWMEM__HOTSET_LISTED)
        atomic_store_explicit(&hs->listed[n++], (uint64_t)lo << 32 | (w * 64 + b),
                              memory_order_relaxed);
      lo = w * 64 + b;
      in = !in;
    }
  }
  if (in && n < COWMEM__HOTSET_LISTED)
    atomic_store_explicit(&hs->listed[n], (uint64_t)lo << 32 | (w_hi * 64),
                          memory_order_relaxed);
}

/* Age every score, credit the written pages, and rebuild the hot set: the
 * highest scores >= SCORE_HOT, at most budget pages. Caller holds hs->lock.
 * Only the pages between the lowest and highest ever written are looked
 * at (64 at a time): walking the whole memory's scores made a sample of a
 * 64 MiB memory cost 2.7 us at p99 (bench_adaptive's sweep), one reset in
 * 64, so it was the p99 of every size above 16 MiB. Returns whether the
 * hot set changed. */
#define BYTES_0x3F 0x3f3f3f3f3f3f3f3full
static bool learn(cowmem__hotset_t* hs, const uint32_t* written, size_t nw,
                  size_t budget) {
  uint8_t* sc = hs->score;
  for (size_t i = 0; i < nw; i++) {
    size_t p = written[i] & ~FAULT_ONLY;
    if (p < hs->score_lo) hs->score_lo = p;
    if (p + 1 > hs->score_hi) hs->score_hi = p + 1;
  }
  if (hs->score_hi == 0) return false; /* nothing ever written: no hot set */
  /* Whole 64-page words: the score array is rounded up to them. */
  size_t w_lo = hs->score_lo / 64, w_hi = (hs->score_hi + 63) / 64;
  size_t c_lo = w_lo * 8, chunks = w_hi * 8;
  size_t hist[256] = {0};
  for (size_t i = c_lo; i < chunks; i++) { /* s -= s / 4, per byte */
    uint64_t w;
    memcpy(&w, sc + 8 * i, 8);
    if (w == 0) continue;
    w -= (w >> 2) & BYTES_0x3F;
    memcpy(sc + 8 * i, &w, 8);
  }
  for (size_t i = 0; i < nw; i++) {
    uint32_t p = written[i] & ~FAULT_ONLY;
    unsigned v = sc[p] + (written[i] & FAULT_ONLY ? FAULT_GAIN : SCORE_GAIN);
    sc[p] = (uint8_t)(v > 255 ? 255 : v);
  }
  for (size_t i = c_lo; i < chunks; i++) {
    uint64_t w;
    memcpy(&w, sc + 8 * i, 8);
    if (w == 0) continue;
    for (int b = 0; b < 8; b++)
      hist[sc[8 * i + b]]++;
  }
  /* Whole levels from the top while they fit; of the first level that does
   * not, the lowest pages up to the budget (the same ones each sample, so
   * the set does not churn). Without that, an instance writing a few pages
   * more than the budget, all scoring alike, would get no hot page at all. */
  size_t count = 0, part_left = 0;
  unsigned thr = 256, part = 256;
  for (unsigned t = 255; t >= SCORE_HOT; t--) {
    if (count + hist[t] > budget) {
      part = t;
      part_left = budget - count;
      break;
    }
    count += hist[t];
    thr = t;
  }
  count += part_left;
  uint64_t runs = 0, prev = 0; /* prev: the last word's top bit */
  bool changed = false;
  for (size_t w = w_lo; w < w_hi; w++) { /* the hot bits outside are 0 */
    uint64_t bits = 0, any = 0;
    for (int k = 0; k < 8; k++) {
      uint64_t v;
      memcpy(&v, sc + w * 64 + 8 * k, 8);
      any |= v;
    }
    if (any != 0 && (thr < 256 || part_left > 0))
      for (size_t b = 0; b < 64; b++) {
        unsigned v = sc[w * 64 + b];
        if (v >= thr) {
          bits |= (uint64_t)1 << b;
        } else if (v == part && part_left > 0) {
          bits |= (uint64_t)1 << b;
          part_left--;
        }
      }
    if (atomic_load_explicit(&hs->hot[w], memory_order_relaxed) != bits) {
      if (!changed) { /* odd while rewritten (see cowmem__hotset_t.version) */
        atomic_fetch_add_explicit(&hs->version, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
      }
      atomic_store_explicit(&hs->hot[w], bits, memory_order_relaxed);
      changed = true;
    }
    runs += (uint64_t)__builtin_popcountll(bits & ~((bits << 1) | prev));
    prev = bits >> 63;
  }
  if (runs <= COWMEM__HOTSET_LISTED) list_runs(hs, w_lo, w_hi);
  atomic_store_explicit(&hs->pages, count, memory_order_relaxed);
  atomic_store_explicit(&hs->runs, runs, memory_order_relaxed);
  if (changed) atomic_fetch_add_explicit(&hs->version, 1, memory_order_release);
  return changed;
}

/* An instance that wrote exactly the hot set (the workload holds still)
 * doubles the interval to the next sample, up to BACKOFF_MAX *
 * sample_every; any other returns it to sample_every, so that a hot page
 * the workload left keeps being sampled until it drops out. */
bool cowmem__hotset_sample(cowmem__hotset_t* hs, const cowmem_image_t* img, uint8_t* base,
                           size_t ps, size_t limit, const cowmem__os_range_t* ranges,
                           size_t n, size_t budget, size_t every) {
  if (pthread_mutex_trylock(&hs->lock) != 0) return false; /* another thread is */
  sample_ctx_t s = {hs, img, base, ps, limit, ranges != NULL, NULL, 0, 0, false};
  int r = 0;
  if (ranges != NULL) {
    for (size_t i = 0; i < n && !s.oom; i++)
      sample_range(&s, ranges[i].addr, ranges[i].len);
  } else {
    r = cowmem__dirty_candidates(base, limit * ps, sample_range, &s);
  }
  bool learnt = r == 0 && !s.oom;
  if (learnt) {
    /* The written pages are distinct: as many as the hot set, all hot. */
    uint64_t iv = LOAD(hs->interval);
    bool still = s.nw == LOAD(hs->pages);
    for (size_t i = 0; i < s.nw && still; i++)
      still = cowmem__hotset_has(hs, s.written[i] & ~FAULT_ONLY);
    if (learn(hs, s.written, s.nw, budget) || !still || iv < every)
      iv = every;
    else if (iv < every * BACKOFF_MAX)
      iv *= 2;
    atomic_store_explicit(&hs->interval, iv, memory_order_relaxed);
    ADD(hs->samples, 1);
    ADD(hs->sampled_dirty, s.nw);
  }
  pthread_mutex_unlock(&hs->lock);
  free(s.written);
  return learnt;
}

/* A sample is due for the first resets of an image, once per interval
 * (sample_every, more while the hot set holds still), and with a scan one
 * in sample_every / 16 while instances write pages outside the hot set. So
 * a workload that moved is learnt within a few samples, and once it holds
 * still under 1% of resets pay for a sample (at 1 in 64 they were the p99
 * of every K=0 cycle: a scan or a pagemap read beside a 0.4 us reset). */
bool cowmem__hotset_due(const cowmem__hotset_t* hs, uint64_t n, uint64_t since,
                        size_t every, uint64_t misses) {
  uint64_t iv = LOAD(hs->interval);
  if (n < WARMUP_SAMPLES || since >= (iv > every ? iv : every)) return true;
  return misses > 0 && since >= (every / 16 ? every / 16 : 1);
}
