/* Pre-initialization: the snapshot's memories as data, either active
 * segments in the rewritten module (a) or an image file beside it (b).
 *
 * Segments are the runs of non-zero bytes. A zero gap shorter than
 * merge_gap stays inside a segment: a segment's header (flags, memory,
 * offset expression, length) costs 4 to 12 bytes, so splitting at a short
 * gap would grow the module. Runtimes cap the segment count (V8 and
 * Wasmtime at 100,000), so when there are more than max_segments runs the
 * shortest gaps are merged first, which adds the fewest zero bytes. */
#include <stdlib.h>
#include <string.h>

#include "wasm/preinit.h"
#include "wasm/reader.h"

#define CHUNK ((size_t)1 << 20)

typedef struct {
  uint32_t memory;
  uint64_t start, end;
} run_t;

typedef struct {
  run_t* v;
  size_t n, cap;
} runs_t;

static int run_add(runs_t* r, uint32_t memory, uint64_t start, uint64_t end) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    run_t* v = cap > SIZE_MAX / sizeof *v ? NULL : realloc(r->v, cap * sizeof *v);
    if (!v) return COWMEM_ENOMEM;
    r->v = v, r->cap = cap;
  }
  r->v[r->n++] = (run_t){memory, start, end};
  return 0;
}

/* The non-zero runs of one memory's image, short gaps merged. */
static int find_runs(cowmem_image_t* img, uint32_t memory, uint64_t gap,
                     uint8_t* buf, runs_t* out) {
  cowmem_image_info_t ii;
  bool open = false;
  uint64_t rs = 0, re = 0;
  TRY(cowmem_image_info(img, &ii));
  for (uint64_t at = 0; at < ii.len; at += CHUNK) {
    size_t n = ii.len - at < CHUNK ? (size_t)(ii.len - at) : CHUNK;
    TRY(cowmem_image_read(img, ii.mem_offset + at, buf, n));
    for (size_t i = 0; i < n; i++) {
      if (buf[i] == 0) continue;
      uint64_t p = ii.mem_offset + at + i;
      if (open && p - re < gap) {
        re = p + 1;
        continue;
      }
      if (open) TRY(run_add(out, memory, rs, re));
      open = true, rs = p, re = p + 1;
    }
  }
  return open ? run_add(out, memory, rs, re) : 0;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

/* Merge the shortest gaps within a memory until at most max runs remain. */
static int bound_runs(runs_t* r, uint32_t max, cowmem_diag_t* diag) {
  size_t ngaps = 0, need;
  uint64_t* gaps;
  if (r->n <= max) return 0;
  if (!(gaps = malloc(r->n * sizeof *gaps))) return COWMEM_ENOMEM;
  for (size_t i = 1; i < r->n; i++)
    if (r->v[i].memory == r->v[i - 1].memory)
      gaps[ngaps++] = r->v[i].start - r->v[i - 1].end;
  need = r->n - max;
  if (need > ngaps) {
    free(gaps);
    return cowmem__preinit_fail(diag, COWMEM_EINVAL, 0,
                                "max_segments: %u is below the number of "
                                "memories with data", max);
  }
  qsort(gaps, ngaps, sizeof *gaps, cmp_u64);
  uint64_t limit = gaps[need - 1];
  free(gaps);
  size_t k = 0;
  for (size_t i = 1; i < r->n; i++) {
    if (r->v[i].memory == r->v[k].memory && r->v[i].start - r->v[k].end <= limit)
      r->v[k].end = r->v[i].end;
    else
      r->v[++k] = r->v[i];
  }
  r->n = k + 1;
  return 0;
}

/* One active segment holding [start, end) of memory `memory`. */
static int put_segment(const cowmem_module_t* m, const cowmem_preinit_snapshot_t* s,
                       const run_t* run, uint8_t* buf, cowmem__pbuf_t* b) {
  cowmem_memory_info_t mi;
  TRY(cowmem_module_memory_info(m, run->memory, &mi));
  if (run->memory == 0) {
    cowmem__pbuf_byte(b, 0x00);
  } else {
    cowmem__pbuf_byte(b, 0x02);
    cowmem__pbuf_uleb(b, run->memory);
  }
  if (mi.memory64) {
    cowmem__pbuf_byte(b, 0x42);
    cowmem__pbuf_sleb(b, (int64_t)run->start);
  } else {
    cowmem__pbuf_byte(b, 0x41);
    cowmem__pbuf_sleb(b, (int32_t)(uint32_t)run->start);
  }
  cowmem__pbuf_byte(b, 0x0b);
  cowmem__pbuf_uleb(b, run->end - run->start);
  for (uint64_t at = run->start; at < run->end; at += CHUNK) {
    size_t n = run->end - at < CHUNK ? (size_t)(run->end - at) : CHUNK;
    TRY(cowmem_image_read(s->memories[run->memory].image, at, buf, n));
    cowmem__pbuf_add(b, buf, n);
  }
  return 0;
}

/* The original segments: active ones removed (remove) or as empty
 * passive ones, passive ones kept. */
static int original_segments(const cowmem_module_t* m, bool remove,
                             cowmem__pbuf_t* b) {
  static const uint8_t empty_passive[2] = {0x01, 0x00};
  size_t len;
  const uint8_t* bytes = cowmem_module_bytes(m, &len);
  uint32_t n = cowmem_module_segment_count(m);
  for (uint32_t i = 0; i < n; i++) {
    cowmem_segment_info_t s;
    TRY(cowmem_module_segment_info(m, i, &s));
    if (s.mode != COWMEM_SEGMENT_ACTIVE)
      cowmem__pbuf_add(b, bytes + s.segment_offset,
                       (size_t)(s.segment_end - s.segment_offset));
    else if (!remove)
      cowmem__pbuf_add(b, empty_passive, sizeof empty_passive);
  }
  return 0;
}

int cowmem__preinit_data(const cowmem_module_t* m,
                         const cowmem_preinit_snapshot_t* snap,
                         const cowmem_preinit_options_t* opt, bool images,
                         uint32_t nkept, cowmem__pbuf_t* payload, uint32_t* count,
                         cowmem_diag_t* diag) {
  runs_t runs = {0};
  uint8_t* buf = NULL;
  int err = 0;
  if (!images) {
    if (!(buf = malloc(CHUNK))) return COWMEM_ENOMEM;
    for (uint32_t i = 0; i < snap->nmemories && err == 0; i++)
      if (snap->memories[i].image)
        err = find_runs(snap->memories[i].image, i, opt->merge_gap, buf, &runs);
    if (err == 0) err = bound_runs(&runs, opt->max_segments, diag);
    if (err == 0 && runs.n > UINT32_MAX - nkept)
      err = cowmem__preinit_fail(diag, COWMEM_EINVAL, 0, "too many segments");
  }
  cowmem__pbuf_uleb(payload, nkept + runs.n);
  if (err == 0)
    err = original_segments(m, nkept < cowmem_module_segment_count(m), payload);
  for (size_t i = 0; i < runs.n && err == 0; i++)
    err = put_segment(m, snap, &runs.v[i], buf, payload);
  free(runs.v);
  free(buf);
  if (err == 0) *count = nkept + (uint32_t)runs.n;
  return err;
}

int cowmem__preinit_images(const cowmem_module_t* m,
                           const cowmem_preinit_snapshot_t* snap,
                           const uint8_t* module, size_t len, int fd) {
  uint32_t n = snap->nmemories;
  uint8_t hash[32];
  cowmem_imgfile_memory_t* mems = calloc(n ? n : 1, sizeof *mems);
  int err = 0;
  if (!mems) return COWMEM_ENOMEM;
  for (uint32_t i = 0; i < n && err == 0; i++) {
    cowmem_memory_info_t mi;
    err = cowmem_module_memory_info(m, i, &mi);
    mems[i].index = i;
    mems[i].imported = mems[i].fresh = mi.imported;
    mems[i].memory64 = mi.memory64, mems[i].shared = mi.shared;
    mems[i].has_max = mi.has_max, mems[i].max_pages = mi.max_pages;
    mems[i].min_pages = snap->memories[i].pages;
    mems[i].image = snap->memories[i].image;
    mems[i].noimage = COWMEM_NOIMAGE_NONE;
    mems[i].snapshot = true;
  }
  cowmem_sha256(module, len, hash);
  if (err == 0) err = cowmem_imgfile_write(fd, mems, n, hash);
  free(mems);
  return err;
}
