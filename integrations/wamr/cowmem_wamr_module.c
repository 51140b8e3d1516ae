/* cowmem_wamr_module.c: module sets, the images of a module's memory and
 * its stripped form loaded into WAMR (see cowmem_wamr.h). */
#include <stdlib.h>
#include <string.h>

#include "wamr_internal.h"

/* Without multi-module, WAMR creates an imported memory itself for every
 * instance, zeroed, of the declared size (memories_instantiate): the
 * promise COWMEM_MODULE_FRESH_IMPORTS asks for, so an imported memory's
 * data comes from an image too (cowmem_wamr_module() strips and compiles
 * with --fresh-imports to match). */
#define PARSE_FLAGS (COWMEM_MODULE_BORROW | COWMEM_MODULE_FRESH_IMPORTS)

/* What a module set needs to know of one memory, from a parse of the
 * module or from an image file's descriptor. */
typedef struct {
  bool imported, memory64, shared, has_max;
  uint64_t min_pages, max_pages;
  uint32_t segments; /* active segments an instantiation still applies */
} mem_desc_t;

/* The memories cowmem_wamr maps exactly (cowmem_wamr.h says why). */
static int check_memories(uint32_t n, const mem_desc_t* d, cowmem_diag_t* diag) {
  if (n > 1)
    return cowmem_integ_fail(diag, COWMEM_EUNSUPPORTED,
                "%u memories: cowmem_wamr supports one (WAMR's allocator "
                "hook is not told which memory it allocates)",
                n);
  if (n == 1 && d->shared)
    return cowmem_integ_fail(diag, COWMEM_EUNSUPPORTED,
                "memory 0 is shared: not supported by cowmem_wamr");
  if (n == 1 && d->memory64 && (!d->has_max || d->max_pages > 65536))
    return cowmem_integ_fail(diag, COWMEM_EUNSUPPORTED,
                "memory 0 is a memory64 memory that may exceed 4 GiB: WAMR's "
                "allocator hook passes 32-bit sizes");
  return 0;
}

static bool same(const mem_desc_t* a, const mem_desc_t* b) {
  return a->imported == b->imported && a->memory64 == b->memory64 &&
         a->shared == b->shared && a->has_max == b->has_max &&
         a->min_pages == b->min_pages && (!a->has_max || a->max_pages == b->max_pages) &&
         a->segments == b->segments;
}

/* Load the stripped bytes into WAMR; the set takes them (freed on error). */
static int load(cowmem_wamr_module_t* m, uint8_t* bytes, size_t len,
                cowmem_diag_t* diag) {
  if (len > UINT32_MAX) {
    free(bytes);
    return cowmem_integ_fail(diag, COWMEM_EUNSUPPORTED, "module of %zu bytes: WAMR loads < 4 GiB",
                len);
  }
  char err[128] = "";
  m->bytes = bytes;
  m->wamr = wasm_runtime_load(bytes, (uint32_t)len, err, sizeof err);
  if (!m->wamr) return cowmem_integ_fail(diag, COWMEM_EINVALID, "WAMR: %s", err);
  return 0;
}

static int set_image(cowmem_wamr_module_t* m, cowmem_image_t* image) {
  m->image = image;
  cowmem_image_info_t ii;
  if (image) {
    int r = cowmem_image_info(image, &ii);
    if (r != 0) return r;
    m->image_end = ii.mem_offset + ii.len;
  }
  return 0;
}

static int memory_desc(const cowmem_module_t* mod, mem_desc_t* d) {
  cowmem_memory_info_t mi;
  int r = cowmem_module_memory_info(mod, 0, &mi);
  if (r != 0) return r;
  *d = (mem_desc_t){mi.imported,  mi.memory64,  mi.shared,         mi.has_max,
                    mi.min_pages, mi.max_pages, mi.active_segments};
  return 0;
}

/* A new set, empty but for its cache of execution environments. */
static cowmem_wamr_module_t* set_new(void) {
  cowmem_wamr_module_t* m = calloc(1, sizeof *m);
  if (m && !(m->envs = cowmem_wamr__envs_new())) {
    free(m);
    return NULL;
  }
  return m;
}

/* The constructors' one exit: the set to *out and diag cleared, or on
 * error the set freed and *out untouched. */
static int finish(cowmem_wamr_module_t* m, int r, cowmem_wamr_module_t** out,
                  cowmem_diag_t* diag) {
  if (r != 0) {
    cowmem_wamr_module_free(m);
    return r;
  }
  if (diag) memset(diag, 0, sizeof *diag);
  *out = m;
  return 0;
}

int cowmem_wamr_module_new(const void* wasm, size_t len, cowmem_wamr_module_t** out,
                           cowmem_diag_t* diag) {
  if (!out) return COWMEM_EINVAL;
  cowmem_module_t* mod;
  int r = cowmem_module_parse(wasm, len, PARSE_FLAGS, &mod, diag);
  if (r != 0) return r;
  cowmem_wamr_module_t* m = set_new();
  mem_desc_t d = {0};
  if (!m)
    r = COWMEM_ENOMEM;
  else if ((m->count = cowmem_module_memory_count(mod)) > 0)
    r = memory_desc(mod, &d);
  if (r == 0) r = check_memories(m->count, &d, diag);
  if (r == 0) m->min_pages = d.min_pages;
  /* The module's image is borrowed: the set keeps its own reference. */
  cowmem_image_t* image =
      r == 0 && m->count == 1 ? cowmem_module_image(mod, 0, NULL) : NULL;
  if (image) r = set_image(m, cowmem_image_retain(image));
  uint8_t* stripped = NULL;
  size_t stripped_len = 0;
  if (r == 0) r = cowmem_module_strip(mod, &stripped, &stripped_len, NULL);
  cowmem_module_free(mod);
  if (r == 0) r = load(m, stripped, stripped_len, diag);
  return finish(m, r, out, diag);
}

int cowmem_wamr_module_open(const char* path, cowmem_wamr_module_t** out,
                            cowmem_diag_t* diag) {
  if (!path || !out) return COWMEM_EINVAL;
  uint8_t* bytes;
  size_t len;
  int r = cowmem_integ_read_file(path, &bytes, &len);
  if (r != 0) return r;
  r = cowmem_wamr_module_new(bytes, len, out, diag);
  free(bytes);
  return r;
}

/* The image file `cowmem compile` wrote: its images map the file itself, so
 * every process serving the module shares its page cache, and opening
 * reads only the header. */
int cowmem_wamr_module_open_images(const char* cwimg_path, const char* stripped_path,
                                   const uint8_t module_hash[32],
                                   cowmem_wamr_module_t** out, cowmem_diag_t* diag) {
  if (!cwimg_path || !stripped_path || !out) return COWMEM_EINVAL;
  cowmem_imgfile_t* f;
  int r = cowmem_integ_open_images(cwimg_path, module_hash, &f, diag);
  if (r != 0) return r;
  cowmem_wamr_module_t* m = set_new();
  cowmem_imgfile_memory_t fm = {0};
  mem_desc_t d = {0};
  if (!m)
    r = COWMEM_ENOMEM;
  else if ((m->count = cowmem_imgfile_memory_count(f)) > 0 &&
           (r = cowmem_imgfile_memory(f, 0, &fm)) == 0)
    d = (mem_desc_t){fm.imported,  fm.memory64,  fm.shared,       fm.has_max,
                     fm.min_pages, fm.max_pages, fm.segments_left};
  if (r == 0) r = check_memories(m->count, &d, diag);
  if (r == 0 && fm.image) r = set_image(m, cowmem_image_retain(fm.image));
  if (r == 0) m->min_pages = d.min_pages;
  cowmem_imgfile_free(f);

  /* The stripped module must be the image file's module, stripped as the
   * file was compiled: same memories, same limits (a stripped module keeps
   * every section but the data), and exactly the active segments the file
   * says an instance still applies (the others are in the image). */
  uint8_t* bytes = NULL;
  size_t len = 0;
  cowmem_module_t* sm = NULL;
  if (r == 0) r = cowmem_integ_read_file(stripped_path, &bytes, &len);
  if (r == 0)
    r = cowmem_module_parse(bytes, len, PARSE_FLAGS | COWMEM_MODULE_NO_IMAGES, &sm, diag);
  mem_desc_t sd = {0};
  if (r == 0 && cowmem_module_memory_count(sm) != m->count)
    r = cowmem_integ_fail(diag, COWMEM_EMISMATCH, "%s has %u memories, %s %u", stripped_path,
             cowmem_module_memory_count(sm), cwimg_path, m->count);
  else if (r == 0 && m->count == 1 && (r = memory_desc(sm, &sd)) == 0 && !same(&sd, &d))
    r = cowmem_integ_fail(diag, COWMEM_EMISMATCH, "memory 0 of %s differs from %s's", stripped_path,
             cwimg_path);
  cowmem_module_free(sm);
  if (r == 0) {
    r = load(m, bytes, len, diag);
    bytes = NULL; /* the set's now */
  }
  free(bytes);
  return finish(m, r, out, diag);
}

void cowmem_wamr_module_free(cowmem_wamr_module_t* m) {
  if (!m) return;
  cowmem_wamr__envs_free(m->envs); /* environments of the module's instances */
  if (m->wamr) wasm_runtime_unload(m->wamr);
  free(m->bytes);
  cowmem_image_release(m->image);
  free(m);
}

wasm_module_t cowmem_wamr_module_wamr(const cowmem_wamr_module_t* m) {
  return m ? m->wamr : NULL;
}

uint32_t cowmem_wamr_module_memories(const cowmem_wamr_module_t* m) {
  return m ? m->count : 0;
}

cowmem_image_t* cowmem_wamr_module_image(const cowmem_wamr_module_t* m, uint32_t i) {
  return m && i < m->count ? m->image : NULL;
}
