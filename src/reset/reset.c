/* The reset module: every strategy's reset of a pooled slot, and its state.
 * The slot (slot.c) keeps its own state transitions: a strategy checks the
 * slot is resettable, brings every page of [0, accessible) back to the
 * image and zeros (by discarding it, or by copying), and lets the slot
 * finish. */
#include <pthread.h>
#include <stdlib.h>

#include "reset/adaptive.h"
#include "image/image.h"
#include "reset/reset.h"

/* BATCHED: slots waiting for one discard of all their ranges. */
typedef struct {
  pthread_mutex_t lock;
  cowmem_slot_t** items;
  size_t n;
  size_t cap; /* the batch size */
} batch_t;

struct cowmem__reset_s {
  cowmem_reset_strategy_t strategy;
  size_t keep_resident;
  batch_t batch;                /* BATCHED */
  cowmem__adaptive_t* adaptive; /* ADAPTIVE */
};

int cowmem__reset_new(const cowmem_pool_config_t* cfg, cowmem__reset_t** out) {
  cowmem__reset_t* r = calloc(1, sizeof *r);
  if (r == NULL) return COWMEM_ENOMEM;
  r->strategy = cfg->reset;
  r->keep_resident = cfg->keep_resident;
  pthread_mutex_init(&r->batch.lock, NULL);
  int err = 0;
  if (cfg->reset == COWMEM_RESET_BATCHED) {
    r->batch.cap = cfg->batch_size;
    r->batch.items = malloc(cfg->batch_size * sizeof *r->batch.items);
    if (r->batch.items == NULL) err = COWMEM_ENOMEM;
  }
  if (cfg->reset == COWMEM_RESET_ADAPTIVE) {
    r->adaptive = cowmem__adaptive_new(cfg->resident_budget, cfg->sample_every);
    if (r->adaptive == NULL) err = COWMEM_ENOMEM;
  }
  if (err != 0) {
    cowmem__reset_free(r);
    return err;
  }
  *out = r;
  return 0;
}

void cowmem__reset_free(cowmem__reset_t* r) {
  if (r == NULL) return;
  cowmem__adaptive_free(r->adaptive);
  pthread_mutex_destroy(&r->batch.lock);
  free(r->batch.items);
  free(r);
}

/* KEEP_RESIDENT: [0, keep) is restored by copying, so those pages stay
 * resident; the rest is discarded. An image that cannot be read (a mapped
 * image without its view) has everything discarded; a restore that fails
 * (the image's file shrank) drops the slot. */
static int reset_keep(cowmem_slot_t* slot, size_t keep) {
  int r = cowmem__slot_resettable(slot);
  if (r != 0) return r;
  keep = cowmem__page_floor(keep < slot->initial ? keep : slot->initial);
  if (!cowmem__image_readable(slot->image)) keep = 0;
  int e = keep > 0 ? cowmem__image_restore(slot->image, slot->base, 0, keep, false) : 0;
  if (e == 0 && slot->accessible > keep)
    e = cowmem__os_discard(slot->base + keep, slot->accessible - keep);
  if (e) return cowmem__slot_fail(slot, e);
  return cowmem__slot_finish_reset(slot);
}

/* BATCHED: queue the slot; -1 when it could not be queued (a push onto a
 * full queue happens only while a flush runs): it is reset at once then.
 * A queued slot's image reference counts as an idle one (image.h), under
 * the queue's lock: an image whose other references all go while its slots
 * wait here becomes an orphan, which the pool's next sweep flushes out. */
static int batch_push(batch_t* q, cowmem_slot_t* slot) {
  pthread_mutex_lock(&q->lock);
  int r = -1;
  if (q->n < q->cap) {
    if (slot->image != NULL) cowmem__image_idle_add(slot->image);
    q->items[q->n++] = slot;
    r = q->n == q->cap ? COWMEM__RESET_FLUSH : COWMEM__RESET_QUEUED;
  }
  pthread_mutex_unlock(&q->lock);
  return r;
}

int cowmem__reset(cowmem__reset_t* r, cowmem_slot_t* slot) {
  int res = cowmem__slot_resettable(slot);
  if (res != 0) return res;
  switch (r->strategy) {
  case COWMEM_RESET_KEEP_RESIDENT: return reset_keep(slot, r->keep_resident);
  case COWMEM_RESET_BATCHED:
    res = batch_push(&r->batch, slot);
    if (res >= 0) return res;
    break;
  case COWMEM_RESET_ADAPTIVE:
    res = cowmem__adaptive_reset(r->adaptive, slot);
    if (res != COWMEM__ADAPTIVE_DECLINED) return res;
    break;
  default: break;
  }
  return cowmem_slot_reset(slot); /* MADVISE, and every fallback */
}

#ifdef COWMEM_TESTING
static void (*_Atomic flush_hook)(void* arg);
static void* flush_hook_arg;

void cowmem__reset_flush_inject(void (*fn)(void* arg), void* arg) {
  flush_hook_arg = arg;
  atomic_store(&flush_hook, fn);
}
#endif

int cowmem__reset_flush(cowmem__reset_t* r,
                        void (*done)(void* arg, cowmem_slot_t* slot, int result),
                        void* arg) {
  batch_t* q = &r->batch;
  if (q->cap == 0) return 0;
  pthread_mutex_lock(&q->lock);
  size_t n = q->n;
  cowmem_slot_t** items = NULL;
  cowmem__os_range_t* ranges = NULL;
  if (n > 0) {
    items = malloc(n * sizeof *items);
    ranges = malloc(n * sizeof *ranges);
    if (items != NULL && ranges != NULL) {
      for (size_t i = 0; i < n; i++) {
        items[i] = q->items[i];
        if (items[i]->image != NULL) cowmem__image_idle_sub(items[i]->image);
      }
      q->n = 0;
    }
  }
  pthread_mutex_unlock(&q->lock);
  if (n == 0) return 0;
  if (items == NULL || ranges == NULL) {
    /* No memory to batch: leave them queued for a later flush. */
    free(items);
    free(ranges);
    return 0;
  }
#ifdef COWMEM_TESTING
  void (*hook)(void*) = atomic_exchange(&flush_hook, NULL);
  if (hook != NULL) hook(flush_hook_arg);
#endif
  size_t nr = 0;
  for (size_t i = 0; i < n; i++)
    if (items[i]->accessible > 0) {
      ranges[nr].addr = items[i]->base;
      ranges[nr].len = items[i]->accessible;
      nr++;
    }
  int e = cowmem__os_discard_many(ranges, nr);
  for (size_t i = 0; i < n; i++) {
    int res = e ? cowmem__slot_fail(items[i], e) : cowmem__slot_finish_reset(items[i]);
    done(arg, items[i], res);
  }
  free(items);
  free(ranges);
  return (int)n;
}

void cowmem__reset_metrics(cowmem__reset_t* r, cowmem_pool_metrics_t* out) {
  pthread_mutex_lock(&r->batch.lock);
  out->pending = r->batch.n;
  pthread_mutex_unlock(&r->batch.lock);
  cowmem__adaptive_totals(r->adaptive, &out->copied_pages, &out->discarded_pages);
}

void cowmem__reset_image_metrics(cowmem__reset_t* r, const cowmem_image_t* image,
                                 cowmem_pool_image_metrics_t* out) {
  cowmem__adaptive_image_metrics(r->adaptive, image, out);
}
