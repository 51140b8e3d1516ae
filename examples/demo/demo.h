/* The host side of the bundled demo (demo.c, compiled to wasm32), what the
 * runtime demos (integrations/wasm2c, integrations/wamr) and their tests
 * share, whatever the runtime: the request inputs, the demo's command
 * line, /proc/self/status, and the lines that describe the image and the
 * adaptive reset. Header-only, on the public API (cowmem.h) only; not part
 * of the library. The clock and the quantiles are the benchmarks'
 * (bench/lib/measure.h). */
#ifndef COWMEM_DEMO_H
#define COWMEM_DEMO_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem.h"
#include "measure.h"

/* The requests, the same through every runtime: the default one first. */
static const char demo_default_request[] =
    "The quick brown fox jumps over the lazy dog. Copy on write maps the "
    "image of each instance; the slot is reset with one madvise, so the next "
    "instance of the same image needs no system call at all.";

static const char* const demo_requests[] = {
    demo_default_request,
    "",
    "The quick brown fox jumps over the lazy dog.",
    "the the the of of and to a in is it you that he was for on are with",
    "\x01\x02\xff\xfe binary \x80\x81 bytes, and UPPER lower MiXeD words",
    "Where there is a will there is a way; every good boy does fine.",
};
#define DEMO_NREQUESTS (sizeof demo_requests / sizeof demo_requests[0])

/* A large request of len bytes (malloc'd; NULL if out of memory): words in
 * a fixed pseudo-random order, enough of them to grow the demo's memory
 * past its 9 initial pages. */
static inline char* demo_big_request(uint32_t len) {
  char* p = malloc(len);
  static const char* words[] = {"copy ", "on ",   "write ", "the ",    "image ",
                                "slot ", "Pool ", "of ",    "memory, "};
  uint32_t x = 12345;
  for (uint32_t i = 0; p && i < len;) {
    x = x * 1103515245u + 12345u;
    const char* w = words[(x >> 16) % 9];
    while (*w && i < len)
      p[i++] = *w++;
  }
  return p;
}

/* The inputs the checks compare runtimes on: the DEMO_NREQUESTS requests,
 * then (i == DEMO_NREQUESTS) big, demo_big_request(DEMO_BIG_LEN). *len gets
 * the input's length. */
#define DEMO_BIG_LEN 60000u
static inline const char* demo_input(size_t i, const char* big, uint32_t* len) {
  const char* req = i < DEMO_NREQUESTS ? demo_requests[i] : big;
  *len = i < DEMO_NREQUESTS ? (uint32_t)strlen(req) : DEMO_BIG_LEN;
  return req;
}

/* A "Key:" line of /proc/self/status in KiB (key without the colon:
 * "VmSize", "VmRSS"), or 0. */
static inline unsigned long demo_status_kb(const char* key) {
  char line[256];
  unsigned long kb = 0;
  size_t n = strlen(key);
  FILE* f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, n) == 0 && line[n] == ':') kb = strtoul(line + n + 1, 0, 10);
  fclose(f);
  return kb;
}

/* The demo's command line:
 *   [--iters N] [--stock-iters N] [--warmup N]
 *   [--reset madvise|keep_resident|adaptive]
 * (BATCHED is the pool's batch API's, which no runtime hook calls). */
typedef struct {
  size_t iters, stock_iters, warmup; /* iters and stock_iters at least 1 */
  const char* reset_name;
} demo_options_t;

static inline int demo_parse_reset(const char* s, cowmem_reset_strategy_t* r) {
  static const char* names[] = {"madvise", "keep_resident", "batched", "adaptive"};
  for (int i = 0; i < COWMEM_RESET_COUNT_; i++)
    if (strcmp(s, names[i]) == 0 && i != COWMEM_RESET_BATCHED) {
      *r = (cowmem_reset_strategy_t)i;
      return 0;
    }
  return -1;
}

/* Fills o from argv, and *reset (the integration's config, holding its
 * default, ADAPTIVE) from --reset. 0, or 2 (the exit code) after printing
 * the usage; stock_note follows "--stock-iters N" in it (e.g. a cap). */
static inline int demo_parse_args(int argc, char** argv, const char* stock_note,
                                  cowmem_reset_strategy_t* reset, demo_options_t* o) {
  o->iters = 20000;
  o->stock_iters = 2000;
  o->warmup = 200;
  o->reset_name = "adaptive"; /* the integrations' default */
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (strcmp(a, "--iters") == 0 && i + 1 < argc)
      o->iters = strtoul(argv[++i], 0, 10);
    else if (strcmp(a, "--stock-iters") == 0 && i + 1 < argc)
      o->stock_iters = strtoul(argv[++i], 0, 10);
    else if (strcmp(a, "--warmup") == 0 && i + 1 < argc)
      o->warmup = strtoul(argv[++i], 0, 10);
    else if (strcmp(a, "--reset") == 0 && i + 1 < argc &&
             demo_parse_reset(argv[i + 1], reset) == 0)
      o->reset_name = argv[++i];
    else {
      fprintf(stderr,
              "usage: %s [--iters N] [--stock-iters N%s] [--warmup N] "
              "[--reset madvise|keep_resident|adaptive]\n",
              argv[0], stock_note);
      return 2;
    }
  }
  if (o->iters == 0) o->iters = 1;
  if (o->stock_iters == 0) o->stock_iters = 1;
  return 0;
}

static inline const char* demo_image_kind(const cowmem_image_info_t* ii) {
  return ii->kind == COWMEM_IMAGE_MEMFD  ? "memfd"
         : ii->kind == COWMEM_IMAGE_COPY ? "copy"
                                         : "file";
}

/* The adaptive reset's counters of one image (all zeros under another
 * strategy): take one before and one after a loop, then print the
 * difference per request with demo_print_reset_counts. */
static inline cowmem_pool_image_metrics_t demo_reset_counts(cowmem_pool_t* pool,
                                                            cowmem_image_t* image) {
  cowmem_pool_image_metrics_t im = {0};
  if (image) cowmem_pool_image_metrics(pool, image, &im);
  return im;
}

/* acc += after - before, for the counts demo_print_reset_counts prints. */
static inline void demo_reset_counts_add(cowmem_pool_image_metrics_t* acc,
                                         const cowmem_pool_image_metrics_t* before,
                                         const cowmem_pool_image_metrics_t* after) {
  acc->resets += after->resets - before->resets;
  acc->scans += after->scans - before->scans;
  acc->samples += after->samples - before->samples;
  acc->copied_pages += after->copied_pages - before->copied_pages;
  acc->discarded_pages += after->discarded_pages - before->discarded_pages;
  acc->discard_calls += after->discard_calls - before->discard_calls;
}

/* One line: counts summed by demo_reset_counts_add, per request (resets
 * blind, scanning and sampled; pages copied back and decommitted). Prints
 * nothing when there were no adaptive resets. */
static inline void demo_print_reset_counts(const cowmem_pool_image_metrics_t* acc,
                                           size_t requests) {
  double n = requests ? (double)requests : 1.0;
  if (acc->resets == 0) return;
  printf("per request, adaptive reset: %.2f blind, %.2f scanning, %.3f sampled; "
         "%.1f pages copied back, %.1f decommitted in %.2f calls\n",
         (double)(acc->resets - acc->scans) / n, (double)acc->scans / n,
         (double)acc->samples / n, (double)acc->copied_pages / n,
         (double)acc->discarded_pages / n, (double)acc->discard_calls / n);
}

/* What the pool's adaptive reset saw of the image: the pages a request
 * writes, which each reset restores by copy. Prints nothing under another
 * strategy or before a sampled reset. */
static inline void demo_print_adaptive(cowmem_pool_t* pool, cowmem_image_t* image,
                                       cowmem_reset_strategy_t reset) {
  cowmem_pool_image_metrics_t im = {0};
  if (reset == COWMEM_RESET_ADAPTIVE && image &&
      cowmem_pool_image_metrics(pool, image, &im) == 0 && im.samples)
    printf("adaptive reset: %.1f pages written per instance (%llu sampled "
           "resets), hot set %llu pages, %llu resets\n",
           (double)im.sampled_dirty_pages / (double)im.samples,
           (unsigned long long)im.samples, (unsigned long long)im.hot_pages,
           (unsigned long long)im.resets);
}

/* Blocks of the loop: iteration `round` of `rounds` does this many of n,
 * so that two loops alternating in blocks share whatever else the machine
 * does (other processes, frequency changes). */
static inline size_t demo_block(size_t n, size_t round, size_t rounds) {
  return n * (round + 1) / rounds - n * round / rounds;
}

#endif
