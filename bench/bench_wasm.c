/* The WebAssembly front end: time to parse a module and build its memory
 * images, against a baseline measured in the same run: memcpy of the
 * module's active data bytes plus writing them to a fresh memfd (the least
 * any image builder must do). Target: images <= 2x the baseline.
 *
 *   bench_wasm [module.wasm ...]
 * Without arguments: the npm modules the wasm_real_modules test installs
 * (sql.js, esbuild-wasm) if present, and always a synthetic module shaped
 * like esbuild-wasm (98,000 small segments in no offset order).
 * COWMEM_BENCH_SCALE multiplies the iteration count. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "cowmem.h"

#ifndef COWMEM_BENCH_NPM_DIR
#define COWMEM_BENCH_NPM_DIR "tests/npm"
#endif

static uint8_t* read_file(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t* b = malloc(n > 0 ? (size_t)n : 1);
  if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void leb(uint8_t* b, size_t* n, uint64_t v) {
  do {
    uint8_t c = v & 0x7f;
    v >>= 7;
    b[(*n)++] = c | (v ? 0x80 : 0);
  } while (v);
}

/* 98,000 segments of 32 bytes over 8 MiB of a 64-page memory, offsets
 * scattered by a multiplicative step so that they are not sorted. */
static uint8_t* synthetic(size_t* len) {
  const uint32_t nseg = 98000, seglen = 32;
  uint8_t* b = malloc((size_t)nseg * (seglen + 12) + 64);
  size_t n = 0;
  if (!b) return NULL;
  memcpy(b, "\0asm\1\0\0\0\x05\x04\x01\x00\x80\x02", 14); /* 256 pages */
  n = 14;
  size_t body = (size_t)nseg * (seglen + 12);
  uint8_t* p = malloc(body);
  size_t pn = 0;
  leb(p, &pn, nseg);
  for (uint32_t i = 0; i < nseg; i++) {
    uint32_t off = (uint32_t)(((uint64_t)i * 2654435761u) % (8u << 20)) & ~31u;
    p[pn++] = 0;
    p[pn++] = 0x41;
    int64_t v = off; /* sleb of a non-negative value */
    for (;;) {
      uint8_t c = v & 0x7f;
      v >>= 7;
      int done = v == 0 && !(c & 0x40);
      p[pn++] = c | (done ? 0 : 0x80);
      if (done) break;
    }
    p[pn++] = 0x0b;
    leb(p, &pn, seglen);
    for (uint32_t k = 0; k < seglen; k++) p[pn++] = (uint8_t)(1 + (i + k) % 255);
  }
  b[n++] = 11;
  leb(b, &n, pn);
  memcpy(b + n, p, pn);
  n += pn;
  free(p);
  *len = n;
  return b;
}

static double median_ms(bench_samples_t* s) { return bench_quantile(s, 0.5) / 1e6; }

static void bench_module(const char* name, const uint8_t* bytes, size_t len) {
  cowmem_module_t* m;
  cowmem_diag_t d;
  int err = cowmem_module_parse(bytes, len, COWMEM_MODULE_BORROW, &m, &d);
  if (err) {
    printf("%s: %s %s @%" PRIu64 "\n", name, cowmem_err_name(err), d.reason, d.offset);
    return;
  }
  uint64_t data = 0, img_len = 0, img_pages = 0;
  uint32_t nseg = cowmem_module_segment_count(m), active = 0;
  for (uint32_t i = 0; i < nseg; i++) {
    cowmem_segment_info_t s;
    cowmem_module_segment_info(m, i, &s);
    if (s.mode == COWMEM_SEGMENT_ACTIVE) data += s.data_len, active++;
  }
  for (uint32_t k = 0; k < cowmem_module_memory_count(m); k++) {
    cowmem_image_t* img;
    cowmem_image_info_t ii;
    if ((img = cowmem_image_retain(cowmem_module_image(m, k, NULL))) != NULL) {
      cowmem_image_info(img, &ii);
      img_len += ii.len;
      img_pages += ii.data_pages;
      cowmem_image_release(img);
    }
  }
  cowmem_module_free(m);

  size_t iters = bench_iters(21), warm = 3;
  bench_samples_t t_borrow = {0}, t_copy = {0}, t_parse = {0}, t_base = {0};
  uint8_t* dst = malloc(data ? data : 1);
  for (size_t it = 0; it < warm + iters; it++) {
    uint64_t t0 = bench_now_ns();
    cowmem_module_parse(bytes, len, COWMEM_MODULE_BORROW, &m, NULL);
    uint64_t t1 = bench_now_ns();
    cowmem_module_free(m);
    uint64_t t2 = bench_now_ns();
    cowmem_module_parse(bytes, len, 0, &m, NULL);
    uint64_t t3 = bench_now_ns();
    cowmem_module_free(m);
    uint64_t t4 = bench_now_ns();
    cowmem_module_parse(bytes, len, COWMEM_MODULE_BORROW | COWMEM_MODULE_NO_IMAGES,
                        &m, NULL);
    uint64_t t5 = bench_now_ns();
    /* Baseline: the data bytes copied once and written to a memfd. */
    uint64_t t6 = bench_now_ns();
    size_t at = 0;
    for (uint32_t i = 0; i < nseg; i++) {
      cowmem_segment_info_t s;
      cowmem_module_segment_info(m, i, &s);
      if (s.mode != COWMEM_SEGMENT_ACTIVE) continue;
      memcpy(dst + at, s.data, s.data_len);
      at += s.data_len;
    }
    int fd = memfd_create("bench", MFD_CLOEXEC);
    size_t w = 0;
    while (fd >= 0 && w < at) {
      ssize_t r = write(fd, dst + w, at - w);
      if (r <= 0) break;
      w += (size_t)r;
    }
    if (fd >= 0) close(fd);
    uint64_t t7 = bench_now_ns();
    cowmem_module_free(m);
    if (it < warm) continue;
    bench_add(&t_borrow, (double)(t1 - t0));
    bench_add(&t_copy, (double)(t3 - t2));
    bench_add(&t_parse, (double)(t5 - t4));
    bench_add(&t_base, (double)(t7 - t6));
  }
  double base = median_ms(&t_base);
  printf("%s: %zu bytes, %u active segments, %" PRIu64 " data bytes\n", name, len,
         active, data);
  printf("  images: %" PRIu64 " bytes spanned, %" PRIu64 " bytes in data pages "
         "(%.2fx the data bytes)\n", img_len, img_pages * cowmem_page_size(),
         data ? (double)(img_pages * cowmem_page_size()) / (double)data : 0.0);
  printf("  median of %zu (after %zu warm-up), max:\n", iters, warm);
  printf("    parse only                %8.3f ms  max %8.3f\n", median_ms(&t_parse),
         bench_quantile(&t_parse, 1.0) / 1e6);
  printf("    parse + images (borrow)   %8.3f ms  max %8.3f  ratio %.2fx baseline\n",
         median_ms(&t_borrow), bench_quantile(&t_borrow, 1.0) / 1e6,
         median_ms(&t_borrow) / base);
  printf("    parse + images (copy)     %8.3f ms  max %8.3f  ratio %.2fx baseline\n",
         median_ms(&t_copy), bench_quantile(&t_copy, 1.0) / 1e6,
         median_ms(&t_copy) / base);
  printf("    baseline memcpy + memfd   %8.3f ms  max %8.3f\n", base,
         bench_quantile(&t_base, 1.0) / 1e6);
  free(dst);
  bench_free(&t_borrow);
  bench_free(&t_copy);
  bench_free(&t_parse);
  bench_free(&t_base);
}

int main(int argc, char** argv) {
  static const char* const npm[] = {
      COWMEM_BENCH_NPM_DIR "/node_modules/sql.js/dist/sql-wasm.wasm",
      COWMEM_BENCH_NPM_DIR "/node_modules/esbuild-wasm/esbuild.wasm"};
  size_t len;
  uint8_t* b;
  if (argc > 1) {
    for (int i = 1; i < argc; i++) {
      if (!(b = read_file(argv[i], &len))) {
        perror(argv[i]);
        continue;
      }
      bench_module(argv[i], b, len);
      free(b);
    }
    return 0;
  }
  for (size_t i = 0; i < sizeof npm / sizeof npm[0]; i++) {
    if (!(b = read_file(npm[i], &len))) {
      printf("%s: absent (ctest -R wasm_real_modules installs it)\n", npm[i]);
      continue;
    }
    bench_module(strrchr(npm[i], '/') + 1, b, len);
    free(b);
  }
  if ((b = synthetic(&len)) != NULL) {
    bench_module("synthetic (98000 unsorted segments)", b, len);
    free(b);
  }
  return 0;
}
