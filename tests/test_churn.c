/* Images replaced and freed while pooled slots use them, with trims,
 * flushes and metrics from another thread: what a host does when it
 * reloads a module under load. Worker threads take a reference to the
 * current image of one of three "modules" under a lock, acquire (waiting),
 * check the memory is exactly that image and zeros, grow now and then,
 * write a secret and release, then drop their reference. A control thread
 * trims, flushes, reads metrics and replaces the images, freeing the old
 * ones. Run under TSan and ASan (label threads): a pool path that reads an
 * image it holds no reference to shows up as a race or a use-after-free.
 * The _file cases make every image from a file the kernel does not keep
 * fixed, as an opened .cwimg is: restoring resets then fill the image's
 * cache from the file while other threads read it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cowmem.h"
#include "test.h"

enum { MODULES = 3, WORKERS = 3, SLOTS = 3, CHECK_PAGES = 16 };

static size_t PS;

typedef struct {
  pthread_mutex_t lock;
  cowmem_image_t* img[MODULES];
  uint8_t salt[MODULES];
  uint8_t next_salt;
  cowmem_pool_t* pool;
  double seconds;
  _Atomic int stop;
  _Atomic int failed;
  _Atomic long cycles;
  _Atomic long replaced;
  bool file; /* images mapped from a file (make_image) */
} churn_t;

/* Module k's image with this salt: its bytes start at page k. From the
 * bytes (a sealed memfd), or with file from an unlinked temporary file
 * mapped directly (declared immutable, which the kernel does not
 * enforce: such an image is restored through its cache). */
static cowmem_image_t* make_image(int k, uint8_t salt, bool file) {
  size_t len = 4 * PS + 100 * (size_t)k;
  uint8_t* b = malloc(len);
  if (b == NULL) return NULL;
  for (size_t i = 0; i < len; i++) b[i] = (uint8_t)(i / 5 + salt) | 1;
  cowmem_image_t* img = NULL;
  if (!file) {
    if (cowmem_image_new_from_bytes(b, len, (uint64_t)k * PS, &img) != 0) img = NULL;
  } else {
    char path[] = "/tmp/cowmem-churn-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) unlink(path);
    if (fd >= 0 && pwrite(fd, b, len, 0) == (ssize_t)len &&
        cowmem_image_new_from_file(fd, 0, len, (uint64_t)k * PS,
                                   COWMEM_IMAGE_FILE_IMMUTABLE, &img) != 0)
      img = NULL;
    if (fd >= 0) close(fd);
  }
  free(b);
  return img;
}

/* The first CHECK_PAGES pages of module k's memory with this salt. */
static int memory_is(const uint8_t* m, int k, uint8_t salt) {
  size_t lo = (size_t)k * PS, len = 4 * PS + 100 * (size_t)k;
  for (size_t i = 0; i < CHECK_PAGES * PS; i++) {
    uint8_t want = i >= lo && i < lo + len ? (uint8_t)((i - lo) / 5 + salt) | 1 : 0;
    if (m[i] != want) {
      fprintf(stderr, "module %d salt %u: byte %zu is 0x%02x, expected 0x%02x\n", k,
              salt, i, m[i], want);
      return 0;
    }
  }
  return 1;
}

static double elapsed(const struct timespec* t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void* worker(void* p) {
  churn_t* c = p;
  unsigned x = (unsigned)(uintptr_t)&x;
  while (!atomic_load(&c->stop) && !atomic_load(&c->failed)) {
    x = x * 1103515245u + 12345u;
    int k = (int)((x >> 16) % MODULES);
    pthread_mutex_lock(&c->lock);
    cowmem_image_t* img = cowmem_image_retain(c->img[k]);
    uint8_t salt = c->salt[k];
    pthread_mutex_unlock(&c->lock);
    cowmem_slot_t* s = NULL;
    int r = cowmem_pool_acquire_wait(c->pool, img, CHECK_PAGES * PS, 32 * PS, 10000, &s);
    if (r != 0) {
      fprintf(stderr, "acquire_wait: %s\n", cowmem_err_name(r));
      atomic_store(&c->failed, 1);
    } else {
      uint8_t* m = cowmem_slot_base(s);
      if (!memory_is(m, k, salt)) atomic_store(&c->failed, 1);
      size_t size = CHECK_PAGES * PS;
      if ((x >> 9) & 1) {
        if (cowmem_slot_grow(s, 32 * PS) != 0) atomic_store(&c->failed, 1);
        else size = 32 * PS;
      }
      memset(m + ((x >> 4) % (size / PS)) * PS, 0xee, PS); /* the secret */
      if (cowmem_pool_release(c->pool, s) != 0) atomic_store(&c->failed, 1);
      atomic_fetch_add(&c->cycles, 1);
    }
    cowmem_image_release(img);
  }
  return NULL;
}

/* Trim, flush, metrics, and replace an image every few rounds. */
static void* control(void* p) {
  churn_t* c = p;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned round = 0;
  while (elapsed(&t0) < c->seconds && !atomic_load(&c->failed)) {
    round++;
    cowmem_pool_metrics_t m;
    if (cowmem_pool_metrics(c->pool, &m) != 0) atomic_store(&c->failed, 1);
    if (round % 3 == 0) cowmem_pool_trim(c->pool);
    if (round % 2 == 0) cowmem_pool_flush(c->pool);
    int k = (int)(round % MODULES);
    pthread_mutex_lock(&c->lock);
    cowmem_image_t* cur = cowmem_image_retain(c->img[k]);
    pthread_mutex_unlock(&c->lock);
    cowmem_pool_image_metrics_t im;
    if (cowmem_pool_image_metrics(c->pool, cur, &im) != 0) atomic_store(&c->failed, 1);
    cowmem_image_release(cur);
    if (round % 4 == 1) {
      uint8_t salt = (uint8_t)(c->next_salt += 37);
      cowmem_image_t* fresh = make_image(k, salt, c->file);
      if (fresh == NULL) {
        atomic_store(&c->failed, 1);
        break;
      }
      pthread_mutex_lock(&c->lock);
      cowmem_image_t* old = c->img[k];
      c->img[k] = fresh;
      c->salt[k] = salt;
      pthread_mutex_unlock(&c->lock);
      cowmem_image_release(old); /* slots may still use it */
      atomic_fetch_add(&c->replaced, 1);
    }
    struct timespec nap = {0, 200 * 1000};
    nanosleep(&nap, NULL);
  }
  atomic_store(&c->stop, 1);
  return NULL;
}

static int churn(cowmem_reset_strategy_t reset, double seconds, bool file) {
  PS = cowmem_page_size();
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.max_slots = SLOTS;
  cfg.slot_reserve = 64 * PS;
  cfg.guard_size = 16 * PS;
  cfg.reset = reset;
  cfg.keep_resident = 8 * PS;
  cfg.batch_size = 2;
  cfg.sample_every = 3;
  cfg.resident_budget = 8 * PS;
  churn_t c;
  memset(&c, 0, sizeof c);
  pthread_mutex_init(&c.lock, NULL);
  c.seconds = seconds;
  c.file = file;
  ASSERT_OK(cowmem_pool_new(&cfg, &c.pool, NULL));
  for (int k = 0; k < MODULES; k++) {
    c.salt[k] = (uint8_t)(c.next_salt += 37);
    c.img[k] = make_image(k, c.salt[k], file);
    ASSERT_NOT_NULL(c.img[k]);
  }
  pthread_t w[WORKERS], ctl;
  for (int i = 0; i < WORKERS; i++) ASSERT_EQ(pthread_create(&w[i], NULL, worker, &c), 0);
  ASSERT_EQ(pthread_create(&ctl, NULL, control, &c), 0);
  pthread_join(ctl, NULL);
  for (int i = 0; i < WORKERS; i++) pthread_join(w[i], NULL);
  printf("churn: %ld cycles, %ld images replaced in %.1f s\n", atomic_load(&c.cycles),
         atomic_load(&c.replaced), seconds);
  ASSERT_FALSE(atomic_load(&c.failed));
  ASSERT_GT(atomic_load(&c.cycles), 0);
  ASSERT_GT(atomic_load(&c.replaced), 0);
  /* Every image the control thread dropped is an orphan now, held by idle
   * slots only; the next acquire sweeps them, so that only the current
   * images are left alive (a missed orphan keeps its memory until a trim). */
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(c.pool, NULL, PS, PS, &s));
  ASSERT_OK(cowmem_pool_release(c.pool, s));
  cowmem_stats_t st;
  cowmem_stats_get(&st);
  if (st.images_live != MODULES) {
    cowmem_pool_metrics_t m;
    if (cowmem_pool_metrics(c.pool, &m) == 0)
      fprintf(stderr, "pool: in use %llu, pending %llu, warm %llu, cold %llu, flushes %llu\n",
              (unsigned long long)m.in_use, (unsigned long long)m.pending,
              (unsigned long long)m.warm, (unsigned long long)m.cold,
              (unsigned long long)m.flushes);
  }
  ASSERT_UEQ(st.images_live, MODULES);
  ASSERT_OK(cowmem_pool_free(c.pool));
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, MODULES);
  for (int k = 0; k < MODULES; k++) cowmem_image_release(c.img[k]);
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, 0);
  pthread_mutex_destroy(&c.lock);
  return 0;
}

TEST_IMPL(churn_madvise) { return churn(COWMEM_RESET_MADVISE, 1.5, false); }
TEST_IMPL(churn_keep_resident) { return churn(COWMEM_RESET_KEEP_RESIDENT, 1.5, false); }
TEST_IMPL(churn_batched) { return churn(COWMEM_RESET_BATCHED, 1.5, false); }
TEST_IMPL(churn_adaptive) { return churn(COWMEM_RESET_ADAPTIVE, 1.5, false); }
TEST_IMPL(churn_keep_resident_file) {
  return churn(COWMEM_RESET_KEEP_RESIDENT, 1.5, true);
}
TEST_IMPL(churn_adaptive_file) { return churn(COWMEM_RESET_ADAPTIVE, 1.5, true); }

TEST_MAIN(TEST_ENTRY(churn_madvise) TEST_ENTRY(churn_keep_resident)
          TEST_ENTRY(churn_batched) TEST_ENTRY(churn_adaptive)
          TEST_ENTRY(churn_keep_resident_file) TEST_ENTRY(churn_adaptive_file))
