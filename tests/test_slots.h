/* Helpers the tests of images, slots, resets, ADAPTIVE and snapshots share
 * (test_image, test_slot, test_reset, test_adaptive, test_snapshot): the
 * page size, images of known bytes, pools of one strategy, byte checks and
 * residency. Each test sets PS (or calls setup()) first. */
#ifndef COWMEM_TEST_SLOTS_H
#define COWMEM_TEST_SLOTS_H

#include <dirent.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "cowmem.h"
#include "dirty.h"
#include "internal.h"
#include "slot/slot.h"
#include "test.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static size_t PS; /* the page size */

static inline void setup(void) {
  PS = cowmem_page_size();
  cowmem__os_inject_clear();
}

/* Every byte of [off, off+len) of the slot equals v. */
static inline int expect_bytes(const cowmem_slot_t* s, size_t off, size_t len, uint8_t v) {
  const uint8_t* p = (const uint8_t*)cowmem_slot_base(s) + off;
  for (size_t i = 0; i < len; i++)
    if (p[i] != v) {
      fprintf(stderr, "byte %zu is 0x%02x, expected 0x%02x\n", off + i, p[i], v);
      return 1;
    }
  return 0;
}

/* The slot's accessible memory equals the image, and zeros elsewhere. */
static inline int expect_image(const cowmem_slot_t* s, const cowmem_image_t* img) {
  size_t n = cowmem_slot_accessible(s);
  uint8_t* want = malloc(n ? n : 1);
  if (want == NULL) return 1;
  memset(want, 0, n);
  if (img != NULL && cowmem_image_read(img, 0, want, n) != 0) {
    free(want);
    return 1;
  }
  const uint8_t* p = cowmem_slot_base(s);
  int r = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] != want[i]) {
      fprintf(stderr, "byte %zu is 0x%02x, expected 0x%02x\n", i, p[i], want[i]);
      r = 1;
      break;
    }
  free(want);
  return r;
}

static inline int count_fds(void) {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

/* An image of `len` bytes at `off`, every byte `fill`. */
static inline cowmem_image_t* make_image(size_t off, size_t len, uint8_t fill) {
  uint8_t* b = malloc(len);
  memset(b, fill, len);
  cowmem_image_t* img = NULL;
  if (cowmem_image_new_from_bytes(b, len, off, &img) != 0) img = NULL;
  free(b);
  return img;
}

static inline bool is_copy(const cowmem_image_t* img) {
  cowmem_image_info_t info;
  return cowmem_image_info(img, &info) == 0 && info.kind == COWMEM_IMAGE_COPY;
}


/* An image over pages [first, first + npages) whose pages in [hole_lo,
 * hole_hi) (relative) are zero: two runs, so copies and holes are tested. */
static inline cowmem_image_t* holed_image(size_t first, size_t npages, size_t hole_lo,
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

static inline cowmem_pool_t* make_pool(cowmem_reset_strategy_t reset, size_t slots,
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
static inline int same_bytes(const uint8_t* have, const uint8_t* want, size_t n,
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

static inline void written_add_(void* arg, uint8_t* addr, size_t len) {
  (void)addr;
  *(size_t*)arg += len / PS;
}

/* Pages of [base, base+len) the process wrote (PAGEMAP_SCAN: the slot's
 * own copies, not pages mapping the image or the zero page); -1 without
 * the scan. */
static inline size_t written_pages(uint8_t* base, size_t len) {
  size_t n = 0;
  if (cowmem__os_written_ranges(base, len, written_add_, &n) != 0) return (size_t)-1;
  return n;
}

static inline bool resident(const void* p) {
  size_t bytes = 0;
  if (cowmem__os_resident((void*)p, PS, &bytes) != 0) return false;
  return bytes != 0;
}

typedef struct {
  uint8_t* base;
  uint8_t seen[64];
} seen_t;

static inline void note_range(void* arg, uint8_t* addr, size_t len) {
  seen_t* s = arg;
  for (size_t p = (size_t)(addr - s->base) / PS; p < (size_t)(addr - s->base + len) / PS;
       p++)
    s->seen[p]++;
}

/* Whether a read of untouched anonymous memory maps the shared zero page
 * (most kernels) or allocates a page of its own (seen on one 6.18 VM: two
 * read pages had different frames). Where it allocates, PAGEMAP_SCAN cannot
 * tell the read from a write, and the reset decommits it like one. */
static inline bool anon_read_allocates(void) {
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

typedef struct {
  const uint8_t* base;
  uint8_t* mapped; /* a byte a page */
} mapped_pages_t;

static inline void note_mapped(void* arg, uint8_t* addr, size_t len) {
  mapped_pages_t* m = arg;
  for (size_t p = (size_t)(addr - m->base) / PS; p < (size_t)(addr - m->base + len) / PS;
       p++)
    m->mapped[p] = 1;
}

/* same_bytes over whole pages, without allocating memory where a read of
 * untouched anonymous memory would (anon_read_allocates): there, a page
 * that is in no page table and should hold zeros is zeros by the kernel's
 * guarantee, and is not read (reading it would make it look written to the
 * next reset's scan). Every other page is compared. */
static inline int same_pages_(const uint8_t* have, const uint8_t* want, size_t pages,
                              bool data_too, const char* what);
static inline int same_pages_unread(const uint8_t* have, const uint8_t* want, size_t pages,
                                    bool zero_allocates, const char* what) {
  if (!zero_allocates) return same_bytes(have, want, pages * PS, what);
  return same_pages_(have, want, pages, true, what);
}

/* same_bytes over the pages in the page tables only, which a read does not
 * fault (and so does not move the process's fault count): every page an
 * instance could have written is one of them; the others read as the
 * image's file or zeros by the kernel's guarantee. Needs PAGEMAP_SCAN. */
static inline int same_pages_mapped(const uint8_t* have, const uint8_t* want,
                                    size_t pages, const char* what) {
  return same_pages_(have, want, pages, false, what);
}

/* Compare the mapped pages, and with data_too the unmapped ones that
 * should hold more than zeros. */
static inline int same_pages_(const uint8_t* have, const uint8_t* want, size_t pages,
                              bool data_too, const char* what) {
  mapped_pages_t m = {have, calloc(pages, 1)};
  if (m.mapped == NULL ||
      cowmem__os_mapped_ranges((void*)have, pages * PS, note_mapped, &m) != 0) {
    free(m.mapped);
    fprintf(stderr, "%s: cannot read the page tables\n", what);
    return 1;
  }
  static const uint8_t zeros[65536];
  for (size_t p = 0; p < pages; p++) {
    const uint8_t* w = want + p * PS;
    bool zero = true;
    for (size_t o = 0; o < PS && zero; o += sizeof zeros)
      zero = memcmp(w + o, zeros, PS - o < sizeof zeros ? PS - o : sizeof zeros) == 0;
    if ((m.mapped[p] || (data_too && !zero)) &&
        same_bytes(have + p * PS, w, PS, what) != 0) {
      fprintf(stderr, "%s: in page %zu\n", what, p);
      free(m.mapped);
      return 1;
    }
  }
  free(m.mapped);
  return 0;
}

/* Read pages [lo, hi) of an instance (image pages and zeros), as a program
 * reads its data: mapped, never written. */
static inline uint64_t read_pages(const uint8_t* m, size_t lo, size_t hi) {
  uint64_t sum = 0;
  for (size_t p = lo; p < hi; p++)
    sum += ((const volatile uint8_t*)m)[p * PS + (p * 97) % PS];
  return sum;
}

#endif
