/* libFuzzer target over cowmem_module_apply (the segmented fallback) with
 * random imported-global values and memory sizes, checked against a
 * reference written here from the spec's rule: segments in module order,
 * each at its offset (a constant, or an imported global's value: i32
 * unsigned for a 32-bit memory, i64 for a 64-bit one), the first that does
 * not fit its memory's size stops everything with EOOB and writes nothing,
 * earlier ones stay written.
 *
 * Input: 64 bytes of control (8 global values, 4 memory sizes, which views
 * have no base), then the module. Any disagreement traps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem.h"

#define CONTROL 64
#define VIEWS 4
#define MEM_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static uint64_t rd64(const uint8_t* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static uint8_t mem[VIEWS][MEM_MAX], ref[VIEWS][MEM_MAX];

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < CONTROL) return 0;
  const uint8_t* c = data;
  cowmem_module_t* m = NULL;
  if (cowmem_module_parse(data + CONTROL, size - CONTROL,
                          COWMEM_MODULE_BORROW | COWMEM_MODULE_NO_IMAGES, &m, NULL) != 0)
    return 0;
  uint32_t nmem = cowmem_module_memory_count(m);
  uint32_t ng = cowmem_module_import_count(m, COWMEM_EXTERN_GLOBAL);
  if (ng > 64) ng = 64; /* more imports than values: EINVAL below */
  cowmem_global_value_t g[64];
  for (uint32_t k = 0; k < ng; k++) {
    cowmem_global_info_t gi;
    if (cowmem_module_global_info(m, k, &gi) != 0) __builtin_trap();
    /* Small values most of the time (so segments fit), any 64 bits else. */
    uint64_t v = rd64(c + 8 * (k % 8)) ^ k;
    if ((c[56] >> (k % 8)) & 1) v %= MEM_MAX;
    g[k].type = gi.type;
    g[k].is_mutable = gi.is_mutable;
    g[k].bits = v;
  }
  uint32_t nviews = nmem < VIEWS ? nmem : VIEWS;
  cowmem_memory_view_t v[VIEWS];
  bool mem64[VIEWS];
  for (uint32_t k = 0; k < nviews; k++) {
    cowmem_memory_info_t mi;
    if (cowmem_module_memory_info(m, k, &mi) != 0) __builtin_trap();
    mem64[k] = mi.memory64;
    uint64_t sz = ((uint64_t)c[57 + k] * 257) % (MEM_MAX + 1);
    if (c[61] & (1u << k)) sz &= ~(uint64_t)4095; /* page sizes too */
    v[k].size = sz;
    v[k].base = (c[62] >> k) & 1 ? NULL : mem[k];
    memset(mem[k], 0xa5, MEM_MAX);
    memset(ref[k], 0xa5, MEM_MAX);
  }
  /* The reference. */
  int want = 0;
  uint64_t want_off = 0;
  bool counts_ok = ng == cowmem_module_import_count(m, COWMEM_EXTERN_GLOBAL);
  for (uint32_t i = 0; counts_ok && i < cowmem_module_segment_count(m) && want == 0;
       i++) {
    cowmem_segment_info_t s;
    if (cowmem_module_segment_info(m, i, &s) != 0) __builtin_trap();
    if (s.mode != COWMEM_SEGMENT_ACTIVE || s.memory >= nviews) continue;
    uint64_t off = s.offset;
    if (s.offset_kind == COWMEM_OFFSET_GLOBAL) {
      if (s.offset >= ng) __builtin_trap(); /* the parser checked it */
      off = g[s.offset].bits;
    }
    if (!mem64[s.memory]) off = (uint32_t)off;
    if (off > v[s.memory].size || s.data_len > v[s.memory].size - off) {
      want = COWMEM_EOOB;
      want_off = s.segment_offset;
      break;
    }
    if (v[s.memory].base != NULL && s.data_len > 0)
      memcpy(ref[s.memory] + off, s.data, (size_t)s.data_len);
  }
  cowmem_diag_t d;
  int r = cowmem_module_apply(m, 0, v, nviews, g, ng, 0, &d);
  if (!counts_ok) {
    if (r != COWMEM_EINVAL) __builtin_trap();
  } else {
    if (r != want) __builtin_trap();
    /* diag->offset is in the binary, at or after the trapping segment. */
    if (r == COWMEM_EOOB && (d.code != r || d.offset < want_off || d.offset > size))
      __builtin_trap();
    for (uint32_t k = 0; k < nviews; k++)
      if (memcmp(mem[k], ref[k], MEM_MAX) != 0) __builtin_trap();
  }
  cowmem_module_free(m);
  return 0;
}
