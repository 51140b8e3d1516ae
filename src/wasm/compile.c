/* The module side of image files: the module hash and compiling a module
 * into an image file, and checking a file against the module it claims
 * (the format is imgfile.h's). Only public accessors of the module are
 * used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem.h"
#include "wasm/wasm.h"

int cowmem_module_hash(const cowmem_module_t* m, uint8_t out[32]) {
  if (!m || !out) return COWMEM_EINVAL;
  size_t len = 0;
  const uint8_t* bytes = cowmem_module_bytes(m, &len);
  cowmem_sha256(bytes, len, out);
  return 0;
}

/* Memory i's descriptor (its image borrowed from the module); its
 * segments_left is counted by the caller. */
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
  d->fresh = mi.fresh;
  d->min_pages = mi.min_pages;
  d->max_pages = mi.has_max ? mi.max_pages : 0;
  cowmem_diag_t why;
  d->image = cowmem_module_image(m, i, &why);
  d->noimage = why.noimage;
  if (d->noimage == COWMEM_NOIMAGE_NOT_BUILT) return COWMEM_EINVAL;
  return 0;
}

/* Every memory's active segments that no image covers, in one pass over
 * the segments (not one per memory: 10^5 memories and segments). */
static int count_left(const cowmem_module_t* m, cowmem_imgfile_memory_t* mems,
                      uint32_t n) {
  uint32_t nseg = cowmem_module_segment_count(m);
  for (uint32_t s = 0; s < nseg; s++) {
    cowmem_segment_info_t si;
    int err = cowmem_module_segment_info(m, s, &si);
    if (err != 0) return err;
    if (si.mode == COWMEM_SEGMENT_ACTIVE && si.memory < n && !si.covered_by_image)
      mems[si.memory].segments_left++;
  }
  return 0;
}

/* The descriptors cowmem_module_compile writes for m (images borrowed):
 * *out, n of them, to free. */
static int describe_all(const cowmem_module_t* m, cowmem_imgfile_memory_t** out,
                        uint32_t* nout) {
  uint32_t n = cowmem_module_memory_count(m);
  if (n > 4096) return COWMEM_EINVAL;
  cowmem_imgfile_memory_t* mems = calloc(n ? n : 1, sizeof *mems);
  if (!mems) return COWMEM_ENOMEM;
  int err = 0;
  for (uint32_t i = 0; i < n && err == 0; i++)
    err = describe(m, i, &mems[i]);
  if (err == 0) err = count_left(m, mems, n);
  if (err != 0) {
    free(mems);
    return err;
  }
  *out = mems;
  *nout = n;
  return 0;
}

int cowmem_module_compile(const cowmem_module_t* m, int fd) {
  if (!m || fd < 0) return COWMEM_EINVAL;
  cowmem_imgfile_memory_t* mems = NULL;
  uint32_t n = 0;
  uint8_t hash[32];
  int err = cowmem_module_hash(m, hash);
  if (err == 0) err = describe_all(m, &mems, &n);
  if (err == 0) err = cowmem_imgfile_write(fd, mems, n, hash);
  free(mems);
  return err;
}

int cowmem_imgfile_check_module(const cowmem_imgfile_t* f, const cowmem_module_t* m,
                                cowmem_diag_t* diag) {
  cowmem_diag_t local;
  if (!diag) diag = &local;
  memset(diag, 0, sizeof *diag);
  cowmem_imgfile_memory_t* want = NULL;
  uint32_t n = 0;
  uint8_t hash[32];
  int err = f && m ? cowmem_module_hash(m, hash) : COWMEM_EINVAL;
  if (err == 0) err = describe_all(m, &want, &n);
  if (err != 0) {
    diag->code = err;
    snprintf(diag->reason, sizeof diag->reason, "%s",
             err == COWMEM_EINVAL ? "invalid argument (a module parsed with "
                                    "COWMEM_MODULE_NO_IMAGES has no images to compare)"
                                  : cowmem_strerror(err));
    return err;
  }
  err = cowmem__imgfile_compare(f, hash, want, n, diag);
  free(want);
  return err;
}
