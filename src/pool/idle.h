/* The idle-slot store of a pool: where every slot that is not handed out
 * waits, and the order in which acquires find them. The pool (pool.c)
 * hands slots in and asks for one back; it never walks the lists.
 *
 * Every slot is an entry in one of these places, and its state says which:
 *   NEVER    not touched since the pool was made (taken in index order);
 *   IN_USE   acquired by the caller (or being reset: the pool's);
 *   WARM     idle, image mapped and clean (READY), in a bucket list;
 *   COLD     idle, decommitted (EMPTY, or BROKEN awaiting a retry);
 *   PENDING  released under BATCHED, DIRTY until the next flush;
 *   MOVING   idle, taken off the warm lists by a sweep or trim on its way to
 *            the cold list (nobody's: a release of it is refused).
 * A slot that is nobody's and yet in no list (MOVING, or PENDING while a
 * flush holds it) is in a move: moves are bracketed by move_begin and
 * move_end, so that an acquire that looked at every list while a slot was
 * between two can tell and look again (cowmem__idle_look_*).
 * Thread safety: every function may be called from any thread at once,
 * except new and free. */
#ifndef COWMEM_IDLE_H
#define COWMEM_IDLE_H

#include "slot/slot.h"

enum {
  COWMEM__ENTRY_NEVER,
  COWMEM__ENTRY_IN_USE,
  COWMEM__ENTRY_WARM,
  COWMEM__ENTRY_COLD,
  COWMEM__ENTRY_PENDING,
  COWMEM__ENTRY_MOVING
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
/* Every slot must be idle; their images are the pool's to drop. */
void cowmem__idle_free(cowmem__idle_t* idle);

/* An entry for an instance of the image with this key, IN_USE: an idle slot
 * of the same image (this thread's shard first), else a never-used one,
 * else (if cold) a decommitted one; NULL if none. Counts an affinity hit or
 * miss when count is set. */
cowmem__entry_t* cowmem__idle_take(cowmem__idle_t* idle, uint64_t key, bool count,
                                   bool cold);
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
/* A move of idle slots by a path other than an acquire's own take: from
 * before the first slot leaves its place to after the last one lands (or
 * nothing was moved after all). A thread moves slots of one pool at a
 * time. The sweep and trim bracket their own; the pool brackets the
 * BATCHED flush, whose slots leave the queue. */
void cowmem__idle_move_begin(cowmem__idle_t* idle);
void cowmem__idle_move_end(cowmem__idle_t* idle);

/* An acquire's look at every place a slot can be: begin before it, and
 * when it found nothing, end says whether the miss is real (SETTLED: no
 * other thread's move was in flight or finished meanwhile), or a slot may
 * have been between two places (MOVING: a move is still in flight, wait
 * for it; MOVED: one finished, look again). The calling thread's own moves
 * do not count: it cannot wait for itself. */
typedef struct {
  uint64_t done;
  uint64_t own_done;
} cowmem__idle_look_t;
enum { COWMEM__LOOK_SETTLED, COWMEM__LOOK_MOVING, COWMEM__LOOK_MOVED };
void cowmem__idle_look_begin(cowmem__idle_t* idle, cowmem__idle_look_t* look);
int cowmem__idle_look_end(cowmem__idle_t* idle, const cowmem__idle_look_t* look);

/* Is any slot idle and warm (of any image), by the shards' counts? A
 * moment's answer, without a lock. */
bool cowmem__idle_warm_any(cowmem__idle_t* idle);
/* Fill the store's part of the metrics: warm, cold, never_used,
 * idle_resident_bytes, affinity_hits, affinity_misses, steals, decommits,
 * and the decommit failures added to failures. */
void cowmem__idle_metrics(cowmem__idle_t* idle, cowmem_pool_metrics_t* out);

/* Where an acquire's search for a slot may be stopped in test builds
 * (cowmem__pool_look_inject). */
enum {
  COWMEM__POOL_LOOK_BEGIN, /* a look after a miss is about to begin */
  COWMEM__POOL_LOOK_STEAL  /* nothing found but by stealing, yet */
};

#ifdef COWMEM_TESTING
/* The next sweep or trim that holds slots off every list calls fn(arg)
 * then, before it puts them on the cold list: what another thread may do
 * meanwhile. */
void cowmem__idle_move_inject(void (*fn)(void* arg), void* arg);
/* (pool.c) Until cleared with NULL, an acquire calls fn(arg, where) at the
 * points below: what another thread may do meanwhile. */
void cowmem__pool_look_inject(void (*fn)(void* arg, int where), void* arg);
#endif

#endif
