/* cowmem-iwasm: WAMR's iwasm for WASI programs, with linear memories from
 * a cowmem pool holding the module's images (docs/wasi.md).
 *
 *   cowmem-iwasm [options] module.wasm [args...]
 *
 * iwasm's options for what it supports (--dir, --map-dir, --env,
 * --stack-size, --heap-size, -f/--function), and:
 *   --images=FILE.cwimg  images from `cowmem compile --fresh-imports`; the
 *                        module is then the one `cowmem strip
 *                        --fresh-imports` wrote (without: the original
 *                        module, images built and stripped at start-up)
 *   --repeat=N           run N times, each in a fresh instance (a request
 *                        loop), then print a latency table on stderr; stdin
 *                        (unless a terminal) is read once and each request
 *                        reads all of it
 *   --init=FUNC          call export FUNC after instantiating, as a phase of
 *                        its own in the --repeat table (a reactor's start-up
 *                        exported under another name than _initialize, which
 *                        WAMR runs inside instantiation)
 *   --stock              the same through stock WAMR in this process
 *   --live=N             keep N instances alive after running them, then
 *                        print their proportional set size (PSS)
 *   --preinit=FUNC       pre-initialize the module at load (as `cowmem
 *                        preinit --allow-wasi -f FUNC`, with the program's
 *                        WASI arguments), in memory: every instance starts
 *                        from the state FUNC left (with --stock: the state
 *                        as data segments, copied per instance)
 * Exit code: the program's (proc_exit), 1 after a trap (printed on stdout
 * as iwasm does), 255 when the module cannot be read, loaded or
 * instantiated (a missing preopen, a bad module), 2 for bad options.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cowmem_wamr_wasi.h"
#include "iwasm_preinit.h"
#include "iwasm_runner.h"
#include "measure.h"

#define MAX_LIST 64

typedef struct {
  const char* dirs[MAX_LIST];
  const char* maps[MAX_LIST];
  const char* envs[MAX_LIST];
  uint32_t ndirs, nmaps, nenvs;
  uint32_t stack_size, heap_size;
  const char* function;
  const char* init;
  const char* images;
  const char* preinit;
  unsigned long repeat, live;
  bool stock;
  char** argv; /* the module, then its arguments */
  int argc;
} options_t;

static int usage(FILE* f) {
  fprintf(f,
          "usage: cowmem-iwasm [options] module.wasm [args...]\n"
          "  --dir=<dir>              preopen a host directory (as named)\n"
          "  --map-dir=<guest::host>  preopen host directory as guest path\n"
          "  --env=<key=value>        an environment variable of the program\n"
          "  --stack-size=<n>         wasm operand stack in bytes (65536)\n"
          "  --heap-size=<n>          WAMR app heap in bytes (0)\n"
          "  -f <name>, --function <name>  call export <name> with the arguments\n"
          "  --images=<file.cwimg>    prebuilt images (module: the stripped one)\n"
          "  --repeat=<n>             n fresh instances; latency table on stderr\n"
          "  --init=<func>            call <func> after instantiating (timed apart)\n"
          "  --live=<n>               n live instances; their PSS on stderr\n"
          "  --preinit=<func>         pre-initialize at load by calling <func>\n"
          "                           (a reactor's own: _initialize)\n"
          "  --stock                  stock WAMR (no cowmem) in this process\n");
  return f == stdout ? 0 : 2;
}

static bool push(const char** list, uint32_t* n, const char* v, const char* what) {
  if (*n == MAX_LIST) {
    fprintf(stderr, "cowmem-iwasm: at most %d %s\n", MAX_LIST, what);
    return false;
  }
  list[(*n)++] = v;
  return true;
}

static bool number(const char* s, unsigned long* out) {
  char* end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-') return false;
  *out = v;
  return true;
}

/* A value given as --name=value or as the next argument. */
static const char* value(int* i, int argc, char** argv, const char* name) {
  size_t n = strlen(name);
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] == 0 && *i + 1 < argc) return argv[++*i];
  return NULL;
}

static int parse(int argc, char** argv, options_t* o) {
  memset(o, 0, sizeof *o);
  o->stack_size = 64 << 10;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char* a = argv[i];
    const char* v;
    unsigned long n;
#define IS(name) (strncmp(a, name, strlen(name)) == 0 && (a[strlen(name)] == '=' || !a[strlen(name)]))
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout) - 1;
    if (!strcmp(a, "--stock")) {
      o->stock = true;
      continue;
    }
    if (!strcmp(a, "-f") || IS("--function")) {
      if (!(o->function = value(&i, argc, argv, a[1] == 'f' ? "-f" : "--function"))) break;
    } else if (IS("--dir") && (v = value(&i, argc, argv, "--dir"))) {
      if (!push(o->dirs, &o->ndirs, v, "--dir")) return 2;
    } else if (IS("--map-dir") && (v = value(&i, argc, argv, "--map-dir"))) {
      if (!push(o->maps, &o->nmaps, v, "--map-dir")) return 2;
    } else if (IS("--env") && (v = value(&i, argc, argv, "--env"))) {
      if (!push(o->envs, &o->nenvs, v, "--env")) return 2;
    } else if (IS("--images") && (v = value(&i, argc, argv, "--images"))) {
      o->images = v;
    } else if (IS("--preinit") && (v = value(&i, argc, argv, "--preinit")) && *v) {
      o->preinit = v;
    } else if (IS("--init") && (v = value(&i, argc, argv, "--init")) && *v) {
      o->init = v;
    } else if ((IS("--stack-size") || IS("--heap-size")) &&
               (v = value(&i, argc, argv, a[2] == 's' ? "--stack-size" : "--heap-size"))) {
      if (!number(v, &n) || n > UINT32_MAX) break;
      *(a[2] == 's' ? &o->stack_size : &o->heap_size) = (uint32_t)n;
    } else if (IS("--repeat") && (v = value(&i, argc, argv, "--repeat"))) {
      if (!number(v, &o->repeat) || o->repeat == 0) break;
    } else if (IS("--live") && (v = value(&i, argc, argv, "--live"))) {
      if (!number(v, &o->live) || o->live == 0) break;
    } else {
      break;
    }
#undef IS
  }
  if (i < argc && argv[i][0] == '-') {
    fprintf(stderr, "cowmem-iwasm: bad option or value: %s\n", argv[i]);
    return usage(stderr);
  }
  if (i == argc) return usage(stderr);
  if (o->images && (o->stock || o->preinit)) {
    fprintf(stderr, "cowmem-iwasm: --images is for cowmem, not --stock or --preinit\n");
    return 2;
  }
  o->argv = argv + i;
  o->argc = argc - i;
  return 0;
}

static double ms(uint64_t ns) {
  return (double)ns / 1e6;
}

static long minflt(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

/* Resident pages of the process (/proc/self/statm), 0 if unreadable. */
static long resident_pages(void) {
  long size = 0, resident = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  return resident;
}

/* The phases of a request, as the --repeat table names them. */
enum { PH_INSTANTIATE, PH_INIT, PH_RUN, PH_DEINSTANTIATE, PH_COUNT };

typedef struct {
  uint64_t ns[PH_COUNT]; /* each phase's time */
  long faults;           /* minor faults in the phases */
  long rss_kib;          /* KiB the live instance added to the resident set */
} request_cost_t;

/* One request: a fresh instance, its init (with --init), the program, the
 * instance gone. With c: what it cost. The resident set is read between
 * two phases, and each read's time and faults are left out of c, so that
 * requests/s and faults/request count the requests alone. */
static int request(runner_t* r, const options_t* o, const cowmem_wamr_wasi_t* w,
                   request_cost_t* c) {
  long rss0 = c ? resident_pages() : 0, f0 = c ? minflt() : 0;
  uint64_t t0 = bench_now_ns();
  wamr_inst_t x;
  int code = runner_instantiate(r, w, o->stack_size, o->heap_size, &x);
  if (code) return code;
  uint64_t t1 = bench_now_ns();
  if (o->init) code = runner_run(r, &x, o->init, 0, NULL);
  uint64_t t2 = bench_now_ns();
  if (code == 0) code = runner_run(r, &x, o->function, o->argc - 1, o->argv + 1);
  uint64_t t3 = bench_now_ns();
  long f1 = c ? minflt() : 0, rss1 = c ? resident_pages() : 0, f2 = c ? minflt() : 0;
  uint64_t t4 = bench_now_ns();
  wamr_inst_free(&x);
  uint64_t t5 = bench_now_ns();
  if (c) {
    long f3 = minflt();
    *c = (request_cost_t){.ns = {t1 - t0, t2 - t1, t3 - t2, t5 - t4},
                          .faults = (f1 - f0) + (f3 - f2),
                          .rss_kib =
                              rss1 > rss0 ? (rss1 - rss0) * (sysconf(_SC_PAGESIZE) / 1024) : 0};
  }
  return code;
}

/* s: each phase's samples, then the whole request's and the resident KiB's;
 * busy: the sum of the requests' times. */
static void print_table(const runner_t* r, const options_t* o,
                        bench_samples_t s[PH_COUNT + 2], unsigned long n, long faults,
                        uint64_t busy) {
  static const char* names[PH_COUNT + 1] = {"instantiate", "init", "run", "deinstantiate",
                                            "request"};
  fprintf(stderr, "cowmem-iwasm: %lu requests through %s\n", n, r->api->name);
  fprintf(stderr, "  %-14s %12s %12s\n", "phase", "p50 ms", "p99 ms");
  for (int k = 0; k <= PH_COUNT; k++)
    if (k != PH_INIT || o->init)
      fprintf(stderr, "  %-14s %12.4f %12.4f\n", names[k], bench_quantile(&s[k], 0.5),
              bench_quantile(&s[k], 0.99));
  fprintf(stderr,
          "  requests/s %.1f; minor faults/request %.1f; resident KiB/request p50 %.0f\n",
          (double)n / ((double)busy / 1e9), (double)faults / (double)n,
          bench_quantile(&s[PH_COUNT + 1], 0.5));
  if (!r->stock) {
    cowmem_wamr_counters_t c;
    cowmem_wamr_counters(&c);
    fprintf(stderr, "  execution environments: %llu created, %llu reused\n",
            (unsigned long long)c.envs_created, (unsigned long long)c.envs_reused);
  }
}

/* Standard input as a buffer fd that every request reads from the start:
 * 0, or RUNNER_FAILED (printed). */
static int buffer_stdin(int* fd) {
  size_t cap = 1 << 16, n = 0;
  char* buf = malloc(cap);
  ssize_t k = 0;
  while (buf && (k = read(0, buf + n, cap - n)) > 0)
    if ((n += (size_t)k) == cap) buf = realloc(buf, cap *= 2);
  int e = !buf || k < 0 ? COWMEM_EIO : cowmem_wamr_wasi_buffer_fd(buf, n, fd);
  free(buf);
  if (e) fprintf(stderr, "cowmem-iwasm: cannot buffer stdin: %s\n", cowmem_strerror(e));
  return e ? RUNNER_FAILED : 0;
}

static int repeat(runner_t* r, const options_t* o, const cowmem_wamr_wasi_t* w) {
  bench_samples_t s[PH_COUNT + 2] = {{0}};
  int code = 0;
  long faults = 0;
  uint64_t busy = 0;
  for (unsigned long i = 0; i < o->repeat; i++) {
    request_cost_t c;
    if (w->stdin_fd >= 0 && lseek(w->stdin_fd, 0, SEEK_SET) < 0) {
      code = RUNNER_FAILED;
      break;
    }
    code = request(r, o, w, &c);
    fflush(stdout);
    if (code == RUNNER_FAILED) break;
    uint64_t total = 0;
    for (int k = 0; k < PH_COUNT; k++) {
      bench_add(&s[k], ms(c.ns[k]));
      total += c.ns[k];
    }
    bench_add(&s[PH_COUNT], ms(total));
    bench_add(&s[PH_COUNT + 1], (double)c.rss_kib);
    busy += total;
    faults += c.faults;
  }
  if (s[PH_COUNT].n) print_table(r, o, s, s[PH_COUNT].n, faults, busy);
  for (int k = 0; k < PH_COUNT + 2; k++)
    bench_free(&s[k]);
  return code;
}

int main(int argc, char** argv) {
  options_t o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  cowmem_wamr_wasi_t w;
  cowmem_wamr_wasi_init(&w);
  w.argv = o.argv;
  w.argc = o.argc;
  w.dirs = o.dirs;
  w.dir_count = o.ndirs;
  w.map_dirs = o.maps;
  w.map_dir_count = o.nmaps;
  w.env = o.envs;
  w.env_count = o.nenvs;

  /* A terminal is left alone: each request reads it as it comes. */
  if ((o.repeat > 1 || o.live > 1) && !isatty(0) && buffer_stdin(&w.stdin_fd) != 0)
    return RUNNER_FAILED;
  iwasm_preinit_t pre = {.wasm_fd = -1, .images_fd = -1};
  const char* path = o.argv[0];
  const char* images = o.images;
  if (o.preinit) {
    if (iwasm_preinit(path, o.preinit, o.stock, &w, &pre) != 0) return RUNNER_FAILED;
    path = pre.wasm;
    images = pre.images[0] ? pre.images : NULL;
  }
  runner_t r;
  if (runner_open(&r, o.stock, path, images, o.live ? o.live : 1) != 0) {
    iwasm_preinit_close(&pre);
    return RUNNER_FAILED;
  }
  if (o.live)
    rc = runner_live(&r, &w, o.stack_size, o.heap_size, o.function, o.argc - 1,
                     o.argv + 1, o.live);
  else if (o.repeat)
    rc = repeat(&r, &o, &w);
  else
    rc = request(&r, &o, &w, NULL);
  fflush(stdout);
  runner_close(&r);
  iwasm_preinit_close(&pre);
  if (w.stdin_fd >= 0) close(w.stdin_fd);
  return rc;
}
