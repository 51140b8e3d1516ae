/* cowmem_integ.c: the pool under the runtime integrations and its owner
 * records (see cowmem_integ.h for the contract). */
#include "cowmem_integ.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The owner records: one per slot, indexed by the slot's base divided by
 * the stride. A pool reserves its slots one stride apart in one mapping
 * (cowmem.h, cowmem_pool_new: max_slots x (slot_reserve + guard_size) +
 * guard_size), so the quotients of its slots' bases are max_slots
 * consecutive integers and, modulo max_slots, each slot has its own
 * record. An acquire that finds its record taken would mean another
 * layout: it is refused (ESTATE) rather than share a record.
 *
 * The record says which struct a slot was handed to. A copy of a memory
 * struct made before a free still holds the same base once the slot serves
 * another instance; only the struct's address tells the copy from the live
 * memory. Releases clear the record with a compare-and-swap before the
 * slot goes back, so of two frees of one memory only one gets the slot. */
struct cowmem_integ_pool_s {
  cowmem_pool_t* pool;
  size_t stride, nslots;
  _Atomic(const void*) owner[];
};

void cowmem_integ_config_init(cowmem_integ_config_t* cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->version = COWMEM_INTEG_CONFIG_VERSION;
  cfg->max_memories = 256;
  /* ADAPTIVE: a request loop writes the same few pages every time; keeping
   * them resident (restored by copy) and the image's read-only PTEs mapped
   * avoids both the madvise's TLB flush and the next instance's page faults.
   * Measured with the wasm2c demo (195-byte request, 11 pages dirtied):
   * 7.1 us per request against 26.4 us with MADVISE (stock runtime: 122 us). */
  cfg->reset = COWMEM_RESET_ADAPTIVE;
  cfg->keep_resident = 64 << 10;
  cfg->resident_budget = 1 << 20;
}

/* Under in->lock. */
static int create_locked(cowmem_integ_t* in, const cowmem_integ_config_t* c,
                         cowmem_diag_t* diag) {
  if (c->max_memories == 0 || c->max_memories > ((size_t)1 << 20))
    return cowmem_integ_fail(diag, COWMEM_EINVAL, "max_memories: 1 to 2^20");
  cowmem_pool_config_t pc;
  cowmem_pool_config_init_wasm32(&pc);
  pc.max_slots = c->max_memories;
  pc.reset = c->reset;
  pc.keep_resident = c->keep_resident;
  pc.resident_budget = c->resident_budget;
  struct cowmem_integ_pool_s* p =
      calloc(1, sizeof *p + c->max_memories * sizeof p->owner[0]);
  if (!p) return cowmem_integ_fail(diag, COWMEM_ENOMEM, "the owner records");
  p->stride = pc.slot_reserve + pc.guard_size;
  p->nslots = c->max_memories;
  int r = cowmem_pool_new(&pc, &p->pool, diag);
  if (r != 0) {
    free(p);
    return r;
  }
  atomic_store_explicit(&in->pool, p, memory_order_release);
  return 0;
}

int cowmem_integ_init(cowmem_integ_t* in, const cowmem_integ_config_t* cfg,
                      cowmem_diag_t* diag) {
  if (!cfg || cfg->version != COWMEM_INTEG_CONFIG_VERSION)
    return cowmem_integ_fail(diag, COWMEM_EINVAL, "config: not from config_init");
  pthread_mutex_lock(&in->lock);
  int r = atomic_load(&in->pool) ? COWMEM_ESTATE : create_locked(in, cfg, diag);
  pthread_mutex_unlock(&in->lock);
  return r;
}

int cowmem_integ_shutdown(cowmem_integ_t* in) {
  pthread_mutex_lock(&in->lock);
  struct cowmem_integ_pool_s* p = atomic_load(&in->pool);
  int r = p ? cowmem_pool_free(p->pool) : 0;
  if (p && r == 0) {
    atomic_store(&in->pool, NULL);
    free(p);
  }
  pthread_mutex_unlock(&in->lock);
  return r;
}

cowmem_pool_t* cowmem_integ_pool(cowmem_integ_t* in) {
  struct cowmem_integ_pool_s* p = atomic_load_explicit(&in->pool, memory_order_acquire);
  return p ? p->pool : NULL;
}

/* The pool, created with the defaults on first use. */
static struct cowmem_integ_pool_s* pool_of(cowmem_integ_t* in, int* err,
                                           cowmem_diag_t* why) {
  struct cowmem_integ_pool_s* p = atomic_load_explicit(&in->pool, memory_order_acquire);
  if (p) return p;
  cowmem_integ_config_t cfg;
  cowmem_integ_config_init(&cfg);
  pthread_mutex_lock(&in->lock);
  *err = atomic_load(&in->pool) ? 0 : create_locked(in, &cfg, why);
  p = atomic_load(&in->pool);
  pthread_mutex_unlock(&in->lock);
  return p;
}

static _Atomic(const void*)* record(struct cowmem_integ_pool_s* p, const void* base) {
  return &p->owner[(uintptr_t)base / p->stride % p->nslots];
}

int cowmem_integ_acquire(cowmem_integ_t* in, cowmem_image_t* image, uint64_t initial_bytes,
                         uint64_t max_bytes, const void* owner, uint8_t** data,
                         cowmem_diag_t* why) {
  int r = 0;
  struct cowmem_integ_pool_s* p = pool_of(in, &r, why);
  if (!p) return r;
  uint64_t max = max_bytes < COWMEM_WASM32_SLOT_RESERVE ? max_bytes
                                                        : COWMEM_WASM32_SLOT_RESERVE;
  cowmem_slot_t* slot;
  r = cowmem_pool_acquire(p->pool, image, (size_t)cowmem_integ_page_up(initial_bytes),
                          (size_t)cowmem_integ_page_up(max), &slot);
  if (r != 0)
    return cowmem_integ_fail(why, r, "no slot for a memory of %llu bytes: %s",
                             (unsigned long long)initial_bytes, cowmem_strerror(r));
  uint8_t* base = cowmem_slot_base(slot);
  const void* none = NULL;
  if (!atomic_compare_exchange_strong_explicit(record(p, base), &none, owner,
                                               memory_order_release, memory_order_relaxed)) {
    (void)cowmem_pool_release(p->pool, slot);
    return cowmem_integ_fail(why, COWMEM_ESTATE,
                             "slot %p shares its owner record: not one stride apart",
                             (void*)base);
  }
  cowmem_integ_count(in, COWMEM_INTEG_ALLOC, 1);
  *data = base;
  return 0;
}

/* The handed-out slot whose base is data, or NULL with *other data when
 * data is inside the pool all the same (NULL: not the pool's). */
static cowmem_slot_t* slot_at(struct cowmem_integ_pool_s* p, const void* data,
                              const void** other) {
  *other = NULL;
  if (!p || !data) return NULL;
  cowmem_slot_t* slot = cowmem_pool_slot_of(p->pool, data);
  if (slot && cowmem_slot_base(slot) == data) return slot;
  if (cowmem_pool_contains(p->pool, data)) *other = data;
  return NULL;
}

cowmem_slot_t* cowmem_integ_find(cowmem_integ_t* in, const void* owner, const void* data,
                                 const void** other) {
  struct cowmem_integ_pool_s* p = atomic_load_explicit(&in->pool, memory_order_acquire);
  cowmem_slot_t* slot = slot_at(p, data, other);
  if (!slot) return NULL;
  const void* o = atomic_load_explicit(record(p, data), memory_order_acquire);
  if (o == owner) return slot;
  *other = o ? o : data;
  return NULL;
}

bool cowmem_integ_release(cowmem_integ_t* in, const void* owner, const void* data,
                          const void** other) {
  struct cowmem_integ_pool_s* p = atomic_load_explicit(&in->pool, memory_order_acquire);
  cowmem_slot_t* slot = slot_at(p, data, other);
  if (!slot) return false;
  /* Cleared before the slot goes back: of two frees of one memory, the
   * second finds no owner (or another tenant's) and is refused. */
  const void* expect = owner;
  if (!atomic_compare_exchange_strong_explicit(record(p, data), &expect, NULL,
                                               memory_order_acq_rel, memory_order_acquire)) {
    *other = expect ? expect : data;
    return false;
  }
  /* An error here has already decommitted the slot and put it back (see
   * cowmem_pool_release): the next instance still sees only its image. */
  (void)cowmem_pool_release(p->pool, slot);
  return true;
}

int cowmem_integ_grow(cowmem_integ_t* in, cowmem_slot_t* slot, uint64_t bytes) {
  (void)in;
  if (bytes > COWMEM_WASM32_SLOT_RESERVE) return COWMEM_EINVAL;
  return cowmem_slot_grow(slot, (size_t)cowmem_integ_page_up(bytes));
}

void cowmem_integ_refuse(const cowmem_integ_t* in, const char* what, const void* owner,
                         const void* data, const void* other) {
  if (!other) return;
  if (other != data)
    cowmem_integ_die(in, 0,
                     "%s of the memory at %p: its data %p is the live memory of "
                     "another instance (%p); this one is a stale copy",
                     what, owner, data, other);
  cowmem_integ_die(in, 0,
                   "%s of the memory at %p: its data %p is inside cowmem's pool but "
                   "no live memory's base (a double free, a stale copy or an "
                   "interior pointer)",
                   what, owner, data);
}

void cowmem_integ_counts(cowmem_integ_t* in, cowmem_integ_counts_t* out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < COWMEM_INTEG_NCOUNTERS; i++)
    out->counters[i] = atomic_load_explicit(&in->counters[i], memory_order_relaxed);
  cowmem_pool_t* pool = cowmem_integ_pool(in);
  cowmem_pool_metrics_t m = {.version = COWMEM_POOL_METRICS_VERSION};
  if (pool && cowmem_pool_metrics(pool, &m) == 0) {
    out->releases = m.releases;
    out->in_use = m.in_use;
  }
}

int cowmem_integ_fail(cowmem_diag_t* diag, int code, const char* fmt, ...) {
  if (diag) {
    memset(diag, 0, sizeof *diag);
    diag->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(diag->reason, sizeof diag->reason, fmt, ap);
    va_end(ap);
  }
  return code;
}

void cowmem_integ_die(const cowmem_integ_t* in, int err, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", in->name);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (err) fprintf(stderr, ": %s (%s)", cowmem_strerror(err), cowmem_err_name(err));
  fprintf(stderr, "\n");
  abort();
}

int cowmem_integ_read_file(const char* path, uint8_t** bytes, size_t* len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int r = cowmem_module_read(fd, bytes, len);
  close(fd);
  return r;
}

int cowmem_integ_open_images(const char* path, const uint8_t module_hash[32],
                             cowmem_imgfile_t** out, cowmem_diag_t* diag) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int r = cowmem_imgfile_open(fd, module_hash, 0, out, diag);
  close(fd); /* each image holds its own dup */
  return r;
}
