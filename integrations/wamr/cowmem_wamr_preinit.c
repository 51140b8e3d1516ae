/* Pre-initialization with WAMR's interpreter (cowmem_wamr_preinit.h).
 *
 * The module is loaded with plain wasm_runtime_load, not through a
 * cowmem_wamr module set: every memory is then a pool slot with no image
 * and WAMR copies the data segments itself, as for any module. Reading a
 * memory afterwards is a snapshot of its slot, which reads only the pages
 * the instance wrote (the rest are known zeros), instead of copying every
 * byte of a memory that may be mostly empty. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem_wamr_preinit.h"
#include "wasm_export.h"

/* The interpreter's operand and frame stack for the initialization calls.
 * 1 MiB: an interpreter or a database initializes through deep calls. */
#define RUN_STACK_SIZE (1u << 20)

static int fail(char* err, size_t n, int code, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int fail(char* err, size_t n, int code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return code;
}

void cowmem_wamr_preinit_state_free(cowmem_wamr_preinit_state_t* s) {
  if (!s) return;
  for (uint32_t i = 0; i < s->nmemories; i++)
    cowmem_image_release(s->memories[i].image);
  free(s->memories);
  free(s->globals);
  free(s->results);
  memset(s, 0, sizeof *s);
}

/* Call one exported function with no parameters; its first result's bits
 * in *result. */
static int call_export(wasm_module_inst_t inst, const char* name, uint64_t* result,
                       char* err, size_t errlen) {
  wasm_function_inst_t f = wasm_runtime_lookup_function(inst, name);
  if (!f)
    return fail(err, errlen, COWMEM_EINVAL, "the module exports no function '%s'", name);
  if (wasm_func_get_param_count(f, inst) != 0)
    return fail(err, errlen, COWMEM_EINVAL,
                "'%s' takes parameters; an initialization function takes none", name);
  uint32_t nres = wasm_func_get_result_count(f, inst);
  wasm_val_t res[4];
  if (nres > sizeof res / sizeof res[0])
    return fail(err, errlen, COWMEM_EUNSUPPORTED, "'%s' returns %u values", name, nres);
  wasm_exec_env_t env = wasm_runtime_get_exec_env_singleton(inst);
  if (!env) return fail(err, errlen, COWMEM_ENOMEM, "no execution environment for '%s'", name);
  if (!wasm_runtime_call_wasm_a(env, f, nres, res, 0, NULL)) {
    const char* what = wasm_runtime_get_exception(inst);
    bool import = what && strstr(what, "unlinked import function");
    return fail(err, errlen, COWMEM_EINVALID, "'%s' trapped: %s%s", name,
                what ? what : "(no message)",
                import ? " (no import can be called during pre-initialization)" : "");
  }
  *result = 0;
  if (nres > 0) {
    switch (res[0].kind) {
    case WASM_I32: *result = (uint32_t)res[0].of.i32; break;
    case WASM_I64: *result = (uint64_t)res[0].of.i64; break;
    case WASM_F32: memcpy(result, &res[0].of.f32, 4); break;
    case WASM_F64: memcpy(result, &res[0].of.f64, 8); break;
    default: break;
    }
  }
  return 0;
}

/* Memory i after the calls: its size in pages and its contents. */
static int read_memory(const cowmem_module_t* m, wasm_module_inst_t inst, uint32_t i,
                       cowmem_preinit_memory_t* out, char* err, size_t errlen) {
  char name[64];
  snprintf(name, sizeof name, COWMEM_PREINIT_MEMORY_EXPORT "%u", i);
  wasm_memory_inst_t mem = wasm_runtime_lookup_memory(inst, name);
  if (!mem) return fail(err, errlen, COWMEM_EINVAL, "no export '%s' (not instrumented?)", name);
  cowmem_memory_info_t info;
  int r = cowmem_module_memory_info(m, i, &info);
  if (r != 0) return fail(err, errlen, r, "memory %u: %s", i, cowmem_strerror(r));
  /* WAMR may describe a memory without memory.grow as one "page" of the
   * whole size: the byte size is what counts. */
  uint64_t bytes = wasm_memory_get_cur_page_count(mem) * wasm_memory_get_bytes_per_page(mem);
  uint64_t pages = (bytes + COWMEM_WASM_PAGE_SIZE - 1) / COWMEM_WASM_PAGE_SIZE;
  if (pages < info.min_pages) pages = info.min_pages;
  uint8_t* base = wasm_memory_get_base_address(mem);
  cowmem_image_t* img = NULL;
  if (bytes > 0) {
    cowmem_pool_t* pool = cowmem_wamr_pool();
    cowmem_slot_t* slot = pool ? cowmem_pool_slot_of(pool, base) : NULL;
    if (slot)
      r = cowmem_snapshot(slot, &img);
    else
      r = cowmem_image_new_from_bytes(base, (size_t)bytes, 0, &img);
    if (r != 0)
      return fail(err, errlen, r, "memory %u: snapshot: %s", i, cowmem_strerror(r));
  }
  out->pages = pages;
  out->image = img;
  return 0;
}

static int read_global(wasm_module_inst_t inst, uint32_t index, uint8_t type,
                       cowmem_preinit_global_t* out, char* err, size_t errlen) {
  char name[64];
  snprintf(name, sizeof name, COWMEM_PREINIT_GLOBAL_EXPORT "%u", index);
  wasm_global_inst_t g;
  if (!wasm_runtime_get_export_global_inst(inst, name, &g) || !g.global_data)
    return fail(err, errlen, COWMEM_EINVAL, "no export '%s' (not instrumented?)", name);
  memset(out, 0, sizeof *out);
  out->index = index;
  out->type = type;
  size_t size = type == COWMEM_TYPE_V128                                ? 16
                : type == COWMEM_TYPE_I64 || type == COWMEM_TYPE_F64 ? 8
                                                                       : 4;
  memcpy(out->bits, g.global_data, size); /* little-endian host */
  return 0;
}

static int read_state(const cowmem_module_t* m, wasm_module_inst_t inst,
                      cowmem_wamr_preinit_state_t* s, char* err, size_t errlen) {
  uint32_t nmem = cowmem_module_memory_count(m);
  uint32_t nglob = cowmem_module_global_count(m);
  s->memories = calloc(nmem ? nmem : 1, sizeof *s->memories);
  s->globals = calloc(nglob ? nglob : 1, sizeof *s->globals);
  if (!s->memories || !s->globals) return fail(err, errlen, COWMEM_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < nmem; i++) {
    int r = read_memory(m, inst, i, &s->memories[i], err, errlen);
    if (r != 0) return r;
    s->nmemories = i + 1;
  }
  for (uint32_t i = 0; i < nglob; i++) {
    cowmem_global_info_t gi;
    int r = cowmem_module_global_info(m, i, &gi);
    if (r != 0) return fail(err, errlen, r, "global %u: %s", i, cowmem_strerror(r));
    if (gi.imported || !gi.is_mutable) continue;
    r = read_global(inst, i, gi.type, &s->globals[s->nglobals], err, errlen);
    if (r != 0) return r;
    s->nglobals++;
  }
  return 0;
}

/* WAMR's interpreters are built without SIMD (integrations/wamr): its
 * loader's "type mismatch" on a v128 global needs saying why. */
static bool has_v128_global(const cowmem_module_t* m) {
  for (uint32_t i = 0; i < cowmem_module_global_count(m); i++) {
    cowmem_global_info_t gi;
    if (cowmem_module_global_info(m, i, &gi) == 0 && gi.type == COWMEM_TYPE_V128)
      return true;
  }
  return false;
}

/* ---- imports without WASI ------------------------------------------------
 * The runtime has WASI built in and resolves WASI imports at load. Without
 * WASI for this run, a native of our own shadows each WASI function the
 * module imports (natives registered later are found first) and traps,
 * naming it, like a call to an import WAMR cannot link. */
typedef struct hidden_s {
  NativeSymbol* syms[2]; /* per module name below */
  uint32_t n[2];
} hidden_t;

static const char* const k_wasi_modules[2] = {"wasi_snapshot_preview1", "wasi_unstable"};

static void trap_import(wasm_exec_env_t env, uint64_t* args) {
  (void)args;
  char msg[160];
  snprintf(msg, sizeof msg,
           "the init called the import %s (no import is provided; WASI needs "
           "--allow-wasi)",
           (const char*)wasm_runtime_get_function_attachment(env));
  wasm_runtime_set_exception(wasm_runtime_get_module_inst(env), msg);
}

static void unhide(hidden_t* h) {
  for (int k = 0; k < 2; k++) {
    if (h->n[k]) wasm_runtime_unregister_natives(k_wasi_modules[k], h->syms[k]);
    for (uint32_t i = 0; h->syms[k] && i < h->n[k]; i++) free(h->syms[k][i].attachment);
    free(h->syms[k]);
  }
  memset(h, 0, sizeof *h);
}

/* Shadow the WASI functions `mod` imports; they take effect for modules
 * loaded afterwards. */
static int hide_wasi(wasm_module_t mod, hidden_t* h, char* err, size_t errlen) {
  int32_t n = wasm_runtime_get_import_count(mod);
  for (int k = 0; k < 2; k++)
    if (n > 0 && !(h->syms[k] = calloc((size_t)n, sizeof(NativeSymbol))))
      return fail(err, errlen, COWMEM_ENOMEM, "out of memory");
  for (int32_t i = 0; i < n; i++) {
    wasm_import_t imp;
    wasm_runtime_get_import_type(mod, i, &imp);
    if (imp.kind != WASM_IMPORT_EXPORT_KIND_FUNC) continue;
    for (int k = 0; k < 2; k++) {
      if (strcmp(imp.module_name, k_wasi_modules[k]) != 0) continue;
      size_t len = strlen(imp.module_name) + strlen(imp.name) + 2;
      char* what = malloc(len);
      if (!what) return fail(err, errlen, COWMEM_ENOMEM, "out of memory");
      snprintf(what, len, "%s.%s", imp.module_name, imp.name);
      /* The symbol is the field within our copy: mod is unloaded next. */
      h->syms[k][h->n[k]++] =
          (NativeSymbol){what + strlen(imp.module_name) + 1, (void*)trap_import, NULL, what};
    }
  }
  return 0;
}

/* ---- the run ------------------------------------------------------------ */

/* A load of bytes, copied into buf first: WAMR's loader writes into the
 * buffer it loads (a second load needs a fresh copy) and may keep pointers
 * into it until the unload. */
static wasm_module_t load(const cowmem_module_t* m, const uint8_t* bytes, uint8_t* buf,
                          size_t len, char* err, size_t errlen) {
  char werr[128] = "";
  memcpy(buf, bytes, len);
  wasm_module_t mod = wasm_runtime_load(buf, (uint32_t)len, werr, sizeof werr);
  if (!mod)
    fail(err, errlen, COWMEM_EINVALID, "WAMR cannot load the module: %s%s", werr,
         has_v128_global(m) ? " (this runner's WAMR has no SIMD: v128 globals "
                              "cannot be pre-initialized here)"
                            : "");
  return mod;
}

/* Load (without WASI: load, shadow WASI, load again with the shadows) and
 * instantiate, WASI arguments set when given. */
static int start(const cowmem_module_t* m, const uint8_t* bytes, uint8_t* buf, size_t len,
                 const cowmem_wamr_wasi_t* wasi, hidden_t* h, wasm_module_t* mod,
                 wasm_module_inst_t* inst, char* err, size_t errlen) {
  if (!(*mod = load(m, bytes, buf, len, err, errlen))) return COWMEM_EINVALID;
  if (!wasi) {
    int r = hide_wasi(*mod, h, err, errlen);
    if (r != 0 || h->n[0] + h->n[1] > 0) {
      wasm_runtime_unload(*mod);
      *mod = NULL;
    }
    if (r != 0) return r;
    for (int k = 0; k < 2; k++)
      if (h->n[k] &&
          !wasm_runtime_register_natives_raw(k_wasi_modules[k], h->syms[k], h->n[k]))
        return fail(err, errlen, COWMEM_ENOMEM, "cannot hide WASI from the module");
    if (!*mod && !(*mod = load(m, bytes, buf, len, err, errlen))) return COWMEM_EINVALID;
  } else {
    cowmem_diag_t d;
    int r = cowmem_wamr_wasi_set(*mod, wasi, &d);
    if (r != 0) return fail(err, errlen, r, "WASI: %s", d.reason);
  }
  char werr[256] = "";
  /* The start function runs here, and a WASI reactor's _initialize: their
   * traps are instantiation errors. */
  *inst = wasm_runtime_instantiate(*mod, RUN_STACK_SIZE, 0, werr, sizeof werr);
  if (wasi) cowmem_wamr_wasi_clear(*mod);
  if (!*inst) return fail(err, errlen, COWMEM_EINVALID, "instantiation failed: %s", werr);
  return 0;
}

int cowmem_wamr_preinit_run(const cowmem_module_t* m, const uint8_t* inst_bytes,
                            size_t inst_len, const char* const* calls, size_t ncalls,
                            const cowmem_wamr_wasi_t* wasi,
                            cowmem_wamr_preinit_state_t* out, char* err, size_t errlen) {
  if (!m || !inst_bytes || !out || inst_len > UINT32_MAX || (ncalls && !calls))
    return fail(err, errlen, COWMEM_EINVAL, "invalid arguments");
  /* WAMR warns on stdout of each import it cannot link: every import
   * without WASI, and a call to one fails with its name anyway. */
  wasm_runtime_set_log_level(WASM_LOG_LEVEL_ERROR);
  /* A pool of exactly the module's memories for this run: the default
   * (256 slots of 8 GiB of address space) is sized for servers. */
  cowmem_wamr_config_t cfg;
  cowmem_wamr_config_init(&cfg);
  uint32_t nmem = cowmem_module_memory_count(m);
  cfg.max_memories = nmem ? nmem : 1;
  cowmem_diag_t d;
  int r = cowmem_wamr_init(&cfg, &d);
  if (r != 0) {
    wasm_runtime_set_log_level(WASM_LOG_LEVEL_WARNING);
    return fail(err, errlen, r, "cannot create the memory pool: %s",
                d.reason[0] ? d.reason : cowmem_strerror(r));
  }
  cowmem_wamr_preinit_state_t s;
  memset(&s, 0, sizeof s);
  hidden_t hidden;
  memset(&hidden, 0, sizeof hidden);
  wasm_module_t mod = NULL;
  wasm_module_inst_t inst = NULL;
  uint8_t* buf = malloc(inst_len ? inst_len : 1);
  s.results = calloc(ncalls ? ncalls : 1, sizeof *s.results);
  if (!buf || !s.results) {
    r = fail(err, errlen, COWMEM_ENOMEM, "out of memory");
    goto done;
  }
  r = start(m, inst_bytes, buf, inst_len, wasi, &hidden, &mod, &inst, err, errlen);
  for (size_t i = 0; r == 0 && i < ncalls; i++) {
    /* WAMR ran a WASI reactor's _initialize while instantiating. */
    if (strcmp(calls[i], "_initialize") == 0 && wasm_runtime_is_wasi_mode(inst)) continue;
    r = call_export(inst, calls[i], &s.results[i], err, errlen);
  }
  if (r == 0) r = read_state(m, inst, &s, err, errlen);
done:
  if (inst) wasm_runtime_deinstantiate(inst);
  if (mod) wasm_runtime_unload(mod);
  unhide(&hidden);
  free(buf);
  wasm_runtime_set_log_level(WASM_LOG_LEVEL_WARNING);
  /* Every memory is gone with the instance (the snapshots are images of
   * their own): the pool goes too. */
  cowmem_wamr_shutdown();
  if (r != 0)
    cowmem_wamr_preinit_state_free(&s);
  else
    *out = s;
  return r;
}

/* ---- the whole pre-initialization -------------------------------------- */

void cowmem_wamr_preinit_init(cowmem_wamr_preinit_t* o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->version = COWMEM_WAMR_PREINIT_VERSION;
}

/* Is `name` exported as a function? */
static bool exports_func(const cowmem_module_t* m, const char* name) {
  size_t n = strlen(name);
  for (uint32_t i = 0; i < cowmem_module_export_count(m); i++) {
    cowmem_export_info_t e;
    if (cowmem_module_export_info(m, i, &e) == 0 && e.kind == COWMEM_EXTERN_FUNC &&
        e.name_len == n && memcmp(e.name, name, n) == 0)
      return true;
  }
  return false;
}

/* The init function: o's (exported), else a default name's. */
static const char* init_func(const cowmem_module_t* m, const char* want, char* err,
                             size_t errlen) {
  if (want) {
    if (exports_func(m, want)) return want;
    fail(err, errlen, 0, "the module exports no function '%s' (the init function)", want);
    return NULL;
  }
  if (exports_func(m, COWMEM_PREINIT_DEFAULT_FUNC)) return COWMEM_PREINIT_DEFAULT_FUNC;
  if (exports_func(m, COWMEM_PREINIT_DEFAULT_FUNC_ALT)) return COWMEM_PREINIT_DEFAULT_FUNC_ALT;
  fail(err, errlen, 0, "no init function: the module exports neither '%s' nor '%s'",
       COWMEM_PREINIT_DEFAULT_FUNC, COWMEM_PREINIT_DEFAULT_FUNC_ALT);
  return NULL;
}

static int rewrite(const cowmem_module_t* m, const cowmem_wamr_preinit_t* o,
                   const cowmem_wamr_preinit_state_t* st, const char* func, uint8_t** out,
                   size_t* out_len, int images_fd, char* err, size_t errlen) {
  cowmem_preinit_options_t opt;
  cowmem_preinit_options_init(&opt);
  opt.flags = o->flags;
  opt.init_func = func;
  opt.renames = o->renames;
  opt.nrenames = o->nrenames;
  cowmem_preinit_snapshot_t snap = {st->memories, st->nmemories, st->globals, st->nglobals};
  cowmem_diag_t d;
  int r = cowmem_preinit_rewrite(m, &snap, &opt, out, out_len, images_fd, &d);
  if (r != 0)
    fail(err, errlen, r, "cannot rewrite: %s (%s)", d.reason[0] ? d.reason : "",
         cowmem_strerror(r));
  return r;
}

int cowmem_wamr_preinit(const cowmem_module_t* m, const cowmem_wamr_preinit_t* o,
                        uint8_t** out, size_t* out_len, int images_fd,
                        cowmem_wamr_preinit_result_t* res, char* err, size_t errlen) {
  if (!m || !o || o->version != COWMEM_WAMR_PREINIT_VERSION || !out || !out_len ||
      (o->nrenames && !o->renames))
    return fail(err, errlen, COWMEM_EINVAL, "invalid arguments (options not set up by "
                                            "cowmem_wamr_preinit_init?)");
  cowmem_diag_t d;
  int r = cowmem_preinit_validate(m, &d);
  if (r != 0)
    return fail(err, errlen, r, "cannot pre-initialize: at byte %llu: %s",
                (unsigned long long)d.offset, d.reason);
  const char* func = init_func(m, o->init_func, err, errlen);
  if (!func) return COWMEM_EINVAL;
  uint8_t* inst = NULL;
  size_t inst_len = 0;
  r = cowmem_preinit_instrument(m, &inst, &inst_len, &d);
  if (r != 0)
    return fail(err, errlen, r, "cannot instrument: at byte %llu: %s",
                (unsigned long long)d.offset, d.reason);
  const char* calls[2];
  size_t ncalls = 0;
  if (strcmp(func, "_initialize") != 0 && exports_func(m, "_initialize"))
    calls[ncalls++] = "_initialize";
  calls[ncalls++] = func;
  cowmem_wamr_preinit_state_t st;
  char why[512];
  r = cowmem_wamr_preinit_run(m, inst, inst_len, calls, ncalls, o->wasi, &st, why,
                              sizeof why);
  free(inst);
  if (r != 0) return fail(err, errlen, r, "initialization failed: %s", why);
  r = rewrite(m, o, &st, func, out, out_len, images_fd, err, errlen);
  if (r == 0 && res) *res = (cowmem_wamr_preinit_result_t){func, st.nmemories, st.nglobals};
  cowmem_wamr_preinit_state_free(&st);
  return r;
}
