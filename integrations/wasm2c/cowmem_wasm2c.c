/* cowmem_wasm2c.c: the memory functions of wasm2c's runtime, served from a
 * cowmem pool (see cowmem_wasm2c.h for the contract).
 *
 * Why a thread-local "module being instantiated" rather than a registry
 * keyed by the (initial, max) pages that wasm_rt_allocate_memory receives:
 * those limits do not identify a module (two modules built by the same
 * toolchain often declare the same ones, and mapping the wrong image is a
 * silent corruption), while the thread that calls Z_<name>_instantiate
 * always knows which module it is instantiating. The limits are still
 * checked against the module set, which catches the wrong module at once.
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
#include <sys/stat.h>
#include <unistd.h>

#include "wasm-rt.h"

/* The stock runtime's functions (-Wl,--wrap renames the generated code's
 * references to the __wrap_ ones below). */
void __real_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint32_t, uint32_t);
uint32_t __real_wasm_rt_grow_memory(wasm_rt_memory_t*, uint32_t);
void __real_wasm_rt_free_memory(wasm_rt_memory_t*);
void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint32_t, uint32_t);
uint32_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t*, uint32_t);
void __wrap_wasm_rt_free_memory(wasm_rt_memory_t*);

/* wasm2c passes 65536 for a memory without a maximum. */
#define NO_MAX_PAGES 65536u

typedef struct {
  uint32_t min_pages, max_pages; /* as wasm2c passes them */
  cowmem_image_t* image;         /* NULL: zeros, or copied by wasm2c */
} w2c_memory_t;

struct cowmem_w2c_module_s {
  uint32_t count;
  w2c_memory_t mem[];
};

/* ---- the pool and the data -> slot table ----
 * Slots are 8 GiB apart, so data >> 33 differs for every live memory; the
 * table is open-addressed with twice as many entries as slots, under one
 * mutex (held for a few loads; instantiation is not a contended path next to
 * the page faults an instance takes). */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static cowmem_pool_t* g_pool;
static size_t g_cap; /* entries in g_table, a power of two */
static struct entry {
  uint8_t* data;
  cowmem_slot_t* slot;
} * g_table;

static _Atomic uint64_t g_counters[7];
enum { C_ALLOC, C_GROW, C_FREE, C_STOCK_ALLOC, C_STOCK_GROW, C_STOCK_FREE, C_LIVE };
#define COUNT(c, d)                                                                      \
  atomic_fetch_add_explicit(&g_counters[c], (uint64_t)(d), memory_order_relaxed)

static _Thread_local const cowmem_w2c_module_t* t_module;
static _Thread_local uint32_t t_next; /* defined memories allocated so far */

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

static int init_locked(const cowmem_w2c_config_t* c, const char** why) {
  cowmem_pool_config_t pc;
  cowmem_pool_config_init(&pc);
  pc.max_slots = c->max_memories;
  pc.slot_size = COWMEM_W2C_SLOT_SIZE;
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
  int r = cowmem_pool_new(&pc, &pool, why);
  if (r != 0) {
    free(table);
    return r;
  }
  g_pool = pool;
  g_table = table;
  g_cap = cap;
  return 0;
}

int cowmem_w2c_init(const cowmem_w2c_config_t* cfg, const char** why) {
  if (!cfg || cfg->version != COWMEM_W2C_CONFIG_VERSION) return COWMEM_EINVAL;
  pthread_mutex_lock(&g_lock);
  int r = g_pool ? COWMEM_ESTATE : init_locked(cfg, why);
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
static void table_put(uint8_t* data, cowmem_slot_t* slot) {
  for (size_t i = hash_of(data);; i++) {
    struct entry* e = &g_table[i & (g_cap - 1)];
    if (!e->data) {
      e->data = data;
      e->slot = slot;
      return;
    }
  }
}

/* Under g_lock. Linear probing with backward-shift deletion (no tombstones). */
static cowmem_slot_t* table_find(const uint8_t* data, bool remove) {
  if (!g_table) return NULL;
  size_t mask = g_cap - 1, i = hash_of(data) & mask;
  while (g_table[i].data && g_table[i].data != data)
    i = (i + 1) & mask;
  cowmem_slot_t* slot = g_table[i].slot;
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
  return slot;
}

/* ---- modules ---- */

static int module_fail(cowmem_diag_t* diag, int code, const char* fmt, uint32_t idx) {
  if (diag) {
    memset(diag, 0, sizeof *diag);
    diag->code = code;
    snprintf(diag->reason, sizeof diag->reason, fmt, idx);
  }
  return code;
}

int cowmem_w2c_module_new(const void* wasm, size_t len, cowmem_w2c_module_t** out,
                          cowmem_diag_t* diag) {
  if (!out) return COWMEM_EINVAL;
  cowmem_module_t* mod;
  int r = cowmem_module_parse(wasm, len, COWMEM_MODULE_BORROW, &mod, diag);
  if (r != 0) return r;
  uint32_t n = cowmem_module_memory_count(mod);
  cowmem_w2c_module_t* m = calloc(1, sizeof *m + n * sizeof m->mem[0]);
  if (!m) r = COWMEM_ENOMEM;
  for (uint32_t i = 0; r == 0 && i < n; i++) {
    cowmem_memory_info_t mi;
    if ((r = cowmem_module_memory_info(mod, i, &mi)) != 0) break;
    if (mi.memory64)
      r = module_fail(diag, COWMEM_EUNSUPPORTED,
                      "memory %u is a memory64 memory: wasm2c 1.0.32 and "
                      "cowmem_wasm2c support 32-bit memories only",
                      i);
    else if (mi.shared)
      r = module_fail(diag, COWMEM_EUNSUPPORTED,
                      "memory %u is shared: not supported by wasm2c 1.0.32 "
                      "and cowmem_wasm2c",
                      i);
    if (r != 0 || mi.imported) continue; /* imports are the embedder's */
    w2c_memory_t* w = &m->mem[m->count++];
    w->min_pages = (uint32_t)mi.min_pages;
    w->max_pages = mi.has_max ? (uint32_t)mi.max_pages : NO_MAX_PAGES;
    r = cowmem_module_memory_image(mod, i, &w->image, NULL);
  }
  /* The images hold their own references; the parse is not needed after. */
  cowmem_module_free(mod);
  if (r != 0) {
    cowmem_w2c_module_free(m);
    return r;
  }
  if (diag) memset(diag, 0, sizeof *diag);
  *out = m;
  return 0;
}

int cowmem_w2c_module_open(const char* path, cowmem_w2c_module_t** out,
                           cowmem_diag_t* diag) {
  if (!path || !out) return COWMEM_EINVAL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  int r = fstat(fd, &st) == 0 ? 0 : -errno;
  uint8_t* bytes = NULL;
  size_t len = r == 0 ? (size_t)st.st_size : 0;
  if (r == 0 && !(bytes = malloc(len ? len : 1))) r = COWMEM_ENOMEM;
  for (size_t got = 0; r == 0 && got < len;) {
    ssize_t k = read(fd, bytes + got, len - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      r = k < 0 ? -errno : COWMEM_EIO;
    else
      got += (size_t)k;
  }
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
  int r = cowmem_imgfile_open_hash(fd, module_hash, 0, &f, diag);
  close(fd); /* each image holds its own dup */
  if (r != 0) return r;
  uint32_t n = cowmem_imgfile_memory_count(f);
  cowmem_w2c_module_t* m = calloc(1, sizeof *m + n * sizeof m->mem[0]);
  if (!m) r = COWMEM_ENOMEM;
  for (uint32_t i = 0; r == 0 && i < n; i++) {
    cowmem_imgfile_memory_t d;
    if ((r = cowmem_imgfile_memory(f, i, &d)) != 0) break;
    if (d.memory64 || d.shared)
      r = module_fail(diag, COWMEM_EUNSUPPORTED,
                      d.memory64 ? "memory %u is a memory64 memory: not "
                                   "supported by wasm2c 1.0.32"
                                 : "memory %u is shared: not supported by "
                                   "wasm2c 1.0.32",
                      d.index);
    if (r != 0 || d.imported) continue;
    w2c_memory_t* w = &m->mem[m->count++];
    w->min_pages = (uint32_t)d.min_pages;
    w->max_pages = d.has_max ? (uint32_t)d.max_pages : NO_MAX_PAGES;
    w->image = d.image ? cowmem_image_retain(d.image) : NULL;
  }
  cowmem_imgfile_free(f);
  if (r != 0) {
    cowmem_w2c_module_free(m);
    return r;
  }
  if (diag) memset(diag, 0, sizeof *diag);
  *out = m;
  return 0;
}

void cowmem_w2c_module_free(cowmem_w2c_module_t* m) {
  if (!m) return;
  for (uint32_t i = 0; i < m->count; i++)
    cowmem_image_free(m->mem[i].image);
  free(m);
}

uint32_t cowmem_w2c_module_memories(const cowmem_w2c_module_t* m) {
  return m ? m->count : 0;
}

cowmem_image_t* cowmem_w2c_module_image(const cowmem_w2c_module_t* m, uint32_t i) {
  return m && i < m->count ? m->mem[i].image : NULL;
}

void cowmem_w2c_begin(const cowmem_w2c_module_t* m) {
  t_module = m;
  t_next = 0;
}

int cowmem_w2c_end(void) {
  int r = t_module && t_next != t_module->count ? COWMEM_ESTATE : 0;
  t_module = NULL;
  t_next = 0;
  return r;
}

void cowmem_w2c_counters(cowmem_w2c_counters_t* out) {
  uint64_t* v[] = {&out->cowmem_allocs, &out->cowmem_grows, &out->cowmem_frees,
                   &out->stock_allocs,  &out->stock_grows,  &out->stock_frees,
                   &out->live};
  for (size_t i = 0; i < 7; i++)
    *v[i] = atomic_load_explicit(&g_counters[i], memory_order_relaxed);
}

/* ---- the three functions the generated code calls ---- */

void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t* mem, uint32_t initial,
                                    uint32_t max) {
  const cowmem_w2c_module_t* m = t_module;
  if (!m) {
    COUNT(C_STOCK_ALLOC, 1);
    __real_wasm_rt_allocate_memory(mem, initial, max);
    return;
  }
  uint32_t k = t_next++;
  if (k >= m->count)
    die(0,
        "memory %u allocated, but the module set with cowmem_w2c_begin "
        "defines %u",
        k, m->count);
  const w2c_memory_t* w = &m->mem[k];
  if (initial != w->min_pages || max != w->max_pages)
    die(0,
        "wasm_rt_allocate_memory(%u, %u pages) does not match the limits "
        "%u..%u of memory %u of the module set with cowmem_w2c_begin",
        initial, max, w->min_pages, w->max_pages, k);
  pthread_mutex_lock(&g_lock);
  cowmem_w2c_config_t cfg;
  cowmem_w2c_config_init(&cfg);
  const char* why = "";
  int r = g_pool ? 0 : init_locked(&cfg, &why);
  pthread_mutex_unlock(&g_lock);
  if (r != 0) die(r, "cannot create the pool (%s)", why ? why : "");
  cowmem_slot_t* slot;
  r = cowmem_pool_acquire(g_pool, w->image, (size_t)initial * COWMEM_W2C_WASM_PAGE,
                          (size_t)max * COWMEM_W2C_WASM_PAGE, &slot);
  if (r != 0) die(r, "no slot for a memory of %u pages", initial);
  uint8_t* data = cowmem_slot_base(slot);
  pthread_mutex_lock(&g_lock);
  table_put(data, slot);
  pthread_mutex_unlock(&g_lock);
  mem->data = data;
  mem->pages = initial;
  mem->max_pages = max;
  mem->size = initial * COWMEM_W2C_WASM_PAGE; /* wraps for 65536 pages, as
                                                 the stock runtime's does */
  COUNT(C_ALLOC, 1);
  COUNT(C_LIVE, 1);
}

uint32_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t* mem, uint32_t delta) {
  pthread_mutex_lock(&g_lock);
  cowmem_slot_t* slot = table_find(mem->data, false);
  pthread_mutex_unlock(&g_lock);
  if (!slot) {
    COUNT(C_STOCK_GROW, 1);
    return __real_wasm_rt_grow_memory(mem, delta);
  }
  COUNT(C_GROW, 1);
  uint32_t old = mem->pages;
  uint64_t pages = (uint64_t)old + delta;
  if (pages > mem->max_pages || pages > NO_MAX_PAGES) return (uint32_t)-1;
  if (delta > 0 && cowmem_slot_grow(slot, (size_t)pages * COWMEM_W2C_WASM_PAGE) != 0)
    return (uint32_t)-1;
  mem->pages = (uint32_t)pages;
  mem->size = (uint32_t)pages * COWMEM_W2C_WASM_PAGE;
  return old;
}

void __wrap_wasm_rt_free_memory(wasm_rt_memory_t* mem) {
  pthread_mutex_lock(&g_lock);
  cowmem_slot_t* slot = table_find(mem->data, true);
  cowmem_pool_t* pool = g_pool;
  pthread_mutex_unlock(&g_lock);
  if (!slot) {
    COUNT(C_STOCK_FREE, 1);
    __real_wasm_rt_free_memory(mem);
    return;
  }
  /* An error here has already decommitted the slot and put it back (see
   * cowmem_pool_release): the next instance still sees only its image. */
  (void)cowmem_pool_release(pool, slot);
  mem->data = NULL;
  mem->pages = 0;
  mem->size = 0;
  COUNT(C_FREE, 1);
  atomic_fetch_sub_explicit(&g_counters[C_LIVE], 1, memory_order_relaxed);
}
