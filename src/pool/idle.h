/* The idle-slot store of a pool: where every slot that is not handed out
 * waits, and the order in which acquires find them. The pool (pool.c)
 * hands slots in and asks for one back; it never walks the lists.
 *
 * Every slot is an entry in one of these places, and its state says which:
 *   NEVER    not touched since the pool was made (taken in index order);
 *   IN_USE   acquired by the caller (or being reset: the pool's);
 *   WARM     idle, image mapped and clean (READY), in a bucket list;
 *   COLD     idle, decommitted (EMPTY, or BROKEN awaiting a retry);
 *   PENDING  released under BATCHED, DIRTY until the next flush.
 * Thread safety: every function may be called from any thread at once,
 * except new and free. */
#ifndef COWMEM_IDLE_H
#define COWMEM_IDLE_H

#include "internal.h"

enum {
  COWMEM__ENTRY_NEVER,
  COWMEM__ENTRY_IN_USE,
  COWMEM__ENTRY_WARM,
  COWMEM__ENTRY_COLD,
  COWMEM__ENTRY_PENDING
};

/* Aligned to a cache line: two threads' slots side by side would otherwise
 * share one, and every acquire and release writes its slot's entry. */
typedef struct cowmem__entry_s {
  _Alignas(64) cowmem_slot_t slot;
  struct cowmem__entry_s* prev;
  struct cowmem__entry_s* next;
  uint64_t key;  /* while WARM: the image it holds (cowmem__image_key) */
  uint64_t tick; /* while WARM: when it became idle */
  _Atomic int state;
} cowmem__entry_t;

/* Threads are spread over this many shards (a shard is a thread's stripe,
 * cowmem__os_stripe): each has its own idle lists and counters, so threads
 * running request loops rarely share a lock or a written cache line. */
#define COWMEM__SHARDS COWMEM__STRIPES

typedef struct cowmem__idle_s cowmem__idle_t;

/* A store over entries[0, n), all NEVER. max_warm: idle slots past it are
 * decommitted. ENOMEM. */
int cowmem__idle_new(cowmem__entry_t* entries, size_t n, size_t max_warm,
                     cowmem__idle_t** out);
/* Every slot must be idle. Drops the references idle slots hold. */
void cowmem__idle_free(cowmem__idle_t* idle);

/* An entry for an instance of the image with this key, IN_USE: an idle slot
 * of the same image (this thread's shard first), else a never-used one,
 * else a decommitted one; NULL if none. Counts an affinity hit or miss when
 * count is set. */
cowmem__entry_t* cowmem__idle_take(cowmem__idle_t* idle, uint64_t key, bool count);
/* The least recently used idle slot of any image, IN_USE; NULL if none. */
cowmem__entry_t* cowmem__idle_steal(cowmem__idle_t* idle);
/* A clean (READY) slot becomes idle: warm in this thread's shard, or
 * decommitted past the warm cap. */
void cowmem__idle_put(cowmem__idle_t* idle, cowmem__entry_t* e);
/* Decommit a slot (failed, or not worth keeping) and keep it cold. */
void cowmem__idle_put_cold(cowmem__idle_t* idle, cowmem__entry_t* e);
/* Decommit the idle slots of orphaned images, if any became orphans since
 * the last sweep (cheap otherwise: one atomic load). */
void cowmem__idle_sweep(cowmem__idle_t* idle);
/* Decommit every warm slot. */
void cowmem__idle_trim(cowmem__idle_t* idle);
/* Fill the store's part of the metrics: warm, cold, never_used,
 * idle_resident_bytes, affinity_hits, affinity_misses, steals, decommits,
 * and the decommit failures added to failures. */
void cowmem__idle_metrics(cowmem__idle_t* idle, cowmem_pool_metrics_t* out);

#endif
