/* libFuzzer target over pre-initialization: validate, instrument and
 * rewrite (both forms) of arbitrary bytes that parse. None may crash; each
 * fails with a code and a reason or succeeds; every output of a module
 * that passes validation must parse again with cowmem's own parser, keep
 * its memory count and have no start function.
 *
 * The snapshot is made up from the input: each memory at its declared
 * minimum (up to FUZZ_PAGES_MAX; larger ones skip the rewrite), holding a
 * few of the input's bytes at an offset the input chooses; each mutable
 * defined global a value from the input. Any broken invariant traps. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cowmem.h"

#define FUZZ_PAGES_MAX 4
#define FUZZ_MEMS_MAX 8
#define FUZZ_GLOBALS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static void reparse(const uint8_t* out, size_t len, unsigned flags,
                    uint32_t nmem) {
  cowmem_module_t* r = NULL;
  cowmem_diag_t d;
  if (cowmem_module_parse(out, len, flags | COWMEM_MODULE_NO_IMAGES, &r, &d) != 0)
    __builtin_trap();
  if (cowmem_module_memory_count(r) != nmem || cowmem_module_start(r, NULL))
    __builtin_trap();
  cowmem_module_free(r);
}

static void check_instrument(const cowmem_module_t* m, unsigned flags) {
  uint8_t* out = NULL;
  size_t len = 0;
  cowmem_diag_t d;
  int r = cowmem_preinit_instrument(m, &out, &len, &d);
  if (r == COWMEM_ENOMEM || r == COWMEM_EUNSUPPORTED) return;
  if (r != 0) __builtin_trap();
  cowmem_module_t* i = NULL;
  if (cowmem_module_parse(out, len, flags | COWMEM_MODULE_NO_IMAGES, &i, &d) != 0)
    __builtin_trap();
  if (cowmem_module_export_count(i) < cowmem_module_memory_count(m) +
                                          cowmem_module_export_count(m))
    __builtin_trap();
  cowmem_module_free(i);
  free(out);
}

static void check_rewrite(const cowmem_module_t* m, unsigned flags,
                          const uint8_t* data, size_t size) {
  cowmem_preinit_memory_t mem[FUZZ_MEMS_MAX];
  cowmem_preinit_global_t glob[FUZZ_GLOBALS_MAX];
  uint32_t nmem = cowmem_module_memory_count(m), ng = 0;
  uint32_t nglob = cowmem_module_global_count(m);
  if (nmem > FUZZ_MEMS_MAX) return;
  memset(mem, 0, sizeof mem);
  for (uint32_t i = 0; i < nmem; i++) {
    cowmem_memory_info_t mi;
    if (cowmem_module_memory_info(m, i, &mi) != 0) __builtin_trap();
    if (mi.min_pages > FUZZ_PAGES_MAX) goto out;
    mem[i].pages = mi.min_pages + (mi.has_max && mi.max_pages > mi.min_pages);
    size_t n = size < 256 ? size : 256;
    uint64_t at = size ? (uint64_t)data[i % size] * 251 : 0;
    if (mem[i].pages && n &&
        cowmem_image_new_from_bytes(data, n, at % (mem[i].pages * 65536 - n + 1),
                                    &mem[i].image) != 0)
      goto out;
  }
  for (uint32_t i = 0; i < nglob; i++) {
    cowmem_global_info_t g;
    if (cowmem_module_global_info(m, i, &g) != 0) __builtin_trap();
    if (g.imported || !g.is_mutable) continue;
    if (ng == FUZZ_GLOBALS_MAX) goto out;
    glob[ng].index = i, glob[ng].type = g.type;
    glob[ng].bits[0] = 0x9e3779b97f4a7c15ull * (i + size);
    glob[ng].bits[1] = ~glob[ng].bits[0];
    ng++;
  }
  cowmem_preinit_snapshot_t snap = {mem, nmem, glob, ng};
  cowmem_preinit_options_t opt;
  cowmem_preinit_options_init(&opt);
  opt.max_segments = 1 + (uint32_t)(size % 5);
  opt.merge_gap = (uint32_t)(size % 17);
  for (int images = 0; images < 2; images++) {
    uint8_t* out = NULL;
    size_t len = 0;
    cowmem_diag_t d;
    int fd = images ? memfd_create("fuzz_preinit", 0) : -1;
    if (images && fd < 0) break;
    opt.flags = images ? COWMEM_PREINIT_IMAGES : 0;
    int r = cowmem_preinit_rewrite(m, &snap, &opt, &out, &len, fd, &d);
    if (fd >= 0) close(fd);
    if (r == 0) {
      reparse(out, len, flags, nmem);
      free(out);
    } else if (r != COWMEM_EINVAL && r != COWMEM_ENOMEM) {
      __builtin_trap(); /* validation passed: only the snapshot may fail */
    }
  }
out:
  for (uint32_t i = 0; i < nmem; i++) cowmem_image_release(mem[i].image);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  unsigned flags = COWMEM_MODULE_NO_IMAGES |
                   (size && (data[size - 1] & 1) ? COWMEM_MODULE_FRESH_IMPORTS : 0);
  if (cowmem_module_parse(data, size, flags, &m, &d) != 0) return 0;
  check_instrument(m, flags);
  int r = cowmem_preinit_validate(m, &d);
  if (r != 0 && (d.code != r || d.reason[0] == '\0')) __builtin_trap();
  if (r == 0) check_rewrite(m, flags, data, size);
  cowmem_module_free(m);
  return 0;
}
