/* Reset strategies. madvise and keep-resident are in the slot (slot.c);
 * here is the choice between them and the BATCHED queue. */
#include <stdlib.h>

#include "reset.h"

int cowmem__reset_queue_init(cowmem__reset_queue_t* q, size_t batch) {
  pthread_mutex_init(&q->lock, NULL);
  q->n = 0;
  q->cap = batch;
  q->items = NULL;
  atomic_init(&q->adaptive, NULL);
  if (batch == 0) return 0;
  q->items = malloc(batch * sizeof *q->items);
  if (q->items == NULL) {
    pthread_mutex_destroy(&q->lock);
    return COWMEM_ENOMEM;
  }
  return 0;
}

void cowmem__reset_queue_destroy(cowmem__reset_queue_t* q) {
  cowmem__adaptive_free(atomic_load(&q->adaptive));
  pthread_mutex_destroy(&q->lock);
  free(q->items);
}

size_t cowmem__reset_queue_length(cowmem__reset_queue_t* q) {
  pthread_mutex_lock(&q->lock);
  size_t n = q->n;
  pthread_mutex_unlock(&q->lock);
  return n;
}

/* Queue a slot; true when the queue is full. The queue never overflows: a
 * push onto a full queue happens only if a flush is already running, and
 * then this slot is reset at once instead (returned as not queued, n). */
static int queue_push(cowmem__reset_queue_t* q, cowmem_slot_t* slot) {
  pthread_mutex_lock(&q->lock);
  int r = -1;
  if (q->n < q->cap) {
    q->items[q->n++] = slot;
    r = q->n == q->cap;
  }
  pthread_mutex_unlock(&q->lock);
  return r;
}

int cowmem__reset_queue_flush(cowmem__reset_queue_t* q,
                              void (*done)(void* arg, cowmem_slot_t* slot, int r),
                              void* arg) {
  if (q->cap == 0) return 0;
  pthread_mutex_lock(&q->lock);
  size_t n = q->n;
  cowmem_slot_t** items = NULL;
  cowmem__os_range_t* ranges = NULL;
  if (n > 0) {
    items = malloc(n * sizeof *items);
    ranges = malloc(n * sizeof *ranges);
    if (items != NULL && ranges != NULL) {
      for (size_t i = 0; i < n; i++) items[i] = q->items[i];
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
  size_t nr = 0;
  for (size_t i = 0; i < n; i++)
    if (items[i]->accessible > 0) {
      ranges[nr].addr = items[i]->base;
      ranges[nr].len = items[i]->accessible;
      nr++;
    }
  int e = cowmem__os_discard_many(ranges, nr);
  for (size_t i = 0; i < n; i++) {
    int r = e ? cowmem__slot_fail(items[i], e) : cowmem__slot_finish_reset(items[i]);
    done(arg, items[i], r);
  }
  free(items);
  free(ranges);
  return (int)n;
}

int cowmem__reset_slot(const cowmem_pool_config_t* cfg, cowmem__reset_queue_t* q,
                       cowmem_slot_t* slot) {
  switch (cfg->reset) {
    case COWMEM_RESET_KEEP_RESIDENT:
      return cowmem__slot_reset_keep(slot, cfg->keep_resident);
    case COWMEM_RESET_ADAPTIVE: {
      /* The hot sets are made on the first ADAPTIVE reset; without memory
       * for them the reset is a plain madvise one. */
      cowmem__adaptive_t* a = atomic_load_explicit(&q->adaptive, memory_order_acquire);
      if (a == NULL) {
        cowmem__adaptive_t* fresh = cowmem__adaptive_new();
        if (fresh != NULL && !atomic_compare_exchange_strong(&q->adaptive, &a, fresh))
          cowmem__adaptive_free(fresh);
        else
          a = fresh;
      }
      return cowmem__adaptive_reset(a, cfg, slot);
    }
    case COWMEM_RESET_BATCHED: {
      int full = queue_push(q, slot);
      if (full >= 0) return full ? COWMEM__RESET_FLUSH : COWMEM__RESET_QUEUED;
      return cowmem_slot_reset(slot);
    }
    default:
      return cowmem_slot_reset(slot);
  }
}
