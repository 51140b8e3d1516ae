/* libFuzzer target over the WebAssembly reader, the image builder and
 * strip.
 *
 * It drives the internal entry points so that images are built with a
 * small span cap (1 MiB instead of COWMEM_MODULE_IMAGE_SPAN_MAX: a fuzzed
 * segment at 3 GiB would otherwise cost a 3 GiB calloc per input), then the
 * fallback and the instantiation check on small buffers. Any broken
 * invariant traps, which libFuzzer reports as a crash; so does a module
 * that decodes but whose images fail to build (anything but ENOMEM). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem.h"
#include "wasm/wasm.h"

#define FUZZ_SPAN_MAX ((uint64_t)1 << 20)
#define FUZZ_MEM_MAX 65536u

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static void exercise(cowmem_module_t* m) {
  uint32_t nmem = cowmem_module_memory_count(m);
  uint32_t ig = cowmem_module_import_count(m, COWMEM_EXTERN_GLOBAL);
  uint32_t im = cowmem_module_import_count(m, COWMEM_EXTERN_MEMORY);
  for (uint32_t i = 0; i < cowmem_module_segment_count(m); i++) {
    cowmem_segment_info_t s;
    if (cowmem_module_segment_info(m, i, &s) != 0) __builtin_trap();
    if (s.segment_end > m->len || s.data_offset + s.data_len != s.segment_end)
      __builtin_trap();
  }
  if (nmem > 64 || ig > 64) return;
  cowmem_global_value_t g[64];
  cowmem_memory_desc_t md[64];
  cowmem_memory_view_t v[64];
  static uint8_t mem[64][FUZZ_MEM_MAX];
  for (uint32_t k = 0; k < ig; k++) {
    cowmem_global_info_t gi;
    cowmem_module_global_info(m, k, &gi);
    g[k].type = gi.type, g[k].is_mutable = gi.is_mutable, g[k].bits = 4096 * k;
  }
  for (uint32_t k = 0; k < nmem; k++) {
    cowmem_memory_info_t mi;
    cowmem_image_t* img;
    cowmem_diag_t why;
    cowmem_module_memory_info(m, k, &mi);
    img = cowmem_image_retain(cowmem_module_image(m, k, &why));
    if (img && why.noimage != COWMEM_NOIMAGE_NONE) __builtin_trap();
    /* An imported memory has an image only when promised fresh. */
    if (mi.imported && !(m->flags & COWMEM_MODULE_FRESH_IMPORTS) &&
        (img || why.noimage != COWMEM_NOIMAGE_IMPORTED))
      __builtin_trap();
    cowmem_image_release(img);
    md[k].pages = mi.min_pages, md[k].max_pages = mi.max_pages;
    md[k].has_max = mi.has_max, md[k].memory64 = mi.memory64;
    md[k].shared = mi.shared;
    v[k].base = mem[k];
    v[k].size = mi.min_pages ? FUZZ_MEM_MAX : 0;
  }
  cowmem_diag_t d;
  int r = cowmem_module_instantiate_check(m, md, im, g, ig, &d);
  if (r != 0 && r != COWMEM_EOOB && r != COWMEM_EUNLINKABLE) __builtin_trap();
  r = cowmem_module_apply(m, 0, v, nmem, g, ig, 0, &d);
  if (r != 0 && r != COWMEM_EOOB) __builtin_trap();
}

/* Strip a module that parsed: the output must parse under the same rules,
 * either remove exactly the covered segments (keeping the others in order)
 * or keep every segment index with exactly the covered ones as empty
 * passive segments, and have nothing left to strip. */
static void check_strip(const cowmem_module_t* m) {
  uint8_t* out = NULL;
  size_t len = 0;
  uint32_t n = 0;
  int r = cowmem_module_strip(m, &out, &len, &n);
  if (r == COWMEM_ENOMEM) return;
  if (r != 0) __builtin_trap();
  cowmem_module_t s;
  cowmem_diag_t d;
  memset(&s, 0, sizeof s);
  s.bytes = out;
  s.len = len;
  s.flags = m->flags;
  if (cowmem__module_decode(&s, &d) != 0) __builtin_trap();
  if (cowmem__module_build_images(&s, FUZZ_SPAN_MAX) != 0) __builtin_trap();
  uint32_t nseg = cowmem_module_segment_count(m), nout = cowmem_module_segment_count(&s);
  bool removed = nout != nseg;
  if ((removed && nout != nseg - n) ||
      cowmem_module_memory_count(&s) != cowmem_module_memory_count(m))
    __builtin_trap();
  uint32_t covered = 0, j = 0;
  for (uint32_t i = 0; i < nseg; i++) {
    cowmem_segment_info_t a, b;
    if (cowmem_module_segment_info(m, i, &a) != 0) __builtin_trap();
    covered += a.covered_by_image;
    if (removed && a.covered_by_image) continue;
    if (cowmem_module_segment_info(&s, j++, &b) != 0) __builtin_trap();
    if (a.covered_by_image ? b.mode != COWMEM_SEGMENT_PASSIVE || b.data_len != 0
                           : b.mode != a.mode || b.data_len != a.data_len)
      __builtin_trap();
    if (b.covered_by_image) __builtin_trap();
  }
  if (covered != n || j != nout) __builtin_trap();
  cowmem__module_clear(&s);
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cowmem_module_t m;
  cowmem_diag_t d;
  memset(&m, 0, sizeof m);
  m.bytes = data;
  m.len = size;
  /* Alternate the era rules on one input bit so both paths are covered. */
  m.flags = COWMEM_MODULE_BORROW |
            (size & 1 ? COWMEM_MODULE_NO_DEFINED_GLOBAL_GET |
                            COWMEM_MODULE_NO_THREADS |
                            COWMEM_MODULE_NO_EXCEPTIONS |
                            COWMEM_MODULE_NO_MULTI_MEMORY |
                            COWMEM_MODULE_CHECK_BODIES
                      : 0);
  /* Fresh imports on another bit (of the last byte, so that the same
   * module is tried both ways as the fuzzer mutates its tail): imported
   * memories then get images and strip drops their segments. */
  if (size > 0 && (data[size - 1] & 0x80)) m.flags |= COWMEM_MODULE_FRESH_IMPORTS;
  int r = cowmem__module_decode(&m, &d);
  if (r != 0) {
    if (d.code != r || d.offset > size || d.reason[0] == 0) __builtin_trap();
    if (r != COWMEM_EMALFORMED && r != COWMEM_EINVALID &&
        r != COWMEM_EUNSUPPORTED && r != COWMEM_ENOMEM)
      __builtin_trap();
  } else if ((r = cowmem__module_build_images(&m, FUZZ_SPAN_MAX)) == 0) {
    exercise(&m);
    check_strip(&m);
  } else if (r != COWMEM_ENOMEM) {
    /* A valid module whose image cannot be built: the builder's bug (a
     * memory it cannot image says why, with a reason, and parses). */
    __builtin_trap();
  }
  cowmem__module_clear(&m);
  return 0;
}
