/* The bounded reader of WebAssembly binaries (wasm3's Read_* shape).
 *
 * A cursor is a position and an end inside one buffer. Every read compares
 * the bytes it needs with `end - pos` (lengths, never pointer sums) and
 * fails with a code and a reason instead of running past the end. Every
 * caller propagates a failure with TRY(). Internal to the front end. */
#ifndef COWMEM_WASM_READER_H
#define COWMEM_WASM_READER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "cowmem.h"

/* Section ids of the binary format (the spec's order of sections is not
 * theirs: the data count section, 12, stands before code, 10). */
enum {
  WASM_SEC_CUSTOM = 0,
  WASM_SEC_TYPE = 1,
  WASM_SEC_IMPORT = 2,
  WASM_SEC_FUNCTION = 3,
  WASM_SEC_TABLE = 4,
  WASM_SEC_MEMORY = 5,
  WASM_SEC_GLOBAL = 6,
  WASM_SEC_EXPORT = 7,
  WASM_SEC_START = 8,
  WASM_SEC_ELEM = 9,
  WASM_SEC_CODE = 10,
  WASM_SEC_DATA = 11,
  WASM_SEC_DATACOUNT = 12
};

typedef struct cowmem__rd_s {
  const uint8_t* base; /* the whole module */
  size_t len;          /* bytes in the module */
  size_t pos;          /* absolute offset of the next byte */
  size_t end;          /* absolute end of the current region, <= len */
  /* Reason given for a read past `end`: the spec's reference interpreter
   * says "unexpected end" in the header and between sections, and
   * "unexpected end of section or function" inside one. */
  const char* eof_reason;
  cowmem_diag_t* diag; /* the first malformed error (never NULL) */
  cowmem_diag_t* invalid; /* the first validation error, reported only if
                             decoding the rest succeeds (spec order) */
} cowmem__rd_t;

#define TRY(expr)                                                              \
  do {                                                                         \
    int e_ = (expr);                                                           \
    if (e_ != 0) return e_;                                                    \
  } while (0)

/* Record an error at `offset` and return `code`. */
int cowmem__rd_fail(cowmem__rd_t* r, int code, size_t offset, const char* fmt,
                    ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Record a validation error (the first one only) and return 0: decoding
 * goes on, since a malformed error later in the module takes precedence. */
int cowmem__rd_invalid(cowmem__rd_t* r, size_t offset, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int cowmem__rd_eof(cowmem__rd_t* r);

static inline size_t cowmem__rd_left(const cowmem__rd_t* r) {
  return r->end - r->pos;
}

int cowmem__rd_u8_slow(cowmem__rd_t* r, uint8_t* out);
int cowmem__rd_u32_slow(cowmem__rd_t* r, uint32_t* out);
int cowmem__rd_u64(cowmem__rd_t* r, uint64_t* out);
int cowmem__rd_s32_slow(cowmem__rd_t* r, int32_t* out);

/* Fast paths inline for LEB128s of up to 4 bytes (values < 2^28) when 5
 * bytes remain, so that no byte needs its own bounds check; anything else
 * (5-byte encodings, the end of the region, errors) takes the checked slow
 * path. Most LEB128s in a module are short, and a call per read was a
 * fifth of parsing esbuild-wasm's 82,635 segments. */
static inline int cowmem__rd_u8(cowmem__rd_t* r, uint8_t* out) {
  if (r->pos < r->end) {
    *out = r->base[r->pos++];
    return 0;
  }
  return cowmem__rd_u8_slow(r, out);
}

/* Bytes of a short LEB128 at p (1..4), its payload in *v; 0 if longer. */
static inline unsigned cowmem__leb_short(const uint8_t* p, uint32_t* v) {
  uint32_t x = p[0] & 0x7fu;
  if (p[0] < 0x80) return *v = x, 1;
  x |= (uint32_t)(p[1] & 0x7f) << 7;
  if (p[1] < 0x80) return *v = x, 2;
  x |= (uint32_t)(p[2] & 0x7f) << 14;
  if (p[2] < 0x80) return *v = x, 3;
  x |= (uint32_t)(p[3] & 0x7f) << 21;
  if (p[3] < 0x80) return *v = x, 4;
  return 0;
}

static inline int cowmem__rd_u32(cowmem__rd_t* r, uint32_t* out) {
  if (r->end - r->pos >= 5) {
    uint32_t v;
    unsigned n = cowmem__leb_short(r->base + r->pos, &v);
    if (n) {
      r->pos += n;
      *out = v;
      return 0;
    }
  }
  return cowmem__rd_u32_slow(r, out);
}
static inline int cowmem__rd_s32(cowmem__rd_t* r, int32_t* out) {
  if (r->end - r->pos >= 5) {
    uint32_t v;
    unsigned n = cowmem__leb_short(r->base + r->pos, &v);
    if (n) {
      if (r->base[r->pos + n - 1] & 0x40) v |= ~(uint32_t)0 << (7 * n);
      r->pos += n;
      *out = (int32_t)v;
      return 0;
    }
  }
  return cowmem__rd_s32_slow(r, out);
}

int cowmem__rd_s64(cowmem__rd_t* r, int64_t* out);
/* n raw bytes: *out is their absolute offset. */
int cowmem__rd_bytes(cowmem__rd_t* r, uint64_t n, size_t* out);
int cowmem__rd_skip(cowmem__rd_t* r, uint64_t n);
/* A length-prefixed UTF-8 name: offset and length of its bytes. */
int cowmem__rd_name(cowmem__rd_t* r, size_t* off, uint32_t* len);
/* A vector count, capped by the bytes left (each entry takes >= min_size
 * bytes), so that the caller may allocate count entries. */
int cowmem__rd_count(cowmem__rd_t* r, size_t min_size, uint32_t* out);

bool cowmem__utf8_valid(const uint8_t* s, size_t n);

#endif
