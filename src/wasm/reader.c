/* The bounded reader: LEB128, names, counts. See reader.h. */
#include "wasm/reader.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void diag_set(cowmem_diag_t* d, int code, size_t offset,
                     const char* fmt, va_list ap) {
  d->code = code;
  d->offset = offset;
  vsnprintf(d->reason, sizeof d->reason, fmt, ap);
}

int cowmem__rd_fail(cowmem__rd_t* r, int code, size_t offset, const char* fmt,
                    ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_set(r->diag, code, offset, fmt, ap);
  va_end(ap);
  return code;
}

int cowmem__rd_invalid(cowmem__rd_t* r, size_t offset, const char* fmt, ...) {
  if (r->invalid->code != 0) return 0;
  va_list ap;
  va_start(ap, fmt);
  diag_set(r->invalid, COWMEM_EINVALID, offset, fmt, ap);
  va_end(ap);
  return 0;
}

int cowmem__rd_eof(cowmem__rd_t* r) {
  return cowmem__rd_fail(r, COWMEM_EMALFORMED, r->end, "%s", r->eof_reason);
}

int cowmem__rd_u8_slow(cowmem__rd_t* r, uint8_t* out) {
  if (r->pos >= r->end) return cowmem__rd_eof(r);
  *out = r->base[r->pos++];
  return 0;
}

/* LEB128 of at most `bits` bits. The last permitted byte must not continue
 * ("integer representation too long") and its bits above `bits` must be zero
 * (unsigned) or copies of the sign bit (signed): "integer too large". */
static int rd_leb(cowmem__rd_t* r, unsigned bits, bool sign, uint64_t* out) {
  const size_t start = r->pos;
  const unsigned max_bytes = (bits + 6) / 7;
  uint64_t result = 0;
  unsigned shift = 0;
  uint8_t b = 0;
  for (unsigned i = 0; i < max_bytes; i++) {
    if (r->pos >= r->end) return cowmem__rd_eof(r);
    b = r->base[r->pos++];
    if (i == max_bytes - 1) {
      if (b & 0x80)
        return cowmem__rd_fail(r, COWMEM_EMALFORMED, start,
                               "integer representation too long");
      unsigned used = bits - shift; /* 1..7 payload bits in this byte */
      uint8_t top = (uint8_t)((b & 0x7f) >> (sign ? used - 1 : used));
      uint8_t all = (uint8_t)(0x7f >> (sign ? used - 1 : used));
      if (top != 0 && !(sign && top == all))
        return cowmem__rd_fail(r, COWMEM_EMALFORMED, start,
                               "integer too large");
    }
    result |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) break;
  }
  if (sign && shift < 64 && (b & 0x40)) result |= ~(uint64_t)0 << shift;
  *out = result;
  return 0;
}

int cowmem__rd_u32_slow(cowmem__rd_t* r, uint32_t* out) {
  uint64_t v = 0; /* gcc -O3 cannot see that an error return leaves it unused */
  TRY(rd_leb(r, 32, false, &v));
  *out = (uint32_t)v;
  return 0;
}

int cowmem__rd_u64(cowmem__rd_t* r, uint64_t* out) {
  return rd_leb(r, 64, false, out);
}

int cowmem__rd_s32_slow(cowmem__rd_t* r, int32_t* out) {
  uint64_t v = 0; /* gcc -O3 cannot see that an error return leaves it unused */
  TRY(rd_leb(r, 32, true, &v));
  *out = (int32_t)(uint32_t)v;
  return 0;
}

int cowmem__rd_s64(cowmem__rd_t* r, int64_t* out) {
  uint64_t v = 0; /* gcc -O3 cannot see that an error return leaves it unused */
  TRY(rd_leb(r, 64, true, &v));
  *out = (int64_t)v;
  return 0;
}

int cowmem__rd_bytes(cowmem__rd_t* r, uint64_t n, size_t* out) {
  if (n > cowmem__rd_left(r)) {
    r->pos = r->end;
    return cowmem__rd_eof(r);
  }
  *out = r->pos;
  r->pos += (size_t)n;
  return 0;
}

int cowmem__rd_skip(cowmem__rd_t* r, uint64_t n) {
  size_t ignored;
  return cowmem__rd_bytes(r, n, &ignored);
}

int cowmem__rd_name(cowmem__rd_t* r, size_t* off, uint32_t* len) {
  uint32_t n;
  size_t at;
  TRY(cowmem__rd_u32(r, &n));
  if (n > cowmem__rd_left(r))
    return cowmem__rd_fail(r, COWMEM_EMALFORMED, r->pos,
                           "length out of bounds");
  TRY(cowmem__rd_bytes(r, n, &at));
  if (!cowmem__utf8_valid(r->base + at, n))
    return cowmem__rd_fail(r, COWMEM_EMALFORMED, at,
                           "malformed UTF-8 encoding");
  *off = at;
  *len = n;
  return 0;
}

int cowmem__rd_count(cowmem__rd_t* r, size_t min_size, uint32_t* out) {
  uint32_t n;
  TRY(cowmem__rd_u32(r, &n));
  if (min_size > 0 && n > cowmem__rd_left(r) / min_size) {
    r->pos = r->end;
    return cowmem__rd_eof(r);
  }
  *out = n;
  return 0;
}

/* UTF-8 as the spec defines it: shortest form, no surrogates, <= U+10FFFF. */
bool cowmem__utf8_valid(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t need;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      need = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      need = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      need = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (need > n - i - 1) return false;
    for (size_t k = 1; k <= need; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += need + 1;
  }
  return true;
}
