/* The ADAPTIVE reset strategy: per image, learn which pages instances write
 * (the hot set), keep those resident and restore them by copy, decommit the
 * rest.
 *
 * Figures that shape it (2-core VM, Linux 6.18, medians): a first write to
 * a page costs 2.1-2.9 us (a copy-on-write fault), copying a page back from
 * the image 0.07-0.12 us, one PAGEMAP_SCAN of a 16 MiB slot 0.4 us plus
 * about 0.75 us per 2 MiB of populated page table, and MADV_DONTNEED from
 * two threads of one process at once about 12 us (TLB-flush IPIs) against
 * 0.16 us alone (so blind discards take turns, in the OS layer). So a page
 * written by most instances is cheaper to copy back than to fault again,
 * and a reset that needs no madvise scales with threads.
 *
 * Two ways to reset:
 *   blind: every hot page is restored by copy and the complement of the
 *     hot set is decommitted in as few calls as it has ranges. An empty hot
 *     set is a plain madvise reset. The way of a hot set of few runs for
 *     its pages while no other thread is discarding (except at a sample,
 *     which scans anyway), and of every reset without PAGEMAP_SCAN (or with
 *     COWMEM_NO_PAGEMAP_SCAN).
 *   scan each (PAGEMAP_SCAN): each reset scans the slot for written pages;
 *     the hot ones are restored by copy, the others decommitted (one madvise
 *     per contiguous range, or one process_madvise for many). A workload
 *     that writes only hot pages makes no madvise at all, which is what
 *     threads resetting at once need (see scan_each).
 * Either way every page of [0, accessible) is restored or decommitted, so
 * the slot holds exactly image and zeros whatever the hot set is; the hot
 * set only decides which of the two each page gets. So the hot set can be
 * read without a lock while a sample rewrites it (atomic words): a torn
 * read costs speed, never correctness.
 *
 * Learning. A sampled reset finds the pages the instance wrote by comparing
 * contents with the image (candidates: the scan's ranges, or without it the
 * anonymous pages /proc/self/pagemap shows) - a kept page that still equals
 * the image was not written, which a scan alone cannot tell. A page outside the hot set
 * that the scan reports counts whatever its contents: the last reset left
 * it absent, so this instance faulted it in, and the next will again unless
 * it is kept (a write of the bytes already there; or, on kernels that give
 * an anonymous read a page of its own instead of the zero page, a read:
 * about 12 us a fault on such a VM against 0.1 us to zero the page). Such
 * pages gain half a written page's score, so within the budget the pages
 * instances really change come first. Each page has a score that decays by
 * a quarter per sample and gains 64 when written; the hot set is the pages
 * scoring at least 32, the highest first, at most resident_budget of them
 * (ties at the budget: the lowest pages). A page written at every sample
 * stays near 255; one the workload left drops out after about 8 samples,
 * sooner when new pages outscore it for the budget. One reset in
 * sample_every is sampled, the first 4 of an image too, and with a scan,
 * one in sample_every/16 while instances write pages outside the hot set
 * (the workload moved); while instances write exactly the hot set, the
 * interval doubles up to 4 * sample_every (see sample_due). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adaptive.h"
#include "dirty.h"
#include "image.h"

#define TABLE_CAP 1024u             /* images with a hot set per pool */
#define TRACK_MAX ((size_t)1 << 30) /* bytes of a memory a hot set covers */
#define SCORE_GAIN 64
#define FAULT_GAIN 32          /* faulted in, contents unchanged */
#define FAULT_ONLY 0x80000000u /* in a sample's page list: that kind */
#define SCORE_HOT 32
#define WARMUP_SAMPLES 4
#define BACKOFF_MAX 4 /* a still hot set is sampled 1 in sample_every * 4 */

/* Counters a reset updates, one cache line per thread: with one shared
 * line, two threads resetting slots of the same image spend more on
 * bouncing it than a K=0 reset costs. Sampling counts per stripe too (each
 * thread samples one of its own resets in sample_every).
 *
 * The first OWNED threads to reset each own a stripe for good and add to
 * it with a plain load and store; later threads share the rest, round
 * robin, and add atomically. The four locked adds of a K=0 reset were its
 * whole cost over a plain madvise reset (27 of 33 ns on the 2-core VM).
 * A stripe is never given back: a thread that exits leaves its counts in
 * it, and a later thread shares one of the others. */
#define STRIPES 16
#define OWNED 12
typedef struct {
  _Alignas(64) _Atomic uint64_t resets;
  _Atomic uint64_t last_sample, missed, copied, discarded, discard_calls, scans;
} stripe_t;

typedef struct {
  stripe_t stripe[STRIPES];
  uint64_t key;          /* the image's id; 0 for the all-zeros memory */
  size_t npages;         /* pages [0, npages) may be hot */
  _Atomic uint64_t* hot; /* npages bits */
  uint8_t* score;        /* a byte per page, rounded up to 64; under lock */
  size_t score_lo, score_hi; /* pages outside [lo, hi) score 0; under lock */
  pthread_mutex_t lock;  /* samples */
  _Atomic uint64_t samples, hot_pages, sampled_dirty;
  _Atomic uint64_t hot_runs; /* runs of hot pages (blind: decommit calls) */
  _Atomic uint64_t interval; /* resets between samples (see sample_due) */
  cowmem__image_weak_t* weak; /* the image (NULL: the zeros memory) */
} image_state_t;

static _Thread_local int tl_stripe = -1;
static _Atomic unsigned next_stripe;

static stripe_t* my_stripe(image_state_t* st) {
  if (tl_stripe < 0) {
    unsigned n = atomic_fetch_add(&next_stripe, 1);
    tl_stripe = (int)(n < OWNED ? n : OWNED + (n - OWNED) % (STRIPES - OWNED));
  }
  return &st->stripe[tl_stripe];
}

/* Add v to a counter of this thread's stripe; the value before. */
static uint64_t stripe_add(_Atomic uint64_t* field, uint64_t v) {
  if (tl_stripe >= OWNED)
    return atomic_fetch_add_explicit(field, v, memory_order_relaxed);
  uint64_t old = atomic_load_explicit(field, memory_order_relaxed);
  atomic_store_explicit(field, old + v, memory_order_relaxed);
  return old;
}

/* The table: open addressing over keys[] (key + 1; 0 empty, TOMB a state
 * removed), so that a lookup never reads a state that may be freed. A
 * state is freed (under lock, when a new image needs room) once its image
 * is dead: no slot holds the image then, so no reset or metrics call can
 * be looking at it. Without that, a pool serving replaced images for
 * weeks would fill the table and reset every later image with madvise. */
#define TOMB UINT64_MAX
struct cowmem__adaptive_s {
  size_t budget;                        /* pages a hot set may hold */
  size_t sample_every;                  /* >= 1 */
  pthread_mutex_t lock;                 /* inserts, removals, totals */
  uint64_t gone_copied, gone_discarded; /* removed states' totals; lock */
  _Atomic uint64_t keys[TABLE_CAP];
  _Atomic(image_state_t*) table[TABLE_CAP];
};

#define ADD(field, v) atomic_fetch_add_explicit(&(field), (v), memory_order_relaxed)
#define LOAD(field) atomic_load_explicit(&(field), memory_order_relaxed)

cowmem__adaptive_t* cowmem__adaptive_new(size_t resident_budget, size_t sample_every) {
  cowmem__adaptive_t* a = calloc(1, sizeof *a);
  if (a == NULL) return NULL;
  a->budget = resident_budget / cowmem__os_page_size();
  a->sample_every = sample_every ? sample_every : 1;
  pthread_mutex_init(&a->lock, NULL);
  return a;
}

static void state_free(image_state_t* st) {
  pthread_mutex_destroy(&st->lock);
  cowmem__image_weak_release(st->weak);
  free((void*)st->hot);
  free(st->score);
  free(st);
}

void cowmem__adaptive_free(cowmem__adaptive_t* a) {
  if (a == NULL) return;
  for (size_t i = 0; i < TABLE_CAP; i++) {
    image_state_t* st = atomic_load(&a->table[i]);
    if (st != NULL) state_free(st);
  }
  pthread_mutex_destroy(&a->lock);
  free(a);
}

static size_t table_home(uint64_t key) {
  return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 40) & (TABLE_CAP - 1);
}

/* The state of an image (whose reference the caller holds), or NULL.
 * Lock-free: it reads keys[] until the key or an empty entry. */
static image_state_t* state_find(cowmem__adaptive_t* a, uint64_t key) {
  size_t h = table_home(key);
  for (size_t k = 0; k < TABLE_CAP; k++) {
    size_t i = (h + k) & (TABLE_CAP - 1);
    uint64_t have = atomic_load_explicit(&a->keys[i], memory_order_acquire);
    if (have == 0) return NULL;
    if (have == key + 1) return atomic_load_explicit(&a->table[i], memory_order_acquire);
  }
  return NULL;
}

/* Remove the states of dead images. Caller holds a->lock. */
static void state_sweep(cowmem__adaptive_t* a) {
  for (size_t i = 0; i < TABLE_CAP; i++) {
    image_state_t* st = atomic_load(&a->table[i]);
    if (st == NULL || st->weak == NULL || !cowmem__image_weak_dead(st->weak)) continue;
    atomic_store(&a->keys[i], TOMB);
    atomic_store(&a->table[i], NULL);
    for (int k = 0; k < STRIPES; k++) {
      a->gone_copied += LOAD(st->stripe[k].copied);
      a->gone_discarded += LOAD(st->stripe[k].discarded);
    }
    state_free(st);
  }
}

/* Find or make the state; NULL when out of memory or TABLE_CAP live images
 * have one (that image is then reset with plain madvise). Making one first
 * removes the states of dead images (a scan of the table, once per new
 * image). */
static image_state_t* state_get(cowmem__adaptive_t* a, cowmem_image_t* img,
                                size_t initial) {
  uint64_t key = cowmem__image_key(img);
  image_state_t* st = state_find(a, key);
  if (st != NULL) return st;
  pthread_mutex_lock(&a->lock);
  state_sweep(a);
  size_t h = table_home(key), slot = TABLE_CAP;
  for (size_t k = 0; k < TABLE_CAP; k++) {
    size_t i = (h + k) & (TABLE_CAP - 1);
    uint64_t have = atomic_load(&a->keys[i]);
    if (have == key + 1) {
      pthread_mutex_unlock(&a->lock);
      return atomic_load(&a->table[i]);
    }
    if ((have == 0 || have == TOMB) && slot == TABLE_CAP) slot = i;
    if (have == 0) break;
  }
  cowmem__image_weak_t* weak = key != 0 ? cowmem__image_weak(img) : NULL;
  if (key != 0 && weak == NULL) slot = TABLE_CAP;
  if (slot < TABLE_CAP) {
    size_t ps = cowmem__os_page_size();
    size_t npages = (initial < TRACK_MAX ? initial : TRACK_MAX) / ps;
    size_t size = (sizeof *st + 63) & ~(size_t)63;
    st = aligned_alloc(64, size);
    if (st != NULL) {
      memset(st, 0, size);
      st->key = key;
      st->npages = npages;
      st->score_lo = npages;
      st->hot = calloc((npages + 63) / 64 + 1, sizeof *st->hot);
      st->score = calloc((npages + 63) / 64 + 1, 64);
      if (st->hot == NULL || st->score == NULL) {
        free((void*)st->hot);
        free(st->score);
        free(st);
        st = NULL;
      } else {
        pthread_mutex_init(&st->lock, NULL);
        st->weak = weak;
        weak = NULL;
        atomic_store_explicit(&a->table[slot], st, memory_order_release);
        atomic_store_explicit(&a->keys[slot], key + 1, memory_order_release);
      }
    }
  }
  pthread_mutex_unlock(&a->lock);
  cowmem__image_weak_release(weak);
  return st;
}

static bool is_hot(const image_state_t* st, size_t page) {
  if (page >= st->npages) return false;
  uint64_t w =
      atomic_load_explicit((_Atomic uint64_t*)&st->hot[page / 64], memory_order_relaxed);
  return (w >> (page % 64)) & 1;
}

/* ---- which way ----
 *
 * Alone, which way is cheaper depends on the hot set. A blind reset
 * decommits each gap between hot runs (a range of one process_madvise,
 * about 0.1 us each); a scan costs 0.4 us more than a madvise of nothing,
 * and about 0.04 us for each present page it reports (the kernel looks at
 * each). So scan when runs * 0.1 > 0.4 + hot * 0.04 (in tenths below).
 * Measured: spread single pages in a 576 KiB memory, blind 13% faster at 0,
 * even at 2-8, 15-25% slower at 16-32 pages; bench_adaptive's K=256 (256
 * hot pages in 66 runs) blind 23 us against 28 us scanning.
 *
 * With threads: a blind reset's discard (of what should be untouched)
 * takes turns with the others' (two madvise calls at once make the kernel
 * flush every CPU's TLBs; cowmem__os_discard_empty), so a reset that finds
 * another thread's turn under way scans instead of queueing: a scan needs
 * no discard at all when only hot pages were written. On the
 * 2-core VM, two threads at K=0 ran 1.0x one thread this way, 0.9x always
 * blind, 0.8x always scanning (the scans share the process's mmap lock);
 * at K=16, 1.58x, 1.65x and 1.53x. */
static bool blind_cheaper(uint64_t runs, uint64_t hot) {
  return runs * 10 <= 40 + hot * 4;
}

#ifdef COWMEM_TESTING
static _Atomic int test_mode; /* cowmem__adaptive_test_mode */
void cowmem__adaptive_test_mode(int mode) {
  atomic_store(&test_mode, mode);
}
#endif

/* Scan at this reset, or reset blind. */
static bool scan_each(const image_state_t* st) {
#ifdef COWMEM_TESTING
  int m = atomic_load_explicit(&test_mode, memory_order_relaxed);
  if (m != 0) return m == 1;
#endif
  return cowmem__os_discard_busy() ||
         !blind_cheaper(LOAD(st->hot_runs), LOAD(st->hot_pages));
}

/* ---- one reset ---- */

typedef struct {
  cowmem_slot_t* slot;
  image_state_t* st;
  const cowmem_image_t* img; /* readable (cowmem__image_readable) */
  size_t ps;
  size_t limit; /* pages below it may be hot: [0, initial) and tracked */
  /* the scan's ranges, merged, in order */
  cowmem__os_range_t local[64];
  cowmem__os_range_t* r;
  size_t n, cap;
  bool oom;
  /* ranges waiting to be decommitted */
  cowmem__os_range_t d[64];
  size_t nd;
  bool blind; /* the reset's way (see discard_flush) */
  int err;
  uint64_t copied, discarded, calls;
} reset_ctx_t;

static void collect(void* arg, uint8_t* addr, size_t len) {
  reset_ctx_t* c = arg;
  if (c->n > 0 && (uint8_t*)c->r[c->n - 1].addr + c->r[c->n - 1].len == addr) {
    c->r[c->n - 1].len += len;
    return;
  }
  if (c->n == c->cap) {
    size_t ncap = c->cap * 4;
    cowmem__os_range_t* nr =
        c->r == c->local ? malloc(ncap * sizeof *nr) : realloc(c->r, ncap * sizeof *nr);
    if (nr == NULL) {
      c->oom = true;
      return;
    }
    if (c->r == c->local) memcpy(nr, c->local, sizeof c->local);
    c->r = nr;
    c->cap = ncap;
  }
  c->r[c->n].addr = addr;
  c->r[c->n].len = len;
  c->n++;
}

/* Copy image and zeros over pages [lo, hi) of the slot. */
static void restore_pages(reset_ctx_t* c, size_t lo, size_t hi) {
  cowmem__image_restore(c->img, c->slot->base, (uint64_t)lo * c->ps,
                        (uint64_t)hi * c->ps);
  c->copied += hi - lo;
}

/* After a failed discard the rest are dropped: the slot is released. */
static void discard_flush(reset_ctx_t* c) {
  if (c->nd == 0) return;
  if (c->err == 0) {
    /* A blind reset decommits what should be untouched: such discards
     * take turns (see cowmem__os_discard_empty). */
    int e = c->blind ? cowmem__os_discard_empty(c->d, c->nd)
            : c->nd == 1 ? cowmem__os_discard(c->d[0].addr, c->d[0].len)
                         : cowmem__os_discard_many(c->d, c->nd);
    if (e) c->err = e;
    c->calls++;
  }
  c->nd = 0;
}

static void discard_pages(reset_ctx_t* c, size_t lo, size_t hi) {
  uint8_t* addr = c->slot->base + lo * c->ps;
  size_t len = (hi - lo) * c->ps;
  c->discarded += hi - lo;
  if (c->nd > 0 && (uint8_t*)c->d[c->nd - 1].addr + c->d[c->nd - 1].len == addr) {
    c->d[c->nd - 1].len += len;
    return;
  }
  if (c->nd == sizeof c->d / sizeof c->d[0]) discard_flush(c);
  c->d[c->nd].addr = addr;
  c->d[c->nd].len = len;
  c->nd++;
}

/* The end of the run of pages from i (below hi) that are hot if h, or not
 * hot if !h: a word of the bitmap at a time (a 16 MiB memory is 64 words). */
static size_t run_end(const reset_ctx_t* c, size_t i, size_t hi, bool h) {
  size_t lim = c->limit < hi ? c->limit : hi; /* no page at or above is hot */
  if (!h && i >= lim) return hi;
  size_t j = i;
  while (j < lim) {
    size_t b = j % 64, avail = 64 - b;
    uint64_t w = atomic_load_explicit(&c->st->hot[j / 64], memory_order_relaxed);
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

/* Restore the hot pages of [lo, hi) by copy, decommit the others. */
static void settle(reset_ctx_t* c, size_t lo, size_t hi) {
  size_t i = lo;
  while (i < hi) {
    bool h = i < c->limit && is_hot(c->st, i);
    size_t j = run_end(c, i, hi, h);
    if (h)
      restore_pages(c, i, j);
    else
      discard_pages(c, i, j);
    i = j;
  }
}

/* ---- learning ---- */

typedef struct {
  reset_ctx_t* c;
  size_t limit; /* pages below it can be hot */
  bool exact;   /* the candidates are the scan's: absent at the last reset */
  uint32_t* written;
  size_t nw, cap;
  bool oom;
} sample_ctx_t;

static void sample_range(void* arg, uint8_t* addr, size_t len) {
  sample_ctx_t* s = arg;
  reset_ctx_t* c = s->c;
  size_t lo = (size_t)(addr - c->slot->base) / c->ps, hi = lo + len / c->ps;
  if (hi > s->limit) hi = s->limit;
  for (size_t p = lo; p < hi; p++) {
    const uint8_t* have = c->slot->base + p * c->ps;
    const uint8_t* want = cowmem__image_page(c->img, (uint64_t)p * c->ps);
    bool faulted = s->exact && !is_hot(c->st, p);
    bool changed =
        want != NULL ? memcmp(have, want, c->ps) != 0 : !cowmem__is_zero(have, c->ps);
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

/* Age every score, credit the written pages, and rebuild the hot set: the
 * highest scores >= SCORE_HOT, at most budget pages. Caller holds st->lock.
 * Only the pages between the lowest and highest ever written are looked
 * at (64 at a time): walking the whole memory's scores made a sample of a
 * 64 MiB memory cost 2.7 us at p99 (bench_adaptive's sweep), one reset in
 * 64, so it was the p99 of every size above 16 MiB. Returns whether the
 * hot set changed. */
#define BYTES_0x3F 0x3f3f3f3f3f3f3f3full
static bool learn(image_state_t* st, const uint32_t* written, size_t nw, size_t budget) {
  uint8_t* sc = st->score;
  for (size_t i = 0; i < nw; i++) {
    size_t p = written[i] & ~FAULT_ONLY;
    if (p < st->score_lo) st->score_lo = p;
    if (p + 1 > st->score_hi) st->score_hi = p + 1;
  }
  if (st->score_hi == 0) return false; /* nothing ever written: no hot set */
  /* Whole 64-page words: the score array is rounded up to them. */
  size_t w_lo = st->score_lo / 64, w_hi = (st->score_hi + 63) / 64;
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
    if (atomic_load_explicit(&st->hot[w], memory_order_relaxed) != bits) {
      atomic_store_explicit(&st->hot[w], bits, memory_order_relaxed);
      changed = true;
    }
    runs += (uint64_t)__builtin_popcountll(bits & ~((bits << 1) | prev));
    prev = bits >> 63;
  }
  atomic_store_explicit(&st->hot_pages, count, memory_order_relaxed);
  atomic_store_explicit(&st->hot_runs, runs, memory_order_relaxed);
  return changed;
}

/* Learn from this instance: compare the candidate pages with the image.
 * An instance that wrote exactly the hot set (the workload holds still)
 * doubles the interval to the next sample, up to BACKOFF_MAX *
 * sample_every; any other returns it to sample_every, so that a hot page
 * the workload left keeps being sampled until it drops out. */
static void sample(reset_ctx_t* c, const cowmem__adaptive_t* a, size_t limit, bool exact,
                   stripe_t* sp, uint64_t n) {
  image_state_t* st = c->st;
  if (pthread_mutex_trylock(&st->lock) != 0) return; /* another thread is */
  sample_ctx_t s = {c, limit, exact, NULL, 0, 0, false};
  int r = 0;
  if (exact) {
    for (size_t i = 0; i < c->n && !s.oom; i++)
      sample_range(&s, c->r[i].addr, c->r[i].len);
  } else {
    r = cowmem__dirty_candidates(c->slot->base, limit * c->ps, sample_range, &s);
  }
  if (r == 0 && !s.oom) {
    /* The written pages are distinct: as many as the hot set, all hot. */
    uint64_t every = a->sample_every, iv = LOAD(st->interval);
    bool still = s.nw == LOAD(st->hot_pages);
    for (size_t i = 0; i < s.nw && still; i++)
      still = is_hot(st, s.written[i] & ~FAULT_ONLY);
    if (learn(st, s.written, s.nw, a->budget) || !still || iv < every)
      iv = every;
    else if (iv < every * BACKOFF_MAX)
      iv *= 2;
    atomic_store_explicit(&st->interval, iv, memory_order_relaxed);
    ADD(st->samples, 1);
    ADD(st->sampled_dirty, s.nw);
    atomic_store_explicit(&sp->last_sample, n, memory_order_relaxed);
  }
  pthread_mutex_unlock(&st->lock);
  free(s.written);
}

/* A sample is due for the first resets of an image, once per interval
 * (sample_every, more while the hot set holds still), and with a scan one
 * in sample_every / 16 while instances write pages outside the hot set. So
 * a workload that moved is learnt within a few samples, and once it holds
 * still under 1% of resets pay for a sample (at 1 in 64 they were the p99
 * of every K=0 cycle: a scan or a pagemap read beside a 0.4 us reset). */
static bool sample_due(const image_state_t* st, const stripe_t* sp, size_t every,
                       uint64_t n, uint64_t misses) {
  uint64_t since = n - LOAD(sp->last_sample), iv = LOAD(st->interval);
  if (n < WARMUP_SAMPLES || since >= (iv > every ? iv : every)) return true;
  return misses > 0 && since >= (every / 16 ? every / 16 : 1);
}

/* ---- profile (bench_adaptive's per-phase breakdown) ---- */

static _Atomic bool prof_on;
static _Thread_local uint64_t prof_ns[COWMEM__PHASES], prof_t;
static _Thread_local bool prof_valid;

void cowmem__adaptive_profile(bool on) {
  atomic_store(&prof_on, on);
}

bool cowmem__adaptive_profile_last(uint64_t ns[COWMEM__PHASES]) {
  memcpy(ns, prof_ns, sizeof prof_ns);
  return prof_valid;
}

static uint64_t prof_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The time since the last mark goes to phase ph. */
static void prof_mark(bool on, int ph) {
  if (!on) return;
  uint64_t t = prof_now();
  if (ph >= 0) prof_ns[ph] += t - prof_t;
  prof_t = t;
}

int cowmem__adaptive_reset(cowmem__adaptive_t* a, cowmem_slot_t* slot) {
  bool prof = atomic_load_explicit(&prof_on, memory_order_relaxed);
  if (prof) {
    memset(prof_ns, 0, sizeof prof_ns);
    prof_valid = false;
    prof_mark(true, -1);
  }
  cowmem_image_t* img = slot->image;
  if (slot->accessible == 0 || !cowmem__image_readable(img))
    return COWMEM__ADAPTIVE_DECLINED; /* nothing to keep, or nothing to copy from */
  image_state_t* st = state_get(a, img, slot->initial);
  if (st == NULL) return COWMEM__ADAPTIVE_DECLINED;

  reset_ctx_t c;
  c.slot = slot;
  c.st = st;
  c.img = img;
  c.ps = cowmem__os_page_size();
  c.r = c.local;
  c.n = 0;
  c.cap = sizeof c.local / sizeof c.local[0];
  c.oom = false;
  c.nd = 0;
  c.blind = false;
  c.err = 0;
  c.copied = c.discarded = c.calls = 0;
  size_t pages = slot->accessible / c.ps;
  size_t limit = slot->initial / c.ps < st->npages ? slot->initial / c.ps : st->npages;
  c.limit = limit;
  stripe_t* sp = my_stripe(st);
  uint64_t n = stripe_add(&sp->resets, 1);

  /* A sampled reset scans where it can, and then settles from the scan
   * like any scanning reset: the scan is paid for already, and settling
   * from it needs no madvise when only hot pages were written. */
  bool exact = cowmem__dirty_exact();
  bool due = sample_due(st, sp, a->sample_every, n, 0);
  prof_mark(prof, COWMEM__PHASE_LOOKUP);
  if (exact && (due || scan_each(st))) {
    int r = cowmem__dirty_scan(slot->base, slot->accessible, collect, &c);
    prof_mark(prof, COWMEM__PHASE_SCAN);
    if (r != 0 || c.oom) {
      /* Nothing changed yet: a whole-range madvise is still right. */
      if (c.r != c.local) free(c.r);
      return COWMEM__ADAPTIVE_DECLINED;
    }
    stripe_add(&sp->scans, 1);
    uint64_t misses = 0;
    for (size_t i = 0; i < c.n; i++) {
      size_t lo = (size_t)((uint8_t*)c.r[i].addr - slot->base) / c.ps;
      size_t hi = lo + c.r[i].len / c.ps;
      for (size_t p = lo; p < hi && p < limit; p++)
        misses += !is_hot(st, p);
    }
    if (misses) stripe_add(&sp->missed, misses);
    due = due || sample_due(st, sp, a->sample_every, n, misses);
    prof_mark(prof, COWMEM__PHASE_BOOK);
    if (due) sample(&c, a, limit, true, sp, n);
    prof_mark(prof, COWMEM__PHASE_SAMPLE);
    for (size_t i = 0; i < c.n; i++) {
      size_t lo = (size_t)((uint8_t*)c.r[i].addr - slot->base) / c.ps;
      settle(&c, lo, lo + c.r[i].len / c.ps);
    }
    if (c.r != c.local) free(c.r);
  } else {
    /* Blind: every hot page copied, the rest discarded. Without a scan a
     * sample's candidates are the anonymous pages pagemap shows. */
    c.blind = true;
    prof_mark(prof, COWMEM__PHASE_BOOK);
    if (due) sample(&c, a, limit, false, sp, n);
    prof_mark(prof, COWMEM__PHASE_SAMPLE);
    /* No hot page: one discard of everything, without walking the bitmap
     * (256 words at 64 MiB). Right whatever a concurrent sample writes. */
    if (LOAD(st->hot_pages) == 0)
      discard_pages(&c, 0, pages);
    else
      settle(&c, 0, pages);
  }
  prof_mark(prof, COWMEM__PHASE_COPY);
  discard_flush(&c);
  prof_mark(prof, COWMEM__PHASE_DECOMMIT);
  if (c.copied) stripe_add(&sp->copied, c.copied);
  if (c.discarded) stripe_add(&sp->discarded, c.discarded);
  if (c.calls) stripe_add(&sp->discard_calls, c.calls);
  if (c.err) return cowmem__slot_fail(slot, c.err);
  int res = cowmem__slot_finish_reset(slot);
  prof_mark(prof, COWMEM__PHASE_FINISH);
  prof_valid = prof;
  return res;
}

/* ---- metrics ---- */

void cowmem__adaptive_image_metrics(cowmem__adaptive_t* a, const cowmem_image_t* image,
                                    cowmem_pool_image_metrics_t* out) {
  memset(out, 0, sizeof *out);
  out->version = COWMEM_POOL_IMAGE_METRICS_VERSION;
  image_state_t* st = a == NULL ? NULL : state_find(a, cowmem__image_key(image));
  if (st == NULL) return;
  out->hot_pages = LOAD(st->hot_pages);
  out->samples = LOAD(st->samples);
  out->sampled_dirty_pages = LOAD(st->sampled_dirty);
  for (int i = 0; i < STRIPES; i++) {
    stripe_t* sp = &st->stripe[i];
    out->resets += LOAD(sp->resets);
    out->missed_pages += LOAD(sp->missed);
    out->copied_pages += LOAD(sp->copied);
    out->discarded_pages += LOAD(sp->discarded);
    out->discard_calls += LOAD(sp->discard_calls);
    out->scans += LOAD(sp->scans);
  }
}

void cowmem__adaptive_totals(cowmem__adaptive_t* a, uint64_t* copied,
                             uint64_t* discarded) {
  *copied = *discarded = 0;
  if (a == NULL) return;
  pthread_mutex_lock(&a->lock); /* states are freed under it */
  *copied = a->gone_copied;
  *discarded = a->gone_discarded;
  for (size_t i = 0; i < TABLE_CAP; i++) {
    image_state_t* st = atomic_load_explicit(&a->table[i], memory_order_acquire);
    if (st == NULL) continue;
    for (int k = 0; k < STRIPES; k++) {
      *copied += LOAD(st->stripe[k].copied);
      *discarded += LOAD(st->stripe[k].discarded);
    }
  }
  pthread_mutex_unlock(&a->lock);
}
