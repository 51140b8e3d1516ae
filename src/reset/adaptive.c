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
 *     its pages, when instances read few pages they do not write, while no
 *     other thread is discarding (except at a sample, which scans anyway),
 *     and of every reset without PAGEMAP_SCAN (or with
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
 * Learning: which pages are hot is the hot set's (hotset.c), learned on
 * sampled resets; a sampled reset scans where it can and then settles
 * from its scan like any scanning reset. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "reset/adaptive.h"
#include "dirty.h"
#include "reset/hotset.h"
#include "image/image.h"
#include "reset/profile.h"

#define TABLE_CAP 1024u             /* images with a hot set per pool */
#define TRACK_MAX ((size_t)1 << 30) /* bytes of a memory a hot set covers */

/* Counters a reset updates, a stripe per thread (cowmem__os_stripe): with
 * one shared line, two threads resetting slots of the same image spend more
 * on bouncing it than a K=0 reset costs. Sampling counts per stripe too
 * (each thread samples its own resets, see cowmem__hotset_due). */
typedef struct {
  _Alignas(64) _Atomic uint64_t resets;
  _Atomic uint64_t last_sample, missed, copied, discarded, discard_calls, scans;
  _Atomic uint64_t quiet;   /* quiet resets */
  _Atomic uint64_t unquiet; /* faults seen at this thread's last tries in a row */
} stripe_t;

typedef struct {
  stripe_t stripe[COWMEM__STRIPES];
  uint64_t key;               /* the image's id; 0 for the all-zeros memory */
  _Atomic uint64_t clean;     /* pages mapped but not written at the last sample */
  _Atomic uint64_t tables;    /* page tables holding mapped pages then */
  cowmem__image_weak_t* weak; /* the image (NULL: the zeros memory) */
  cowmem__hotset_t hs;
} image_state_t;

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
  bool defers;                          /* blind resets' discards are queued */
  bool quiet;                           /* quiet resets tried (the fault count) */
  pthread_mutex_t lock;                 /* inserts, removals, totals */
  uint64_t gone_copied, gone_discarded; /* removed states' totals; lock */
  _Atomic uint64_t keys[TABLE_CAP];
  _Atomic(image_state_t*) table[TABLE_CAP];
};

#define LOAD(field) atomic_load_explicit(&(field), memory_order_relaxed)

cowmem__adaptive_t* cowmem__adaptive_new(size_t resident_budget, size_t sample_every,
                                         bool defers) {
  cowmem__adaptive_t* a = calloc(1, sizeof *a);
  if (a == NULL) return NULL;
  a->defers = defers;
  a->quiet = cowmem_option_get(COWMEM_OPTION_NO_FAULT_COUNT) == 0;
  a->budget = resident_budget / cowmem__os_page_size();
  a->sample_every = sample_every ? sample_every : 1;
  pthread_mutex_init(&a->lock, NULL);
  return a;
}

static void state_free(image_state_t* st) {
  cowmem__hotset_destroy(&st->hs);
  cowmem__image_weak_release(st->weak);
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
    for (int k = 0; k < COWMEM__STRIPES; k++) {
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
    st = cowmem__alloc_lines(1, sizeof *st);
    if (st != NULL) {
      st->key = key;
      if (cowmem__hotset_init(&st->hs, npages) != 0) {
        free(st);
        st = NULL;
      } else {
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

/* ---- which way ----
 *
 * Alone, which way is cheaper depends on the hot set and on what instances
 * read. A blind reset decommits each gap between hot runs (a range of one
 * process_madvise, about 0.1 us each); a scan costs 0.4 us more than a
 * madvise of nothing, and about 0.04 us for each present page it reports
 * (the kernel looks at each). A blind reset also drops the pages instances
 * only read (image pages, the zero page), which are right as they are: the
 * next instance faults each in again (the wasm2c demo, reading its 400 KiB
 * dictionary, took 2 faults and 132 decommitted pages a request blind
 * against none scanning; a memfd image read page by page, a fault a page).
 * Unmapping and faulting such a page back costs at least 0.2 us. And both
 * ways walk every page table (2 MiB of memory each) that holds a mapped
 * page, entry by entry: the scan about 0.52 us a table, the discard of a
 * blind reset 0.22 us (8 hot pages spread over a 30 MiB memory, so 8
 * tables: scan 4.5 us, blind's decommit 2.7 us; over 3 MiB, 2 tables: 1.39
 * and 1.36 us). So scan when
 *   runs * 0.1 + clean * 0.2 > 0.4 + hot * 0.04 + tables * 0.03
 * (in hundredths of a microsecond below; a clean page weighed 0.02 until
 * queued discards made blind resets 0.6 us cheaper, and the wasm2c demo,
 * 65 pages read, went blind and took 2 faults a request), with clean the
 * pages the last sample found mapped but
 * not written and tables the page tables holding mapped pages then
 * (count_clean). A workload that stops reading is seen at the next sample
 * that follows a blind reset; after scanning resets, pages read by earlier
 * instances stay mapped and keep counting, which costs a scan's 0.4 us at
 * most against a blind reset.
 * Measured: spread single pages in a 576 KiB memory, blind 13% faster at 0,
 * even at 2-8, 15-25% slower at 16-32 pages; bench_adaptive's K=256 (256
 * hot pages in 66 runs) blind 23 us against 28 us scanning.
 * The tables' weight is a tenth of the 0.3 us a table the walks above
 * differ by: with blind resets' discards queued it chose the faster way on
 * the 30 MiB module at 8, 16, 24, 32 and 48 spread hot pages (blind 5.16
 * / 9.60 / 10.24 us against scanning 7.02 / 11.49 / 11.20, then scanning
 * 12.39 / 13.15 against 12.88 / 14.48) and on the 3 MiB one at 8 and 32;
 * 0.3 would reset blind at 32 and 48 there, 4% and 10% slower (Zen 5 VM).
 *
 * With threads: a blind reset's discard (of what should be untouched)
 * takes turns with the others' (two madvise calls at once make the kernel
 * flush every CPU's TLBs; cowmem__os_discard_empty), so a reset that finds
 * another thread's turn under way scans instead of queueing: a scan needs
 * no discard at all when only hot pages were written. On the
 * 2-core VM, two threads at K=0 ran 1.0x one thread this way, 0.9x always
 * blind, 0.8x always scanning (the scans share the process's mmap lock);
 * at K=16, 1.58x, 1.65x and 1.53x. A thread whose own blind discard had to
 * wait keeps scanning for a while after (cowmem__os_discard_contended):
 * checking only "busy now" let both threads pick blind and then queue. On
 * a Zen 5 VM (PTI), K=16 two threads 1.72-1.76x one against 1.14-1.68x
 * with "busy now" in the same sitting; one thread unchanged.
 * Where blind resets queue their discards (defers), none of them waits for
 * the turn: a queue that would flush while the turn is taken keeps
 * queueing (reset.c), so they stay blind. Scanning instead while the turn
 * was taken made two threads at K=16 1.35-1.39x one, staying blind
 * 1.43x (Zen 5 VM, 16 slots, alternating in one sitting). */
/* What a blind reset whose discard is queued with other slots' saves
 * against one making its own call (see cowmem__adaptive_new's defers),
 * in the units of blind_cheaper: 0.6 us. Measured on the Zen 5 VM (a
 * system call about 1 us), each way forced, demo.wasm: queued blind against
 * scanning 1.70/3.01 us a cycle at 8 hot pages, 2.83/3.67 at 16, 3.87/4.29
 * at 24, 5.38/4.84 at 32; this picks blind up to 16. Where calls cost less
 * it saves less, and so does a scan's call: 0.6 is the lower end. */
#define DEFER_SAVES 60

_Static_assert(COWMEM__ADAPTIVE_DEFER_MAX == COWMEM__HOTSET_LISTED + 1,
               "a blind reset's gaps: one more than the listed runs");

static bool blind_cheaper(uint64_t runs, uint64_t hot, uint64_t clean, uint64_t tables,
                          bool defers) {
  return runs * 10 + clean * 20 <= 40 + hot * 4 + tables * 3 + (defers ? DEFER_SAVES : 0);
}

#ifdef COWMEM_TESTING
static _Atomic int test_mode; /* cowmem__adaptive_test_mode */
void cowmem__adaptive_test_mode(int mode) {
  atomic_store(&test_mode, mode);
}
#endif

/* Scan at this reset, or reset blind. */
static bool scan_each(const cowmem__adaptive_t* a, const image_state_t* st) {
#ifdef COWMEM_TESTING
  int m = atomic_load_explicit(&test_mode, memory_order_relaxed);
  if (m != 0) return m == 1;
#endif
  /* The turn's word is asked only when blind would be cheaper alone. */
  return !blind_cheaper(LOAD(st->hs.runs), LOAD(st->hs.pages), LOAD(st->clean),
                        LOAD(st->tables), a->defers) ||
         (!a->defers && cowmem__os_discard_contended());
}

/* ---- one reset ---- */

typedef struct {
  cowmem_slot_t* slot;
  image_state_t* st;
  const cowmem_image_t* img; /* readable (cowmem__image_readable) */
  size_t ps;
  unsigned shift; /* log2(ps): bytes to pages without a division (a 64-bit
                     divide is 15-40 cycles, and a scanning reset made four
                     per written range) */
  size_t limit; /* pages below it may be hot: [0, initial) and tracked */
  uint8_t* base; /* the slot's */
  /* the scan's ranges, in order */
  cowmem__os_range_t local[64];
  cowmem__os_range_t* r;
  size_t n, cap;
  bool oom;
  uint64_t misses; /* written pages below limit outside the hot set */
  size_t cold;     /* written pages outside the hot set, at any address */
  size_t written;  /* pages the scan reported */
  /* ranges waiting to be restored by copy, and to be decommitted: each
   * kind made in one call per reset (more only past this many ranges) */
  cowmem__os_range_t cp[COWMEM__HOTSET_LISTED + 1];
  size_t ncp;
  cowmem__os_range_t d[COWMEM__HOTSET_LISTED + 1]; /* a blind reset's gaps */
  size_t nd;
  bool blind;  /* the reset's way (see discard_flush) */
  /* blind without a scan: the pages [keep_lo, keep_hi) of the image's file
   * span are discarded only where pagemap shows them the process's own */
  size_t keep_lo, keep_hi;
  bool own_hot; /* blind: every hot page is the slot's own (mark_owned) */
  bool hot_done; /* the hot pages hold the image already: not copied again */
  size_t runs; /* the hot set's listed runs (read once the sample is done) */
  size_t run;  /* the hot set's listed run settle has reached */
  int err;
  uint64_t copied, discarded, calls;
} reset_ctx_t;

/* Room for need of the scan's ranges; false (c->oom) without memory. */
static bool collect_grow(reset_ctx_t* c, size_t need) {
  size_t ncap = c->cap;
  while (ncap < need)
    ncap *= 4;
  cowmem__os_range_t* nr =
      c->r == c->local ? malloc(ncap * sizeof *nr) : realloc(c->r, ncap * sizeof *nr);
  if (nr == NULL) {
    c->oom = true;
    return false;
  }
  if (c->r == c->local) memcpy(nr, c->local, sizeof c->local);
  c->r = nr;
  c->cap = ncap;
  return true;
}

/* A scan's ranges, kept as they come (settling and sampling take any
 * ranges; the copies and decommits they make are joined where they are
 * listed), and their pages below the limit outside the hot set counted. */
static void collect(void* arg, const cowmem__os_range_t* got, size_t k) {
  reset_ctx_t* c = arg;
  if (c->n + k > c->cap && !collect_grow(c, c->n + k)) return;
  memcpy(c->r + c->n, got, k * sizeof *got);
  c->n += k;
  const cowmem__hotset_t* hs = &c->st->hs;
  size_t limit = c->limit, written = 0, cold = 0;
  uint64_t misses = 0;
  for (size_t i = 0; i < k; i++) {
    size_t lo = (size_t)((uint8_t*)got[i].addr - c->base) >> c->shift;
    size_t hi = lo + (got[i].len >> c->shift);
    written += hi - lo;
    size_t end = hi < limit ? hi : limit;
    for (size_t p = lo; p < end; p++)
      misses += !cowmem__hotset_has(hs, p);
    cold += hi - (end > lo ? end : lo); /* no page at or above the limit is hot */
  }
  c->misses += misses;
  c->cold += cold + misses;
  c->written += written;
}

/* Add [lo, hi) (pages of the slot) to a list of ranges, joined to the last
 * one when they touch; false when the list is full. */
static inline bool range_add(cowmem__os_range_t* list, size_t* n, size_t cap, uint8_t* addr,
                      size_t len) {
  if (*n > 0 && (uint8_t*)list[*n - 1].addr + list[*n - 1].len == addr) {
    list[*n - 1].len += len;
    return true;
  }
  if (*n == cap) return false;
  list[*n].addr = addr;
  list[*n].len = len;
  (*n)++;
  return true;
}

/* Copy image and zeros over the listed ranges: a scanning reset's pages
 * are the instance's own copies, a blind reset's may map the file still
 * (unless a scan saw every hot page written: own_hot).
 * After a failure (the image's file shrank) the rest are dropped, as after
 * a failed discard: the slot is released. */
static void restore_flush(reset_ctx_t* c) {
  if (c->ncp == 0) return;
  int e = c->err ? 0
                 : cowmem__image_restore_many(c->img, c->base, c->cp, c->ncp,
                                              !c->blind, c->own_hot);
  if (e) c->err = e;
  c->ncp = 0;
}

static inline void restore_pages(reset_ctx_t* c, size_t lo, size_t hi) {
  if (c->hot_done) return;
  uint8_t* addr = c->base + (lo << c->shift);
  size_t len = (hi - lo) << c->shift;
  c->copied += hi - lo;
  if (range_add(c->cp, &c->ncp, sizeof c->cp / sizeof c->cp[0], addr, len)) return;
  restore_flush(c);
  range_add(c->cp, &c->ncp, sizeof c->cp / sizeof c->cp[0], addr, len);
}

/* After a failed discard the rest are dropped: the slot is released. */
static void discard_flush(reset_ctx_t* c) {
  if (c->nd == 0) return;
  if (c->err == 0) {
    /* A blind reset decommits what should be untouched: such discards
     * take turns (see cowmem__os_discard_empty). */
    int e = c->blind     ? cowmem__os_discard_empty(c->d, c->nd)
            : c->nd == 1 ? cowmem__os_discard(c->d[0].addr, c->d[0].len)
                         : cowmem__os_discard_many(c->d, c->nd);
    if (e) c->err = e;
    c->calls++;
  }
  c->nd = 0;
}

static inline void discard_add(reset_ctx_t* c, size_t lo, size_t hi) {
  uint8_t* addr = c->base + (lo << c->shift);
  size_t len = (hi - lo) << c->shift;
  c->discarded += hi - lo;
  if (range_add(c->d, &c->nd, sizeof c->d / sizeof c->d[0], addr, len)) return;
  discard_flush(c);
  range_add(c->d, &c->nd, sizeof c->d / sizeof c->d[0], addr, len);
}

/* Of the image's file pages in [lo, hi), discard the process's own (written,
 * or swapped) and keep the rest: they hold the image's bytes, and an
 * instance that reads them would otherwise fault them in again at every
 * request (16 faults a request for 10% of a 1 MiB image read, with the
 * kernel's fault-around), and those faults would keep every reset from
 * being quiet. Only without a scan, so the candidates are pagemap's
 * (cowmem__dirty_candidates). Where it cannot say, the rest is discarded. */
typedef struct {
  reset_ctx_t* c;
  size_t done; /* pages below it are settled */
} own_t;

static void discard_own_range(void* arg, uint8_t* addr, size_t len) {
  own_t* o = arg;
  size_t lo = (size_t)(addr - o->c->base) >> o->c->shift;
  o->done = lo + (len >> o->c->shift);
  discard_add(o->c, lo, o->done);
}

static void discard_own(reset_ctx_t* c, size_t lo, size_t hi) {
  own_t o = {c, lo};
  if (cowmem__dirty_candidates(c->base + (lo << c->shift), (hi - lo) << c->shift,
                               discard_own_range, &o) != 0)
    discard_add(c, o.done, hi);
}

static inline void discard_pages(reset_ctx_t* c, size_t lo, size_t hi) {
  size_t a = lo > c->keep_lo ? lo : c->keep_lo, b = hi < c->keep_hi ? hi : c->keep_hi;
  if (a >= b) {
    discard_add(c, lo, hi);
    return;
  }
  if (lo < a) discard_add(c, lo, a);
  discard_own(c, a, b);
  if (b < hi) discard_add(c, b, hi);
}

/* Restore the hot pages of [lo, hi) by copy, decommit the others
 * (settle_bits does the same by the bitmap).
 *
 * settle by the hot set's list of runs (the hot set lists them): a blind
 * reset's whole memory. The runs are walked once per reset from c->run. A
 * run read torn is clamped to what is left of the range: a hot page may
 * then be discarded, but every page gets one of the two. */
static void settle_listed(reset_ctx_t* c, size_t lo, size_t hi) {
  const cowmem__hotset_t* hs = &c->st->hs;
  size_t i = lo, run = c->run, runs = c->runs, limit = c->limit;
  for (; run < runs && i < hi; run++) {
    size_t rlo, rhi;
    cowmem__hotset_listed(hs, run, &rlo, &rhi);
    if (rlo >= hi) break; /* the run starts past the range */
    if (rlo < i) rlo = i;
    if (rhi > limit) rhi = limit;
    if (rhi > hi) rhi = hi;
    if (rlo >= rhi) continue;
    if (rlo > i) discard_pages(c, i, rlo);
    restore_pages(c, rlo, rhi);
    i = rhi;
    if (i == hi) break; /* the run may go on into the next range */
  }
  c->run = run;
  if (i < hi) discard_pages(c, i, hi);
}

/* settle by the hot set's bitmap: a scanning reset's ranges, a few pages
 * each (one bit a page, the word's next change for longer ones), and a
 * blind reset's when the hot set has too many runs to list. */
static inline void settle_bits(reset_ctx_t* c, size_t lo, size_t hi) {
  const cowmem__hotset_t* hs = &c->st->hs;
  size_t limit = c->limit;
  for (size_t i = lo; i < hi;) {
    bool h = i < limit && cowmem__hotset_has(hs, i);
    size_t j = i + 1 == hi ? hi : cowmem__hotset_run_end(hs, i, hi, limit, h);
    if (h)
      restore_pages(c, i, j);
    else
      discard_pages(c, i, j);
    i = j;
  }
}

/* ---- quiet: no fault since the last settling ----
 *
 * Every page of a slot an instance can change without a page fault is one
 * whose page-table entry is present and writable. After a reset settled
 * every page against a hot set (blind or scanning, its queued discard
 * done), those are hot pages only: every other page was decommitted,
 * maps the image or the zero page read-only, or is beyond the memory. A
 * write anywhere else, by the instance or by a system call copying into
 * its memory, takes a fault first, and the kernel counts every fault of
 * the process (cowmem__os_fault_count). So if the count has not moved
 * since that reset, and the hot set is the one it settled against, copying
 * the hot pages back restores the whole slot: no scan, no discard, no
 * page table walked. That costs one getrusage (1.2 us on the Zen 5 VM,
 * whose system calls cost 0.9; 1.6 with two threads calling it) where a
 * blind reset of 8 spread pages in a 30 MiB memory spends 2-3 us in the
 * kernel's walk of 8 page tables, and a scan more.
 *
 * Not where the memory grew, or is larger than what was settled: mprotect
 * makes a page the slot still owns beyond the accessible size writable
 * again with no fault (a hot page kept by an instance with a larger
 * memory, then written after a grow), and a reset covers only [0,
 * accessible). The model test found that one (test_adaptive's
 * quiet_not_after_grow).
 *
 * The count is the whole process's (getrusage(RUSAGE_SELF)): a host may
 * run an instance on several threads, so one thread's count says nothing.
 * So any fault anywhere makes the next reset of every slot settle again,
 * which is right, only slower. A thread whose last QUIET_TRIES checks all
 * saw faults stamps a settled slot with the count only once in
 * QUIET_PROBE resets (a workload that writes new pages every time would
 * pay the call for nothing); a stamped slot is always checked.
 *
 * What this trusts, beyond the kernel counting faults: nothing makes an
 * absent page writable without a fault. khugepaged does, collapsing
 * anonymous memory into a huge page (where transparent huge pages are
 * "always"), so a pool's memory is kept in base pages (the OS layer
 * advises so at every reservation and fresh anonymous mapping). A
 * debugger writing through /proc/pid/mem or process_vm_writev from
 * another process faults in that process; like any write from outside,
 * it is not the instance's. */
#define QUIET_TRIES 8
#define QUIET_PROBE 32

/* What a quiet reset costs beyond its copies, in blind_cheaper's units:
 * the getrusage, 1.6-1.7 us a cycle on the Zen 5 VM (demo.wasm, the 3 and
 * 30 MiB modules, 8 hot pages). A queued blind reset there cost 0.1 us,
 * plus 0.1 a gap, plus 0.4 for each page table past the first that holds
 * a mapped page (its share of the flush: 1.1 us on demo.wasm's memory, one
 * table; 1.5 on the 3 MiB one, 2; 3.9 on the 30 MiB one, 8). So a quiet
 * reset is the cheaper from 3 tables, or 16 gaps; and wherever a scan
 * would be the way (one call too, and the walk). Where system calls cost
 * less than on a VM, a quiet reset is cheaper still against the walks. */
#define QUIET_COST 165

static bool quiet_cheaper(const cowmem__adaptive_t* a, const image_state_t* st) {
  uint64_t runs = LOAD(st->hs.runs), clean = LOAD(st->clean), tables = LOAD(st->tables);
  if (!blind_cheaper(runs, LOAD(st->hs.pages), clean, tables, a->defers)) return true;
  uint64_t blind =
      10 + (runs + 1) * 10 + clean * 20 + (tables > 1 ? (tables - 1) * 40 : 0);
  /* Blind discards taking turns with another thread's: the quiet way
   * makes none. Only where there are hot pages, whose discard flushes
   * other CPUs' TLBs: with none, the queued discard of untouched gaps is
   * cheap, and the count's getrusage, which two threads asking at once
   * pay for, is not (bench_adaptive's threads at K=0: 1.08-1.19x one
   * thread with the condition, 0.96x without, same sitting). */
  return blind > QUIET_COST || (LOAD(st->hs.pages) > 0 && cowmem__os_discard_contended());
}

/* May this reset stamp the slot with the count (the option; a thread
 * whose last checks found it moved stamps once in QUIET_PROBE)? */
static bool quiet_allowed(const cowmem__adaptive_t* a, const stripe_t* sp, uint64_t n) {
#ifdef COWMEM_TESTING
  int m = atomic_load_explicit(&test_mode, memory_order_relaxed);
  if (m != 0) return m == 3;
#endif
  return a->quiet && (LOAD(sp->unquiet) < QUIET_TRIES || n % QUIET_PROBE == 0);
}

/* Check a stamped slot's count at this reset (alone: paying for the call
 * alone, not sharing a flush's)? A stamp is made only where the count is
 * allowed (quiet_allowed), so the backing off is at the stamping. */
static bool quiet_verifiable(const cowmem__adaptive_t* a, const image_state_t* st,
                             bool alone) {
#ifdef COWMEM_TESTING
  int m = atomic_load_explicit(&test_mode, memory_order_relaxed);
  if (m != 0) return m == 3;
#endif
  return a->quiet && (!alone || quiet_cheaper(a, st));
}

/* A check found the count moved: counted against the thread; may the
 * settling reset stamp the slot with the count read? */
static bool quiet_moved(const cowmem__adaptive_t* a, int si, stripe_t* sp, uint64_t n) {
  cowmem__stripe_add(si, &sp->unquiet, 1);
  return quiet_allowed(a, sp, n);
}

/* Was the slot last settled against hot set version hv (even: no sample
 * writing it), with a count, over all of its memory as it is now? */
static bool quiet_stamped(const cowmem_slot_t* slot, uint64_t hv) {
  return slot->reset_faults != 0 && slot->reset_quiet == hv + 1 && hv % 2 == 0 &&
         slot->accessible == slot->initial && slot->initial <= slot->reset_span;
}

/* Copy the hot set of version hv (even) back; false if a sample rewrote it
 * meanwhile (the copies are the image's bytes, harmless: the reset then
 * settles every page). */
static bool quiet_restore(reset_ctx_t* c, uint64_t hv, size_t pages) {
  const cowmem__hotset_t* hs = &c->st->hs;
  size_t end = c->limit < pages ? c->limit : pages;
  c->blind = true; /* hot pages may map the image still: compare */
  c->own_hot = c->slot->reset_mark == hv + 1;
  size_t runs = LOAD(hs->runs);
  if (runs <= COWMEM__HOTSET_LISTED) {
    for (size_t i = 0; i < runs; i++) {
      size_t lo, hi;
      cowmem__hotset_listed(hs, i, &lo, &hi);
      if (hi > end) hi = end;
      if (lo < hi) restore_pages(c, lo, hi);
    }
  } else {
    for (size_t i = 0; i < end;) {
      bool h = cowmem__hotset_has(hs, i);
      size_t j = i + 1 == end ? end : cowmem__hotset_run_end(hs, i, end, end, h);
      if (h) restore_pages(c, i, j);
      i = j;
    }
  }
  restore_flush(c);
  atomic_thread_fence(memory_order_acquire);
  return LOAD(hs->version) == hv;
}

/* ---- learning (hotset.c) ---- */

static void sample(reset_ctx_t* c, const cowmem__adaptive_t* a, size_t limit, bool exact,
                   stripe_t* sp, uint64_t n) {
  if (cowmem__hotset_sample(&c->st->hs, c->img, c->base, c->ps, limit,
                            exact ? c->r : NULL, c->n, a->budget, a->sample_every))
    atomic_store_explicit(&sp->last_sample, n, memory_order_relaxed);
}

/* How many pages of the slot the instance only read (mapped from the image
 * or the zero page, not written): what a blind reset would decommit and
 * the next instance fault in again; and how many page tables hold mapped
 * pages, which both ways walk. Known where a sample scans; a failed count
 * leaves the last one. */
static void count_clean(reset_ctx_t* c) {
  size_t mapped = 0, written = 0, tables = 0;
  if (cowmem__dirty_mapped(c->base, c->slot->accessible, &mapped, &tables) != 0)
    return;
  atomic_store_explicit(&c->st->tables, tables, memory_order_relaxed);
  for (size_t i = 0; i < c->n; i++)
    written += c->r[i].len >> c->shift;
  atomic_store_explicit(&c->st->clean, mapped > written ? mapped - written : 0,
                        memory_order_relaxed);
}

static bool sample_due(const image_state_t* st, const stripe_t* sp, size_t every,
                       uint64_t n, uint64_t misses) {
  return cowmem__hotset_due(&st->hs, n, n - LOAD(sp->last_sample), every, misses);
}

/* ---- profile (the per-phase breakdown of bench_reset) ----
 * Only in the test library: a release build carries no profiler, and each
 * mark below compiles to nothing. */

#ifdef COWMEM_TESTING
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

/* The time since the last mark goes to phase ph. */
static void prof_mark(bool on, int ph) {
  if (!on) return;
  uint64_t t = cowmem__os_now_ns();
  if (ph >= 0) prof_ns[ph] += t - prof_t;
  prof_t = t;
}

/* Whether this reset is profiled (the clock starts if so). */
static bool prof_begin(void) {
  bool on = atomic_load_explicit(&prof_on, memory_order_relaxed);
  if (on) {
    memset(prof_ns, 0, sizeof prof_ns);
    prof_valid = false;
    prof_mark(true, -1);
  }
  return on;
}

static void prof_end(bool on) {
  prof_valid = on;
}
#else
static inline bool prof_begin(void) {
  return false;
}
static inline void prof_mark(bool on, int ph) {
  (void)on;
  (void)ph;
}
static inline void prof_end(bool on) {
  (void)on;
}
#endif

/* What a scanning reset learns for the blind ones after it: when it
 * restored every hot page (each was written, so each is now the slot's
 * own copy), the slot's hot pages stay its own while the hot set stays the
 * same, since a reset never discards a hot page. Blind resets then restore
 * them without comparing where a plain copy is faster (image/lines.h);
 * comparing was there to leave a page that still maps the image as it is.
 * If the mark is wrong after all (a torn read of a hot set a sample is
 * rewriting), such a page becomes the slot's own copy, with the image's
 * bytes: speed and a page of memory, never correctness. On the Zen 5 VM,
 * 8 hot pages: 0.31 against 0.56 us. */
static void mark_owned(reset_ctx_t* c, uint64_t version) {
  bool all = c->err == 0 && c->copied == LOAD(c->st->hs.pages);
  c->slot->reset_mark = all ? version + 1 : 0;
}

/* How a reset is asked for: at release, or by a flush that found the
 * count moved since a deferred quiet reset (every page settled now, the
 * count given or not known). */
typedef enum { AT_RELEASE, SETTLE_COUNTED, SETTLE_UNCOUNTED } reset_how_t;

static int adaptive_reset(cowmem__adaptive_t* a, cowmem_slot_t* slot,
                          cowmem__os_range_t* defer, size_t* ndefer, reset_how_t how,
                          uint64_t given) {
  bool prof = prof_begin();
  cowmem_image_t* img = slot->image;
  if (slot->accessible == 0 || !cowmem__image_readable(img))
    return COWMEM__ADAPTIVE_DECLINED; /* nothing to keep, or nothing to copy from */
  /* Found once per image the slot holds: a state is freed only once its
   * image is, and the slot holds a reference. */
  image_state_t* st = slot->reset_state;
  if (st == NULL) st = slot->reset_state = state_get(a, img, slot->initial);
  if (st == NULL) return COWMEM__ADAPTIVE_DECLINED;

  reset_ctx_t c;
  c.slot = slot;
  c.base = slot->base;
  c.st = st;
  c.img = img;
  c.ps = cowmem__os_page_size();
  c.shift = (unsigned)__builtin_ctzll(c.ps); /* page sizes are powers of 2 */
  c.r = c.local;
  c.n = 0;
  c.cap = sizeof c.local / sizeof c.local[0];
  c.oom = false;
  c.misses = 0;
  c.cold = c.written = 0;
  c.ncp = c.nd = 0;
  c.blind = false;
  c.keep_lo = c.keep_hi = 0;
  c.own_hot = c.hot_done = false;
  c.run = 0;
  c.err = 0;
  c.copied = c.discarded = c.calls = 0;
  size_t pages = slot->accessible >> c.shift;
  size_t initial = slot->initial >> c.shift;
  size_t limit = initial < st->hs.npages ? initial : st->hs.npages;
  c.limit = limit;
  int si = cowmem__os_stripe(); /* this thread's counters */
  stripe_t* sp = &st->stripe[si];
  /* A settle after a deferred quiet reset is the same reset, counted once. */
  uint64_t n =
      how == AT_RELEASE ? cowmem__stripe_add(si, &sp->resets, 1) : LOAD(sp->resets);

  /* A sampled reset scans where it can, and then settles from the scan
   * like any scanning reset: the scan is paid for already, and settling
   * from it needs no madvise when only hot pages were written. */
  bool exact = cowmem__dirty_exact();
  bool due = how == AT_RELEASE && sample_due(st, sp, a->sample_every, n, 0);
  uint64_t faults = given;
  bool counted = how == SETTLE_COUNTED;
  uint64_t hv = atomic_load_explicit(&st->hs.version, memory_order_acquire);
  slot->reset_wait = COWMEM__WAIT_NONE;
  if (how != AT_RELEASE) {
    /* The hot pages were copied at release (against this hot set, unless
     * a sample changed it since); every page is settled now. Not sampled:
     * the copies would hide what the instance wrote. */
    c.hot_done = slot->reset_quiet == hv + 1;
  } else if (defer != NULL) {
    /* Quiet, deferred: the hot pages are copied now, and the count is
     * asked once for a whole queue at its flush, which finishes the slot
     * if nothing faulted since it was last settled and settles it
     * otherwise (cowmem__adaptive_flushed). */
    if (!due && quiet_stamped(slot, hv) && quiet_verifiable(a, st, false)) {
      bool whole = quiet_restore(&c, hv, pages);
      if (c.err) return cowmem__slot_fail(slot, c.err);
      if (c.copied) cowmem__stripe_add(si, &sp->copied, c.copied);
      if (whole) {
        slot->reset_wait = COWMEM__WAIT_VERIFY;
        *ndefer = 0;
        prof_end(prof);
        return COWMEM__ADAPTIVE_DEFERRED;
      }
      c.copied = 0;
      c.blind = c.own_hot = false; /* settle every page below */
    }
    /* A scanning reset is not deferred: it asks the count itself. A blind
     * one that is has it asked at the flush (see the end). */
    if (exact && (due || scan_each(a, st)) && quiet_allowed(a, sp, n))
      counted = cowmem__os_fault_count(&faults) == 0;
  } else {
    /* Quiet, at once: no fault since the slot was last settled, against
     * this hot set. Otherwise the count read is the settling reset's
     * stamp, unless the thread is backing off. */
    bool cheaper = quiet_verifiable(a, st, true);
    bool verify = cheaper && quiet_stamped(slot, hv);
    counted = cheaper && (verify || quiet_allowed(a, sp, n)) &&
              cowmem__os_fault_count(&faults) == 0;
    if (counted && verify && slot->reset_faults != faults) {
      counted = quiet_moved(a, si, sp, n);
    } else if (counted && verify && !due) {
      bool whole = quiet_restore(&c, hv, pages);
      if (LOAD(sp->unquiet) != 0)
        atomic_store_explicit(&sp->unquiet, 0, memory_order_relaxed);
      if (c.err) return cowmem__slot_fail(slot, c.err);
      if (whole) {
        cowmem__stripe_add(si, &sp->quiet, 1);
        if (c.copied) cowmem__stripe_add(si, &sp->copied, c.copied);
        prof_mark(prof, COWMEM__PHASE_COPY);
        int res = cowmem__slot_finish_reset(slot);
        prof_mark(prof, COWMEM__PHASE_FINISH);
        prof_end(prof);
        return res;
      }
      c.blind = c.own_hot = false; /* settle every page below */
    }
  }
  prof_mark(prof, COWMEM__PHASE_LOOKUP);
  if (exact && (due || scan_each(a, st))) {
    int r = cowmem__dirty_written(slot->base, slot->accessible, collect, &c);
    prof_mark(prof, COWMEM__PHASE_SCAN);
    if (r != 0 || c.oom) {
      /* Nothing changed yet: a whole-range madvise is still right. */
      if (c.r != c.local) free(c.r);
      return COWMEM__ADAPTIVE_DECLINED;
    }
    cowmem__stripe_add(si, &sp->scans, 1);
    uint64_t misses = c.misses;
    if (misses) cowmem__stripe_add(si, &sp->missed, misses);
    due = due ||
          (how == AT_RELEASE && misses && sample_due(st, sp, a->sample_every, n, misses));
    prof_mark(prof, COWMEM__PHASE_BOOK);
    if (due) {
      sample(&c, a, limit, true, sp, n);
      count_clean(&c);
    }
    prof_mark(prof, COWMEM__PHASE_SAMPLE);
    c.runs = LOAD(st->hs.runs);
    uint64_t version = LOAD(st->hs.version);
    if (c.cold == 0 && !due) {
      /* Only hot pages were written (the steady state): the scan's ranges
       * are the copies, with nothing to decommit. */
      int e = 0;
      if (!c.hot_done) {
        c.copied = c.written;
        e = cowmem__image_restore_many(img, slot->base, c.r, c.n, true, false);
      }
      if (e) c.err = e;
    } else {
      for (size_t i = 0; i < c.n; i++) {
        size_t lo = (size_t)((uint8_t*)c.r[i].addr - slot->base) >> c.shift;
        settle_bits(&c, lo, lo + (c.r[i].len >> c.shift));
      }
    }
    restore_flush(&c);
    mark_owned(&c, version);
    if (c.r != c.local) free(c.r);
  } else {
    /* Blind: every hot page copied, the rest discarded. Without a scan a
     * sample's candidates are the anonymous pages pagemap shows. */
    c.blind = true;
    uint64_t flo, fhi;
    if (!exact && cowmem__image_file_span(img, &flo, &fhi)) {
      c.keep_lo = (size_t)(flo >> c.shift);
      c.keep_hi = (size_t)((fhi + c.ps - 1) >> c.shift);
    }
    prof_mark(prof, COWMEM__PHASE_BOOK);
    if (due) sample(&c, a, limit, false, sp, n);
    prof_mark(prof, COWMEM__PHASE_SAMPLE);
    c.runs = LOAD(st->hs.runs);
    c.own_hot = slot->reset_mark != 0 && slot->reset_mark == LOAD(st->hs.version) + 1;
    /* No hot page: no run listed, one discard of everything. */
    if (c.runs <= COWMEM__HOTSET_LISTED)
      settle_listed(&c, 0, pages);
    else
      settle_bits(&c, 0, pages);
  }
  restore_flush(&c);
  prof_mark(prof, COWMEM__PHASE_COPY);
  /* A blind reset whose discard is one call (no list filled up) can leave
   * it to the caller, who queues it with other slots': one call for many
   * resets. The slot is finished after it. */
  bool deferred = defer != NULL && c.blind && c.err == 0 && c.nd > 0 && c.calls == 0;
  if (deferred) {
    memcpy(defer, c.d, c.nd * sizeof *defer);
    *ndefer = c.nd;
    c.nd = 0;
  }
  discard_flush(&c);
  prof_mark(prof, COWMEM__PHASE_DECOMMIT);
  if (c.copied) cowmem__stripe_add(si, &sp->copied, c.copied);
  if (c.discarded) cowmem__stripe_add(si, &sp->discarded, c.discarded);
  if (c.calls) cowmem__stripe_add(si, &sp->discard_calls, c.calls);
  if (c.err) return cowmem__slot_fail(slot, c.err);
  /* Every page settled (the queued discard too, before the slot is used
   * again): against hot set hv if no sample rewrote it meanwhile. Without
   * a count now, none is kept: an older one would still be right (no
   * fault since then is none since this reset), but a miss against it
   * would count as faults seen. */
  atomic_thread_fence(memory_order_acquire);
  bool settled = hv % 2 == 0 && LOAD(st->hs.version) == hv;
  slot->reset_faults = counted ? faults : 0;
  slot->reset_quiet = settled ? hv + 1 : 0;
  slot->reset_span = slot->accessible;
  if (deferred) {
    /* The flush asks the count before its discard: nothing touches the
     * slot meanwhile, and after the discard only a fault changes it. */
    if (settled && quiet_allowed(a, sp, n)) slot->reset_wait = COWMEM__WAIT_STAMP;
    prof_end(prof);
    return COWMEM__ADAPTIVE_DEFERRED;
  }
  int res = cowmem__slot_finish_reset(slot);
  prof_mark(prof, COWMEM__PHASE_FINISH);
  prof_end(prof);
  return res;
}

int cowmem__adaptive_reset(cowmem__adaptive_t* a, cowmem_slot_t* slot,
                           cowmem__os_range_t* defer, size_t* ndefer) {
  return adaptive_reset(a, slot, defer, ndefer, AT_RELEASE, 0);
}

bool cowmem__adaptive_flush_count(cowmem_slot_t* const* slots, size_t n,
                                  uint64_t* faults) {
  for (size_t i = 0; i < n; i++)
    if (slots[i]->reset_wait != COWMEM__WAIT_NONE)
      return cowmem__os_fault_count(faults) == 0;
  return false;
}

int cowmem__adaptive_flushed(cowmem__adaptive_t* a, cowmem_slot_t* slot, int err,
                             bool counted, uint64_t faults) {
  int wait = slot->reset_wait;
  slot->reset_wait = COWMEM__WAIT_NONE;
  if (wait == COWMEM__WAIT_VERIFY) {
    image_state_t* st = slot->reset_state; /* set: the reset that queued it found it */
    int si = cowmem__os_stripe();
    stripe_t* sp = &st->stripe[si];
    if (counted && faults == slot->reset_faults) {
      cowmem__stripe_add(si, &sp->quiet, 1);
      if (LOAD(sp->unquiet) != 0)
        atomic_store_explicit(&sp->unquiet, 0, memory_order_relaxed);
      return cowmem__slot_finish_reset(slot);
    }
    /* The count read is the settling reset's stamp, unless the thread is
     * backing off. */
    bool stamp = counted && quiet_moved(a, si, sp, LOAD(sp->resets));
    int res = adaptive_reset(a, slot, NULL, NULL,
                             stamp ? SETTLE_COUNTED : SETTLE_UNCOUNTED, faults);
    return res == COWMEM__ADAPTIVE_DECLINED ? cowmem_slot_reset(slot) : res;
  }
  if (err) return cowmem__slot_fail(slot, err);
  if (wait == COWMEM__WAIT_STAMP && counted) slot->reset_faults = faults;
  return cowmem__slot_finish_reset(slot);
}

/* ---- metrics ---- */

void cowmem__adaptive_image_metrics(cowmem__adaptive_t* a, const cowmem_image_t* image,
                                    cowmem_pool_image_metrics_t* out) {
  memset(out, 0, sizeof *out);
  out->version = COWMEM_POOL_IMAGE_METRICS_VERSION;
  image_state_t* st = a == NULL ? NULL : state_find(a, cowmem__image_key(image));
  if (st == NULL) return;
  out->hot_pages = LOAD(st->hs.pages);
  out->samples = LOAD(st->hs.samples);
  out->sampled_dirty_pages = LOAD(st->hs.sampled_dirty);
  for (int i = 0; i < COWMEM__STRIPES; i++) {
    stripe_t* sp = &st->stripe[i];
    out->resets += LOAD(sp->resets);
    out->missed_pages += LOAD(sp->missed);
    out->copied_pages += LOAD(sp->copied);
    out->discarded_pages += LOAD(sp->discarded);
    out->discard_calls += LOAD(sp->discard_calls);
    out->scans += LOAD(sp->scans);
    out->quiet_resets += LOAD(sp->quiet);
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
    for (int k = 0; k < COWMEM__STRIPES; k++) {
      *copied += LOAD(st->stripe[k].copied);
      *discarded += LOAD(st->stripe[k].discarded);
    }
  }
  pthread_mutex_unlock(&a->lock);
}
