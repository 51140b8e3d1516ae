/* Randomized model test: many operations on one slot (instantiate with one of
 * several images or none, writes, grows, resets, releases), checked byte for
 * byte against a plain-memory model. Prints its seed; replay a failure with
 * COWMEM_TEST_SEED=<seed> (and COWMEM_TEST_OPS=<n> to change the length). */
#include <time.h>

#include "cowmem.h"
#include "internal.h"
#include "slot/slot.h"
#include "test.h"

#define NIMG 4

typedef struct {
  uint64_t s;
} rng_t;

static uint64_t rnd(rng_t* r) { /* splitmix64 */
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static size_t below(rng_t* r, size_t n) { return (size_t)(rnd(r) % n); }

static uint64_t env_u64(const char* name, uint64_t def) {
  const char* v = getenv(name);
  return v && *v ? strtoull(v, NULL, 0) : def;
}

static int run_model(void) {
  size_t ps = cowmem_page_size();
  size_t pages = 32, reserve = pages * ps;
  uint64_t seed = env_u64("COWMEM_TEST_SEED", (uint64_t)time(NULL) ^ (uint64_t)getpid());
  uint64_t nops = test_ops(50000);
  printf("model: seed %llu, %llu operations (replay: COWMEM_TEST_SEED=%llu)\n",
         (unsigned long long)seed, (unsigned long long)nops, (unsigned long long)seed);
  fflush(stdout);
  rng_t r = {seed};

  /* Images: sparse, at different offsets, one all-zero, one unaligned. */
  cowmem_image_t* imgs[NIMG];
  uint8_t* contents[NIMG]; /* each image's bytes over the whole reserve */
  size_t img_end[NIMG];
  for (int i = 0; i < NIMG; i++) {
    contents[i] = calloc(1, reserve);
    size_t off = below(&r, 8) * ps + (i == 3 ? 123 : 0);
    size_t len = i == 2 ? 2 * ps : (1 + below(&r, 12)) * ps;
    for (size_t k = 0; k < len; k++)
      if (i != 2 && (k / ps) % 3 != 1) contents[i][off + k] = (uint8_t)rnd(&r);
    ASSERT_OK(cowmem_image_new_from_bytes(contents[i] + off, len, off, &imgs[i]));
    cowmem_image_info_t info;
    ASSERT_OK(cowmem_image_info(imgs[i], &info));
    img_end[i] = info.len ? info.mem_offset + info.len : 0;
  }

  uint8_t* model = calloc(1, reserve);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(reserve, &s));
  int cur = -1;          /* image of the instance (-1: none) */
  size_t initial = 0, size = 0;
  bool dirty = false;
  uint64_t checks = 0;

  for (uint64_t op = 0; op < nops; op++) {
    size_t what = below(&r, 100);
    const uint8_t* base = cowmem_slot_base(s);
    if (!dirty) {
      if (what < 10 && cowmem_slot_state(s) != COWMEM_SLOT_EMPTY) {
        ASSERT_OK(cowmem_slot_decommit(s));
        ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_EMPTY);
        continue;
      }
      int img = (int)below(&r, NIMG + 1) - 1;
      size_t min = img >= 0 ? img_end[img] : 0;
      size_t sz = (min / ps + below(&r, pages - min / ps + 1)) * ps;
      /* Sometimes a size too small for the image: refused, nothing changes. */
      if (img >= 0 && min > 0 && what < 15) {
        ASSERT_ERR(cowmem_slot_instantiate(s, min - ps, imgs[img]), COWMEM_EINVAL);
        continue;
      }
      ASSERT_OK(cowmem_slot_instantiate(s, sz, img >= 0 ? imgs[img] : NULL));
      cur = img;
      initial = size = sz;
      dirty = true;
      memset(model, 0, reserve);
      if (cur >= 0) memcpy(model, contents[cur], size);
      ASSERT_EQ(memcmp(base, model, size), 0);
      checks++;
      continue;
    }
    if (what < 60 && size > 0) { /* a burst of writes */
      size_t n = 1 + below(&r, 16);
      for (size_t k = 0; k < n; k++) {
        size_t at = below(&r, size);
        size_t len = 1 + below(&r, size - at < 64 ? size - at : 64);
        uint8_t v = (uint8_t)rnd(&r);
        memset((uint8_t*)base + at, v, len);
        memset(model + at, v, len);
      }
    } else if (what < 70) {
      size_t grow_to = size + below(&r, pages - size / ps + 1) * ps;
      ASSERT_OK(cowmem_slot_grow(s, grow_to));
      size = grow_to; /* model's new part is already zero */
      ASSERT_EQ(memcmp(base, model, size), 0);
    } else if (what < 73) {
      ASSERT_ERR(cowmem_slot_grow(s, reserve + ps), COWMEM_ERANGE);
    } else if (what < 95) {
      ASSERT_OK(cowmem_slot_reset(s));
      dirty = false;
      size = initial;
      memset(model, 0, reserve);
      if (cur >= 0) memcpy(model, contents[cur], initial);
      ASSERT_EQ(cowmem_slot_accessible(s), initial);
      ASSERT_EQ(memcmp(base, model, size), 0);
      checks++;
    } else {
      ASSERT_OK(cowmem_slot_decommit(s));
      dirty = false;
      cur = -1;
    }
  }
  printf("model: %llu full comparisons passed\n", (unsigned long long)checks);
  ASSERT_OK(cowmem_slot_free(s));
  for (int i = 0; i < NIMG; i++) {
    cowmem_image_release(imgs[i]);
    free(contents[i]);
  }
  free(model);
  return 0;
}

TEST_IMPL(model_random) { return run_model(); }

/* The same with the copy fallback forced on at run time (Linux backend). */
TEST_IMPL(model_random_force_copy) {
  cowmem_option_set(COWMEM_OPTION_FORCE_COPY, 1);
  return run_model();
}

TEST_MAIN(TEST_ENTRY(model_random) TEST_ENTRY(model_random_force_copy))
