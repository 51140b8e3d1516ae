/* cowmem_wasm2c.c: the pool, the data -> slot table and the modules behind
 * the wrapped memory functions of wasm2c's runtime (see cowmem_wasm2c.h for
 * the contract). Nothing here depends on the runtime's ABI; w2c_runtime.c
 * holds what does.
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

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- the pool and the data -> slot table ----
 * Slots are 8 GiB apart, so data >> 33 differs for every live memory; the
 * table is open-addressed with twice as many entries as slots, under one
 * mutex (held for a few loads; instantiation is not a contended path next to
 * the page faults an instance takes).
 *
 * Each entry also records the memory struct the slot was handed to (the
 * wasm_rt_memory_t in the instance, or the host's for an imported memory):
 * a copy of that struct made before a free still holds the same `data`
 * once the slot serves another instance, and only the struct's address
 * tells the copy from the live memory. wasm2c's instances keep their
 * memory struct in place (its tables and exports point into the instance),
 * so the address is stable from allocation to free. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static cowmem_pool_t* g_pool;
static size_t g_cap; /* entries in g_table, a power of two */
static struct entry {
  uint8_t* data;
  cowmem_slot_t* slot;
  const void* owner; /* the memory struct it was allocated into */
} * g_table;

static _Atomic uint64_t g_counters[COWMEM_W2C__NCOUNTERS];

void cowmem_w2c__count(int c, int64_t d) {
  atomic_fetch_add_explicit(&g_counters[c], (uint64_t)d, memory_order_relaxed);
}

static _Thread_local const cowmem_w2c_module_t* t_module;
static _Thread_local uint32_t t_next; /* defined memories allocated so far */
/* Set by a cowmem_w2c_begin_id that refused the module set: the identity
 * it was given (NULL if none), for the abort of an allocation made anyway. */
static _Thread_local bool t_refused;
static _Thread_local const uint8_t* t_refused_id;

/* wasm_rt_allocate_memory has no error return; the stock runtime aborts
 * too (after a perror) when it cannot reserve memory. */
__attribute__((format(printf, 2, 3), noreturn)) static void die(int err, const char* fmt,
                                                                ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "cowmem_wasm2c: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (err) fprintf(stderr, ": %s (%s)", cowmem_strerror(err), cowmem_err_name(err));
  fprintf(stderr, "\n");
  abort();
}

void cowmem_w2c_config_init(cowmem_w2c_config_t* cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->version = COWMEM_W2C_CONFIG_VERSION;
  cfg->max_memories = 256;
  /* ADAPTIVE: a request loop writes the same few pages every time; keeping
   * them resident (restored by copy) and the image's read-only PTEs mapped
   * avoids both the madvise's TLB flush and the next instance's page faults.
   * Measured with the demo (195-byte request, 11 pages dirtied): 7.1 us per
   * request against 26.4 us with MADVISE (stock runtime: 122 us). */
  cfg->reset = COWMEM_RESET_ADAPTIVE;
  cfg->keep_resident = 64 << 10;
  cfg->resident_budget = 1 << 20;
}

static int init_locked(const cowmem_w2c_config_t* c, cowmem_diag_t* diag) {
  cowmem_pool_config_t pc;
  cowmem_pool_config_init(&pc);
  pc.max_slots = c->max_memories;
  pc.slot_reserve = COWMEM_W2C_SLOT_SIZE;
  pc.guard_size = COWMEM_W2C_GUARD_SIZE;
  pc.reset = c->reset;
  pc.keep_resident = c->keep_resident;
  pc.resident_budget = c->resident_budget;
  size_t cap = 16;
  while (cap < 2 * c->max_memories)
    cap *= 2;
  struct entry* table = calloc(cap, sizeof *table);
  if (!table) return COWMEM_ENOMEM;
  cowmem_pool_t* pool;
  int r = cowmem_pool_new(&pc, &pool, diag);
  if (r != 0) {
    free(table);
    return r;
  }
  g_pool = pool;
  g_table = table;
  g_cap = cap;
  return 0;
}

int cowmem_w2c_init(const cowmem_w2c_config_t* cfg, cowmem_diag_t* diag) {
  if (!cfg || cfg->version != COWMEM_W2C_CONFIG_VERSION) return COWMEM_EINVAL;
  pthread_mutex_lock(&g_lock);
  int r = g_pool ? COWMEM_ESTATE : init_locked(cfg, diag);
  pthread_mutex_unlock(&g_lock);
  return r;
}

int cowmem_w2c_shutdown(void) {
  pthread_mutex_lock(&g_lock);
  int r = 0;
  if (g_pool) {
    r = cowmem_pool_free(g_pool);
    if (r == 0) {
      g_pool = NULL;
      free(g_table);
      g_table = NULL;
      g_cap = 0;
    }
  }
  pthread_mutex_unlock(&g_lock);
  return r;
}

cowmem_pool_t* cowmem_w2c_pool(void) {
  pthread_mutex_lock(&g_lock);
  cowmem_pool_t* p = g_pool;
  pthread_mutex_unlock(&g_lock);
  return p;
}

static size_t hash_of(const uint8_t* data) {
  return (size_t)(((uintptr_t)data >> 33) * 0x9E3779B97F4A7C15ull >> 20);
}

/* Under g_lock. */
static void table_put(uint8_t* data, cowmem_slot_t* slot, const void* owner) {
  for (size_t i = hash_of(data);; i++) {
    struct entry* e = &g_table[i & (g_cap - 1)];
    if (!e->data) {
      e->data = data;
      e->slot = slot;
      e->owner = owner;
      return;
    }
  }
}

/* Under g_lock. The slot at data if `mem` owns it (removed with `remove`);
 * else NULL: a memory of the stock runtime's (*other NULL), or, with
 * *other set, one that must be refused: another instance's live memory
 * (*other its owner) or no live memory at all (*other == data) in the
 * pool's reservation. Linear probing with backward-shift deletion (no
 * tombstones). */
static cowmem_slot_t* table_find(const void* mem, const uint8_t* data, bool remove,
                                 const void** other) {
  *other = NULL;
  if (!g_table) return NULL;
  size_t mask = g_cap - 1, i = hash_of(data) & mask;
  while (g_table[i].data && g_table[i].data != data)
    i = (i + 1) & mask;
  cowmem_slot_t* slot = g_table[i].slot;
  if (g_table[i].data && g_table[i].owner != mem) {
    *other = g_table[i].owner;
    return NULL;
  }
  if (!g_table[i].data && cowmem_pool_contains(g_pool, data)) *other = data;
  if (!g_table[i].data || !remove) return g_table[i].data ? slot : NULL;
  for (size_t j = (i + 1) & mask; g_table[j].data; j = (j + 1) & mask) {
    size_t home = hash_of(g_table[j].data) & mask;
    /* Move j back into the hole i unless its home lies cyclically in (i, j]. */
    if (((j - home) & mask) >= ((j - i) & mask)) {
      g_table[i] = g_table[j];
      i = j;
    }
  }
  g_table[i].data = NULL;
  g_table[i].slot = NULL;
  g_table[i].owner = NULL;
  return slot;
}

/* ---- modules ---- */

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* the refusal texts */
static int module_fail(cowmem_diag_t* diag, int code, const char* fmt, uint32_t idx) {
  if (diag) {
    memset(diag, 0, sizeof *diag);
    diag->code = code;
    snprintf(diag->reason, sizeof diag->reason, fmt, idx);
  }
  return code;
}
#pragma GCC diagnostic pop

/* Describe memory idx of the module into w, or refuse it. An imported
 * memory is not refused here: the embedder may never ask cowmem for it
 * (cowmem_w2c_import_memory checks it then). */
static int describe(w2c_memory_t* w, uint32_t idx, bool imported, bool is64, bool shared,
                    uint64_t min, bool has_max, uint64_t max, cowmem_diag_t* diag) {
  const char* why = imported ? NULL : cowmem_w2c__refusal(is64, shared, min);
  if (why) return module_fail(diag, COWMEM_EUNSUPPORTED, why, idx);
  w->min_pages = min;
  w->page_size = COWMEM_W2C_WASM_PAGE; /* the front end reads no other */
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
    module_fail(diag, COWMEM_EUNSUPPORTED,
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
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  uint8_t* bytes = NULL;
  size_t len = 0;
  int r = cowmem_module_read(fd, &bytes, &len);
  close(fd);
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
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  cowmem_imgfile_t* f;
  int r = cowmem_imgfile_open(fd, module_hash, 0, &f, diag);
  close(fd); /* each image holds its own dup */
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
      r = module_fail(diag, COWMEM_EBADIMG, "memory %u: imported after a defined one",
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
  return m ? m->count : 0;
}

cowmem_image_t* cowmem_w2c_module_image(const cowmem_w2c_module_t* m, uint32_t i) {
  return m && i < m->count ? m->mem[m->nimports + i].image : NULL;
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
  t_module = m;
  t_next = 0;
  t_refused = false;
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
  t_refused = true;
  t_refused_id = id;
  return m && id ? COWMEM_EMISMATCH : COWMEM_EINVAL;
}

int cowmem_w2c_end(void) {
  int r = t_module && t_next != t_module->count ? COWMEM_ESTATE : 0;
  if (t_refused) r = t_module && t_refused_id ? COWMEM_EMISMATCH : COWMEM_EINVAL;
  t_module = NULL;
  t_next = 0;
  t_refused = false;
  t_refused_id = NULL;
  return r;
}

void cowmem_w2c_counters(cowmem_w2c_counters_t* out) {
  uint64_t* v[] = {&out->cowmem_allocs, &out->cowmem_grows, &out->cowmem_frees,
                   &out->stock_allocs,  &out->stock_grows,  &out->stock_frees,
                   &out->live};
  for (size_t i = 0; i < COWMEM_W2C__NCOUNTERS; i++)
    *v[i] = atomic_load_explicit(&g_counters[i], memory_order_relaxed);
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
  if (!t_module || !t_refused_id)
    die(0,
        "memory of %llu..%llu pages allocated after cowmem_w2c_begin_id was "
        "given no %s",
        (unsigned long long)initial, (unsigned long long)max,
        t_module ? "module identity" : "module set");
  die(0,
      "memory of %llu..%llu pages allocated for module %s... inside the module "
      "set of module %s...: the set does not belong to the module being "
      "instantiated (cowmem_w2c_begin_id returned EMISMATCH)",
      (unsigned long long)initial, (unsigned long long)max, hash_text(t_refused_id, a),
      hash_text(t_module->hash, b));
}

const cowmem_w2c__memory_t* cowmem_w2c__next(uint64_t initial, uint64_t max, bool is64,
                                             uint32_t page_size, bool shared) {
  if (t_refused) refused(initial, max);
  const cowmem_w2c_module_t* m = t_module;
  if (!m) return NULL;
  uint32_t k = t_next++;
  if (k >= m->count)
    die(0,
        "memory %u allocated, but the module set with cowmem_w2c_begin "
        "defines %u",
        k, m->count);
  const w2c_memory_t* w = &m->mem[m->nimports + k];
  if (initial != w->min_pages || max != w->max_pages || is64 != w->is64 ||
      page_size != w->page_size || shared != w->shared)
    die(0,
        "memory %u allocated with %llu..%llu pages of %u bytes%s%s, but the "
        "module set with cowmem_w2c_begin declares %llu..%llu pages of %u "
        "bytes%s%s",
        k, (unsigned long long)initial, (unsigned long long)max, page_size,
        is64 ? ", memory64" : "", shared ? ", shared" : "",
        (unsigned long long)w->min_pages, (unsigned long long)w->max_pages, w->page_size,
        w->is64 ? ", memory64" : "", w->shared ? ", shared" : "");
  return w;
}

static size_t round_up(uint64_t bytes) {
  size_t ps = cowmem_page_size();
  return (size_t)((bytes + ps - 1) / ps * ps);
}

/* The slot bounds every memory (checked against the module at load for the
 * initial size); a maximum beyond it only means grow fails there. */
static uint64_t max_bytes(const w2c_memory_t* w) {
  uint64_t cap = COWMEM_W2C_SLOT_SIZE / w->page_size;
  return (w->max_pages < cap ? w->max_pages : cap) * w->page_size;
}

int cowmem_w2c__try_acquire(const w2c_memory_t* w, const void* mem, uint8_t** out,
                            cowmem_diag_t* why) {
  pthread_mutex_lock(&g_lock);
  cowmem_w2c_config_t cfg;
  cowmem_w2c_config_init(&cfg);
  int r = g_pool ? 0 : init_locked(&cfg, why);
  pthread_mutex_unlock(&g_lock);
  if (r != 0) return r;
  cowmem_slot_t* slot;
  r = cowmem_pool_acquire(g_pool, w->image, round_up(w->min_pages * w->page_size),
                          round_up(max_bytes(w)), &slot);
  if (r != 0) {
    if (why)
      snprintf(why->reason, sizeof why->reason, "no slot for a memory of %llu pages",
               (unsigned long long)w->min_pages);
    return r;
  }
  uint8_t* data = cowmem_slot_base(slot);
  pthread_mutex_lock(&g_lock);
  table_put(data, slot, mem);
  pthread_mutex_unlock(&g_lock);
  cowmem_w2c__count(COWMEM_W2C__ALLOC, 1);
  cowmem_w2c__count(COWMEM_W2C__LIVE, 1);
  *out = data;
  return 0;
}

uint8_t* cowmem_w2c__acquire(const w2c_memory_t* w, const void* mem) {
  cowmem_diag_t why = {0};
  uint8_t* data = NULL;
  int r = cowmem_w2c__try_acquire(w, mem, &data, &why);
  if (r != 0) die(r, "%s", why.reason[0] ? why.reason : "cannot create the pool");
  return data;
}

/* What table_find refused, said (after g_lock is let go: a host's abort
 * handler may call in). The stock free would unmap part of the pool, and
 * another instance's slot is not this memory's to release or grow. */
static void refuse(const char* what, const void* mem, const void* data,
                   const void* other) {
  if (!other) return;
  if (other != data)
    die(0,
        "%s of the memory at %p: its data %p is the live memory of another "
        "instance (%p); this one is a stale copy",
        what, mem, data, other);
  die(0,
      "%s of the memory at %p: its data %p is inside cowmem's pool but no "
      "live memory's base (a double free, a stale copy or an interior "
      "pointer)",
      what, mem, data);
}

cowmem_slot_t* cowmem_w2c__find(const void* mem, const void* data) {
  const void* other;
  pthread_mutex_lock(&g_lock);
  cowmem_slot_t* slot = table_find(mem, data, false, &other);
  pthread_mutex_unlock(&g_lock);
  refuse("grow", mem, data, other);
  return slot;
}

bool cowmem_w2c__release(const void* mem, const void* data) {
  const void* other;
  pthread_mutex_lock(&g_lock);
  cowmem_slot_t* slot = table_find(mem, data, true, &other);
  cowmem_pool_t* pool = g_pool;
  pthread_mutex_unlock(&g_lock);
  refuse("free", mem, data, other);
  if (!slot) return false;
  /* An error here has already decommitted the slot and put it back (see
   * cowmem_pool_release): the next instance still sees only its image. */
  (void)cowmem_pool_release(pool, slot);
  cowmem_w2c__count(COWMEM_W2C__FREE, 1);
  cowmem_w2c__count(COWMEM_W2C__LIVE, -1);
  return true;
}

uint64_t cowmem_w2c__grow(cowmem_slot_t* slot, uint64_t pages, uint64_t delta,
                          uint64_t max_pages, uint32_t page_size) {
  cowmem_w2c__count(COWMEM_W2C__GROW, 1);
  uint64_t to = pages + delta;
  if (to < pages || to > max_pages || to > COWMEM_W2C_SLOT_SIZE / page_size)
    return UINT64_MAX;
  /* Custom page sizes would leave the tail of a host page accessible past
   * `size`: generated code bounds-checks such memories, and the tail is
   * zeros until grown into. */
  if (delta > 0 && cowmem_slot_grow(slot, round_up(to * page_size)) != 0)
    return UINT64_MAX;
  return pages;
}
