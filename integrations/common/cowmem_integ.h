/* cowmem_integ.h: the layer under every runtime integration (wasm2c, WAMR),
 * on cowmem.h only. A runtime's memory hooks are told little (wasm2c's the
 * limits, WAMR's a size) and get back only an address to grow and free;
 * what every integration needs around them is here, once:
 *
 *   - the configuration of the process's pool (cowmem_integ_config_t,
 *     which cowmem_w2c_config_t and cowmem_wamr_config_t name);
 *   - the pool, created on first use behind an atomic pointer (or by the
 *     integration's init), sized for runtimes without bounds checks:
 *     COWMEM_WASM32_SLOT_RESERVE + COWMEM_WASM32_GUARD_SIZE per slot;
 *   - acquire, grow and release of a memory by its address, through
 *     cowmem_pool_slot_of, with a record per slot of the struct the memory
 *     was handed to (its owner): no table, no lock on those paths;
 *   - the thread-local "module being instantiated" (cowmem_integ_call_t):
 *     the thread that calls a runtime's instantiate knows which module it
 *     instantiates, the hooks do not, so that thread says so around it;
 *   - counters beside the pool's metrics, and the messages of refusals.
 *
 * Each integration keeps its runtime adapter (the hooks, which fields a
 * memory struct has, what its ABI can hold) and its module loading.
 * Installed with the integrations' sources and compiled in the consumer's
 * project (cowmem_integ.cmake); not part of libcowmem's API.
 *
 * Thread safety: init and shutdown once, from one thread, while no memory
 * is acquired or released; acquire, find, release, grow and the counters
 * from any thread. */
#ifndef COWMEM_INTEG_H
#define COWMEM_INTEG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cowmem.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The pool of an integration. Defaults noted beside each field. */
#define COWMEM_INTEG_CONFIG_VERSION 1
typedef struct cowmem_integ_config_s {
  uint32_t version;              /* set by cowmem_integ_config_init */
  size_t max_memories;           /* slots: memories alive at once, 256 (1..2^20) */
  cowmem_reset_strategy_t reset; /* COWMEM_RESET_ADAPTIVE */
  size_t keep_resident;          /* KEEP_RESIDENT: bytes, 64 KiB */
  size_t resident_budget;        /* ADAPTIVE: bytes, 1 MiB */
} cowmem_integ_config_t;

void cowmem_integ_config_init(cowmem_integ_config_t* cfg);

/* Counters an integration keeps beside the pool's metrics (which already
 * count acquires, releases and memories in use). */
#define COWMEM_INTEG_COUNTERS(X)                                                         \
  X(ALLOC)        /* memories served from the pool */                                   \
  X(PLAIN_ALLOC)  /* of those, with no module set (zeros) */                            \
  X(REFUSED)      /* allocations refused (no slot, not the module's) */                  \
  X(GROW)         /* grows of a pool memory */                                           \
  X(STOCK_ALLOC)  /* memories left to the runtime's own allocator */                    \
  X(STOCK_GROW)   /* grows of those */                                                   \
  X(STOCK_FREE)   /* frees of those */
enum {
#define COWMEM_INTEG_X_(name) COWMEM_INTEG_##name,
  COWMEM_INTEG_COUNTERS(COWMEM_INTEG_X_)
#undef COWMEM_INTEG_X_
  COWMEM_INTEG_NCOUNTERS
};

struct cowmem_integ_pool_s; /* the pool and its owner records */

/* One integration's process-wide state: a static of each integration,
 * initialized with COWMEM_INTEG_INITIALIZER("its name"). */
typedef struct cowmem_integ_s {
  const char* name;     /* prefixes every message: "cowmem_wasm2c" */
  pthread_mutex_t lock; /* creating and freeing the pool */
  _Atomic(struct cowmem_integ_pool_s*) pool;
  _Atomic uint64_t counters[COWMEM_INTEG_NCOUNTERS];
} cowmem_integ_t;
#define COWMEM_INTEG_INITIALIZER(name) {(name), PTHREAD_MUTEX_INITIALIZER, NULL, {0}}

/* Create the pool. Errors: EINVAL (a NULL or unversioned cfg, or a field
 * out of range: diag->reason names it), ESTATE (already created), and
 * those of cowmem_pool_new. */
int cowmem_integ_init(cowmem_integ_t* in, const cowmem_integ_config_t* cfg,
                      cowmem_diag_t* diag);
/* Free the pool; 0 without one. EBUSY while a memory is alive (nothing is
 * freed). init may be called again afterwards. */
int cowmem_integ_shutdown(cowmem_integ_t* in);
/* The pool, or NULL before init or the first memory. */
cowmem_pool_t* cowmem_integ_pool(cowmem_integ_t* in);

/* A memory of the pool for the struct at owner (non-NULL; the runtime's
 * memory struct, or anything that identifies the memory for its lifetime),
 * initial_bytes accessible and growable to max_bytes (both rounded up to
 * host pages; max_bytes at most the slot), image (NULL: zeros) mapped:
 * its base in *data. The pool is created with the defaults if need be.
 * Errors: those of creating the pool and of cowmem_pool_acquire
 * (EEXHAUSTED: every slot taken); why (if not NULL) then says what failed. */
int cowmem_integ_acquire(cowmem_integ_t* in, cowmem_image_t* image, uint64_t initial_bytes,
                         uint64_t max_bytes, const void* owner, uint8_t** data,
                         cowmem_diag_t* why);

/* The slot whose base is data, handed to owner: grow it, or release it.
 * NULL when it is not: *other is then NULL (data is not the pool's: a
 * memory of another allocator), data (inside the pool but no live
 * memory's base: a double free, an interior pointer), or the owner the
 * memory was handed to (owner is a stale copy of that struct). */
cowmem_slot_t* cowmem_integ_find(cowmem_integ_t* in, const void* owner, const void* data,
                                 const void** other);
/* Release the memory at data (found as cowmem_integ_find does): the next
 * tenant of its slot sees only its own image and zeros. false, with *other
 * as above, when data is not owner's live memory. */
bool cowmem_integ_release(cowmem_integ_t* in, const void* owner, const void* data,
                          const void** other);
/* Make bytes of slot accessible (rounded up to host pages; at most the
 * slot). 0, or EINVAL or the error of cowmem_slot_grow. The caller counts
 * COWMEM_INTEG_GROW (a grow refused before this is a grow too). */
int cowmem_integ_grow(cowmem_integ_t* in, cowmem_slot_t* slot, uint64_t bytes);

/* Abort with a message naming what a find or release refused (*other not
 * NULL): `what` ("free", "grow") of the memory at data, for owner. Returns
 * when other is NULL. The runtimes' free and grow have no error return:
 * going on would release or grow another instance's slot. */
void cowmem_integ_refuse(const cowmem_integ_t* in, const char* what, const void* owner,
                         const void* data, const void* other);

static inline void cowmem_integ_count(cowmem_integ_t* in, int counter, int64_t d) {
  atomic_fetch_add_explicit(&in->counters[counter], (uint64_t)d, memory_order_relaxed);
}

/* The counters, and what the pool's metrics say the same of: releases and
 * memories in use (of the pool now: 0 without one). */
typedef struct cowmem_integ_counts_s {
  uint64_t counters[COWMEM_INTEG_NCOUNTERS];
  uint64_t releases, in_use;
} cowmem_integ_counts_t;
void cowmem_integ_counts(cowmem_integ_t* in, cowmem_integ_counts_t* out);

/* The module being instantiated on a thread: each integration keeps one
 * per thread (a _Thread_local of this type), set around the runtime's
 * instantiate, read by its hooks. */
typedef struct cowmem_integ_call_s {
  const void* module; /* the integration's module set, or NULL */
  uint32_t allocs;    /* memories allocated for it so far */
  int refused;        /* 0, or why this call must allocate nothing */
} cowmem_integ_call_t;

static inline void cowmem_integ_call_begin(cowmem_integ_call_t* c, const void* module) {
  c->module = module;
  c->allocs = 0;
  c->refused = 0;
}

/* Fill *diag (if not NULL) with code and a formatted reason; returns code. */
int cowmem_integ_fail(cowmem_diag_t* diag, int code, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Print "<name>: <message>[: <error>]" on stderr and abort: for hooks
 * that have no error return. */
void cowmem_integ_die(const cowmem_integ_t* in, int err, const char* fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* The whole file at path (malloc'd into *bytes). 0, or the errors of open
 * and cowmem_module_read. */
int cowmem_integ_read_file(const char* path, uint8_t** bytes, size_t* len);

/* cowmem_imgfile_open of the file at path (the images keep their own
 * descriptor). 0, or the errors of open and cowmem_imgfile_open. */
int cowmem_integ_open_images(const char* path, const uint8_t module_hash[32],
                             cowmem_imgfile_t** out, cowmem_diag_t* diag);

/* Bytes rounded up to host pages (a power of two). */
static inline uint64_t cowmem_integ_page_up(uint64_t bytes) {
  uint64_t mask = (uint64_t)cowmem_page_size() - 1;
  return (bytes + mask) & ~mask;
}

#ifdef __cplusplus
}
#endif
#endif /* COWMEM_INTEG_H */
