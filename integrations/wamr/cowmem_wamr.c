/* cowmem_wamr.c: WAMR's allocator callbacks, linear memories served from a
 * cowmem pool (see cowmem_wamr.h for the contract).
 *
 * Why a thread-local "module being instantiated" rather than a registry
 * keyed by the size the callback receives: sizes do not identify a module
 * (and WAMR changes them at load: shrunk memories, app heaps), while the
 * thread that calls wasm_runtime_instantiate always knows which module it
 * is instantiating.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wamr_internal.h"

/* ---- the pool ----
 * Grow and free get only the memory's base: cowmem_pool_slot_of finds the
 * handed-out slot from it (and nothing for a double free or a foreign
 * pointer). */
typedef struct {
  cowmem_pool_t* pool;
} state_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* init/shutdown */
static _Atomic(state_t*) g_state;

static _Atomic uint64_t g_counters[6];
enum { C_IMAGE, C_PLAIN, C_REFUSED, C_GROW, C_FREE, C_LIVE };
#define COUNT(c, d)                                                                      \
  atomic_fetch_add_explicit(&g_counters[c], (uint64_t)(d), memory_order_relaxed)

static _Thread_local const cowmem_wamr_module_t* t_module;
static _Thread_local uint32_t t_allocs; /* memories allocated since begin */
static _Thread_local bool t_failed;     /* an allocation for t_module refused */
static _Thread_local uint32_t t_heap;   /* the app heap asked for, if known */
static _Thread_local bool t_heap_known; /* set by cowmem_wamr_instantiate */

void cowmem_wamr_config_init(cowmem_wamr_config_t* cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->version = COWMEM_WAMR_CONFIG_VERSION;
  cfg->max_memories = 256;
  /* ADAPTIVE, as in the wasm2c integration: a request loop writes the same
   * few pages every time; keeping them resident (restored by copy) avoids
   * both the madvise's TLB flush and the next instance's page faults. */
  cfg->reset = COWMEM_RESET_ADAPTIVE;
  cfg->keep_resident = 64 << 10;
  cfg->resident_budget = 1 << 20;
}

/* Under g_lock. */
static int init_locked(const cowmem_wamr_config_t* c, cowmem_diag_t* diag) {
  cowmem_pool_config_t pc;
  cowmem_pool_config_init(&pc);
  pc.max_slots = c->max_memories;
  pc.slot_reserve = COWMEM_WAMR_SLOT_SIZE;
  pc.guard_size = COWMEM_WAMR_GUARD_SIZE;
  pc.reset = c->reset;
  pc.keep_resident = c->keep_resident;
  pc.resident_budget = c->resident_budget;
  if (c->max_memories == 0 || c->max_memories > ((size_t)1 << 20)) {
    if (diag) {
      memset(diag, 0, sizeof *diag);
      diag->code = COWMEM_EINVAL;
      snprintf(diag->reason, sizeof diag->reason, "max_memories: 1 to 2^20");
    }
    return COWMEM_EINVAL;
  }
  state_t* s = calloc(1, sizeof *s);
  if (!s) return COWMEM_ENOMEM;
  int r = cowmem_pool_new(&pc, &s->pool, diag);
  if (r != 0) {
    free(s);
    return r;
  }
  atomic_store_explicit(&g_state, s, memory_order_release);
  return 0;
}

int cowmem_wamr_init(const cowmem_wamr_config_t* cfg, cowmem_diag_t* diag) {
  if (!cfg || cfg->version != COWMEM_WAMR_CONFIG_VERSION) return COWMEM_EINVAL;
  pthread_mutex_lock(&g_lock);
  int r = atomic_load(&g_state) ? COWMEM_ESTATE : init_locked(cfg, diag);
  pthread_mutex_unlock(&g_lock);
  return r;
}

int cowmem_wamr_shutdown(void) {
  pthread_mutex_lock(&g_lock);
  state_t* s = atomic_load(&g_state);
  int r = s ? cowmem_pool_free(s->pool) : 0;
  if (s && r == 0) {
    atomic_store(&g_state, NULL);
    free(s);
  }
  pthread_mutex_unlock(&g_lock);
  return r;
}

cowmem_pool_t* cowmem_wamr_pool(void) {
  state_t* s = atomic_load_explicit(&g_state, memory_order_acquire);
  return s ? s->pool : NULL;
}

static state_t* state(void) {
  state_t* s = atomic_load_explicit(&g_state, memory_order_acquire);
  if (s) return s;
  pthread_mutex_lock(&g_lock);
  cowmem_wamr_config_t cfg;
  cowmem_wamr_config_init(&cfg);
  cowmem_diag_t diag = {0};
  int r = (s = atomic_load(&g_state)) ? 0 : init_locked(&cfg, &diag);
  if (r != 0)
    fprintf(stderr, "cowmem_wamr: cannot create the pool: %s (%s)\n", cowmem_strerror(r),
            diag.reason);
  else
    s = atomic_load(&g_state);
  pthread_mutex_unlock(&g_lock);
  return s;
}

/* The slot whose base is ptr, or NULL (not a linear memory of ours). */
static cowmem_slot_t* slot_of(state_t* s, const void* ptr) {
  if (!s || !ptr) return NULL;
  cowmem_slot_t* slot = cowmem_pool_slot_of(s->pool, ptr);
  return slot && cowmem_slot_base(slot) == ptr ? slot : NULL;
}

/* The live linear memory at ptr, for grow and free; else an abort naming
 * ptr. Every linear memory comes from linear_alloc, so anything else is a
 * double free, a stale or interior pointer, or a foreign one: going on
 * would release or grow another instance's slot (WAMR's free path has no
 * error return). */
static cowmem_slot_t* live_slot(state_t* s, const void* ptr, const char* what) {
  cowmem_slot_t* slot = slot_of(s, ptr);
  if (slot) return slot;
  fprintf(stderr, "cowmem_wamr: %s of %p: %s\n", what, ptr,
          s && cowmem_pool_contains(s->pool, ptr)
              ? "inside cowmem's pool but no live linear memory's base (a double "
                "free, a stale or an interior pointer)"
              : "not a linear memory of the pool");
  abort();
}

/* ---- module sets on this thread ---- */

void cowmem_wamr_begin(const cowmem_wamr_module_t* m) {
  t_module = m;
  t_allocs = 0;
  t_failed = false;
  t_heap = 0;
  t_heap_known = false;
}

int cowmem_wamr_end(void) {
  const cowmem_wamr_module_t* m = t_module;
  int r = 0;
  if (m && (t_failed || t_allocs > m->count || (m->image && t_allocs == 0)))
    r = COWMEM_ESTATE;
  t_module = NULL;
  t_allocs = 0;
  t_failed = false;
  t_heap = 0;
  t_heap_known = false;
  return r;
}

/* Whether inst is an instance of m whose memory is the size WAMR thinks it
 * is (the hook is told neither the module nor, at 4 GiB, the size: an
 * instance of another module, or a size 0 read the wrong way, is caught
 * here). Says why not on stderr. */
static bool instance_fits(const cowmem_wamr_module_t* m, wasm_module_inst_t inst) {
  if (wasm_runtime_get_module(inst) != m->wamr) {
    fprintf(stderr,
            "cowmem_wamr: an instance of WAMR module %p was made with the "
            "module set of %p: the wrong module set\n",
            (void*)wasm_runtime_get_module(inst), (void*)m->wamr);
    return false;
  }
  wasm_memory_inst_t mem = wasm_runtime_get_default_memory(inst);
  void* base = mem ? wasm_memory_get_base_address(mem) : NULL;
  cowmem_slot_t* slot = slot_of(atomic_load(&g_state), base);
  if (!slot) return true; /* no memory, or not the pool's (no module set) */
  uint64_t want = (uint64_t)wasm_memory_get_cur_page_count(mem) *
                  wasm_memory_get_bytes_per_page(mem);
  size_t ps = cowmem_page_size();
  want = (want + ps - 1) / ps * ps;
  if (cowmem_slot_accessible(slot) == want) return true;
  fprintf(stderr,
          "cowmem_wamr: the instance's memory is %llu bytes, its slot %zu: "
          "instantiate with cowmem_wamr_instantiate to give the app heap's "
          "size\n",
          (unsigned long long)want, cowmem_slot_accessible(slot));
  return false;
}

wasm_module_inst_t cowmem_wamr_end_instance(wasm_module_inst_t inst) {
  const cowmem_wamr_module_t* m = t_module;
  bool ok = cowmem_wamr_end() == 0 && (!inst || !m || instance_fits(m, inst));
  if (ok || !inst) return inst;
  wasm_runtime_deinstantiate(inst);
  return NULL;
}

wasm_module_inst_t cowmem_wamr_instantiate(const cowmem_wamr_module_t* m,
                                           uint32_t stack_size, uint32_t heap_size,
                                           char* error_buf, uint32_t error_buf_size) {
  if (!m) return NULL;
  cowmem_wamr_begin(m);
  t_heap = heap_size; /* tells a 4 GiB memory from an empty one */
  t_heap_known = true;
  return cowmem_wamr_end_instance(
      wasm_runtime_instantiate(m->wamr, stack_size, heap_size, error_buf, error_buf_size));
}

void cowmem_wamr_counters(cowmem_wamr_counters_t* out) {
  uint64_t* v[] = {&out->image_allocs, &out->plain_allocs, &out->refused_allocs,
                   &out->grows,        &out->frees,        &out->live};
  for (size_t i = 0; i < 6; i++)
    *v[i] = atomic_load_explicit(&g_counters[i], memory_order_relaxed);
}

/* ---- the callbacks ---- */

static size_t page_up(uint64_t n) {
  size_t ps = cowmem_page_size();
  return (size_t)((n + ps - 1) / ps * ps);
}

/* A linear memory of `bytes` (WAMR aligned it to host pages already). */
static void* linear_alloc(uint64_t bytes) {
  const cowmem_wamr_module_t* m = t_module;
  cowmem_image_t* image = NULL;
  if (m) {
    /* Only the first allocation of an instantiation is the module's memory;
     * a second cannot be mapped exactly: refuse rather than guess. */
    if (t_allocs++ >= m->count || bytes < m->image_end) {
      fprintf(stderr,
              "cowmem_wamr: linear memory %u of %llu bytes does not fit the "
              "module set (%u memories, image ends at %llu)\n",
              t_allocs - 1, (unsigned long long)bytes, m->count,
              (unsigned long long)m->image_end);
      t_failed = true;
      COUNT(C_REFUSED, 1);
      return NULL;
    }
    image = m->image;
  }
  state_t* s = state();
  cowmem_slot_t* slot;
  int r = s ? cowmem_pool_acquire(s->pool, image, page_up(bytes), COWMEM_WAMR_SLOT_SIZE,
                                  &slot)
            : COWMEM_ENOMEM;
  if (r != 0) {
    /* WAMR reports "allocate linear memory failed"; say why here. */
    fprintf(stderr, "cowmem_wamr: no slot for a linear memory of %llu bytes: %s\n",
            (unsigned long long)bytes, cowmem_strerror(r));
    if (m) t_failed = true;
    COUNT(C_REFUSED, 1);
    return NULL;
  }
  void* base = cowmem_slot_base(slot);
  COUNT(m ? C_IMAGE : C_PLAIN, 1);
  COUNT(C_LIVE, 1);
  return base;
}

/* WAMR 2.4.5's APP_HEAP_SIZE_MAX (core/config.h): it caps heap_size there. */
#define WAMR_HEAP_MAX ((uint64_t)1 << 30)

/* What a size of 0 for module m's memory is: 4 GiB (1), no byte (0), or
 * either (-1). WAMR asks for pages x bytes per page after its rewrites at
 * load (memory_instantiate, wasm_runtime.c), cut to unsigned int. Without
 * an app heap that is 0 only for an empty memory or for 65536 pages of
 * 64 KiB, which only a module declaring 65536 pages has (a rewrite only
 * shrinks). An app heap never leaves 0 bytes (a memory of 0 pages becomes
 * one page of the heap's size; otherwise WAMR adds pages, or bytes to a
 * one-page memory), so 0 with one is 4 GiB; it adds at most the heap
 * rounded up to pages plus a page, or, to a memory shrunk to fewer bytes
 * per page, at most twice those bytes plus the heap: a module declaring
 * less than (4 GiB - 1 GiB - 2 pages) / 2 cannot reach 4 GiB with any
 * heap. Whether a heap was added is known only through
 * cowmem_wamr_instantiate (and WAMR drops the heap of a module exporting
 * malloc and free: a 0 read as 4 GiB there is refused at the end, see
 * instance_fits). */
static int zero_is_4gib(const cowmem_wamr_module_t* m) {
  if (m->min_pages >= 65536) return 1;
  if (2 * m->min_pages * 65536 + WAMR_HEAP_MAX + 2 * 65536 < ((uint64_t)1 << 32)) return 0;
  if (!t_heap_known) return -1;
  return t_heap > 0;
}

void* cowmem_wamr__malloc(mem_alloc_usage_t usage, unsigned int size) {
  if (usage != Alloc_For_LinearMemory) return malloc(size);
  /* The size WAMR asks for is the truth, 0 included: a module whose memory
   * WAMR shrank to __heap_base = 0 gets no accessible byte, as in stock
   * WAMR. But sizes are unsigned int: a 4 GiB memory arrives as 0 too
   * (zero_is_4gib tells which, from the module set). Where it cannot tell
   * (an app heap may have been given through COWMEM_WAMR_INSTANTIATE, whose
   * size the hook is not told, to a module declaring nearly 4 GiB), the
   * allocation is refused: an empty slot would crash the host when WAMR
   * writes the heap's header, a 4 GiB one would give an empty memory 4 GiB.
   * Without a module set 0 is always an empty memory. */
  const cowmem_wamr_module_t* m = t_module;
  uint64_t bytes = size;
  int big = size == 0 && m ? zero_is_4gib(m) : 0;
  if (big < 0) {
    fprintf(stderr,
            "cowmem_wamr: a linear memory of 0 or 4 GiB (the size WAMR gives "
            "is cut to 32 bits) for a module declaring %llu pages: which one "
            "depends on the app heap; instantiate with "
            "cowmem_wamr_instantiate, which is told its size\n",
            (unsigned long long)m->min_pages);
    t_failed = true;
    COUNT(C_REFUSED, 1);
    return NULL;
  }
  if (big) bytes = (uint64_t)1 << 32;
  return linear_alloc(bytes);
}

void* cowmem_wamr__realloc(mem_alloc_usage_t usage, bool full_size_mmaped, void* ptr,
                           unsigned int size) {
  (void)full_size_mmaped; /* slots never move: right for both answers */
  if (usage != Alloc_For_LinearMemory) return realloc(ptr, size);
  /* A grow never shrinks, so 0 can only be 4 GiB. */
  uint64_t bytes = size ? size : (uint64_t)1 << 32;
  /* With software bounds checks a memory of 0 pages has no allocation
   * (NULL) until its first grow; it holds zeros, so no image is needed. */
  if (!ptr) {
    const cowmem_wamr_module_t* saved = t_module;
    t_module = NULL;
    void* p = linear_alloc(bytes);
    t_module = saved;
    return p;
  }
  cowmem_slot_t* slot = live_slot(atomic_load(&g_state), ptr, "grow");
  COUNT(C_GROW, 1);
  if (cowmem_slot_grow(slot, page_up(bytes)) != 0) return NULL;
  return ptr;
}

void cowmem_wamr__free(mem_alloc_usage_t usage, void* ptr) {
  if (usage != Alloc_For_LinearMemory) {
    free(ptr);
    return;
  }
  state_t* s = atomic_load(&g_state);
  cowmem_slot_t* slot = live_slot(s, ptr, "free");
  /* An error here has already decommitted the slot and put it back (see
   * cowmem_pool_release): the next instance still sees only its image. */
  (void)cowmem_pool_release(s->pool, slot);
  COUNT(C_FREE, 1);
  atomic_fetch_sub_explicit(&g_counters[C_LIVE], 1, memory_order_relaxed);
}

bool cowmem_wamr_runtime_init(const RuntimeInitArgs* args) {
  RuntimeInitArgs a;
  if (args)
    a = *args;
  else
    memset(&a, 0, sizeof a);
  a.mem_alloc_type = Alloc_With_Allocator;
  a.mem_alloc_option.allocator.malloc_func = (void*)cowmem_wamr__malloc;
  a.mem_alloc_option.allocator.realloc_func = (void*)cowmem_wamr__realloc;
  a.mem_alloc_option.allocator.free_func = (void*)cowmem_wamr__free;
  a.mem_alloc_option.allocator.user_data = NULL;
  return wasm_runtime_full_init(&a);
}
