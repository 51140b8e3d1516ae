/* cowmem_wamr.c: WAMR's allocator callbacks, linear memories served from a
 * cowmem pool (see cowmem_wamr.h for the contract).
 *
 * Why a thread-local "module being instantiated" rather than a registry
 * keyed by the size the callback receives: sizes do not identify a module
 * (and WAMR changes them at load: shrunk memories, app heaps), while the
 * thread that calls wasm_runtime_instantiate always knows which module it
 * is instantiating.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wamr_internal.h"

/* The pool, its records and counters (cowmem_integ.h). Grow and free get
 * only the memory's base: cowmem_integ_find finds the handed-out slot from
 * it (and nothing for a double free or a foreign pointer). WAMR's hooks
 * have no memory struct to name: every linear memory's owner is the
 * integration itself, so a record says "a live linear memory". */
static cowmem_integ_t g_integ = COWMEM_INTEG_INITIALIZER("cowmem_wamr");
#define OWNER ((const void*)&g_integ)

/* The module being instantiated on this thread; `refused` is set when an
 * allocation for it was refused. */
static _Thread_local cowmem_integ_call_t t_call;
static _Thread_local uint32_t t_heap;   /* the app heap asked for, if known */
static _Thread_local bool t_heap_known; /* set by cowmem_wamr_instantiate */

void cowmem_wamr_config_init(cowmem_wamr_config_t* cfg) {
  cowmem_integ_config_init(cfg);
}

int cowmem_wamr_init(const cowmem_wamr_config_t* cfg, cowmem_diag_t* diag) {
  return cowmem_integ_init(&g_integ, cfg, diag);
}

int cowmem_wamr_shutdown(void) {
  return cowmem_integ_shutdown(&g_integ);
}

cowmem_pool_t* cowmem_wamr_pool(void) {
  return cowmem_integ_pool(&g_integ);
}

/* The live linear memory at ptr, for grow and free; else an abort naming
 * ptr. Every linear memory comes from linear_alloc, so anything else is a
 * double free, a stale or interior pointer, or a foreign one: going on
 * would release or grow another instance's slot (WAMR's free path has no
 * error return). */
static cowmem_slot_t* live_slot(const void* ptr, const char* what) {
  const void* other;
  cowmem_slot_t* slot = cowmem_integ_find(&g_integ, OWNER, ptr, &other);
  if (slot) return slot;
  cowmem_integ_refuse(&g_integ, what, ptr, ptr, other);
  cowmem_integ_die(&g_integ, 0, "%s of %p: not a linear memory of the pool", what, ptr);
}

/* ---- module sets on this thread ---- */

void cowmem_wamr_begin(const cowmem_wamr_module_t* m) {
  cowmem_integ_call_begin(&t_call, m);
  t_heap = 0;
  t_heap_known = false;
}

int cowmem_wamr_end(void) {
  const cowmem_wamr_module_t* m = t_call.module;
  int r = 0;
  if (m && (t_call.refused || t_call.allocs > m->count || (m->image && t_call.allocs == 0)))
    r = COWMEM_ESTATE;
  cowmem_wamr_begin(NULL);
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
  const void* other;
  cowmem_slot_t* slot = base ? cowmem_integ_find(&g_integ, OWNER, base, &other) : NULL;
  if (!slot) return true; /* no memory */
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
  const cowmem_wamr_module_t* m = t_call.module;
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
  cowmem_integ_counts_t c;
  cowmem_integ_counts(&g_integ, &c);
  out->image_allocs = c.counters[COWMEM_INTEG_ALLOC] - c.counters[COWMEM_INTEG_PLAIN_ALLOC];
  out->plain_allocs = c.counters[COWMEM_INTEG_PLAIN_ALLOC];
  out->refused_allocs = c.counters[COWMEM_INTEG_REFUSED];
  out->grows = c.counters[COWMEM_INTEG_GROW];
  out->frees = c.releases;
  out->live = c.in_use;
  cowmem_wamr__envs_counts(&out->envs_created, &out->envs_reused);
}

/* ---- the callbacks ---- */

/* A linear memory of `bytes` (WAMR aligned it to host pages already). */
static void* linear_alloc(uint64_t bytes) {
  const cowmem_wamr_module_t* m = t_call.module;
  cowmem_image_t* image = NULL;
  if (m) {
    /* Only the first allocation of an instantiation is the module's memory;
     * a second cannot be mapped exactly: refuse rather than guess. */
    if (t_call.allocs++ >= m->count || bytes < m->image_end) {
      fprintf(stderr,
              "cowmem_wamr: linear memory %u of %llu bytes does not fit the "
              "module set (%u memories, image ends at %llu)\n",
              t_call.allocs - 1, (unsigned long long)bytes, m->count,
              (unsigned long long)m->image_end);
      t_call.refused = COWMEM_ESTATE;
      cowmem_integ_count(&g_integ, COWMEM_INTEG_REFUSED, 1);
      return NULL;
    }
    image = m->image;
  }
  uint8_t* base;
  cowmem_diag_t why;
  int r = cowmem_integ_acquire(&g_integ, image, bytes, COWMEM_WASM32_SLOT_RESERVE, OWNER,
                               &base, &why);
  if (r != 0) {
    /* WAMR reports "allocate linear memory failed"; say why here. */
    fprintf(stderr, "cowmem_wamr: %s\n", why.reason);
    if (m) t_call.refused = r;
    cowmem_integ_count(&g_integ, COWMEM_INTEG_REFUSED, 1);
    return NULL;
  }
  if (!m) cowmem_integ_count(&g_integ, COWMEM_INTEG_PLAIN_ALLOC, 1);
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

/* The hooks are called for every allocation of the runtime's own too
 * (several per instantiation): those go straight to the C library, and
 * the linear-memory paths are kept out of line so that this stays a test
 * and a jump. */
static void* linear_malloc(unsigned int size);
static void linear_free(void* ptr);

void* cowmem_wamr__malloc(mem_alloc_usage_t usage, unsigned int size) {
  if (usage != Alloc_For_LinearMemory) return malloc(size);
  return linear_malloc(size);
}

void cowmem_wamr__free(mem_alloc_usage_t usage, void* ptr) {
  if (usage != Alloc_For_LinearMemory)
    free(ptr);
  else
    linear_free(ptr);
}

__attribute__((noinline)) static void* linear_malloc(unsigned int size) {
  /* The size WAMR asks for is the truth, 0 included: a module whose memory
   * WAMR shrank to __heap_base = 0 gets no accessible byte, as in stock
   * WAMR. But sizes are unsigned int: a 4 GiB memory arrives as 0 too
   * (zero_is_4gib tells which, from the module set). Where it cannot tell
   * (an app heap may have been given through COWMEM_WAMR_INSTANTIATE, whose
   * size the hook is not told, to a module declaring nearly 4 GiB), the
   * allocation is refused: an empty slot would crash the host when WAMR
   * writes the heap's header, a 4 GiB one would give an empty memory 4 GiB.
   * Without a module set 0 is always an empty memory. */
  const cowmem_wamr_module_t* m = t_call.module;
  uint64_t bytes = size;
  int big = size == 0 && m ? zero_is_4gib(m) : 0;
  if (big < 0) {
    fprintf(stderr,
            "cowmem_wamr: a linear memory of 0 or 4 GiB (the size WAMR gives "
            "is cut to 32 bits) for a module declaring %llu pages: which one "
            "depends on the app heap; instantiate with "
            "cowmem_wamr_instantiate, which is told its size\n",
            (unsigned long long)m->min_pages);
    t_call.refused = COWMEM_ESTATE;
    cowmem_integ_count(&g_integ, COWMEM_INTEG_REFUSED, 1);
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
    cowmem_integ_call_t saved = t_call;
    t_call.module = NULL;
    void* p = linear_alloc(bytes);
    t_call = saved;
    return p;
  }
  cowmem_slot_t* slot = live_slot(ptr, "grow");
  cowmem_integ_count(&g_integ, COWMEM_INTEG_GROW, 1);
  if (cowmem_integ_grow(&g_integ, slot, bytes) != 0) return NULL;
  return ptr;
}

__attribute__((noinline)) static void linear_free(void* ptr) {
  const void* other;
  if (!cowmem_integ_release(&g_integ, OWNER, ptr, &other)) live_slot(ptr, "free");
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
