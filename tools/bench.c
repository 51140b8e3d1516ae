/* cowmem bench [module.wasm] [--memory I] [--dirty K] [--lines L] [--read F]
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
 * a reset that drops pages the next instance reads shows up as faults.
 * The rows and the scaling are measured by bench/lib (module.h, scale.h);
 * this file is the command: options, the table, JSON and the plot. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "module.h"
#include "tools.h"

static void help(FILE* f) {
  fprintf(f, "Usage: cowmem bench [MODULE.wasm] [--memory I] [--dirty K] [--lines L]\n"
             "                    [--read F] [--iterations N] [--threads N]\n"
             "                    [--processes N]"
             " [--fresh-imports] [--json] [--plot FILE]\n"
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
             "  --lines L        64-byte lines written in each of those pages, spread\n"
             "                   over the page: 1 (the default) to all of them (64 on\n"
             "                   4 KiB pages); resets restore the lines that differ\n"
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

/* One line per strategy and control: 1 worker, n workers, the ratio; each
 * the best of 3, all in one run. The controls first (arithmetic; 64 KiB
 * copies), Wasmtime's pagemap_scan mode last. */
static void print_scaling(const bench_mod_t* c, int n, bool procs) {
  const char* what = procs ? "processes (each its own pool, the same .cwimg)"
                           : "threads (one pool)";
  printf("\nscaling, %d %s; cycles/s, best of 3; K=%zu:\n", n, what, c->dirty);
  static const int order[] = {BENCH_MOD_ARITH,       BENCH_MOD_MEMCPY,
                              COWMEM_RESET_MADVISE,  COWMEM_RESET_KEEP_RESIDENT,
                              COWMEM_RESET_ADAPTIVE, BENCH_MOD_WASMTIME};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    int s = order[i];
    double one, many;
    bench_mod_scaling(c, s, n, procs, &one, &many);
    char name[40];
    if (s == BENCH_MOD_ARITH || s == BENCH_MOD_MEMCPY)
      snprintf(name, sizeof name, "control: %s",
               s == BENCH_MOD_ARITH ? "arithmetic" : "memcpy 64 KiB");
    else if (s == BENCH_MOD_WASMTIME)
      snprintf(name, sizeof name, "wasmtime-pagemap, own mem");
    else
      snprintf(name, sizeof name, "pool-%s", bench_reset_name(s));
    printf("  %-26s 1: %10.0f  %d: %10.0f  (%.2fx)\n", name, one, n, many,
           one > 0 ? many / one : 0);
  }
}

/* The rows: these first, then a pool per reset strategy, then Wasmtime's
 * modes. */
enum { FIXED = 4 };
/* pool-adaptive against Wasmtime's pagemap_scan mode taking turns
 * (bench_mod_duel): the median round and the range */
enum { DUEL_ROUNDS = 15, DUEL_BLOCK = 200 };
typedef struct {
  bool ok;
  double median, lo, hi;
} duel_t;

static double med(bench_samples_t* s) {
  return bench_quantile(s, 0.5);
}
static double p99(bench_samples_t* s) {
  return bench_quantile(s, 0.99);
}

static void print_table(bench_mod_t* c, bench_row_t* rows, size_t n, const char* path) {
  cowmem_image_info_t ii = {0};
  if (c->image) cowmem_image_info(c->image, &ii);
  printf("module %s, memory %u: %zu bytes initial, image %llu bytes (%llu "
         "pages with data), %zu active segments (%llu bytes copied by the "
         "baselines)\n",
         path, c->mem, c->size, (unsigned long long)ii.len,
         (unsigned long long)ii.data_pages, c->nsegs, (unsigned long long)c->copy_bytes);
  printf("%zu iterations per row after %zu warm-up; each instance reads %zu of the "
         "image's %zu pages and writes %zu pages (%zu line%s each); times in "
         "microseconds; faults: minor page faults per cycle\n\n",
         c->iters, c->warm, bench_mod_reads(c), c->read_hi - c->read_lo, c->dirty, c->lines,
         c->lines == 1 ? "" : "s");
  printf("%-20s %10s %9s %10s %9s %10s %9s %9s %8s %8s %8s\n", "strategy", "inst med",
         "inst p99", "reset med", "reset p99", "cycle med", "cycle p99", "cycle avg", "faults",
         "inst x", "cycle x");
  double bi = med(&rows[0].inst), bc = rows[0].cycle_avg;
  for (size_t i = 0; i < n; i++) {
    bench_row_t* r = &rows[i];
    if (r->failed) {
      printf("%-20s (failed)\n", r->name);
      continue;
    }
    double mi = med(&r->inst), mc = r->cycle_avg;
    printf("%-20s %10.2f %9.2f %10.2f %9.2f %10.2f %9.2f %9.2f %8.2f %8.1f %8.1f\n", r->name,
           mi / 1e3, p99(&r->inst) / 1e3, med(&r->reset) / 1e3, p99(&r->reset) / 1e3,
           med(&r->cycle) / 1e3, p99(&r->cycle) / 1e3, mc / 1e3,
           (double)r->faults / (double)c->iters, mi > 0 ? bi / mi : 0, mc > 0 ? bc / mc : 0);
  }
  const bench_row_t* ad = &rows[FIXED + COWMEM_RESET_ADAPTIVE];
  if (n > FIXED + COWMEM_RESET_ADAPTIVE && !ad->failed)
    printf("\npool-adaptive, per reset: %.2f quiet, %.2f scans, %.2f copied pages, %.2f "
           "madvise calls\n",
           ad->counts.quiet, ad->counts.scans, ad->counts.copied, ad->counts.madvise);
  printf("\nopening the compiled .cwimg: median %.2f us, p99 %.2f us\n",
         med(&c->open_ns) / 1e3, p99(&c->open_ns) / 1e3);
  printf("cycle avg: the median of the means of %d consecutive cycles, which counts "
         "work a strategy queues and does for many resets at once (pool-batched, "
         "pool-adaptive's blind resets); a median of single cycles leaves it out\n",
         BENCH_AVG_BLOCK);
  printf("inst x = copy-fresh median / row median, cycle x = copy-fresh avg / row avg "
         "(higher is faster)\n");
  for (size_t i = 0; i < n; i++)
    printf("  %-18s %s\n", rows[i].name, rows[i].covers);
}

static void json_q(const char* k, bench_samples_t* s, bool last) {
  printf("\"%s\": {\"median\": %.0f, \"p99\": %.0f}%s", k, med(s), p99(s),
         last ? "" : ", ");
}

static void print_json(bench_mod_t* c, bench_row_t* rows, size_t n, const duel_t* duel,
                       const char* path) {
  cowmem_image_info_t ii = {0};
  if (c->image) cowmem_image_info(c->image, &ii);
  printf("{\"module\": ");
  tool_json_str(stdout, path, strlen(path));
  printf(", \"memory\": %u, \"initial_bytes\": %zu, \"image_bytes\": %llu, "
         "\"image_data_pages\": %llu, \"active_segments\": %zu, "
         "\"copy_bytes\": %llu, \"dirty_pages\": %zu, \"dirty_lines\": %zu, \"read_pages\": %zu, "
         "\"iterations\": %zu, \"warmup\": %zu, \"page_size\": %zu, \"unit\": \"ns\", ",
         c->mem, c->size, (unsigned long long)ii.len, (unsigned long long)ii.data_pages,
         c->nsegs, (unsigned long long)c->copy_bytes, c->dirty, c->lines, bench_mod_reads(c), c->iters, c->warm,
         cowmem_page_size());
  json_q("open_cwimg_ns", &c->open_ns, false);
  printf("\"rows\": [");
  double bi = med(&rows[0].inst), bc = rows[0].cycle_avg;
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    bench_row_t* r = &rows[i];
    if (r->failed) continue;
    printf("%s{\"name\": \"%s\", \"covers\": ", first ? "" : ", ", r->name);
    first = false;
    tool_json_str(stdout, r->covers, strlen(r->covers));
    printf(", ");
    json_q("instantiate_ns", &r->inst, false);
    json_q("reset_ns", &r->reset, false);
    json_q("cycle_ns", &r->cycle, false);
    double mi = med(&r->inst), mc = r->cycle_avg;
    printf("\"cycle_avg_ns\": %.0f, \"faults_per_cycle\": %.3f, \"ratio_instantiate\": %.2f, "
           "\"ratio_cycle\": %.2f",
           mc, (double)r->faults / (double)c->iters, mi > 0 ? bi / mi : 0,
           mc > 0 ? bc / mc : 0);
    if (i == FIXED + COWMEM_RESET_ADAPTIVE)
      printf(", \"quiet_per_reset\": %.3f, \"scans_per_reset\": %.3f, "
             "\"copied_pages_per_reset\": %.3f, \"madvise_calls_per_reset\": %.3f",
             r->counts.quiet, r->counts.scans, r->counts.copied, r->counts.madvise);
    printf("}");
  }
  printf("]");
  if (duel->ok)
    printf(", \"adaptive_vs_wasmtime_pagemap_turns\": {\"median\": %.3f, \"lowest\": %.3f, "
           "\"highest\": %.3f, \"rounds\": %d, \"cycles_per_round\": %d}",
           duel->median, duel->lo, duel->hi, DUEL_ROUNDS, DUEL_BLOCK);
  printf("}\n");
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

static int plot(bench_row_t* rows, size_t n, const char* out, const char* module) {
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
  uint64_t dirty = 8, lines = 1, iters = 2000, mem = 0, threads = 0, procs = 0;
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
    } else if (tool_opt_value(argc, argv, &i, "--lines", &v)) {
      if (!tool_parse_u64(v, &lines) || lines < 1 || lines > cowmem_page_size() / 64)
        return tool_usage("--lines needs a count from 1 to %zu", cowmem_page_size() / 64);
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
  bench_mod_t c;
  memset(&c, 0, sizeof c);
  c.dirty = (size_t)dirty;
  c.lines = (size_t)lines;
  c.read = read;
  c.flags = flags;
  c.iters = (size_t)iters;
  c.warm = c.iters / 10 + 10;
  int rc = EXIT_OK;
  cowmem_module_t* module = tool_load_module(in, c.flags);
  if (!module) rc = EXIT_RUNTIME;
  char why[PATH_MAX + 128];
  if (module && bench_mod_setup(&c, module, mem_given, mem, why, sizeof why) != 0)
    rc = tool_fail(in, "%s", why);
  bench_row_t rows[FIXED + COWMEM_RESET_COUNT_ + WT_MODES];
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
    e[0] = bench_mod_copy_fresh(&c, &rows[0]);
    e[1] = bench_mod_copy_reuse(&c, &rows[1]);
    e[2] = bench_mod_slot(&c, c.image, &rows[2]);
    e[3] = bench_mod_slot(&c, c.file_image, &rows[3]);
    nrows = FIXED;
    for (int s = 0; s < COWMEM_RESET_COUNT_; s++, nrows++) {
      snprintf(rows[nrows].name, sizeof rows[nrows].name, "pool-%s", bench_reset_name(s));
      rows[nrows].covers = "cowmem_pool_acquire (+ remaining segments); reset: "
                           "cowmem_pool_release with this strategy";
      e[nrows] = bench_mod_pool(&c, (cowmem_reset_strategy_t)s, &rows[nrows]);
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
      e[nrows] = bench_mod_wasmtime(&c, m, &rows[nrows]);
    }
    for (size_t i = 0; i < nrows; i++) {
      rows[i].cycle_avg = bench_block_mean(&rows[i].cycle, BENCH_AVG_BLOCK);
      if (e[i] == 0) continue;
      rows[i].failed = true;
      fprintf(stderr, "%s: %s: %s failed: %s\n", tool_cmd, in, rows[i].name,
              cowmem_strerror(e[i]));
      rc = EXIT_RUNTIME;
    }
    const bench_row_t* ad = &rows[FIXED + COWMEM_RESET_ADAPTIVE];
    const bench_row_t* wt = &rows[FIXED + COWMEM_RESET_COUNT_];
    /* The rows run one after another, and a host whose speed drifts moves
     * their ratios; pool-adaptive and Wasmtime's pagemap_scan mode taking
     * turns is the figure to compare them by. */
    duel_t duel = {false, 0, 0, 0};
    if (!rows[0].failed && !ad->failed && !wt[WT_PAGEMAP].failed) {
      int de = bench_mod_duel(&c, DUEL_ROUNDS, DUEL_BLOCK, &duel.median, &duel.lo, &duel.hi);
      duel.ok = de == 0;
      if (de != 0)
        fprintf(stderr, "%s: %s: taking turns with Wasmtime's pagemap_scan mode failed: %s\n",
                tool_cmd, in, cowmem_strerror(de));
    }
    if (rows[0].failed)
      rc = tool_fail(in, "the baseline failed");
    else if (json)
      print_json(&c, rows, nrows, &duel, in);
    else
      print_table(&c, rows, nrows, in);
    if (!json && !ad->failed && !wt[0].failed && !wt[1].failed && !wt[2].failed) {
      double a = ad->cycle_avg;
      printf("pool-adaptive cycle against Wasmtime's modes (cycle avg; above 1: cowmem faster): "
             "default %.2fx, keep_resident %.2fx, pagemap_scan %.2fx\n",
             wt[0].cycle_avg / a, wt[1].cycle_avg / a, wt[2].cycle_avg / a);
      if (duel.ok)
        printf("pool-adaptive cycle against Wasmtime's pagemap_scan mode, taking turns: "
               "median %.2fx, rounds %.2fx to %.2fx (%d rounds of %d cycles each)\n",
               duel.median, duel.lo, duel.hi, DUEL_ROUNDS, DUEL_BLOCK);
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
  bench_mod_free(&c);
  return rc;
}
