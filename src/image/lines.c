/* A reset's copies, a line at a time (lines.h). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "image/lines.h"
#include "os/os.h"

#define LINE 64
/* A block is where the count of differing lines starts again: a page on
 * the machines cowmem runs on. Past MANY differing lines in one, the rest
 * of it is copied without comparing: the instance rewrote it. */
#define BLOCK 4096
#define MANY 8

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* dst = src over [0, len), len <= BLOCK, writing the lines that differ
 * until MANY have; then the rest whole. */
__attribute__((target("avx2"))) static void block_copy(uint8_t* dst, const uint8_t* src,
                                                        size_t len) {
  size_t i = 0, differ = 0;
  for (; i + LINE <= len; i += LINE) {
    __m256i a0 = _mm256_loadu_si256((const __m256i*)(const void*)(dst + i));
    __m256i a1 = _mm256_loadu_si256((const __m256i*)(const void*)(dst + i + 32));
    __m256i b0 = _mm256_loadu_si256((const __m256i*)(const void*)(src + i));
    __m256i b1 = _mm256_loadu_si256((const __m256i*)(const void*)(src + i + 32));
    __m256i x = _mm256_or_si256(_mm256_xor_si256(a0, b0), _mm256_xor_si256(a1, b1));
    if (_mm256_testz_si256(x, x)) continue;
    _mm256_storeu_si256((__m256i*)(void*)(dst + i), b0);
    _mm256_storeu_si256((__m256i*)(void*)(dst + i + 32), b1);
    if (++differ == MANY) {
      i += LINE;
      break;
    }
  }
  if (i < len) memcpy(dst + i, src + i, len - i);
}

static bool can_compare(void) {
  return __builtin_cpu_supports("avx2");
}
#else
static void block_copy(uint8_t* dst, const uint8_t* src, size_t len) {
  memcpy(dst, src, len);
}
static bool can_compare(void) {
  return false;
}
#endif

/* 0: not asked yet; 1: compare; -1: copy plainly. Racing first calls
 * store the same answer. */
static _Atomic int compare_state;

static bool comparing(void) {
  int s = atomic_load_explicit(&compare_state, memory_order_relaxed);
  if (s == 0) {
    s = can_compare() ? 1 : -1;
    atomic_store_explicit(&compare_state, s, memory_order_relaxed);
  }
  return s > 0;
}

/* Which way owned pages take: measured, the faster on 8 pages of 4 KiB
 * with one line changed in each (what a reset that scanned sees most),
 * taking turns so that a preemption or a change of clock speed falls on
 * both, the fastest of ROUNDS runs each. Each run ends with a locked
 * instruction, as a reset does (the pool's next one): it waits for the
 * copies' stores to drain, which on some machines is most of a plain
 * copy's cost. */
#define PAGES 8
#define ROUNDS 16

/* Through a volatile pointer: the copy's result is never read, and a
 * compiler may drop a memcpy into memory freed after it. */
static void* (*volatile plain_copy)(void*, const void*, size_t) = memcpy;
static _Atomic uint64_t drained;

static bool measure(uint64_t* compare_ns, uint64_t* copy_ns) {
  uint64_t best[2] = {UINT64_MAX, UINT64_MAX};
  uint8_t* buf = aligned_alloc(BLOCK, 2 * PAGES * BLOCK);
  if (buf == NULL) { /* no answer: compare, as before anything was measured */
    *compare_ns = *copy_ns = 0;
    return true;
  }
  uint8_t *dst = buf, *src = buf + PAGES * BLOCK;
  for (size_t i = 0; i < PAGES * BLOCK; i++)
    src[i] = (uint8_t)(i * 131 + i / BLOCK + 7);
  memcpy(dst, src, PAGES * BLOCK);
  for (int r = 0; r < 2 * ROUNDS; r++) {
    int way = r & 1; /* 1: compare */
    for (size_t p = 0; p < PAGES; p++)
      dst[p * BLOCK + (size_t)(r * 7 + (int)p) % (BLOCK / LINE) * LINE] ^= 0x5a;
    uint64_t t0 = cowmem__os_now_ns();
    for (size_t p = 0; p < PAGES; p++) {
      if (way)
        block_copy(dst + p * BLOCK, src + p * BLOCK, BLOCK);
      else
        plain_copy(dst + p * BLOCK, src + p * BLOCK, BLOCK);
    }
    atomic_fetch_add_explicit(&drained, 1, memory_order_seq_cst);
    uint64_t t = cowmem__os_now_ns() - t0;
    if (t < best[way]) best[way] = t;
  }
  free(buf);
  *compare_ns = best[1];
  *copy_ns = best[0];
  return best[1] < best[0];
}

/* 0: not measured yet; 1: compare owned pages; -1: copy them plainly. */
static _Atomic int own_state;

static bool comparing_own(void) {
  int s = atomic_load_explicit(&own_state, memory_order_relaxed);
  if (s == 0) {
    uint64_t c, p;
    s = comparing() && measure(&c, &p) ? 1 : -1;
    atomic_store_explicit(&own_state, s, memory_order_relaxed);
  }
  return s > 0;
}

void cowmem__lines_copy(uint8_t* dst, const uint8_t* src, size_t len, bool own) {
  if (own ? !comparing_own() : !comparing()) {
    memcpy(dst, src, len);
    return;
  }
  /* Blocks follow the memory's own 4 KiB boundaries, so that a rewritten
   * page is one block whatever the range's start. */
  while (len > 0) {
    size_t n = BLOCK - ((uintptr_t)dst & (BLOCK - 1));
    if (n > len) n = len;
    block_copy(dst, src, n);
    dst += n;
    src += n;
    len -= n;
  }
}

#ifdef COWMEM_TESTING
bool cowmem__lines_compare_set(bool on) {
  int s = on && can_compare() ? 1 : -1;
  atomic_store_explicit(&compare_state, s, memory_order_relaxed);
  atomic_store_explicit(&own_state, s, memory_order_relaxed);
  return s > 0;
}

bool cowmem__lines_own_compare_set(bool on) {
  int s = on && comparing() ? 1 : -1;
  atomic_store_explicit(&own_state, s, memory_order_relaxed);
  return s > 0;
}

bool cowmem__lines_measure(uint64_t* compare_ns, uint64_t* copy_ns) {
  bool on = comparing() && measure(compare_ns, copy_ns);
  if (!comparing()) *compare_ns = *copy_ns = 0;
  atomic_store_explicit(&own_state, on ? 1 : -1, memory_order_relaxed);
  return on;
}
#endif
