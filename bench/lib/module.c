/* One module's memory given to instances every way (module.h). */
#include "module.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "scale.h"
#include "wasmtime.h"

static const size_t k_reserve = (size_t)8 << 30; /* wasm2c's 8 GiB */

static void touch(uint8_t* base, size_t size, size_t k, size_t lines) {
  size_t page = cowmem_page_size(), pages = size / page, per = page / 64;
  if (pages == 0) return;
  if (lines == 0) lines = 1;
  if (lines > per) lines = per;
  for (size_t i = 0; i < k; i++) {
    size_t p = k >= pages ? i % pages : i * pages / k;
    /* lines of the page's per, spread evenly; a byte of each */
    for (size_t l = 0; l < lines; l++)
      base[p * page + (l * per / lines) * 64 + (i & 63)] += 1;
  }
}

static _Atomic uint64_t read_sink;

/* The instance's work between instantiate and reset: read the fraction of
 * the image's pages the options ask for (one byte a page), write K pages
 * (a byte in each of `lines` lines of each). */
static void work(const bench_mod_t* c, uint8_t* base) {
  size_t n = c->read_hi - c->read_lo, want = (size_t)(c->read * (double)n + 0.5);
  if (want > 0) {
    size_t page = cowmem_page_size();
    uint64_t sum = 0;
    for (size_t i = 0; i < want; i++)
      sum += ((volatile uint8_t*)base)[(c->read_lo + i * n / want) * page + 64];
    read_sink += sum;
  }
  touch(base, c->size, c->dirty, c->lines);
}

/* Minor faults over the measured iterations: mark at each iteration's top,
 * end after the loop. */
static void faults_mark(const bench_mod_t* c, bench_row_t* r, size_t it) {
  if (it == c->warm) r->faults = bench_minor_faults();
}
static void faults_end(bench_row_t* r) {
  r->faults = bench_minor_faults() - r->faults;
}

static void copy_segments(const bench_mod_t* c, uint8_t* base) {
  for (size_t i = 0; i < c->nsegs; i++)
    memcpy(base + c->segs[i].offset, c->segs[i].data, c->segs[i].len);
}

static void record(bench_row_t* r, bool measured, uint64_t t0, uint64_t t1, uint64_t t2,
                   uint64_t t3) {
  if (!measured) return;
  bench_add(&r->inst, (double)(t1 - t0));
  bench_add(&r->reset, (double)(t3 - t2));
  bench_add(&r->cycle, (double)(t3 - t0));
}

int bench_mod_copy_fresh(const bench_mod_t* c, bench_row_t* r) {
  for (size_t it = 0; it < c->warm + c->iters; it++) {
    faults_mark(c, r, it);
    uint64_t t0 = bench_now_ns();
    uint8_t* base = mmap(NULL, k_reserve, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED || mprotect(base, c->size, PROT_READ | PROT_WRITE))
      return -errno;
    copy_segments(c, base);
    uint64_t t1 = bench_now_ns();
    work(c, base);
    uint64_t t2 = bench_now_ns();
    munmap(base, k_reserve);
    uint64_t t3 = bench_now_ns();
    record(r, it >= c->warm, t0, t1, t2, t3);
  }
  faults_end(r);
  return 0;
}

int bench_mod_copy_reuse(const bench_mod_t* c, bench_row_t* r) {
  uint8_t* base = mmap(NULL, c->size ? c->size : 1, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return -errno;
  for (size_t it = 0; it < c->warm + c->iters; it++) {
    faults_mark(c, r, it);
    uint64_t t0 = bench_now_ns();
    copy_segments(c, base);
    uint64_t t1 = bench_now_ns();
    work(c, base);
    uint64_t t2 = bench_now_ns();
    memset(base, 0, c->size); /* the runtime cannot know what was written */
    uint64_t t3 = bench_now_ns();
    record(r, it >= c->warm, t0, t1, t2, t3);
  }
  faults_end(r);
  munmap(base, c->size ? c->size : 1);
  return 0;
}

static int apply_left(const bench_mod_t* c, uint8_t* base, cowmem_image_t* img) {
  if (!c->apply_left) return 0;
  return cowmem_module_apply(c->m, c->mem, &(cowmem_memory_view_t){base, c->size}, 1, NULL, 0, img != NULL ? COWMEM_APPLY_SKIP_COVERED : 0, NULL);
}

int bench_mod_slot(const bench_mod_t* c, cowmem_image_t* img, bench_row_t* r) {
  cowmem_slot_t* s = NULL;
  int e = cowmem_slot_new(c->size ? c->size : cowmem_page_size(), &s);
  for (size_t it = 0; e == 0 && it < c->warm + c->iters; it++) {
    faults_mark(c, r, it);
    uint64_t t0 = bench_now_ns();
    e = cowmem_slot_instantiate(s, c->size, img);
    if (e == 0) e = apply_left(c, cowmem_slot_base(s), img);
    uint64_t t1 = bench_now_ns();
    if (e == 0) work(c, cowmem_slot_base(s));
    uint64_t t2 = bench_now_ns();
    if (e == 0) e = cowmem_slot_reset(s);
    uint64_t t3 = bench_now_ns();
    record(r, it >= c->warm, t0, t1, t2, t3);
  }
  faults_end(r);
  cowmem_slot_free(s);
  return e;
}

int bench_mod_pool(const bench_mod_t* c, cowmem_reset_strategy_t strat, bench_row_t* r) {
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.reset = strat;
  cfg.max_slots = 64;
  cfg.batch_size = 16;
  if (cfg.slot_reserve < c->size) cfg.slot_reserve = c->size;
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t why;
  int e = cowmem_pool_new(&cfg, &pool, &why);
  bench_look_t from = {0};
  for (size_t it = 0; e == 0 && it < c->warm + c->iters; it++) {
    faults_mark(c, r, it);
    if (it == c->warm) from = bench_counts_look(pool, c->image);
    cowmem_slot_t* s = NULL;
    uint64_t t0 = bench_now_ns();
    e = cowmem_pool_acquire(pool, c->image, c->size, c->size, &s);
    if (e == 0) e = apply_left(c, cowmem_slot_base(s), c->image);
    uint64_t t1 = bench_now_ns();
    if (e == 0) work(c, cowmem_slot_base(s));
    uint64_t t2 = bench_now_ns();
    if (s) {
      int e2 = cowmem_pool_release(pool, s);
      if (e == 0) e = e2;
    }
    uint64_t t3 = bench_now_ns();
    record(r, it >= c->warm, t0, t1, t2, t3);
  }
  faults_end(r);
  if (e == 0) {
    bench_look_t to = bench_counts_look(pool, c->image);
    r->counts = bench_counts_between(&from, &to);
  }
  cowmem_pool_free(pool);
  return e;
}

/* Wasmtime's reset modes on the module's layout (bench/lib/wasmtime.h): the
 * memory stays mapped between instances as in its pooling allocator, so an
 * instance is the segments the image does not cover; reset per mode. */
static int wt_setup(const bench_mod_t* c, wt_mem_t* w, uint8_t** bytes) {
  cowmem_image_info_t ii = {0};
  if (c->image) cowmem_image_info(c->image, &ii);
  *w = (wt_mem_t){.base = NULL, .pagemap = -1};
  *bytes = malloc(ii.len ? ii.len : 1);
  if (*bytes == NULL) return COWMEM_ENOMEM;
  int e = ii.len ? cowmem_image_read(c->image, ii.mem_offset, *bytes, ii.len) : 0;
  if (e == 0 && wt_open(w, c->size ? c->size : cowmem_page_size(), *bytes, ii.len,
                        ii.mem_offset, (size_t)64 << 10, (size_t)1 << 20) != 0)
    e = -errno;
  return e;
}

static void wt_teardown(wt_mem_t* w, uint8_t* bytes) {
  if (w->base != NULL) wt_close(w);
  free(bytes);
}

int bench_mod_wasmtime(const bench_mod_t* c, int mode, bench_row_t* r) {
  wt_mem_t w;
  uint8_t* bytes;
  int e = wt_setup(c, &w, &bytes);
  for (size_t it = 0; e == 0 && it < c->warm + c->iters; it++) {
    faults_mark(c, r, it);
    uint64_t t0 = bench_now_ns();
    e = apply_left(c, w.base, c->image);
    uint64_t t1 = bench_now_ns();
    work(c, w.base);
    uint64_t t2 = bench_now_ns();
    wt_reset(&w, mode);
    uint64_t t3 = bench_now_ns();
    record(r, it >= c->warm, t0, t1, t2, t3);
  }
  faults_end(r);
  wt_teardown(&w, bytes);
  return e;
}

/* ---- scaling: N threads of one pool, N processes of their own ---- */

/* A scaling worker: pool cycles of a strategy on the pool the threads share
 * (or, in a process, a pool of its own), or (strat -3) Wasmtime's
 * pagemap_scan mode on a memory of the worker's own. */
typedef struct {
  const bench_mod_t* c;
  cowmem_pool_t* shared; /* NULL: each worker makes one (a process) */
  int strat;
  bool memfd; /* the module's image, not the .cwimg's (as the rows) */
} scale_ctx_t;

typedef struct {
  const bench_mod_t* c;
  cowmem_pool_t* pool; /* NULL: Wasmtime's mode on w */
  cowmem_image_t* img;
  bool own;
  wt_mem_t w;
  uint8_t* bytes;
} scale_state_t;

static int new_pool(const bench_mod_t* c, int strat, size_t slots, cowmem_pool_t** pool) {
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.reset = (cowmem_reset_strategy_t)strat;
  cfg.max_slots = slots;
  if (cfg.slot_reserve < c->size) cfg.slot_reserve = c->size;
  cowmem_diag_t why;
  return cowmem_pool_new(&cfg, pool, &why);
}

static void scale_close(void* state) {
  scale_state_t* st = state;
  if (st->own) cowmem_pool_free(st->pool);
  if (st->pool == NULL) wt_teardown(&st->w, st->bytes);
  free(st);
}

static int scale_open(void* ctx, void** state) {
  scale_ctx_t* sc = ctx;
  scale_state_t* st = calloc(1, sizeof *st);
  if (st == NULL) return COWMEM_ENOMEM;
  st->c = sc->c;
  st->pool = sc->shared;
  st->img = sc->memfd || !sc->c->file_image ? sc->c->image : sc->c->file_image;
  int e = 0;
  if (sc->strat == BENCH_MOD_WASMTIME) {
    e = wt_setup(sc->c, &st->w, &st->bytes);
  } else if (st->pool == NULL) {
    st->own = true;
    e = new_pool(sc->c, sc->strat, 8, &st->pool);
  }
  if (e != 0) {
    scale_close(st);
    return e;
  }
  *state = st;
  return 0;
}

static int scale_cycle(void* state) {
  scale_state_t* st = state;
  const bench_mod_t* c = st->c;
  if (st->pool == NULL) { /* Wasmtime's pagemap_scan mode */
    int e = apply_left(c, st->w.base, c->image);
    work(c, st->w.base);
    wt_reset(&st->w, WT_PAGEMAP);
    return e;
  }
  cowmem_image_t* img = st->img;
  cowmem_slot_t* sl = NULL;
  int e = cowmem_pool_acquire(st->pool, img, c->size, c->size, &sl);
  if (e == 0) e = apply_left(c, cowmem_slot_base(sl), img);
  if (e == 0) work(c, cowmem_slot_base(sl));
  if (sl) {
    int e2 = cowmem_pool_release(st->pool, sl);
    if (e == 0) e = e2;
  }
  return e;
}


/* ---- pool-adaptive against Wasmtime's pagemap_scan mode, interleaved ---- */

int bench_mod_duel(const bench_mod_t* c, size_t rounds, size_t block, double* median,
                   double* lo, double* hi) {
  scale_ctx_t ctx[2] = {{c, NULL, COWMEM_RESET_ADAPTIVE, true},
                        {c, NULL, BENCH_MOD_WASMTIME, true}};
  void* st[2] = {NULL, NULL};
  int e = scale_open(&ctx[0], &st[0]);
  if (e == 0) e = scale_open(&ctx[1], &st[1]);
  double t[2] = {0, 0};
  bench_samples_t ratio = {0};
  for (size_t i = 0; e == 0 && i < c->warm; i++)
    for (int k = 0; k < 2 && e == 0; k++)
      e = scale_cycle(st[k]);
  for (size_t r = 0; e == 0 && r < rounds; r++) {
    for (int j = 0; j < 2 && e == 0; j++) {
      int k = (int)(r & 1) ^ j; /* which goes first alternates */
      /* The whole round's time: a deferred discard counts (a median of
       * single cycles would leave out the cycles that flush a queue). */
      uint64_t t0 = bench_now_ns();
      for (size_t i = 0; e == 0 && i < block; i++)
        e = scale_cycle(st[k]);
      t[k] = (double)(bench_now_ns() - t0);
    }
    if (e == 0 && t[0] > 0) bench_add(&ratio, t[1] / t[0]);
  }
  if (e == 0) {
    *median = bench_quantile(&ratio, 0.5);
    *lo = ratio.v[0];
    *hi = ratio.v[ratio.n - 1];
  }
  for (int k = 0; k < 2; k++)
    if (st[k]) scale_close(st[k]);
  bench_free(&ratio);
  return e;
}

const char* bench_reset_name(int s) {
  switch (s) {
  case COWMEM_RESET_MADVISE: return "madvise";
  case COWMEM_RESET_KEEP_RESIDENT: return "keep-resident";
  case COWMEM_RESET_BATCHED: return "batched";
  case COWMEM_RESET_ADAPTIVE: return "adaptive";
  default: return "other";
  }
}

/* The reason into why; returns err. */
static int fail(char* why, size_t why_len, int err, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char* why, size_t why_len, int err, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, why_len, fmt, ap);
  va_end(ap);
  return err;
}

/* Compile the module to a temporary image file and open it (timing opens). */
static int open_cwimg(bench_mod_t* c, char* why, size_t why_len) {
  const char* dir = getenv("TMPDIR");
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/cowmem-bench-XXXXXX.cwimg", dir && *dir ? dir : "/tmp");
  int fd = mkstemps(tmp, 6);
  if (fd < 0) return fail(why, why_len, -errno, "%s: %s", tmp, strerror(errno));
  unlink(tmp);
  int e = cowmem_module_compile(c->m, fd);
  if (e != 0) {
    close(fd);
    return fail(why, why_len, e, "cannot compile an image file: %s", cowmem_strerror(e));
  }
  uint8_t hash[32];
  cowmem_module_hash(c->m, hash);
  for (size_t it = 0; it < 20 + c->iters / 4 && e == 0; it++) {
    cowmem_imgfile_t* f = NULL;
    uint64_t t0 = bench_now_ns();
    e = cowmem_imgfile_open(fd, hash, 0, &f, NULL);
    uint64_t t1 = bench_now_ns();
    if (e == 0 && it == 0) c->file_image = cowmem_image_retain(cowmem_imgfile_image(f, c->mem, NULL));
    cowmem_imgfile_free(f);
    if (it >= 20) bench_add(&c->open_ns, (double)(t1 - t0));
  }
  close(fd);
  if (e != 0)
    return fail(why, why_len, e, "cannot open its image file: %s", cowmem_strerror(e));
  return 0;
}

int bench_mod_setup(bench_mod_t* c, cowmem_module_t* m, bool mem_given, uint64_t mem,
                    char* why, size_t why_len) {
  c->m = m;
  uint32_t n = cowmem_module_memory_count(c->m);
  cowmem_memory_info_t mi;
  bool found = false;
  for (uint32_t i = 0; i < n && !found; i++) {
    if (mem_given && i != mem) continue;
    if (cowmem_module_memory_info(c->m, i, &mi) == 0 && (!mi.imported || mi.fresh)) {
      c->mem = i;
      found = true;
    }
  }
  if (!found)
    return mem_given ? fail(why, why_len, COWMEM_EINVAL, "memory %llu is not a defined memory",
                            (unsigned long long)mem)
                     : fail(why, why_len, COWMEM_EINVAL,
                            "the module defines no memory (one that imports "
                            "its memory: --fresh-imports)");
  if (mi.min_pages > 16384)
    return fail(why, why_len, COWMEM_EINVAL,
                "initial size of %llu pages is beyond what the "
                "bench handles (1 GiB)",
                (unsigned long long)mi.min_pages);
  c->size = (size_t)(mi.min_pages * COWMEM_WASM_PAGE_SIZE);
  cowmem_diag_t diag;
  c->image = cowmem_image_retain(cowmem_module_image(c->m, c->mem, &diag));
  cowmem_image_info_t ii = {0};
  if (c->image) cowmem_image_info(c->image, &ii);
  size_t page = cowmem_page_size();
  c->read_lo = (size_t)(ii.mem_offset / page);
  c->read_hi = ii.len ? (size_t)((ii.mem_offset + ii.len + page - 1) / page) : c->read_lo;
  uint32_t nseg = cowmem_module_segment_count(c->m);
  c->segs = calloc(nseg ? nseg : 1, sizeof *c->segs);
  if (!c->segs) return fail(why, why_len, COWMEM_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < nseg; i++) {
    cowmem_segment_info_t s;
    cowmem_module_segment_info(c->m, i, &s);
    if (s.mode != COWMEM_SEGMENT_ACTIVE || s.memory != c->mem) continue;
    if (!s.covered_by_image) c->apply_left = true;
    uint64_t off = s.offset_kind == COWMEM_OFFSET_CONST ? s.offset : 0;
    if (off > c->size || s.data_len > c->size - off)
      return fail(why, why_len, COWMEM_EINVAL,
                  "segment %u does not fit memory %u: "
                  "instantiation traps",
                  i, c->mem);
    c->segs[c->nsegs++] = (bench_seg_t){s.data, off, s.data_len};
    c->copy_bytes += s.data_len;
  }
  return open_cwimg(c, why, why_len);
}

void bench_mod_free(bench_mod_t* c) {
  bench_free(&c->open_ns);
  cowmem_image_release(c->image);
  cowmem_image_release(c->file_image);
  cowmem_module_free(c->m);
  free(c->segs);
  memset(c, 0, sizeof *c);
}

size_t bench_mod_reads(const bench_mod_t* c) {
  return (size_t)(c->read * (double)(c->read_hi - c->read_lo) + 0.5);
}


void bench_mod_scaling(const bench_mod_t* c, int strat, int n, bool procs, double* one,
                       double* many) {
  *one = *many = 0;
  if (strat == BENCH_MOD_ARITH || strat == BENCH_MOD_MEMCPY) {
    bench_scaling(strat == BENCH_MOD_ARITH ? &bench_control_arith : &bench_control_memcpy, n,
                  procs, c->iters * 20, one, many);
    return;
  }
  scale_ctx_t sc = {c, NULL, strat, false};
  if (!procs && strat >= 0 && new_pool(c, strat, 8 * (size_t)n, &sc.shared) != 0) return;
  bench_worker_t w = {scale_open, scale_cycle, scale_close, &sc};
  bench_scaling(&w, n, procs, c->iters, one, many);
  cowmem_pool_free(sc.shared);
}
