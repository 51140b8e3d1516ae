/* The module side of image files: the module hash, compiling a module into
 * an image file, and opening a file for a given module. The file format
 * itself is the core's (src/imgfile.c), which knows nothing of modules, so
 * snapshots can write files too. Only public accessors of the module are
 * used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem.h"

int cowmem_module_hash(const cowmem_module_t* m, uint8_t out[32]) {
  if (!m || !out) return COWMEM_EINVAL;
  size_t len = 0;
  const uint8_t* bytes = cowmem_module_bytes(m, &len);
  cowmem_sha256(bytes, len, out);
  return 0;
}

/* Memory i's descriptor (its image is a new reference). */
static int describe(const cowmem_module_t* m, uint32_t i, cowmem_imgfile_memory_t* d) {
  cowmem_memory_info_t mi;
  int err = cowmem_module_memory_info(m, i, &mi);
  if (err != 0) return err;
  memset(d, 0, sizeof *d);
  d->index = i;
  d->imported = mi.imported;
  d->memory64 = mi.memory64;
  d->shared = mi.shared;
  d->has_max = mi.has_max;
  d->min_pages = mi.min_pages;
  d->max_pages = mi.has_max ? mi.max_pages : 0;
  err = cowmem_module_memory_image(m, i, &d->image, &d->why);
  if (err != 0) return err;
  if (d->why == COWMEM_NOIMAGE_NOT_BUILT) return COWMEM_EINVAL;
  uint32_t nseg = cowmem_module_segment_count(m);
  for (uint32_t s = 0; s < nseg; s++) {
    cowmem_segment_info_t si;
    if ((err = cowmem_module_segment_info(m, s, &si)) != 0) return err;
    if (si.mode == COWMEM_SEGMENT_ACTIVE && si.memory == i && !si.covered_by_image)
      d->segments_left++;
  }
  return 0;
}

int cowmem_module_compile(const cowmem_module_t* m, int fd) {
  if (!m || fd < 0) return COWMEM_EINVAL;
  uint32_t n = cowmem_module_memory_count(m);
  if (n > 4096) return COWMEM_EINVAL;
  cowmem_imgfile_memory_t* mems = calloc(n ? n : 1, sizeof *mems);
  if (!mems) return COWMEM_ENOMEM;
  uint8_t hash[32];
  int err = cowmem_module_hash(m, hash);
  for (uint32_t i = 0; i < n && err == 0; i++)
    err = describe(m, i, &mems[i]);
  if (err == 0) err = cowmem_imgfile_write(fd, mems, n, hash);
  for (uint32_t i = 0; i < n; i++)
    cowmem_image_free(mems[i].image);
  free(mems);
  return err;
}

int cowmem_imgfile_open(int fd, const cowmem_module_t* module, unsigned flags,
                        cowmem_imgfile_t** out, cowmem_diag_t* diag) {
  cowmem_diag_t local;
  if (!diag) diag = &local;
  uint8_t hash[32];
  if (module && cowmem_module_hash(module, hash) != 0) {
    memset(diag, 0, sizeof *diag);
    diag->code = COWMEM_EINVAL;
    snprintf(diag->reason, sizeof diag->reason, "invalid argument");
    return COWMEM_EINVAL;
  }
  cowmem_imgfile_t* f = NULL;
  int err = cowmem_imgfile_open_hash(fd, module ? hash : NULL, flags, &f, diag);
  if (err != 0 || !module) {
    if (err == 0) *out = f;
    return err;
  }
  /* Same bytes, so the same memories, unless the file was written by hand
   * with this module's hash: check what instantiation relies on. */
  uint32_t n = cowmem_module_memory_count(module);
  const char* why = NULL;
  if (cowmem_imgfile_memory_count(f) != n) why = "memory count differs";
  for (uint32_t i = 0; i < n && !why; i++) {
    cowmem_memory_info_t mi;
    cowmem_imgfile_memory_t fm;
    if (cowmem_module_memory_info(module, i, &mi) != 0 ||
        cowmem_imgfile_memory(f, i, &fm) != 0 || fm.index != i ||
        fm.min_pages != mi.min_pages || fm.imported != mi.imported ||
        fm.memory64 != mi.memory64 || fm.has_max != mi.has_max ||
        (mi.has_max && fm.max_pages != mi.max_pages))
      why = "memory limits differ";
  }
  if (why) {
    cowmem_imgfile_free(f);
    diag->code = COWMEM_EMISMATCH;
    diag->offset = 0;
    snprintf(diag->reason, sizeof diag->reason, "does not belong to this module: %s",
             why);
    return COWMEM_EMISMATCH;
  }
  *out = f;
  return 0;
}
