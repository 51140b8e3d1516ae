/* The pre-initialization runner (preinit_run.h): WAMR's classic
 * interpreter built by integrations/wamr (cowmem_wamr_vm_preinit), its
 * linear memories served by cowmem_wamr's pool.
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

#include "cowmem_wamr.h"
#include "preinit_run.h"
#include "wasm_export.h"

/* The interpreter's operand and frame stack for the initialization calls.
 * 1 MiB: an interpreter or a database initializes through deep calls. */
#define RUN_STACK_SIZE (1u << 20)

static bool g_runtime_ready;

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

void preinit_state_free(preinit_state_t* s) {
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
                      preinit_state_t* s, char* err, size_t errlen) {
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

int preinit_run(const cowmem_module_t* m, const uint8_t* inst_bytes, size_t inst_len,
                const char* const* calls, size_t ncalls, preinit_state_t* out,
                char* err, size_t errlen) {
  if (!m || !inst_bytes || !out || inst_len > UINT32_MAX)
    return fail(err, errlen, COWMEM_EINVAL, "invalid arguments");
  if (!g_runtime_ready) {
    if (!cowmem_wamr_runtime_init(NULL))
      return fail(err, errlen, COWMEM_ENOMEM, "WAMR's runtime did not initialize");
    /* WAMR warns on stdout of each import it cannot link: every import,
     * here, and a call to one fails with its name anyway. */
    wasm_runtime_set_log_level(WASM_LOG_LEVEL_ERROR);
    g_runtime_ready = true;
  }
  /* A pool of exactly the module's memories for this run: the default
   * (256 slots of 8 GiB of address space) is sized for servers. */
  cowmem_wamr_config_t cfg;
  cowmem_wamr_config_init(&cfg);
  uint32_t nmem = cowmem_module_memory_count(m);
  cfg.max_memories = nmem ? nmem : 1;
  cowmem_diag_t d;
  int r = cowmem_wamr_init(&cfg, &d);
  if (r != 0)
    return fail(err, errlen, r, "cannot create the memory pool: %s",
                d.reason[0] ? d.reason : cowmem_strerror(r));
  preinit_state_t s;
  memset(&s, 0, sizeof s);
  wasm_module_t mod = NULL;
  wasm_module_inst_t inst = NULL;
  char werr[128] = "";
  /* WAMR's loader takes a writable buffer and may keep pointers into it
   * until the module is unloaded. */
  uint8_t* buf = malloc(inst_len ? inst_len : 1);
  s.results = calloc(ncalls ? ncalls : 1, sizeof *s.results);
  if (!buf || !s.results) {
    r = fail(err, errlen, COWMEM_ENOMEM, "out of memory");
    goto done;
  }
  memcpy(buf, inst_bytes, inst_len);
  mod = wasm_runtime_load(buf, (uint32_t)inst_len, werr, sizeof werr);
  if (!mod) {
    r = fail(err, errlen, COWMEM_EINVALID, "WAMR cannot load the module: %s%s", werr,
             has_v128_global(m) ? " (this runner's WAMR has no SIMD: v128 globals "
                                  "cannot be pre-initialized here)"
                                : "");
    goto done;
  }
  /* The start function runs here: its trap is an instantiation error. */
  inst = wasm_runtime_instantiate(mod, RUN_STACK_SIZE, 0, werr, sizeof werr);
  if (!inst) {
    r = fail(err, errlen, COWMEM_EINVALID, "instantiation failed: %s", werr);
    goto done;
  }
  for (size_t i = 0; i < ncalls; i++) {
    r = call_export(inst, calls[i], &s.results[i], err, errlen);
    if (r != 0) goto done;
  }
  r = read_state(m, inst, &s, err, errlen);
done:
  if (inst) wasm_runtime_deinstantiate(inst);
  if (mod) wasm_runtime_unload(mod);
  free(buf);
  /* Every memory is gone with the instance (the snapshots are images of
   * their own): the pool goes too. */
  cowmem_wamr_shutdown();
  if (r != 0)
    preinit_state_free(&s);
  else
    *out = s;
  return r;
}
