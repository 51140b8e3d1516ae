/* A reset's copies, a line at a time (lines.h). */
#include <stdatomic.h>
#include <string.h>

#include "image/lines.h"

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

void cowmem__lines_copy(uint8_t* dst, const uint8_t* src, size_t len) {
  if (!comparing()) {
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
  return s > 0;
}
#endif
