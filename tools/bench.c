/* cowmem bench [module.wasm] [--memory I] [--dirty K] [--read F]
 *              [--iterations N] [--threads N] [--processes N]
 *              [--fresh-imports] [--json] [--plot FILE]
 *
 * One run, one module, every way of giving an instance its initial memory:
 * the copy baselines as C runtimes do it today, a cowmem slot (image from
 * the module and from its compiled .cwimg), and a cowmem pool with each
 * reset strategy. Each row measures instantiate, reset, and the whole cycle,
 * which is the request (instantiate + the instance reading a fraction of
 * the image's pages and writing K pages + reset), with its minor page
 * faults, so deferred page faults are not hidden: the copy baselines fault
 * everything in during the copy, cowmem on the instance's first touch, and
 * a reset that drops pages the next instance reads shows up as faults. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "tools.h"

static void help(FILE* f) {
  fprintf(f, "Usage: cowmem bench [MODULE.wasm] [--memory I] [--dirty K] [--read F]\n"
             "                    [--iterations N] [--threads N] [--processes N]\n"
             "                    [--fresh-imports] [--json] [--plot FILE]\n"
             "\n"
             "Instantiation and reset of one memory, side by side, in one run:\n"
             "  copy-fresh      what C runtimes do today (wasm2c's stock\n"
             "                  runtime): reserve fresh memory (mmap 8 GiB\n"
             "                  PROT_NONE + mprotect), copy every active\n"
             "                  segment; reset = free (munmap)\n"
             "  copy-reuse      the same copy into memory kept between\n"
             "                  instances; reset = zero the initial size\n"
             "  slot            cowmem slot with the module's image (memfd)\n"
             "  slot-cwimg      cowmem slot with the image mapped from the\n"
             "                  module's compiled .cwimg\n"
             "  pool-STRATEGY   cowmem pool acquire/release, per reset strategy\n"
             "  wasmtime-MODE   Wasmtime's pooling allocator's three reset\n"
             "                  modes redone at the system-call level on the\n"
             "                  same layout (default: madvise all; keep64k:\n"
             "                  copy back 64 KiB, madvise the rest; pagemap:\n"
             "                  one scan of 32 regions, copy back up to 1 MiB),\n"
             "                  and pool-adaptive's ratio to each\n"
             "Each instance reads a fraction F of the image's pages and writes K\n"
             "pages (both spread evenly) between instantiate and reset; 'cycle'\n"
             "times all three (the whole request), 'faults' is its minor page\n"
             "faults (getrusage). Medians and p99 after a warm-up, and the ratio\n"
             "of the copy-fresh median to each.\n"
             "Without MODULE, the bundled demo.wasm is used.\n"
             "\n"
             "Options:\n"
             "  --memory I       memory index (default: the first defined one)\n"
             "  --dirty K        pages each instance writes (default 8)\n"
             "  --read F         fraction of the image's pages each instance reads,\n"
             "                   0 to 1 (default 0)\n"
             "  --iterations N   measured iterations per row (default 2000)\n"
             "  --threads N      also: pool cycles/s of N threads sharing one pool\n"
             "                   against one thread, per strategy, beside two\n"
             "                   controls of the same run (arithmetic; private\n"
             "                   64 KiB copies) that show what the machine gives,\n"
             "                   and Wasmtime's pagemap mode with a memory per\n"
             "                   worker: what the kernel lets a reset that scans\n"
             "                   every instance scale to\n"
             "  --processes N    the same with N processes, each its own pool over\n"
             "                   the same .cwimg\n"
             TOOL_FRESH_HELP
             "  --json           machine-readable output\n"
             "  --plot FILE      also draw latency by strategy with gnuplot\n"
             "                   (FILE.svg or FILE.png)\n"
             "  --help           this text\n");
}

typedef struct {
  const uint8_t* data;
  uint64_t offset;
  uint64_t len;
} seg_t;

typedef struct {
  cowmem_module_t* m;
  uint32_t mem;
  size_t size; /* initial bytes */
  seg_t* segs; /* active segments of the memory (baselines copy them) */
  size_t nsegs;
  uint64_t copy_bytes;
  cowmem_image_t* image;      /* from the module */
  cowmem_image_t* file_image; /* from the compiled .cwimg */
  bool apply_left;            /* segments the image does not cover */
  size_t dirty;
  double read;                /* fraction of the image's pages read */
  size_t read_lo, read_hi;    /* the image's pages, [lo, hi) */
  unsigned flags;             /* module parse flags (--fresh-imports) */
  size_t iters, warm;
  bench_samples_t open_ns;
} ctx_t;

typedef struct {
  char name[32];
  const char* covers;
  bench_samples_t inst, reset, cycle;
  uint64_t faults; /* minor faults over the measured cycles */
  bool failed;
} row_t;

static const size_t k_reserve = (size_t)8 << 30; /* wasm2c's 8 GiB */

static void touch(uint8_t* base, size_t size, size_t k) {
  size_t page = cowmem_page_size(), pages = size / page;
  if (pages == 0) return;
  for (size_t i = 0; i < k; i++) {
    size_t p = k >= pages ? i % pages : i * pages / k;
    base[p * page + (i & 63)] += 1;
  }
}

static _Atomic uint64_t read_sink;

/* The instance's work between instantiate and reset: read the fraction of
 * the image's pages the options ask for (one byte a page), write K pages. */
static void work(const ctx_t* c, uint8_t* base) {
  size_t n = c->read_hi - c->read_lo, want = (size_t)(c->read * (double)n + 0.5);
  if (want > 0) {
    size_t page = cowmem_page_size();
    uint64_t sum = 0;
    for (size_t i = 0; i < want; i++)
      sum += ((volatile uint8_t*)base)[(c->read_lo + i * n / want) * page + 64];
    read_sink += sum;
  }
  touch(base, c->size, c->dirty);
}

/* Minor faults over the measured iterations: mark at each iteration's top,
 * end after the loop. */
static void faults_mark(const ctx_t* c, row_t* r, size_t it) {
  if (it == c->warm) r->faults = bench_minor_faults();
}
static void faults_end(row_t* r) {
  r->faults = bench_minor_faults() - r->faults;
}

static void copy_segments(const ctx_t* c, uint8_t* base) {
  for (size_t i = 0; i < c->nsegs; i++)
    memcpy(base + c->segs[i].offset, c->segs[i].data, c->segs[i].len);
}

static void record(row_t* r, bool measured, uint64_t t0, uint64_t t1, uint64_t t2,
                   uint64_t t3) {
  if (!measured) return;
  bench_add(&r->inst, (double)(t1 - t0));
  bench_add(&r->reset, (double)(t3 - t2));
  bench_add(&r->cycle, (double)(t3 - t0));
}

static int run_copy_fresh(const ctx_t* c, row_t* r) {
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

static int run_copy_reuse(const ctx_t* c, row_t* r) {
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

static int apply_left(const ctx_t* c, uint8_t* base, cowmem_image_t* img) {
  if (!c->apply_left) return 0;
  return cowmem_module_apply(c->m, c->mem, &(cowmem_memory_view_t){base, c->size}, 1, NULL, 0, img != NULL ? COWMEM_APPLY_SKIP_COVERED : 0, NULL);
}

static int run_slot(const ctx_t* c, cowmem_image_t* img, row_t* r) {
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

static int run_pool(const ctx_t* c, cowmem_reset_strategy_t strat, row_t* r) {
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.reset = strat;
  cfg.max_slots = 64;
  cfg.batch_size = 16;
  if (cfg.slot_reserve < c->size) cfg.slot_reserve = c->size;
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t why;
  int e = cowmem_pool_new(&cfg, &pool, &why);
  for (size_t it = 0; e == 0 && it < c->warm + c->iters; it++) {
    faults_mark(c, r, it);
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
  cowmem_pool_free(pool);
  return e;
}

/* Wasmtime's reset modes on the module's layout (bench/lib/wasmtime.h): the
 * memory stays mapped between instances as in its pooling allocator, so an
 * instance is the segments the image does not cover; reset per mode. */
static int wt_setup(const ctx_t* c, wt_mem_t* w, uint8_t** bytes) {
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

static int run_wasmtime(const ctx_t* c, int mode, row_t* r) {
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

static const char* strategy_name(int s);

/* ---- scaling: N threads of one pool, N processes of their own ---- */

typedef struct {
  const ctx_t* c;
  cowmem_pool_t* pool; /* threads share it; NULL: make one (a process) */
  int strat;           /* -1, -2: the controls; -3: Wasmtime's pagemap_scan */
  size_t iters;
  double per_s;
  int err;
} scale_arg_t;

static _Atomic uint64_t scale_sink;

static void* scale_run(void* p) {
  scale_arg_t* a = p;
  const ctx_t* c = a->c;
  a->err = 0;
  if (a->strat == -3) {
    /* Wasmtime's pagemap_scan mode on a memory of the worker's own: a scan
     * per instance and no pool, so what the kernel lets such a reset scale
     * to (its scans take locks of the whole process). */
    wt_mem_t w;
    uint8_t* bytes;
    a->err = wt_setup(c, &w, &bytes);
    uint64_t t0 = 0;
    for (size_t it = 0; it < a->iters + a->iters / 10 && a->err == 0; it++) {
      if (it == a->iters / 10) t0 = bench_now_ns();
      a->err = apply_left(c, w.base, c->image);
      work(c, w.base);
      wt_reset(&w, WT_PAGEMAP);
    }
    a->per_s = (double)a->iters / ((double)(bench_now_ns() - t0) / 1e9);
    wt_teardown(&w, bytes);
    return NULL;
  }
  if (a->strat < 0) {
    /* Controls: arithmetic only; 64 KiB copies between private buffers. */
    uint8_t* src = malloc(65536);
    uint8_t* dst = malloc(65536);
    if (!src || !dst) abort();
    memset(src, 3, 65536);
    uint64_t t0 = bench_now_ns(), x = 0;
    size_t n = a->iters * 20;
    for (size_t i = 0; i < n; i++) {
      if (a->strat == -1) {
        for (int j = 0; j < 200; j++)
          x += (i + (uint64_t)j) * (i ^ (uint64_t)j);
      } else {
        memcpy(dst, src, 65536);
        src[i & 63] = dst[(i * 7) & 63];
      }
    }
    a->per_s = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
    scale_sink += x + dst[5];
    free(src);
    free(dst);
    return NULL;
  }
  cowmem_pool_t* pool = a->pool;
  if (pool == NULL) {
    cowmem_pool_config_t cfg;
    cowmem_pool_config_init(&cfg);
    cfg.reset = (cowmem_reset_strategy_t)a->strat;
    cfg.max_slots = 8;
    if (cfg.slot_reserve < c->size) cfg.slot_reserve = c->size;
    cowmem_diag_t why;
    a->err = cowmem_pool_new(&cfg, &pool, &why);
    if (a->err) return NULL;
  }
  cowmem_image_t* img = c->file_image ? c->file_image : c->image;
  uint64_t t0 = 0;
  for (size_t it = 0; it < a->iters + a->iters / 10 && a->err == 0; it++) {
    if (it == a->iters / 10) t0 = bench_now_ns();
    cowmem_slot_t* sl = NULL;
    a->err = cowmem_pool_acquire(pool, img, c->size, c->size, &sl);
    if (a->err == 0) a->err = apply_left(c, cowmem_slot_base(sl), img);
    if (a->err == 0) work(c, cowmem_slot_base(sl));
    if (sl) {
      int e2 = cowmem_pool_release(pool, sl);
      if (a->err == 0) a->err = e2;
    }
  }
  a->per_s = (double)a->iters / ((double)(bench_now_ns() - t0) / 1e9);
  if (a->pool == NULL) cowmem_pool_free(pool);
  return NULL;
}

/* Total operations per second of n workers (threads, or processes that
 * report through a pipe). */
static double scale_total(const ctx_t* c, int strat, int n, bool procs, size_t iters) {
  scale_arg_t a[64];
  pthread_t th[64];
  cowmem_pool_t* pool = NULL;
  if (!procs && strat >= 0) {
    cowmem_pool_config_t cfg;
    cowmem_pool_config_init(&cfg);
    cfg.reset = (cowmem_reset_strategy_t)strat;
    cfg.max_slots = 8 * (size_t)n;
    if (cfg.slot_reserve < c->size) cfg.slot_reserve = c->size;
    cowmem_diag_t why;
    if (cowmem_pool_new(&cfg, &pool, &why) != 0) return 0;
  }
  double total = 0;
  if (procs) {
    int fds[64][2];
    pid_t pids[64];
    for (int i = 0; i < n; i++) {
      if (pipe(fds[i]) != 0) return 0;
      pids[i] = fork();
      if (pids[i] == 0) {
        scale_arg_t me = {c, NULL, strat, iters, 0, 0};
        scale_run(&me);
        double v = me.err ? 0 : me.per_s;
        ssize_t w = write(fds[i][1], &v, sizeof v);
        _exit(w == sizeof v ? 0 : 1);
      }
      close(fds[i][1]);
    }
    for (int i = 0; i < n; i++) {
      double v = 0;
      if (read(fds[i][0], &v, sizeof v) == sizeof v) total += v;
      close(fds[i][0]);
      waitpid(pids[i], NULL, 0);
    }
    return total;
  }
  for (int i = 0; i < n; i++) {
    a[i] = (scale_arg_t){c, pool, strat, iters, 0, 0};
    pthread_create(&th[i], NULL, scale_run, &a[i]);
  }
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    total += a[i].err ? 0 : a[i].per_s;
  }
  cowmem_pool_free(pool);
  return total;
}

/* One line per strategy and control: 1 worker, n workers, the ratio; each
 * the best of 3 (other load only ever slows a run down), all in one run.
 * The controls first (arithmetic; 64 KiB copies), Wasmtime's pagemap_scan
 * mode last. */
static void print_scaling(const ctx_t* c, int n, bool procs) {
  const char* what = procs ? "processes (each its own pool, the same .cwimg)"
                           : "threads (one pool)";
  printf("\nscaling, %d %s; cycles/s, best of 3; K=%zu:\n", n, what, c->dirty);
  static const int order[] = {-1, -2, COWMEM_RESET_MADVISE, COWMEM_RESET_KEEP_RESIDENT,
                              COWMEM_RESET_ADAPTIVE, -3};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    int s = order[i];
    double one = 0, many = 0;
    for (int rep = 0; rep < 3; rep++) {
      double o = scale_total(c, s, 1, procs, c->iters), m = scale_total(c, s, n, procs, c->iters);
      if (o > one) one = o;
      if (m > many) many = m;
    }
    char name[40];
    if (s == -1 || s == -2)
      snprintf(name, sizeof name, "control: %s", s == -1 ? "arithmetic" : "memcpy 64 KiB");
    else if (s == -3)
      snprintf(name, sizeof name, "wasmtime-pagemap, own mem");
    else
      snprintf(name, sizeof name, "pool-%s", strategy_name(s));
    printf("  %-26s 1: %10.0f  %d: %10.0f  (%.2fx)\n", name, one, n, many,
           one > 0 ? many / one : 0);
  }
}

static const char* strategy_name(int s) {
  switch (s) {
  case COWMEM_RESET_MADVISE: return "madvise";
  case COWMEM_RESET_KEEP_RESIDENT: return "keep-resident";
  case COWMEM_RESET_BATCHED: return "batched";
  case COWMEM_RESET_ADAPTIVE: return "adaptive";
  default: return "other";
  }
}

/* Compile the module to a temporary .cwimg and open it (timing opens). */
static int open_cwimg(ctx_t* c, const char* path) {
  const char* dir = getenv("TMPDIR");
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/cowmem-bench-XXXXXX.cwimg", dir && *dir ? dir : "/tmp");
  int fd = mkstemps(tmp, 6);
  if (fd < 0) return tool_fail(tmp, "%s", strerror(errno));
  unlink(tmp);
  int e = cowmem_module_compile(c->m, fd);
  if (e != 0) {
    close(fd);
    return tool_fail(path, "cannot compile an image file: %s", cowmem_strerror(e));
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
    return tool_fail(path, "cannot open its image file: %s", cowmem_strerror(e));
  return 0;
}

static int setup(ctx_t* c, const char* path, bool mem_given, uint64_t mem) {
  c->m = tool_load_module(path, c->flags);
  if (!c->m) return EXIT_RUNTIME;
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
    return mem_given ? tool_fail(path, "memory %llu is not a defined memory",
                                 (unsigned long long)mem)
                     : tool_fail(path, "the module defines no memory (one that imports "
                                       "its memory: --fresh-imports)");
  if (mi.min_pages > 16384)
    return tool_fail(path,
                     "initial size of %llu pages is beyond what the "
                     "bench handles (1 GiB)",
                     (unsigned long long)mi.min_pages);
  c->size = (size_t)(mi.min_pages * COWMEM_WASM_PAGE_SIZE);
  cowmem_diag_t why;
  c->image = cowmem_image_retain(cowmem_module_image(c->m, c->mem, &why));
  cowmem_image_info_t ii = {0};
  if (c->image) cowmem_image_info(c->image, &ii);
  size_t page = cowmem_page_size();
  c->read_lo = (size_t)(ii.mem_offset / page);
  c->read_hi = ii.len ? (size_t)((ii.mem_offset + ii.len + page - 1) / page) : c->read_lo;
  uint32_t nseg = cowmem_module_segment_count(c->m);
  c->segs = calloc(nseg ? nseg : 1, sizeof *c->segs);
  if (!c->segs) return tool_fail(path, "out of memory");
  for (uint32_t i = 0; i < nseg; i++) {
    cowmem_segment_info_t s;
    cowmem_module_segment_info(c->m, i, &s);
    if (s.mode != COWMEM_SEGMENT_ACTIVE || s.memory != c->mem) continue;
    if (!s.covered_by_image) c->apply_left = true;
    uint64_t off = s.offset_kind == COWMEM_OFFSET_CONST ? s.offset : 0;
    if (off > c->size || s.data_len > c->size - off)
      return tool_fail(path,
                       "segment %u does not fit memory %u: "
                       "instantiation traps",
                       i, c->mem);
    c->segs[c->nsegs++] = (seg_t){s.data, off, s.data_len};
    c->copy_bytes += s.data_len;
  }
  return open_cwimg(c, path);
}

static size_t reads(const ctx_t* c) {
  return (size_t)(c->read * (double)(c->read_hi - c->read_lo) + 0.5);
}

static double med(bench_samples_t* s) {
  return bench_quantile(s, 0.5);
}
static double p99(bench_samples_t* s) {
  return bench_quantile(s, 0.99);
}

static void print_table(ctx_t* c, row_t* rows, size_t n, const char* path) {
  cowmem_image_info_t ii = {0};
  if (c->image) cowmem_image_info(c->image, &ii);
  printf("module %s, memory %u: %zu bytes initial, image %llu bytes (%llu "
         "pages with data), %zu active segments (%llu bytes copied by the "
         "baselines)\n",
         path, c->mem, c->size, (unsigned long long)ii.len,
         (unsigned long long)ii.data_pages, c->nsegs, (unsigned long long)c->copy_bytes);
  printf("%zu iterations per row after %zu warm-up; each instance reads %zu of the "
         "image's %zu pages and writes %zu pages; times in microseconds; faults: "
         "minor page faults per cycle\n\n",
         c->iters, c->warm, reads(c), c->read_hi - c->read_lo, c->dirty);
  printf("%-20s %10s %9s %10s %9s %10s %9s %8s %8s %8s\n", "strategy", "inst med",
         "inst p99", "reset med", "reset p99", "cycle med", "cycle p99", "faults", "inst x",
         "cycle x");
  double bi = med(&rows[0].inst), bc = med(&rows[0].cycle);
  for (size_t i = 0; i < n; i++) {
    row_t* r = &rows[i];
    if (r->failed) {
      printf("%-20s (failed)\n", r->name);
      continue;
    }
    double mi = med(&r->inst), mc = med(&r->cycle);
    printf("%-20s %10.2f %9.2f %10.2f %9.2f %10.2f %9.2f %8.2f %8.1f %8.1f\n", r->name,
           mi / 1e3, p99(&r->inst) / 1e3, med(&r->reset) / 1e3, p99(&r->reset) / 1e3,
           mc / 1e3, p99(&r->cycle) / 1e3, (double)r->faults / (double)c->iters,
           mi > 0 ? bi / mi : 0, mc > 0 ? bc / mc : 0);
  }
  printf("\nopening the compiled .cwimg: median %.2f us, p99 %.2f us\n",
         med(&c->open_ns) / 1e3, p99(&c->open_ns) / 1e3);
  printf("x = copy-fresh median / row median (higher is faster)\n");
  for (size_t i = 0; i < n; i++)
    printf("  %-18s %s\n", rows[i].name, rows[i].covers);
}

static void json_q(const char* k, bench_samples_t* s, bool last) {
  printf("\"%s\": {\"median\": %.0f, \"p99\": %.0f}%s", k, med(s), p99(s),
         last ? "" : ", ");
}

static void print_json(ctx_t* c, row_t* rows, size_t n, const char* path) {
  cowmem_image_info_t ii = {0};
  if (c->image) cowmem_image_info(c->image, &ii);
  printf("{\"module\": ");
  tool_json_str(stdout, path, strlen(path));
  printf(", \"memory\": %u, \"initial_bytes\": %zu, \"image_bytes\": %llu, "
         "\"image_data_pages\": %llu, \"active_segments\": %zu, "
         "\"copy_bytes\": %llu, \"dirty_pages\": %zu, \"read_pages\": %zu, "
         "\"iterations\": %zu, \"warmup\": %zu, \"page_size\": %zu, \"unit\": \"ns\", ",
         c->mem, c->size, (unsigned long long)ii.len, (unsigned long long)ii.data_pages,
         c->nsegs, (unsigned long long)c->copy_bytes, c->dirty, reads(c), c->iters, c->warm,
         cowmem_page_size());
  json_q("open_cwimg_ns", &c->open_ns, false);
  printf("\"rows\": [");
  double bi = med(&rows[0].inst), bc = med(&rows[0].cycle);
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    row_t* r = &rows[i];
    if (r->failed) continue;
    printf("%s{\"name\": \"%s\", \"covers\": ", first ? "" : ", ", r->name);
    first = false;
    tool_json_str(stdout, r->covers, strlen(r->covers));
    printf(", ");
    json_q("instantiate_ns", &r->inst, false);
    json_q("reset_ns", &r->reset, false);
    json_q("cycle_ns", &r->cycle, false);
    double mi = med(&r->inst), mc = med(&r->cycle);
    printf("\"faults_per_cycle\": %.3f, \"ratio_instantiate\": %.2f, "
           "\"ratio_cycle\": %.2f}",
           (double)r->faults / (double)c->iters, mi > 0 ? bi / mi : 0, mc > 0 ? bc / mc : 0);
  }
  printf("]}\n");
}

static bool have_program(const char* name) {
  const char* path = getenv("PATH");
  if (!path) return false;
  char buf[PATH_MAX];
  for (const char* p = path; *p;) {
    const char* e = strchr(p, ':');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n > 0 && n + strlen(name) + 2 < sizeof buf) {
      snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, name);
      if (access(buf, X_OK) == 0) return true;
    }
    p += n + (e ? 1 : 0);
  }
  return false;
}

static int plot(row_t* rows, size_t n, const char* out, const char* module) {
  if (!have_program("gnuplot"))
    return tool_fail(out, "cannot plot: gnuplot is not installed (Debian: "
                          "apt-get install gnuplot-nox)");
  size_t len = strlen(out);
  const char* term = len > 4 && strcmp(out + len - 4, ".png") == 0
                         ? "pngcairo size 1000,560"
                         : "svg size 1000,560 dynamic";
  FILE* g = popen("gnuplot", "w");
  if (!g) return tool_fail(out, "cannot run gnuplot: %s", strerror(errno));
  const char* base = strrchr(module, '/');
  fprintf(g,
          "set terminal %s\nset output '%s'\n"
          "set title 'cowmem bench: %s (median, microseconds, log scale)'\n"
          "set style data histogram\nset style histogram clustered gap 1\n"
          "set style fill solid 0.8 border -1\nset logscale y\n"
          "set ylabel 'microseconds'\nset xtics rotate by -30\n"
          "set key top right\nset grid ytics\n"
          "plot '-' using 2:xtic(1) title 'instantiate', "
          "'-' using 2 title 'reset', '-' using 2 title 'cycle'\n",
          term, out, base ? base + 1 : module);
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < n; i++) {
      if (rows[i].failed) continue;
      bench_samples_t* s = k == 0   ? &rows[i].inst
                           : k == 1 ? &rows[i].reset
                                    : &rows[i].cycle;
      double v = med(s) / 1e3;
      fprintf(g, "\"%s\" %.4f\n", rows[i].name, v > 0.001 ? v : 0.001);
    }
    fprintf(g, "e\n");
  }
  int st = pclose(g);
  if (st != 0) return tool_fail(out, "gnuplot failed (status %d)", st);
  return EXIT_OK;
}

int cmd_bench(int argc, char** argv) {
  const char *in = NULL, *plot_out = NULL;
  uint64_t dirty = 8, iters = 2000, mem = 0, threads = 0, procs = 0;
  double read = 0;
  unsigned flags = 0;
  bool json = false, mem_given = false;
  for (int i = 1; i < argc; i++) {
    const char* v;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help(stdout);
      return EXIT_OK;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], TOOL_FRESH_OPT) == 0) {
      flags |= COWMEM_MODULE_FRESH_IMPORTS;
    } else if (tool_opt_value(argc, argv, &i, "--read", &v)) {
      char* end = NULL;
      read = v ? strtod(v, &end) : -1;
      if (!v || end == v || *end != 0 || !(read >= 0 && read <= 1))
        return tool_usage("--read needs a fraction from 0 to 1");
    } else if (tool_opt_value(argc, argv, &i, "--dirty", &v)) {
      if (!tool_parse_u64(v, &dirty) || dirty > 1000000)
        return tool_usage("--dirty needs a page count");
    } else if (tool_opt_value(argc, argv, &i, "--iterations", &v)) {
      if (!tool_parse_u64(v, &iters) || iters == 0 || iters > 10000000)
        return tool_usage("--iterations needs a positive count");
    } else if (tool_opt_value(argc, argv, &i, "--threads", &v)) {
      if (!tool_parse_u64(v, &threads) || threads < 1 || threads > 64)
        return tool_usage("--threads needs a count from 1 to 64");
    } else if (tool_opt_value(argc, argv, &i, "--processes", &v)) {
      if (!tool_parse_u64(v, &procs) || procs < 1 || procs > 64)
        return tool_usage("--processes needs a count from 1 to 64");
    } else if (tool_opt_value(argc, argv, &i, "--memory", &v)) {
      if (!tool_parse_u64(v, &mem) || mem > UINT32_MAX)
        return tool_usage("--memory needs a memory index");
      mem_given = true;
    } else if (tool_opt_value(argc, argv, &i, "--plot", &v)) {
      if (!v) return tool_usage("--plot needs a file name");
      plot_out = v;
    } else if (argv[i][0] == '-' && argv[i][1] != 0) {
      return tool_usage("unknown option '%s'", argv[i]);
    } else if (in) {
      return tool_usage("more than one module");
    } else {
      in = argv[i];
    }
  }
  if (!in) {
    in = tool_default_module();
    if (!in)
      return tool_fail("demo.wasm", "no module given and the bundled demo "
                                    "module was not found (build target "
                                    "cowmem_demo_wasm)");
  }
  ctx_t c;
  memset(&c, 0, sizeof c);
  c.dirty = (size_t)dirty;
  c.read = read;
  c.flags = flags;
  c.iters = (size_t)iters;
  c.warm = c.iters / 10 + 10;
  int rc = setup(&c, in, mem_given, mem);
  enum { FIXED = 4 };
  row_t rows[FIXED + COWMEM_RESET_COUNT_ + WT_MODES];
  memset(rows, 0, sizeof rows);
  size_t nrows = 0;
  if (rc == EXIT_OK) {
    static const char* covers[FIXED] = {
        "mmap 8 GiB + mprotect + copy segments; reset: munmap",
        "copy segments into kept memory; reset: memset the initial size",
        ("cowmem_slot_instantiate (memfd image) + remaining segments; "
         "reset: cowmem_slot_reset"),
        "as slot, image mapped from the .cwimg file"};
    static const char* names[FIXED] = {"copy-fresh", "copy-reuse", "slot", "slot-cwimg"};
    for (int i = 0; i < FIXED; i++) {
      snprintf(rows[i].name, sizeof rows[i].name, "%s", names[i]);
      rows[i].covers = covers[i];
    }
    int e[FIXED + COWMEM_RESET_COUNT_ + WT_MODES] = {0};
    e[0] = run_copy_fresh(&c, &rows[0]);
    e[1] = run_copy_reuse(&c, &rows[1]);
    e[2] = run_slot(&c, c.image, &rows[2]);
    e[3] = run_slot(&c, c.file_image, &rows[3]);
    nrows = FIXED;
    for (int s = 0; s < COWMEM_RESET_COUNT_; s++, nrows++) {
      snprintf(rows[nrows].name, sizeof rows[nrows].name, "pool-%s", strategy_name(s));
      rows[nrows].covers = "cowmem_pool_acquire (+ remaining segments); reset: "
                           "cowmem_pool_release with this strategy";
      e[nrows] = run_pool(&c, (cowmem_reset_strategy_t)s, &rows[nrows]);
    }
    static const char* wt_names[WT_MODES] = {"wasmtime-default", "wasmtime-keep64k",
                                             "wasmtime-pagemap"};
    static const char* wt_covers[WT_MODES] = {
        "Wasmtime's default reset redone: madvise the whole memory",
        "Wasmtime's keep_resident (64 KiB): copy back the first 64 KiB, madvise the rest",
        ("Wasmtime's pagemap_scan mode: one scan (32 regions), copy back up to "
         "1 MiB, madvise the rest")};
    for (int m = 0; m < WT_MODES; m++, nrows++) {
      snprintf(rows[nrows].name, sizeof rows[nrows].name, "%s", wt_names[m]);
      rows[nrows].covers = wt_covers[m];
      e[nrows] = run_wasmtime(&c, m, &rows[nrows]);
    }
    for (size_t i = 0; i < nrows; i++) {
      if (e[i] == 0) continue;
      rows[i].failed = true;
      fprintf(stderr, "%s: %s: %s failed: %s\n", tool_cmd, in, rows[i].name,
              cowmem_strerror(e[i]));
      rc = EXIT_RUNTIME;
    }
    if (rows[0].failed)
      rc = tool_fail(in, "the baseline failed");
    else if (json)
      print_json(&c, rows, nrows, in);
    else
      print_table(&c, rows, nrows, in);
    const row_t* ad = &rows[FIXED + COWMEM_RESET_ADAPTIVE];
    const row_t* wt = &rows[FIXED + COWMEM_RESET_COUNT_];
    if (!json && !ad->failed && !wt[0].failed && !wt[1].failed && !wt[2].failed) {
      double a = med((bench_samples_t*)&ad->cycle);
      printf("pool-adaptive cycle against Wasmtime's modes (above 1: cowmem faster): "
             "default %.2fx, keep_resident %.2fx, pagemap_scan %.2fx\n",
             med((bench_samples_t*)&wt[0].cycle) / a, med((bench_samples_t*)&wt[1].cycle) / a,
             med((bench_samples_t*)&wt[2].cycle) / a);
    }
    if (!json && !rows[0].failed) {
      if (threads > 0) print_scaling(&c, (int)threads, false);
      if (procs > 0) {
        fflush(stdout);
        print_scaling(&c, (int)procs, true);
      }
    }
    if (plot_out && !rows[0].failed) {
      int prc = plot(rows, nrows, plot_out, in);
      if (prc != EXIT_OK) rc = prc;
    }
  }
  for (size_t i = 0; i < nrows; i++) {
    bench_free(&rows[i].inst);
    bench_free(&rows[i].reset);
    bench_free(&rows[i].cycle);
  }
  bench_free(&c.open_ns);
  cowmem_image_release(c.image);
  cowmem_image_release(c.file_image);
  cowmem_module_free(c.m);
  free(c.segs);
  return rc;
}
