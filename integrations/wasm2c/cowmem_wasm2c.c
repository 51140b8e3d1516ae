/* cowmem_wasm2c.c: module sets and the module being instantiated, for the
 * wrapped memory functions of wasm2c's runtime (w2c_runtime.c; see
 * cowmem_wasm2c.h for the contract). The pool, the owner of each memory and
 * the counters are the common layer's (cowmem_integ.h), compiled once.
 * This file depends on the runtime's ABI in two facts only, which it reads
 * from w2c_abi.h: which memory kinds are refused when a module is loaded,
 * and what the generated code passes as the maximum of a memory without
 * one; it is compiled once per ABI with the adapter.
 *
 * Why a thread-local "module being instantiated" rather than a registry
 * keyed by the (initial, max) pages that wasm_rt_allocate_memory receives:
 * those limits do not identify a module (two modules built by the same
 * toolchain often declare the same ones, and mapping the wrong image is a
 * silent corruption), while the thread that calls Z_<name>_instantiate
 * always knows which module it is instantiating. That thread says so
 * through COWMEM_W2C_NEW, which passes the module's identity (the SHA-256
 * of the original module, compiled into the program by
 * cowmem_wasm2c_module() and recorded in the image file by `cowmem
 * compile`): a module instantiated inside another module's set is refused
 * before its first allocation, whatever its limits. wasm_rt_allocate_memory
 * itself is told nothing but the limits, which are checked too: they catch
 * a module of other limits entered through cowmem_w2c_begin, which passes
 * no identity.
 */
#include "cowmem_wasm2c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "w2c_abi.h"
#include "w2c_internal.h"

typedef cowmem_w2c__memory_t w2c_memory_t;

/* Every memory of the module in index order: the imported ones first
 * (imports come first in the index space), then the `count` defined ones
 * the generated code allocates. */
struct cowmem_w2c_module_s {
  uint8_t hash[32];  /* the module's identity (zeros: none recorded) */
  uint32_t count;    /* defined memories */
  uint32_t nimports; /* imported memories: mem[0, nimports) */
  w2c_memory_t mem[];
};

cowmem_integ_t cowmem_w2c__integ = COWMEM_INTEG_INITIALIZER("cowmem_wasm2c");

/* The module being instantiated on this thread; its `refused` is set by a
 * cowmem_w2c_begin_id that refused the set (EMISMATCH or EINVAL), and
 * t_refused_id is the identity it was given (NULL if none), for the abort
 * of an allocation made anyway. */
static _Thread_local cowmem_integ_call_t t_call;
static _Thread_local const uint8_t* t_refused_id;

int cowmem_w2c_abi(void) {
  return COWMEM_W2C_ABI;
}

void cowmem_w2c_config_init(cowmem_w2c_config_t* cfg) {
  cowmem_integ_config_init(cfg);
}

int cowmem_w2c_init(const cowmem_w2c_config_t* cfg, cowmem_diag_t* diag) {
  return cowmem_integ_init(&cowmem_w2c__integ, cfg, diag);
}

int cowmem_w2c_shutdown(void) {
  return cowmem_integ_shutdown(&cowmem_w2c__integ);
}

cowmem_pool_t* cowmem_w2c_pool(void) {
  return cowmem_integ_pool(&cowmem_w2c__integ);
}

/* ---- modules ---- */


/* Describe memory idx of the module into w, or refuse it. An imported
 * memory is not refused here: the embedder may never ask cowmem for it
 * (cowmem_w2c_import_memory checks it then). */
static int describe(w2c_memory_t* w, uint32_t idx, bool imported, bool is64, bool shared,
                    uint64_t min, bool has_max, uint64_t max, cowmem_diag_t* diag) {
  const char* why = imported ? NULL : cowmem_w2c__refusal(is64, shared, min);
  if (why) return cowmem_integ_fail(diag, COWMEM_EUNSUPPORTED, "memory %u: %s", idx, why);
  w->min_pages = min;
  w->page_size = COWMEM_WASM_PAGE_SIZE; /* the front end reads no other */
  w->max_pages = has_max ? max : cowmem_w2c__no_max(is64, w->page_size);
  w->is64 = is64;
  w->shared = shared;
  return 0;
}

/* A module cowmem_module_parse calls malformed for its limits flags: if
 * the flags carry the custom-page-sizes bit (0x08), say that instead, since
 * the module is valid and only this integration cannot take it. */
static int parse_failed(const uint8_t* wasm, size_t len, int r, cowmem_diag_t* diag) {
  if (r == COWMEM_EMALFORMED && diag && diag->offset < len &&
      strstr(diag->reason, "limits flags") && (wasm[diag->offset] & 0x08) &&
      wasm[diag->offset] < 0x10) {
    uint64_t at = diag->offset;
    cowmem_integ_fail(diag, COWMEM_EUNSUPPORTED,
                      "custom page size (limits flags 0x%02x): cowmem's front end "
                      "reads 64 KiB pages only, so no image can be built",
                      wasm[at]);
    diag->offset = at;
    return COWMEM_EUNSUPPORTED;
  }
  return r;
}

/* The constructors' one exit: the set to *out and diag cleared, or on
 * error the set freed and *out untouched. */
static int finish(cowmem_w2c_module_t* m, int r, cowmem_w2c_module_t** out,
                  cowmem_diag_t* diag) {
  if (r != 0) {
    cowmem_w2c_module_free(m);
    return r;
  }
  if (diag) memset(diag, 0, sizeof *diag);
  *out = m;
  return 0;
}

int cowmem_w2c_module_new(const void* wasm, size_t len, cowmem_w2c_module_t** out,
                          cowmem_diag_t* diag) {
  if (!out) return COWMEM_EINVAL;
  cowmem_module_t* mod;
  /* Fresh imports always: an imported memory's image is used only when
   * the host takes that memory from cowmem_w2c_import_memory, which gives a
   * fresh memory per instance (the flag's promise). A module stripped
   * without --fresh-imports still applies those segments itself, over the
   * image: the same bytes again, the same result. */
  int r = cowmem_module_parse(
      wasm, len, COWMEM_MODULE_BORROW | COWMEM_MODULE_FRESH_IMPORTS, &mod, diag);
  if (r != 0) return parse_failed(wasm, len, r, diag);
  uint32_t n = cowmem_module_memory_count(mod);
  cowmem_w2c_module_t* m = calloc(1, sizeof *m + n * sizeof m->mem[0]);
  r = m ? cowmem_module_hash(mod, m->hash) : COWMEM_ENOMEM;
  for (uint32_t i = 0; r == 0 && i < n; i++) {
    cowmem_memory_info_t mi;
    if ((r = cowmem_module_memory_info(mod, i, &mi)) != 0) break;
    w2c_memory_t* w = &m->mem[i];
    r = describe(w, i, mi.imported, mi.memory64, mi.shared, mi.min_pages, mi.has_max,
                 mi.max_pages, diag);
    if (r != 0) break;
    w->image = cowmem_image_retain(cowmem_module_image(mod, i, NULL));
    if (mi.imported)
      m->nimports++;
    else
      m->count++;
  }
  /* The images hold their own references; the parse is not needed after. */
  cowmem_module_free(mod);
  return finish(m, r, out, diag);
}

int cowmem_w2c_module_open(const char* path, cowmem_w2c_module_t** out,
                           cowmem_diag_t* diag) {
  if (!path || !out) return COWMEM_EINVAL;
  uint8_t* bytes = NULL;
  size_t len = 0;
  int r = cowmem_integ_read_file(path, &bytes, &len);
  if (r == 0) r = cowmem_w2c_module_new(bytes, len, out, diag);
  free(bytes);
  return r;
}

/* The images `cowmem compile` wrote: the production path. They map the
 * file itself, so every process serving the module shares its page cache,
 * and opening reads only the header (no parse of the module at run time). */
int cowmem_w2c_module_open_images(const char* path, const uint8_t module_hash[32],
                                  cowmem_w2c_module_t** out, cowmem_diag_t* diag) {
  if (!path || !out) return COWMEM_EINVAL;
  cowmem_imgfile_t* f;
  int r = cowmem_integ_open_images(path, module_hash, &f, diag);
  if (r != 0) return r;
  uint32_t n = cowmem_imgfile_memory_count(f);
  cowmem_w2c_module_t* m = calloc(1, sizeof *m + n * sizeof m->mem[0]);
  if (!m)
    r = COWMEM_ENOMEM;
  else
    cowmem_imgfile_module_hash(f, m->hash);
  for (uint32_t i = 0; r == 0 && i < n; i++) {
    cowmem_imgfile_memory_t d;
    if ((r = cowmem_imgfile_memory(f, i, &d)) != 0) break;
    /* `cowmem compile` writes every memory, imports first: an import after
     * a defined memory means the file is not a module's. */
    if (d.imported && m->count > 0) {
      r = cowmem_integ_fail(diag, COWMEM_EBADIMG, "memory %u: imported after a defined one",
                            d.index);
      break;
    }
    w2c_memory_t* w = &m->mem[i];
    r = describe(w, d.index, d.imported, d.memory64, d.shared, d.min_pages, d.has_max,
                 d.max_pages, diag);
    if (r != 0) break;
    /* An imported memory compiled without --fresh-imports has no image:
     * it starts as zeros and the module applies its segments itself. */
    w->image = d.image ? cowmem_image_retain(d.image) : NULL;
    if (d.imported)
      m->nimports++;
    else
      m->count++;
  }
  cowmem_imgfile_free(f);
  return finish(m, r, out, diag);
}

void cowmem_w2c_module_free(cowmem_w2c_module_t* m) {
  if (!m) return;
  for (uint32_t i = 0; i < m->nimports + m->count; i++)
    cowmem_image_release(m->mem[i].image);
  free(m);
}

uint32_t cowmem_w2c_module_memories(const cowmem_w2c_module_t* m) {
  return m ? m->nimports + m->count : 0;
}

cowmem_image_t* cowmem_w2c_module_image(const cowmem_w2c_module_t* m, uint32_t i) {
  return m && i < m->nimports + m->count ? m->mem[i].image : NULL;
}

uint32_t cowmem_w2c_module_imports(const cowmem_w2c_module_t* m) {
  return m ? m->nimports : 0;
}

cowmem_image_t* cowmem_w2c_module_import_image(const cowmem_w2c_module_t* m, uint32_t i) {
  return m && i < m->nimports ? m->mem[i].image : NULL;
}

const cowmem_w2c__memory_t* cowmem_w2c__import(const cowmem_w2c_module_t* m, uint32_t i,
                                               bool shared, int* err) {
  *err = 0;
  if (!m || i >= m->nimports || m->mem[i].shared != shared) {
    *err = COWMEM_EINVAL;
    return NULL;
  }
  const w2c_memory_t* w = &m->mem[i];
  if (cowmem_w2c__refusal(w->is64, w->shared, w->min_pages)) {
    *err = COWMEM_EUNSUPPORTED;
    return NULL;
  }
  return w;
}

void cowmem_w2c_begin(const cowmem_w2c_module_t* m) {
  cowmem_integ_call_begin(&t_call, m);
  t_refused_id = NULL;
}

/* A set whose image file records no module hash (zeros) belongs to no
 * module: it matches none. 32 bytes compared once per instantiation, in
 * the calling thread: no lock, no system call. */
int cowmem_w2c_begin_id(const cowmem_w2c_module_t* m, const uint8_t id[32]) {
  static const uint8_t none[32];
  cowmem_w2c_begin(m);
  if (m && id && memcmp(m->hash, none, sizeof none) != 0 &&
      memcmp(m->hash, id, sizeof m->hash) == 0)
    return 0;
  t_call.refused = m && id ? COWMEM_EMISMATCH : COWMEM_EINVAL;
  t_refused_id = id;
  return t_call.refused;
}

int cowmem_w2c_end(void) {
  const cowmem_w2c_module_t* m = t_call.module;
  int r = m && t_call.allocs != m->count ? COWMEM_ESTATE : 0;
  if (t_call.refused) r = t_call.refused;
  cowmem_integ_call_begin(&t_call, NULL);
  t_refused_id = NULL;
  return r;
}

void cowmem_w2c_counters(cowmem_w2c_counters_t* out) {
  cowmem_integ_counts_t c;
  cowmem_integ_counts(&cowmem_w2c__integ, &c);
  out->cowmem_allocs = c.counters[COWMEM_INTEG_ALLOC];
  out->cowmem_grows = c.counters[COWMEM_INTEG_GROW];
  out->cowmem_frees = c.releases;
  out->stock_allocs = c.counters[COWMEM_INTEG_STOCK_ALLOC];
  out->stock_grows = c.counters[COWMEM_INTEG_STOCK_GROW];
  out->stock_frees = c.counters[COWMEM_INTEG_STOCK_FREE];
  out->live = c.in_use;
}

/* ---- what the wrapped runtime functions call ---- */

/* The first 8 bytes of a hash in hex, as the refusal names modules. */
static const char* hash_text(const uint8_t* h, char buf[17]) {
  if (!h) return "(none)";
  for (int i = 0; i < 8; i++)
    snprintf(buf + 2 * i, 3, "%02x", h[i]);
  return buf;
}

/* An allocation after cowmem_w2c_begin_id refused the set: the generated
 * code would run with another module's images (or from zeros). */
__attribute__((noreturn)) static void refused(uint64_t initial, uint64_t max) {
  char a[17], b[17];
  const cowmem_w2c_module_t* m = t_call.module;
  if (!m || !t_refused_id)
    cowmem_integ_die(&cowmem_w2c__integ, 0,
                     "memory of %llu..%llu pages allocated after cowmem_w2c_begin_id "
                     "was given no %s",
                     (unsigned long long)initial, (unsigned long long)max,
                     m ? "module identity" : "module set");
  cowmem_integ_die(&cowmem_w2c__integ, 0,
                   "memory of %llu..%llu pages allocated for module %s... inside the "
                   "module set of module %s...: the set does not belong to the module "
                   "being instantiated (cowmem_w2c_begin_id returned EMISMATCH)",
                   (unsigned long long)initial, (unsigned long long)max,
                   hash_text(t_refused_id, a), hash_text(m->hash, b));
}

const cowmem_w2c__memory_t* cowmem_w2c__next(uint64_t initial, uint64_t max, bool is64,
                                             uint32_t page_size, bool shared) {
  if (t_call.refused) refused(initial, max);
  const cowmem_w2c_module_t* m = t_call.module;
  if (!m) return NULL;
  uint32_t k = t_call.allocs++;
  if (k >= m->count)
    cowmem_integ_die(&cowmem_w2c__integ, 0,
                     "memory %u allocated, but the module set with cowmem_w2c_begin "
                     "defines %u",
                     k, m->count);
  const w2c_memory_t* w = &m->mem[m->nimports + k];
  if (initial != w->min_pages || max != w->max_pages || is64 != w->is64 ||
      page_size != w->page_size || shared != w->shared)
    cowmem_integ_die(&cowmem_w2c__integ, 0,
                     "memory %u allocated with %llu..%llu pages of %u bytes%s%s, but "
                     "the module set with cowmem_w2c_begin declares %llu..%llu pages "
                     "of %u bytes%s%s",
                     k, (unsigned long long)initial, (unsigned long long)max, page_size,
                     is64 ? ", memory64" : "", shared ? ", shared" : "",
                     (unsigned long long)w->min_pages, (unsigned long long)w->max_pages,
                     w->page_size, w->is64 ? ", memory64" : "",
                     w->shared ? ", shared" : "");
  return w;
}
