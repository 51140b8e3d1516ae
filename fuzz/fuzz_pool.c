/* libFuzzer target over the slot and pool API: each input is a sequence of
 * operations (acquire, release, write, grow, check, trim, flush, snapshot,
 * drop an image) on a small pool of a strategy the input picks, checked
 * against a model of every held instance's memory. Coverage-guided, beside
 * tests/test_model.c (random sequences on plain slots). Any difference
 * from the model, an unexpected error, or a leak at the end traps.
 *
 * Input: byte 0 strategy and warm cap, byte 1 sample_every, then one
 * operation per 3 bytes (op, a, b). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cowmem.h"

#define SLOTS 4
#define INIT_MAX 8 /* pages */
#define RESERVE 16 /* pages */
#define NSTATIC 3  /* images built once: two with data, and zeros (NULL) */
#define NDYN 4     /* snapshots made by the input */

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

typedef struct {
  cowmem_image_t* img;
  uint8_t* bytes; /* RESERVE pages: what an instance starts with */
  size_t end;     /* pages the image reaches */
} img_t;

typedef struct {
  cowmem_slot_t* slot; /* NULL: not held */
  uint8_t* model;      /* RESERVE pages */
  size_t acc;          /* accessible pages */
  size_t max;          /* grow limit, pages */
} held_t;

static size_t PS;
static img_t statics[NSTATIC];

static void init_once(void) {
  if (PS != 0) return;
  PS = cowmem_page_size();
  for (int i = 0; i < NSTATIC; i++) {
    img_t* s = &statics[i];
    s->bytes = calloc(RESERVE, PS);
    if (i == 2) continue; /* zeros */
    size_t off = i == 0 ? 1 : 0, pages = i == 0 ? 3 : 6;
    for (size_t p = 0; p < pages; p++) {
      if (i == 1 && (p == 2 || p == 3)) continue; /* a hole */
      for (size_t b = 0; b < PS; b += 97)
        s->bytes[(off + p) * PS + b] = (uint8_t)(p * 31 + b + i) | 1;
    }
    if (cowmem_image_new_from_bytes(s->bytes + off * PS, pages * PS, off * PS, &s->img) !=
        0)
      __builtin_trap();
    s->end = off + pages;
  }
}

static void check(const held_t* h) {
  if (memcmp(cowmem_slot_base(h->slot), h->model, h->acc * PS) != 0) __builtin_trap();
  if (cowmem_slot_accessible(h->slot) != h->acc * PS) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  init_once();
  if (size < 2) return 0;
  cowmem_stats_t st0;
  cowmem_stats_get(&st0);
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.max_slots = SLOTS;
  cfg.slot_reserve = RESERVE * PS;
  cfg.guard_size = 4 * PS;
  cfg.reset = (cowmem_reset_strategy_t)(data[0] % COWMEM_RESET_COUNT_);
  cfg.max_warm_slots = (data[0] >> 2) % 6 == 5 ? SIZE_MAX : (data[0] >> 2) % 6;
  cfg.keep_resident = 2 * PS;
  cfg.batch_size = 2;
  cfg.resident_budget = 4 * PS;
  cfg.sample_every = 1 + data[1] % 4;
  cowmem_pool_t* pool = NULL;
  if (cowmem_pool_new(&cfg, &pool, NULL) != 0) __builtin_trap();
  held_t held[SLOTS];
  img_t dyn[NDYN];
  memset(held, 0, sizeof held);
  memset(dyn, 0, sizeof dyn);
  int nheld = 0;
  for (size_t at = 2; at + 3 <= size; at += 3) {
    uint8_t op = data[at] % 8, a = data[at + 1], b = data[at + 2];
    held_t* h = &held[a % SLOTS];
    switch (op) {
    case 0: { /* acquire */
      if (h->slot != NULL) break;
      img_t* im = b % 8 < NSTATIC ? &statics[b % 8 % NSTATIC] : &dyn[(b / 8) % NDYN];
      if (im->bytes == NULL) im = &statics[2];
      size_t init = 1 + (b >> 4) % INIT_MAX;
      if (init < im->end) init = im->end;
      size_t max = init + a / 16 % (RESERVE - init + 1);
      cowmem_slot_t* s = NULL;
      int r = cowmem_pool_acquire(pool, im->img, init * PS, max * PS, &s);
      if (r == COWMEM_EEXHAUSTED && nheld == SLOTS) break;
      if (r != 0) __builtin_trap();
      h->slot = s;
      h->acc = init;
      h->max = max;
      h->model = malloc(RESERVE * PS);
      memcpy(h->model, im->bytes, RESERVE * PS);
      nheld++;
      check(h);
      break;
    }
    case 1: /* release */
      if (h->slot == NULL) break;
      if (cowmem_pool_release(pool, h->slot) != 0) __builtin_trap();
      if (cowmem_pool_release(pool, h->slot) != COWMEM_ESTATE) __builtin_trap();
      h->slot = NULL;
      free(h->model);
      nheld--;
      break;
    case 2: { /* write */
      if (h->slot == NULL) break;
      size_t off = ((size_t)b * 131 + (size_t)a * 7) % (h->acc * PS);
      size_t n = 1 + (size_t)(a & 7) * (a & 0x80 ? PS / 8 : 3);
      if (n > h->acc * PS - off) n = h->acc * PS - off;
      memset((uint8_t*)cowmem_slot_base(h->slot) + off, b, n);
      memset(h->model + off, b, n);
      break;
    }
    case 3: { /* grow */
      if (h->slot == NULL) break;
      size_t to = h->acc + b % 4;
      int r = cowmem_slot_grow(h->slot, to * PS);
      if (to > h->max) {
        if (r != COWMEM_ERANGE) __builtin_trap();
      } else {
        if (r != 0) __builtin_trap();
        h->acc = to;
      }
      break;
    }
    case 4: /* check */
      if (h->slot != NULL) check(h);
      break;
    case 5: /* trim or flush */
      if ((b & 1 ? cowmem_pool_trim(pool) : cowmem_pool_flush(pool)) != 0)
        __builtin_trap();
      break;
    case 6: { /* snapshot: a new image, what the memory holds now */
      if (h->slot == NULL) break;
      img_t* d = &dyn[b % NDYN];
      cowmem_image_t* snap = NULL;
      if (cowmem_snapshot(h->slot, &snap) != 0) __builtin_trap();
      cowmem_image_info_t info;
      if (cowmem_image_info(snap, &info) != 0) __builtin_trap();
      cowmem_image_release(d->img);
      free(d->bytes);
      d->img = snap;
      d->bytes = calloc(RESERVE, PS);
      memcpy(d->bytes, h->model, h->acc * PS);
      d->end = (size_t)((info.mem_offset + info.len) / PS);
      uint8_t* got = malloc(RESERVE * PS);
      if (cowmem_image_read(snap, 0, got, RESERVE * PS) != 0 ||
          memcmp(got, d->bytes, RESERVE * PS) != 0)
        __builtin_trap();
      free(got);
      break;
    }
    case 7: { /* drop a snapshot (slots holding it keep it) */
      img_t* d = &dyn[b % NDYN];
      cowmem_image_release(d->img);
      free(d->bytes);
      memset(d, 0, sizeof *d);
      break;
    }
    }
    cowmem_pool_metrics_t m;
    if ((a & 0x3f) == 0 &&
        (cowmem_pool_metrics(pool, &m) != 0 || m.in_use != (uint64_t)nheld))
      __builtin_trap();
  }
  for (int i = 0; i < SLOTS; i++)
    if (held[i].slot != NULL) {
      check(&held[i]);
      if (cowmem_pool_release(pool, held[i].slot) != 0) __builtin_trap();
      free(held[i].model);
    }
  for (int i = 0; i < NDYN; i++) {
    cowmem_image_release(dyn[i].img);
    free(dyn[i].bytes);
  }
  if (cowmem_pool_free(pool) != 0) __builtin_trap();
  cowmem_stats_t st1;
  cowmem_stats_get(&st1);
  if (st1.images_live != st0.images_live) __builtin_trap(); /* nothing kept */
  return 0;
}
