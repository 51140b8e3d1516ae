/* What a host meets after weeks in production: the kernel's
 * mapping limit (vm.max_map_count, reached for real in a child that fills
 * it with its own mappings), running out of file descriptors while images
 * are made, fork with a live pool of every reset strategy, image files
 * truncated or rewritten underneath, and the ADAPTIVE reset over more
 * images than its table holds. */
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "cowmem.h"
#include "internal.h"
#include "reset/adaptive.h"
#include "reset/reset.h"
#include "slot/slot.h"
#include "test.h"

static size_t PS;

static cowmem_pool_t* make_pool(cowmem_reset_strategy_t reset, size_t slots,
                                size_t reserve_pages, unsigned flags,
                                cowmem_diag_t* why) {
  PS = cowmem_page_size();
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init(&cfg);
  cfg.max_slots = slots;
  cfg.slot_reserve = reserve_pages * PS;
  cfg.guard_size = 16 * PS;
  cfg.reset = reset;
  cfg.keep_resident = 8 * PS;
  cfg.batch_size = 8;
  cfg.resident_budget = 16 * PS;
  cfg.sample_every = 4;
  cfg.flags = flags;
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t local;
  if (why == NULL) why = &local;
  int r = cowmem_pool_new(&cfg, &pool, why);
  if (r != 0) fprintf(stderr, "pool: %s: %s\n", cowmem_err_name(r), why->reason);
  return pool;
}

/* An image of [off, off + pages) with distinct non-zero bytes on every page
 * but a hole of hole_pages (>= HOLE_PAGES: left unmapped) in the middle. */
static cowmem_image_t* holed_image(size_t off_pages, size_t pages, size_t hole_pages,
                                   uint8_t salt) {
  size_t len = pages * PS;
  uint8_t* b = malloc(len);
  for (size_t i = 0; i < len; i++)
    b[i] = (uint8_t)((i / 7) + salt) | 1;
  size_t h = (pages - hole_pages) / 2;
  if (hole_pages) memset(b + h * PS, 0, hole_pages * PS);
  cowmem_image_t* img = NULL;
  if (cowmem_image_new_from_bytes(b, len, off_pages * PS, &img) != 0) img = NULL;
  free(b);
  return img;
}

/* The memory an instance of img at size bytes must see. */
static uint8_t* expected(cowmem_image_t* img, size_t size) {
  uint8_t* want = calloc(1, size);
  if (want != NULL && img != NULL && cowmem_image_read(img, 0, want, size) != 0) {
    free(want);
    return NULL;
  }
  return want;
}

static int same(const uint8_t* have, const uint8_t* want, size_t n, const char* what) {
  for (size_t i = 0; i < n; i++)
    if (have[i] != want[i]) {
      fprintf(stderr, "%s: byte %zu is 0x%02x, expected 0x%02x\n", what, i, have[i],
              want[i]);
      return 1;
    }
  return 0;
}

static uint64_t map_count(void) {
  uint64_t n = 0;
  return cowmem__os_map_count(&n) == 0 ? n : 0;
}

static int fd_count(void) {
  int n = 0;
  for (int fd = 0; fd < 4096; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

/* Long enough for a slot that still maps a FILE image to compare its
 * file again (cowmem__image_verify_reuse: 1 ms by the coarse clock, plus
 * one tick of that clock), with a millisecond to spare. */
static void await_recheck(void) {
  struct timespec res = {0, 4000000};
#ifdef CLOCK_MONOTONIC_COARSE
  clock_getres(CLOCK_MONOTONIC_COARSE, &res);
#endif
  long ns = 2000000 + res.tv_nsec + (long)res.tv_sec * 1000000000;
  struct timespec d = {ns / 1000000000, ns % 1000000000};
  while (nanosleep(&d, &d) != 0) {
  }
}

static uint64_t coarse_ms(void) {
  struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
  clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int child_status(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

/* ---- vm.max_map_count ---- */

/* Alternate protections page by page in a region of our own until the
 * process has `target` mappings. Returns the region (unmap it to undo). */
static void* fill_maps(uint64_t target, size_t* len_out) {
  uint64_t now = map_count();
  size_t k = now < target ? (size_t)(target - now) / 2 : 0;
  size_t len = (2 * k + 2) * PS;
  uint8_t* r =
      mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return NULL;
  for (size_t i = 0; i < k; i++)
    if (mprotect(r + (2 * i + 1) * PS, PS, PROT_READ) != 0) break;
  *len_out = len;
  return r;
}

/* In a child: fill the map count to within `room` of the limit, then
 * acquire until the pool says EMAPLIMIT. Every instance acquired is exact;
 * nothing leaks; once slots are released and trimmed, acquires work again
 * and stop at the same place. */
static int map_limit_child(void) {
  uint64_t limit = 0;
  if (cowmem__os_map_limit(&limit) != 0) return 70;
  void* volatile heap_made = malloc(64); /* the heap's own mapping */
  free(heap_made);
  /* The OS layer's wipe-on-fork page: one mapping a process, from the
   * first discard on. */
  (void)cowmem__os_discard_contended();
  uint64_t start_maps = map_count();
  int start_fds = fd_count();
  if (getenv("HOST_DEBUG")) {
    char cmd[80];
    snprintf(cmd, sizeof cmd, "cat /proc/%d/maps > /tmp/hx/start.maps", (int)getpid());
    if (system(cmd) != 0) return 92;
  }
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_MADVISE, 64, 64, 0, NULL);
  cowmem_image_t* img = holed_image(2, 40, 20, 0x21);
  cowmem_image_t* other = holed_image(1, 30, 0, 0x52);
  uint8_t* want = expected(img, 48 * PS);
  uint8_t* want_other = expected(other, 48 * PS);
  if (pool == NULL || img == NULL || other == NULL || want == NULL || want_other == NULL)
    return 71;
  cowmem_slot_t* slots[64];
  size_t filler_len = 0;
  void* filler = fill_maps(limit - 60, &filler_len);
  if (filler == NULL) return 72;
  for (int round = 0; round < 2; round++) {
    size_t n = 0;
    int r = 0;
    while (n < 64 &&
           (r = cowmem_pool_acquire(pool, img, 48 * PS, 64 * PS, &slots[n])) == 0) {
      if (same(cowmem_slot_base(slots[n]), want, 48 * PS, "near the limit")) return 73;
      n++;
    }
    if (r != COWMEM_EMAPLIMIT) {
      fprintf(stderr, "round %d: acquire %zu: %s, expected EMAPLIMIT\n", round, n,
              cowmem_err_name(r));
      return 74;
    }
    if (strstr(cowmem_strerror(r), "vm.max_map_count") == NULL) return 75;
    /* 60 mappings of room, 6 a slot (zeros, image, hole, image, zeros,
     * and the split of the reservation): about 10 slots, never 64. */
    if (n < 3 || n >= 64) return 76;
    cowmem_pool_metrics_t m;
    if (cowmem_pool_metrics(pool, &m) != 0 || m.in_use != n || m.failures == 0) return 77;
    if (m.map_limit != limit || m.maps_in_use != 1 + 6 * n) {
      fprintf(stderr, "metrics: limit %llu, in use %llu for %zu slots\n",
              (unsigned long long)m.map_limit, (unsigned long long)m.maps_in_use, n);
      return 78;
    }
    /* Releasing two: warm, they keep their mappings and serve the same
     * image again with no system call. */
    if (cowmem_pool_release(pool, slots[n - 1]) ||
        cowmem_pool_release(pool, slots[n - 2]))
      return 79;
    if (cowmem_pool_acquire(pool, img, 48 * PS, 64 * PS, &slots[n - 2]) != 0) return 80;
    if (same(cowmem_slot_base(slots[n - 2]), want, 48 * PS, "warm")) return 81;
    /* Another image needs new mappings: only after a trim. */
    if (cowmem_pool_release(pool, slots[n - 2])) return 82;
    if (cowmem_pool_trim(pool) != 0) return 83;
    cowmem_slot_t* s = NULL;
    if (cowmem_pool_acquire(pool, other, 48 * PS, 64 * PS, &s) != 0) return 84;
    if (same(cowmem_slot_base(s), want_other, 48 * PS, "after trim")) return 85;
    if (cowmem_pool_release(pool, s)) return 86;
    for (size_t i = 0; i + 2 < n; i++)
      if (cowmem_pool_release(pool, slots[i])) return 87;
    if (cowmem_pool_trim(pool) != 0) return 88;
    if (cowmem_pool_metrics(pool, &m) != 0 || m.in_use != 0 || m.maps_in_use != 1)
      return 89;
  }
  munmap(filler, filler_len);
  if (cowmem_pool_free(pool) != 0) return 90;
  cowmem_image_release(img);
  cowmem_image_release(other);
  free(want);
  free(want_other);
  if (getenv("HOST_DEBUG")) {
    char cmd[80];
    snprintf(cmd, sizeof cmd, "cat /proc/%d/maps > /tmp/hx/end.maps", (int)getpid());
    if (system(cmd) != 0) return 92;
  }
  uint64_t end_maps = map_count();
#ifdef UNDER_SANITIZER
  end_maps = start_maps; /* the sanitizer's allocator maps regions of its own */
#endif
  if (end_maps > start_maps || fd_count() != start_fds) {
    fprintf(stderr, "leak: maps %llu -> %llu, fds %d -> %d\n",
            (unsigned long long)start_maps, (unsigned long long)map_count(), start_fds,
            fd_count());
    return 91;
  }
  return 0;
}

TEST_IMPL(map_limit_named) {
  PS = cowmem_page_size();
  uint64_t limit = 0;
  if (cowmem__os_map_limit(&limit) != 0)
    TEST_SKIP("no mapping limit known (no /proc/sys/vm/max_map_count, or the portable "
              "backend)");
  if (limit > 1000000) TEST_SKIP("vm.max_map_count above 10^6: too many to fill here");
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(map_limit_child());
  ASSERT_EQ(child_status(pid), 0);
  return 0;
}

/* A pool that, full, could pass the limit: said at creation (code 0),
 * refused when strict; its metrics give the figures. */
TEST_IMPL(map_limit_at_pool_new) {
  PS = cowmem_page_size();
  uint64_t limit = 0;
  if (cowmem__os_map_limit(&limit) != 0)
    TEST_SKIP("no mapping limit known (no /proc/sys/vm/max_map_count, or the portable "
              "backend)");
  size_t per = 2 * (size_t)cowmem_option_get(COWMEM_OPTION_MAX_MAPS) + 2;
  size_t slots = (size_t)(limit / per) + 100;
  if (slots > 200000) TEST_SKIP("vm.max_map_count too high for a pool of 128 KiB slots");
  cowmem_diag_t why;
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_MADVISE, slots, 64, 0, &why);
  ASSERT_NOT_NULL(pool);
  ASSERT_EQ(why.code, 0);
  ASSERT_NOT_NULL(strstr(why.reason, "vm.max_map_count"));
  ASSERT_NOT_NULL(strstr(why.reason, "max_slots"));
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.map_limit, limit);
  ASSERT_UEQ(m.maps_per_slot_max, per);
  ASSERT_UEQ(m.maps_full, per * slots + 1);
  ASSERT_UEQ(m.maps_in_use, 1);
  ASSERT_GT(m.maps_process, 1);
  /* The mappings counted are the ones the kernel sees: 1, 2, 3 slots of an
   * image with a hole take 6 each. */
  cowmem_image_t* img = holed_image(2, 40, 20, 0x33);
  cowmem_slot_t* s[3];
  (void)cowmem__os_discard_contended(); /* its wipe-on-fork page, mapped once */
  uint64_t before = map_count();
  for (int i = 0; i < 3; i++)
    ASSERT_OK(cowmem_pool_acquire(pool, img, 48 * PS, 64 * PS, &s[i]));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.maps_in_use, 1 + 3 * 6);
  ASSERT_UEQ(map_count() - before, 3 * 6);
  /* Grown to the whole slot: the zeros after the image reach the guard. */
  ASSERT_OK(cowmem_slot_grow(s[0], 64 * PS));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.maps_in_use, 1 + 3 * 6);
  ASSERT_UEQ(map_count() - before, 3 * 6);
  for (int i = 0; i < 3; i++)
    ASSERT_OK(cowmem_pool_release(pool, s[i]));
  ASSERT_OK(cowmem_pool_trim(pool));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.maps_in_use, 1);
  ASSERT_UEQ(map_count(), before);
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(img);
  /* Strict: refused, with the same reason. */
  cowmem_pool_t* strict =
      make_pool(COWMEM_RESET_MADVISE, slots, 64, COWMEM_POOL_STRICT_LIMITS, &why);
  ASSERT_NULL(strict);
  ASSERT_EQ(why.code, COWMEM_EMAPLIMIT);
  ASSERT_NOT_NULL(strstr(why.reason, "vm.max_map_count"));
  /* Within the limit: nothing said. */
  cowmem_pool_t* fine =
      make_pool(COWMEM_RESET_MADVISE, 16, 16, COWMEM_POOL_STRICT_LIMITS, &why);
  ASSERT_NOT_NULL(fine);
  ASSERT_EQ(why.reason[0], 0);
  ASSERT_OK(cowmem_pool_free(fine));
  ASSERT_STR_EQ(cowmem_err_name(COWMEM_EMAPLIMIT), "EMAPLIMIT");
  return 0;
}

/* ---- file descriptors ---- */

static void set_nofile(rlim_t n) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = n;
  setrlimit(RLIMIT_NOFILE, &rl);
}

/* Use up every descriptor: RLIMIT_NOFILE just above the highest open one,
 * the gaps below it filled with /dev/null (fds_close gives them back). */
static int gap_fds[4096];
static int ngap_fds;
static void fds_exhaust(void) {
  int top = 0;
  for (int fd = 0; fd < 4096; fd++)
    if (fcntl(fd, F_GETFD) >= 0) top = fd + 1;
  set_nofile((rlim_t)top);
  ngap_fds = 0;
  int fd;
  while (ngap_fds < 4096 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
    gap_fds[ngap_fds++] = fd;
}
static void fds_close(void) {
  while (ngap_fds > 0)
    close(gap_fds[--ngap_fds]);
}

/* In a child, before cowmem has made any image: out of descriptors, an
 * image is a copy (memfd fails) and a file image fails with EMFILE; both
 * leave nothing behind. With descriptors again, images are memfds again:
 * the first failure must not be taken for a kernel without memfd. */
static int fd_limit_child(bool probed_first) {
  char path[] = "/tmp/cowmem-host-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 60;
  unlink(path);
  uint8_t* page = malloc(PS);
  memset(page, 0x5a, PS);
  if (write(fd, page, PS) != (ssize_t)PS) return 61;
  struct rlimit saved;
  getrlimit(RLIMIT_NOFILE, &saved);
  int fds = fd_count();
  if (probed_first && !cowmem__os_has_memfd()) return 59;
  fds_exhaust();
  cowmem_image_t* img = NULL;
  if (cowmem_image_new_from_bytes(page, PS, PS, &img) != 0) return 62;
  cowmem_image_info_t info;
  if (cowmem_image_info(img, &info) != 0 || info.kind != COWMEM_IMAGE_COPY) {
    fprintf(stderr, "out of fds: image kind %d, %d gaps filled\n", (int)info.kind,
            ngap_fds);
    return 63;
  }
  cowmem_slot_t* s = NULL;
  if (cowmem_slot_new(8 * PS, &s) != 0 || cowmem_slot_instantiate(s, 4 * PS, img) != 0)
    return 64;
  if (same((uint8_t*)cowmem_slot_base(s) + PS, page, PS, "copy image")) return 65;
  /* A file image needs a dup of the fd: EMFILE, named. (Before memfd was
   * ever probed, the file is copied into a COPY image instead.) */
  cowmem_image_t* fimg = NULL;
  int r = cowmem_image_new_from_file(fd, 0, PS, 0, COWMEM_IMAGE_FILE_IMMUTABLE, &fimg);
  if (!probed_first && r == 0) {
    if (cowmem_image_info(fimg, &info) != 0 || info.kind != COWMEM_IMAGE_COPY) return 66;
    cowmem_image_release(fimg);
  } else {
    if (r != COWMEM_EMFILE) {
      fprintf(stderr, "file image out of fds: %s\n", cowmem_err_name(r));
      return 66;
    }
    if (strstr(cowmem_strerror(r), "open files") == NULL) return 67;
  }
  fds_close();
  if (fd_count() != fds) return 68;
  setrlimit(RLIMIT_NOFILE, &saved);
  cowmem_image_t* img2 = NULL;
  if (cowmem_image_new_from_bytes(page, PS, PS, &img2) != 0) return 69;
  if (cowmem_image_info(img2, &info) != 0 || info.kind != COWMEM_IMAGE_MEMFD) {
    fprintf(stderr, "with descriptors again, images are still copies\n");
    return 70;
  }
  if (cowmem_slot_instantiate(s, 4 * PS, img2) != COWMEM_ESTATE) return 71; /* DIRTY */
  if (cowmem_slot_reset(s) != 0 || cowmem_slot_decommit(s) != 0) return 72;
  if (cowmem_slot_instantiate(s, 4 * PS, img2) != 0) return 73;
  if (same((uint8_t*)cowmem_slot_base(s) + PS, page, PS, "memfd image")) return 74;
  if (cowmem_image_new_from_file(fd, 0, PS, 0, COWMEM_IMAGE_FILE_IMMUTABLE, &fimg) != 0)
    return 75;
  cowmem_image_release(fimg);
  cowmem_slot_free(s);
  cowmem_image_release(img);
  cowmem_image_release(img2);
  close(fd);
  free(page);
  return fd_count() == fds - 1 ? 0 : 76;
}

static int probe_memfd_child(void) {
  return cowmem__os_has_memfd() ? 0 : 1;
}

TEST_IMPL(fd_limit_images) {
  PS = cowmem_page_size();
  /* Probed in a child of its own: this process must not have asked yet. */
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(probe_memfd_child());
  if (child_status(pid) != 0) TEST_SKIP("no memfd (or the portable backend)");
  for (int probed_first = 0; probed_first < 2; probed_first++) {
    pid = fork();
    if (pid == 0) _exit(fd_limit_child(probed_first));
    ASSERT_EQ(child_status(pid), 0);
  }
  return 0;
}

/* The same for PAGEMAP_SCAN's /proc/self/pagemap descriptor: the first
 * ADAPTIVE reset runs out of descriptors (and still resets exactly); later
 * ones scan. */
static int fd_limit_scan_child(void) {
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 0, NULL);
  cowmem_image_t* img = holed_image(0, 16, 0, 0x44);
  uint8_t* want = expected(img, 32 * PS);
  if (pool == NULL || img == NULL || want == NULL) return 60;
  struct rlimit saved;
  getrlimit(RLIMIT_NOFILE, &saved);
  for (int phase = 0; phase < 2; phase++) {
    if (phase == 0) fds_exhaust();
    if (phase == 1) {
      fds_close();
      setrlimit(RLIMIT_NOFILE, &saved);
    }
    for (int i = 0; i < 8; i++) {
      cowmem_slot_t* s = NULL;
      if (cowmem_pool_acquire(pool, img, 32 * PS, 32 * PS, &s) != 0) return 61;
      if (same(cowmem_slot_base(s), want, 32 * PS, "adaptive")) return 62;
      memset((uint8_t*)cowmem_slot_base(s) + (size_t)i * PS, 0xcc, PS);
      if (cowmem_pool_release(pool, s) != 0) return 63;
    }
  }
  cowmem_pool_image_metrics_t im;
  if (cowmem_pool_image_metrics(pool, img, &im) != 0) return 64;
  if (im.scans == 0) {
    fprintf(stderr, "PAGEMAP_SCAN never used after descriptors came back\n");
    return 65;
  }
  cowmem_pool_free(pool);
  cowmem_image_release(img);
  free(want);
  return 0;
}

static int probe_scan_child(void) {
  return cowmem__os_has_pagemap_scan() ? 0 : 1;
}

TEST_IMPL(fd_limit_scan) {
  PS = cowmem_page_size();
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(probe_scan_child());
  if (child_status(pid) != 0)
    TEST_SKIP("no PAGEMAP_SCAN (Linux < 6.7, or the portable backend)");
  pid = fork();
  if (pid == 0) _exit(fd_limit_scan_child());
  ASSERT_EQ(child_status(pid), 0);
  return 0;
}

/* ---- fork ---- */

#define FORK_LIVE 3
#define FORK_CYCLES 200

/* Acquire, check, write a mark of our own, release: n times, two images. */
static int fork_cycles(cowmem_pool_t* pool, cowmem_image_t** imgs, uint8_t** wants,
                       uint8_t mark, int n) {
  for (int i = 0; i < n; i++) {
    int k = i % 2;
    cowmem_slot_t* s = NULL;
    int r = cowmem_pool_acquire(pool, imgs[k], 32 * PS, 64 * PS, &s);
    if (r != 0) {
      fprintf(stderr, "cycle %d: %s\n", i, cowmem_err_name(r));
      return 1;
    }
    if (same(cowmem_slot_base(s), wants[k], 32 * PS, "after fork")) return 1;
    uint8_t* m = cowmem_slot_base(s);
    if (i % 5 == 0 && cowmem_slot_grow(s, 40 * PS) != 0) return 1;
    for (int p = 0; p < 6; p++)
      m[((size_t)(i * 5 + p * 3) % 32) * PS + (size_t)p] = mark;
    if (cowmem_pool_release(pool, s) != 0) return 1;
  }
  return 0;
}

/* Write our mark into the slots that were live at the fork, wait for the
 * other process to write its own, and find only ours. */
static int fork_marks(cowmem_slot_t** live, uint8_t mark, int rd, int wr) {
  for (int i = 0; i < FORK_LIVE; i++)
    memset(cowmem_slot_base(live[i]), mark, 2 * PS);
  char c = 'x';
  if (write(wr, &c, 1) != 1 || read(rd, &c, 1) != 1) return 1;
  for (int i = 0; i < FORK_LIVE; i++) {
    const uint8_t* p = cowmem_slot_base(live[i]);
    for (size_t b = 0; b < 2 * PS; b++)
      if (p[b] != mark) {
        fprintf(stderr, "slot %d byte %zu: 0x%02x, ours is 0x%02x\n", i, b, p[b], mark);
        return 1;
      }
  }
  return 0;
}

static int fork_side(cowmem_pool_t* pool, cowmem_slot_t** live, cowmem_image_t** imgs,
                     uint8_t** wants, uint8_t mark, int rd, int wr) {
  if (fork_marks(live, mark, rd, wr)) return 1;
  if (cowmem_pool_flush(pool) != 0) return 1;
  if (fork_cycles(pool, imgs, wants, mark, FORK_CYCLES)) return 1;
  for (int i = 0; i < FORK_LIVE; i++)
    if (cowmem_pool_release(pool, live[i]) != 0) return 1;
  if (fork_cycles(pool, imgs, wants, mark, FORK_CYCLES)) return 1;
  cowmem_pool_metrics_t m;
  if (cowmem_pool_metrics(pool, &m) != 0 || m.in_use != 0) return 1;
  return 0;
}

static int fork_live_pool(cowmem_reset_strategy_t reset) {
  PS = cowmem_page_size();
  cowmem_pool_t* pool = make_pool(reset, 16, 64, 0, NULL);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* imgs[2] = {holed_image(1, 24, 0, 0x61), holed_image(0, 30, 16, 0x17)};
  uint8_t* wants[2] = {expected(imgs[0], 32 * PS), expected(imgs[1], 32 * PS)};
  ASSERT_NOT_NULL(wants[0]);
  ASSERT_NOT_NULL(wants[1]);
  /* Learned hot sets (ADAPTIVE), warm idle slots of both images, a BATCHED
   * queue with slots waiting, and slots in use, all at the fork. */
  CHECK(fork_cycles(pool, imgs, wants, 0x0f, 40));
  cowmem_slot_t* live[FORK_LIVE];
  for (int i = 0; i < FORK_LIVE; i++)
    ASSERT_OK(cowmem_pool_acquire(pool, imgs[i % 2], 32 * PS, 64 * PS, &live[i]));
  cowmem_slot_t* queued[3];
  for (int i = 0; i < 3; i++)
    ASSERT_OK(cowmem_pool_acquire(pool, imgs[0], 32 * PS, 64 * PS, &queued[i]));
  for (int i = 0; i < 3; i++) {
    memset(cowmem_slot_base(queued[i]), 0x77, PS);
    ASSERT_OK(cowmem_pool_release(pool, queued[i]));
  }
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  if (reset == COWMEM_RESET_BATCHED) ASSERT_UEQ(m.pending, 3);
  ASSERT_GT(m.warm + m.pending, 0);
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  int fds_parent = fd_count();
  fflush(NULL);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int r = fork_side(pool, live, imgs, wants, 0xc1, to_child[0], to_parent[1]);
    /* The inherited pidfd and pagemap fd were closed at the fork; the
     * child's own may be open now: never more than the parent had. */
    if (r == 0 && fd_count() > fds_parent) r = 2;
    if (r == 0 && cowmem_pool_free(pool) != 0) r = 3;
    _exit(r);
  }
  int r = fork_side(pool, live, imgs, wants, 0xa7, to_parent[0], to_child[1]);
  ASSERT_EQ(child_status(pid), 0);
  ASSERT_EQ(r, 0);
  /* And the parent goes on alone. */
  CHECK(fork_cycles(pool, imgs, wants, 0xa8, 50));
  ASSERT_OK(cowmem_pool_free(pool));
  for (int i = 0; i < 2; i++) {
    cowmem_image_release(imgs[i]);
    free(wants[i]);
  }
  for (int i = 0; i < 2; i++) {
    close(to_child[i]);
    close(to_parent[i]);
  }
  return 0;
}

TEST_IMPL(fork_live_madvise) {
  return fork_live_pool(COWMEM_RESET_MADVISE);
}
TEST_IMPL(fork_live_keep_resident) {
  return fork_live_pool(COWMEM_RESET_KEEP_RESIDENT);
}
TEST_IMPL(fork_live_batched) {
  return fork_live_pool(COWMEM_RESET_BATCHED);
}
TEST_IMPL(fork_live_adaptive) {
  return fork_live_pool(COWMEM_RESET_ADAPTIVE);
}

/* ---- image files changed underneath ---- */

typedef struct {
  char path[64];
  int fd;
  cowmem_imgfile_t* file;
  cowmem_image_t* img; /* borrowed from file */
  uint8_t* want;       /* 32 pages */
} cwimg_t;

static int cwimg_make(cwimg_t* c) {
  cowmem_image_t* src = holed_image(2, 12, 0, 0x3c);
  if (src == NULL) return 1;
  cowmem_imgfile_memory_t mem;
  memset(&mem, 0, sizeof mem);
  mem.min_pages = 1;
  mem.image = src;
  snprintf(c->path, sizeof c->path, "/tmp/cowmem-host-XXXXXX");
  c->fd = mkstemp(c->path);
  if (c->fd < 0) return 1;
  int r = cowmem_imgfile_write(c->fd, &mem, 1, NULL);
  cowmem_image_release(src);
  if (r == 0) r = cowmem_imgfile_open(c->fd, NULL, 0, &c->file, NULL);
  if (r != 0) return 1;
  c->img = cowmem_imgfile_image(c->file, 0, NULL);
  c->want = expected(c->img, 32 * PS);
  cowmem_image_info_t info;
  if (c->img == NULL || c->want == NULL || cowmem_image_info(c->img, &info) != 0)
    return 1;
  return info.kind == COWMEM_IMAGE_FILE ? 0 : TEST_SKIP_CODE;
}

static void cwimg_free(cwimg_t* c) {
  cowmem_imgfile_free(c->file);
  close(c->fd);
  unlink(c->path);
  free(c->want);
}

/* A skip frees what was made first: LeakSanitizer checks skipped tests too
 * (the posix backend's images are copies, so these tests skip there). */
#define CWIMG_MAKE(c)                                                                    \
  do {                                                                                   \
    int m_ = cwimg_make(c);                                                              \
    if (m_ == TEST_SKIP_CODE) {                                                          \
      cwimg_free(c);                                                                     \
      TEST_SKIP("images are copies here: no file is mapped");                            \
    }                                                                                    \
    CHECK(m_);                                                                           \
  } while (0)

/* Rewritten in place: the check says so, the pool stops handing the image
 * out (the warm slot that maps it too), and nothing is left mapped. */
TEST_IMPL(image_file_rewritten) {
  PS = cowmem_page_size();
  cwimg_t c;
  CWIMG_MAKE(&c);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_MADVISE, 4, 64, 0, NULL);
  ASSERT_NOT_NULL(pool);
  cowmem_slot_t *s1, *s2;
  ASSERT_OK(cowmem_pool_acquire(pool, c.img, 32 * PS, 32 * PS, &s1));
  ASSERT_OK(cowmem_pool_acquire(pool, c.img, 32 * PS, 32 * PS, &s2));
  CHECK(same(cowmem_slot_base(s1), c.want, 32 * PS, "before"));
  ASSERT_OK(cowmem_pool_release(pool, s1)); /* warm, maps the file */
  ASSERT_OK(cowmem_image_check(c.img));
  /* mtime moves with the clock's tick: let one pass. */
  struct timespec tick = {0, 30 * 1000 * 1000};
  nanosleep(&tick, NULL);
  cowmem_imgfile_memory_t fm;
  ASSERT_OK(cowmem_imgfile_memory(c.file, 0, &fm));
  uint8_t junk[64];
  memset(junk, 0xee, sizeof junk);
  ASSERT_EQ(pwrite(c.fd, junk, sizeof junk, (off_t)fm.file_offset), (ssize_t)sizeof junk);
  ASSERT_ERR(cowmem_image_check(c.img), COWMEM_ECHANGED);
  cowmem_slot_t* s3 = NULL;
  ASSERT_ERR(cowmem_pool_acquire(pool, c.img, 32 * PS, 32 * PS, &s3), COWMEM_ECHANGED);
  ASSERT_NULL(s3);
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.warm, 0); /* the warm slot of the changed image was dropped */
  ASSERT_UEQ(m.in_use, 1);
  /* The running instance goes on and is released; its slot is dropped too. */
  ASSERT_OK(cowmem_pool_release(pool, s2));
  cowmem_image_t* fresh = holed_image(0, 8, 0, 0x19);
  ASSERT_OK(cowmem_pool_acquire(pool, fresh, 32 * PS, 32 * PS, &s3));
  ASSERT_OK(cowmem_pool_release(pool, s3));
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.maps_in_use, 1 + 3); /* only the fresh image's warm slot */
  /* A plain slot refuses it the same way and stays EMPTY. */
  cowmem_slot_t* plain = NULL;
  ASSERT_OK(cowmem_slot_new(32 * PS, &plain));
  ASSERT_ERR(cowmem_slot_instantiate(plain, 32 * PS, c.img), COWMEM_ECHANGED);
  ASSERT_EQ(cowmem_slot_state(plain), COWMEM_SLOT_EMPTY);
  ASSERT_OK(cowmem_slot_free(plain));
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_image_release(fresh);
  cwimg_free(&c);
  return 0;
}

static void touch_after_truncate(void* arg) {
  cowmem_slot_t* s = arg;
  volatile uint8_t* p = cowmem_slot_base(s);
  (void)p[5 * PS]; /* an image page the instance never wrote */
}

/* Truncated: the next mapping is refused (ECHANGED) where the old code
 * mapped it and the instance died of SIGBUS; an instance already running
 * faults on pages it did not write (the kernel's rule, which copying with
 * COWMEM_IMGFILE_COPY avoids), and cowmem_image_check tells beforehand. */
TEST_IMPL(image_file_truncated) {
  PS = cowmem_page_size();
  cwimg_t c;
  CWIMG_MAKE(&c);
  cowmem_slot_t *running = NULL, *later = NULL;
  ASSERT_OK(cowmem_slot_new(32 * PS, &running));
  ASSERT_OK(cowmem_slot_new(32 * PS, &later));
  ASSERT_OK(cowmem_slot_instantiate(running, 32 * PS, c.img));
  ASSERT_EQ(ftruncate(c.fd, (off_t)PS), 0);
  ASSERT_ERR(cowmem_image_check(c.img), COWMEM_ECHANGED);
  ASSERT_ERR(cowmem_slot_instantiate(later, 32 * PS, c.img), COWMEM_ECHANGED);
  ASSERT_EQ(cowmem_slot_state(later), COWMEM_SLOT_EMPTY);
  ASSERT_EQ(test_run_in_child(touch_after_truncate, running), SIGBUS);
  ASSERT_OK(cowmem_slot_free(running));
  ASSERT_OK(cowmem_slot_free(later));
  cwimg_free(&c);
  return 0;
}

/* Truncated while a slot still maps it, READY for the same image: the
 * next instance in that slot is refused (ECHANGED, the slot EMPTY) without
 * any cowmem_image_check in between. The old same-image path only read the
 * changed flag, started the instance, and its first read died of SIGBUS.
 * The same through a pool's warm slot. */
TEST_IMPL(image_file_truncated_ready) {
  PS = cowmem_page_size();
  cwimg_t c;
  CWIMG_MAKE(&c);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(32 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 32 * PS, c.img));
  ASSERT_OK(cowmem_slot_reset(s));
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_READY);
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_MADVISE, 2, 64, 0, NULL);
  ASSERT_NOT_NULL(pool);
  cowmem_slot_t* ps = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, c.img, 32 * PS, 32 * PS, &ps));
  ASSERT_OK(cowmem_pool_release(pool, ps)); /* warm, maps the file */
  ASSERT_EQ(ftruncate(c.fd, (off_t)PS), 0);
  await_recheck(); /* a warm slot compares the file at most once a ms */
  ASSERT_ERR(cowmem_slot_instantiate(s, 32 * PS, c.img), COWMEM_ECHANGED);
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_EMPTY);
  ASSERT_UEQ(cowmem_slot_accessible(s), 0);
  ps = NULL;
  ASSERT_ERR(cowmem_pool_acquire(pool, c.img, 32 * PS, 32 * PS, &ps), COWMEM_ECHANGED);
  ASSERT_NULL(ps);
  /* The slots serve other images as before. */
  cowmem_image_t* fresh = holed_image(0, 8, 0, 0x2a);
  ASSERT_OK(cowmem_slot_instantiate(s, 32 * PS, fresh));
  ASSERT_OK(cowmem_pool_acquire(pool, fresh, 32 * PS, 32 * PS, &ps));
  ASSERT_EQ(((uint8_t*)cowmem_slot_base(ps))[0], 0x2a | 1);
  ASSERT_OK(cowmem_pool_release(pool, ps));
  ASSERT_OK(cowmem_pool_free(pool));
  ASSERT_OK(cowmem_slot_free(s));
  cowmem_image_release(fresh);
  cwimg_free(&c);
  return 0;
}

/* fn(arg) run in a forked child (a failed assertion there aborts): the
 * signal the child died of, or 0. What the old code did to the host, a
 * SIGBUS, fails the test instead of killing the runner. */
typedef struct {
  int (*fn)(void* arg);
  void* arg;
} child_call_t;

static void child_call(void* arg) {
  child_call_t* c = arg;
  if (c->fn(c->arg) != 0) abort();
}

static int host_dies_of(int (*fn)(void* arg), void* arg) {
  child_call_t c = {fn, arg};
  return test_run_in_child(child_call, &c);
}

/* Truncated under a running instance of a pool that restores by copy
 * (KEEP_RESIDENT, and ADAPTIVE's blind reset, which copies every hot page
 * back): the instance wrote image pages and its release copies the image
 * over them. The old code copied from a mapping of the file, and the host
 * died of SIGBUS in cowmem_pool_release; now the release reports ECHANGED,
 * the slot is dropped with nothing mapped, and the image is refused from
 * then on. (A scanning reset copies nothing here: the truncation drops
 * the instance's own copies of the pages past the new end, so the scan
 * finds no written page there.) In a child: the old code's death is the
 * signal. */
typedef struct {
  cwimg_t c;
  cowmem_reset_strategy_t reset;
  int mode; /* ADAPTIVE: cowmem__adaptive_test_mode */
} restore_case_t;

static int truncated_restore(void* arg) {
  restore_case_t* rc = arg;
  cowmem__adaptive_test_mode(rc->mode);
  cowmem_pool_t* pool = make_pool(rc->reset, 2, 64, 0, NULL);
  ASSERT_NOT_NULL(pool);
  /* The first instances make the reset read the image, and ADAPTIVE learn
   * the written pages (its first 4 resets are sampled): the last one, which
   * truncates, is reset blind and its hot pages restored by copy. */
  enum { CYCLES = 5 };
  for (int i = 0; i < CYCLES; i++) {
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, rc->c.img, 32 * PS, 32 * PS, &s));
    uint8_t* b = cowmem_slot_base(s);
    for (size_t p = 3; p < 7; p++)
      b[p * PS + 1] ^= 0xff; /* image pages */
    bool last = i == CYCLES - 1;
    if (last) ASSERT_EQ(ftruncate(rc->c.fd, (off_t)PS), 0);
    ASSERT_ERR(cowmem_pool_release(pool, s), last ? COWMEM_ECHANGED : 0);
  }
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.failures, 1);
  ASSERT_UEQ(m.warm, 0);
  ASSERT_UEQ(m.in_use, 0);
  ASSERT_UEQ(m.maps_in_use, 1); /* the reservation alone */
  cowmem_slot_t* s = NULL;
  ASSERT_ERR(cowmem_pool_acquire(pool, rc->c.img, 32 * PS, 32 * PS, &s), COWMEM_ECHANGED);
  ASSERT_NULL(s);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

TEST_IMPL(image_file_truncated_restore) {
  PS = cowmem_page_size();
  static const struct {
    cowmem_reset_strategy_t reset;
    int mode;
  } cases[] = {{COWMEM_RESET_KEEP_RESIDENT, 0}, {COWMEM_RESET_ADAPTIVE, 2}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    restore_case_t rc = {.reset = cases[i].reset, .mode = cases[i].mode};
    CWIMG_MAKE(&rc.c);
    int sig = host_dies_of(truncated_restore, &rc);
    cwimg_free(&rc.c);
    if (sig != 0) fprintf(stderr, "case %zu: the host died of signal %d\n", i, sig);
    ASSERT_EQ(sig, 0);
  }
  return 0;
}

/* Truncated under a running instance, then snapshot: the snapshot reads
 * the image pages the instance did not write through the slot's mapping of
 * the file, and the old code's host died of SIGBUS there. Now it fails
 * with ECHANGED, *out untouched, no image made, and the slot stays as it
 * was (DIRTY) for its release. In a child: the old code's death is the signal. */
static int truncated_snapshot(void* arg) {
  cwimg_t* c = arg;
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(32 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 32 * PS, c->img));
  uint8_t* b = cowmem_slot_base(s);
  b[3 * PS + 1] ^= 0xff; /* an image page */
  b[20 * PS] = 0x77;     /* a page past the image */
  cowmem_image_t* snap = NULL;
  ASSERT_OK(cowmem_snapshot(s, &snap)); /* the file is as it was */
  ASSERT_NOT_NULL(snap);
  cowmem_image_release(snap);
  snap = NULL;
  ASSERT_EQ(ftruncate(c->fd, (off_t)PS), 0);
  cowmem_stats_t before, after;
  cowmem_stats_get(&before);
  ASSERT_ERR(cowmem_snapshot(s, &snap), COWMEM_ECHANGED);
  ASSERT_NULL(snap);
  cowmem_stats_get(&after);
  ASSERT_UEQ(after.images_live, before.images_live); /* no image made */
  ASSERT_EQ(cowmem_slot_state(s), COWMEM_SLOT_DIRTY);
  ASSERT_EQ(b[20 * PS], 0x77); /* the instance's own page past the image */
  ASSERT_OK(cowmem_slot_free(s));
  return 0;
}

TEST_IMPL(image_file_truncated_snapshot) {
  PS = cowmem_page_size();
  cwimg_t c;
  CWIMG_MAKE(&c);
  int sig = host_dies_of(truncated_snapshot, &c);
  cwimg_free(&c);
  ASSERT_EQ(sig, 0);
  return 0;
}

/* A scanning ADAPTIVE reset over an opened image file (one the kernel does
 * not keep fixed) restores the pages instances wrote from the image's
 * cache: the file is read once per page, not once per reset, and every
 * instance still starts from exactly the image. Then the file is
 * truncated: a scanning reset stays safe (it stores only to the
 * instance's own pages), and the next acquire says ECHANGED. */
TEST_IMPL(image_file_scan_reads_once) {
  PS = cowmem_page_size();
  cwimg_t c;
  CWIMG_MAKE(&c);
  cowmem__adaptive_test_mode(1); /* scan at every reset */
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 64, 0, NULL);
  ASSERT_NOT_NULL(pool);
  enum { CYCLES = 40, WARM = 8 };
  cowmem_stats_t before, after;
  for (int i = 0; i < CYCLES; i++) {
    if (i == WARM) cowmem_stats_get(&before);
    cowmem_slot_t* s = NULL;
    ASSERT_OK(cowmem_pool_acquire(pool, c.img, 32 * PS, 32 * PS, &s));
    uint8_t* b = cowmem_slot_base(s);
    CHECK(same(b, c.want, 32 * PS, "instance after a cached restore"));
    for (size_t p = 3; p < 7; p++)
      b[p * PS + 1] ^= 0xff; /* image pages */
    ASSERT_OK(cowmem_pool_release(pool, s));
  }
  cowmem_stats_get(&after);
  /* Before: one pread per reset (32 over these cycles). */
  ASSERT_UEQ(after.sys_read - before.sys_read, 0);
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_pool_acquire(pool, c.img, 32 * PS, 32 * PS, &s));
  ((uint8_t*)cowmem_slot_base(s))[3 * PS + 1] ^= 0xff;
  ASSERT_EQ(ftruncate(c.fd, (off_t)PS), 0);
  (void)cowmem_pool_release(pool, s); /* 0 or ECHANGED: either is safe */
  s = NULL;
  await_recheck();
  ASSERT_ERR(cowmem_pool_acquire(pool, c.img, 32 * PS, 32 * PS, &s), COWMEM_ECHANGED);
  ASSERT_NULL(s);
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem__adaptive_test_mode(0);
  cwimg_free(&c);
  return 0;
}

/* ---- What reusing a slot for the same image costs in system calls ---- */

enum { REUSE_CYCLES = 300 };

/* An image of 8 data pages mapped from a file: a memfd sealed against
 * writes and shrinking (the kernel keeps it fixed), or a regular file the
 * caller declares immutable (it can still change: one fstat per reuse). */
static cowmem_image_t* reuse_image(bool sealed, int* fd_out) {
  uint8_t* bytes = malloc(8 * PS);
  if (bytes == NULL) return NULL;
  memset(bytes, 0x5c, 8 * PS);
  char path[] = "/tmp/cowmem-reuse-XXXXXX";
  int fd = sealed ? memfd_create("cowmem-reuse", MFD_ALLOW_SEALING) : mkstemp(path);
  if (!sealed && fd >= 0) unlink(path);
  bool ok = fd >= 0 && pwrite(fd, bytes, 8 * PS, 0) == (ssize_t)(8 * PS) &&
            (!sealed || fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK |
                                                   F_SEAL_GROW) == 0);
  free(bytes);
  cowmem_image_t* img = NULL;
  if (ok && cowmem_image_new_from_file(fd, 0, 8 * PS, 0,
                                       sealed ? 0 : COWMEM_IMAGE_FILE_IMMUTABLE, &img) != 0)
    img = NULL;
  *fd_out = fd;
  return img;
}

/* REUSE_CYCLES instances in one slot: instantiate, reset. */
static int reuse_cycles(cowmem_image_t* img, int cycles) {
  cowmem_slot_t* s = NULL;
  if (cowmem_slot_new(32 * PS, &s) != 0) return 1;
  int r = cowmem_slot_instantiate(s, 32 * PS, img);
  if (r == 0) r = cowmem_slot_reset(s);
  for (int i = 0; i < cycles && r == 0; i++) {
    r = cowmem_slot_instantiate(s, 32 * PS, img);
    if (r == 0 && ((volatile uint8_t*)cowmem_slot_base(s))[PS] != 0x5c) r = 1;
    if (r == 0) r = cowmem_slot_reset(s);
  }
  cowmem_slot_free(s);
  return r;
}

/* strace -c of this program running reuse_cycles(cycles) with the sealed
 * or the regular file: *calls the system calls named `name` (NULL: all but
 * madvise). 77 where strace is missing or cannot trace. */
static int strace_count(bool sealed, int cycles, const char* name, uint64_t* calls) {
  char out[] = "/tmp/cowmem-strace-XXXXXX";
  int ofd = mkstemp(out);
  if (ofd < 0) return 1;
  close(ofd);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = 0;
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           /* LeakSanitizer cannot run under ptrace: off in the child. */
           "ASAN_OPTIONS=detect_leaks=0 COWMEM_TEST_REUSE=%s:%d strace -f -qq -c -o %s %s "
           "image_reuse_no_syscall "
           ">/dev/null 2>&1",
           sealed ? "sealed" : "file", cycles, out, self);
  int st = system(cmd);
  FILE* f = fopen(out, "r");
  *calls = 0;
  char line[512];
  bool any = false;
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    char tok[8][64];
    int k = sscanf(line, "%63s %63s %63s %63s %63s %63s", tok[0], tok[1], tok[2], tok[3],
                   tok[4], tok[5]);
    if (k < 5 || strcmp(tok[0], "%") == 0 || tok[0][0] == '-') continue;
    const char* sys = tok[k - 1];
    if (strcmp(sys, "total") == 0) continue;
    any = true;
    /* "fstat" names every call the C library makes for it. */
    bool stat = !strcmp(sys, "fstat") || !strcmp(sys, "newfstatat") || !strcmp(sys, "statx");
    /* All calls but the resets' madvise, and getrandom, which the C
     * library's allocator makes once or twice as it pleases. */
    bool want = name == NULL                ? strcmp(sys, "madvise") != 0 &&
                                                 strcmp(sys, "getrandom") != 0
                : strcmp(name, "fstat") == 0 ? stat
                                             : strcmp(sys, name) == 0;
    if (want) *calls += strtoull(tok[3], NULL, 10);
  }
  if (f != NULL) fclose(f);
  unlink(out);
  return st == 0 && any ? 0 : TEST_SKIP_CODE;
}

/* The same image again in a READY slot: no system call where the file is
 * fixed (sealed memfd), where it can change one fstat a millisecond at
 * most. Counted by
 * cowmem's own counters, and by strace -c of a child doing 0 and
 * REUSE_CYCLES cycles (the difference is what the cycles cost: one
 * madvise each for the reset, and nothing else on the sealed path). */
TEST_IMPL(image_reuse_no_syscall) {
  PS = cowmem_page_size();
  const char* child = getenv("COWMEM_TEST_REUSE");
  if (child != NULL) { /* the traced child */
    int fd = -1;
    cowmem_image_t* img = reuse_image(strncmp(child, "sealed", 6) == 0, &fd);
    int r = img == NULL ? 1 : reuse_cycles(img, atoi(strchr(child, ':') + 1));
    cowmem_image_release(img);
    close(fd);
    return r;
  }
  for (int sealed = 1; sealed >= 0; sealed--) {
    int fd = -1;
    cowmem_image_t* img = reuse_image(sealed, &fd);
    ASSERT_NOT_NULL(img);
    cowmem_image_info_t ii;
    ASSERT_OK(cowmem_image_info(img, &ii));
    if (ii.kind != COWMEM_IMAGE_FILE) {
      cowmem_image_release(img);
      close(fd);
      TEST_SKIP("images are copies here: no file is mapped");
    }
    cowmem_stats_t a, b;
    cowmem_stats_get(&a);
    uint64_t t0 = coarse_ms();
    ASSERT_OK(reuse_cycles(img, REUSE_CYCLES));
    uint64_t ms = coarse_ms() - t0;
    cowmem_stats_get(&b);
    /* One slot's setup and first instance (mmap, a madvise that keeps the
     * reservation in base pages, mprotect, the first reset's madvise and,
     * for the regular file, its fstat), then REUSE_CYCLES same-image
     * cycles, which compare the regular file again at most once a
     * millisecond of the coarse clock (each instantiation did before). */
    ASSERT_UEQ(b.sys_madvise - a.sys_madvise, REUSE_CYCLES + 2);
    if (sealed) {
      ASSERT_UEQ(b.sys_fstat - a.sys_fstat, 0);
    } else {
      ASSERT_GE(b.sys_fstat - a.sys_fstat, 1);
      ASSERT_LE(b.sys_fstat - a.sys_fstat, 2 + ms);
    }
    cowmem_image_release(img);
    close(fd);
  }
  /* A regular file with the immutable attribute, where it can be set
   * (CAP_LINUX_IMMUTABLE and a filesystem with attributes). */
  char path[] = "/tmp/cowmem-immutable-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  uint8_t page[65536];
  ASSERT_LE(PS, sizeof page);
  memset(page, 0x5c, PS);
  for (size_t i = 0; i < 8; i++)
    ASSERT_EQ(pwrite(fd, page, PS, (off_t)(i * PS)), (ssize_t)PS);
  int attr = 0;
  if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
    attr |= FS_IMMUTABLE_FL;
    if (ioctl(fd, FS_IOC_SETFLAGS, &attr) == 0) {
      cowmem_image_t* img = NULL;
      ASSERT_OK(cowmem_image_new_from_file(fd, 0, 8 * PS, 0, 0, &img));
      cowmem_image_info_t ii;
      ASSERT_OK(cowmem_image_info(img, &ii));
      ASSERT_EQ(ii.kind, COWMEM_IMAGE_FILE); /* mapped in place, undeclared */
      cowmem_stats_t a, b;
      cowmem_stats_get(&a);
      ASSERT_OK(reuse_cycles(img, REUSE_CYCLES));
      cowmem_stats_get(&b);
      ASSERT_UEQ(b.sys_fstat - a.sys_fstat, 0);
      cowmem_image_release(img);
      attr &= ~FS_IMMUTABLE_FL;
      ASSERT_EQ(ioctl(fd, FS_IOC_SETFLAGS, &attr), 0);
    }
  }
  close(fd);
  uint64_t base = 0, many = 0, fst0 = 0, fst1 = 0;
  int r = strace_count(true, 0, NULL, &base);
  if (r == TEST_SKIP_CODE) TEST_SKIP("strace is missing or cannot trace here");
  ASSERT_OK(r);
  ASSERT_OK(strace_count(true, REUSE_CYCLES, NULL, &many));
  ASSERT_UEQ(many, base); /* sealed: nothing but the resets' madvise */
  ASSERT_OK(strace_count(true, REUSE_CYCLES, "madvise", &many));
  ASSERT_GE(many, REUSE_CYCLES);
  /* The regular file: an fstat at most once a millisecond (counted
   * alone: the other calls a process makes vary by one or two from run to
   * run). Traced, a cycle's system calls take tens of microseconds, so
   * the cycles compare the file a few times, not once each. */
  ASSERT_OK(strace_count(false, 0, "fstat", &fst0));
  ASSERT_OK(strace_count(false, REUSE_CYCLES, "fstat", &fst1));
  ASSERT_GE(fst1 - fst0, 1);
  ASSERT_LT(fst1 - fst0, REUSE_CYCLES / 2);
  return 0;
}

/* Renaming a new file over an installed one (the supported way) does not
 * count as a change of the old one. */
TEST_IMPL(image_file_renamed_over) {
  PS = cowmem_page_size();
  cwimg_t c, d;
  CWIMG_MAKE(&c);
  CWIMG_MAKE(&d);
  struct timespec tick = {0, 30 * 1000 * 1000};
  nanosleep(&tick, NULL);
  ASSERT_EQ(rename(d.path, c.path), 0);
  ASSERT_OK(cowmem_image_check(c.img));
  cowmem_slot_t* s = NULL;
  ASSERT_OK(cowmem_slot_new(32 * PS, &s));
  ASSERT_OK(cowmem_slot_instantiate(s, 32 * PS, c.img));
  CHECK(same(cowmem_slot_base(s), c.want, 32 * PS, "renamed over"));
  ASSERT_OK(cowmem_slot_free(s));
  cwimg_free(&c);
  cwimg_free(&d);
  return 0;
}

/* ---- ADAPTIVE over weeks of image replacement ---- */

/* More images than the table's 1024, each freed after use: what was
 * learned about the dead ones goes, and the last image still gets an
 * ADAPTIVE reset (the old table filled and gave every later image plain
 * madvise resets). */
TEST_IMPL(adaptive_forgets_dead_images) {
  PS = cowmem_page_size();
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_ADAPTIVE, 2, 16, 0, NULL);
  ASSERT_NOT_NULL(pool);
  uint8_t page[4096 * 4];
  ASSERT_LE(PS, sizeof page);
  uint64_t copied_before = 0;
  for (int i = 0; i < 1300; i++) {
    memset(page, (i % 250) + 1, PS);
    page[0] = (uint8_t)i;
    cowmem_image_t* img = NULL;
    ASSERT_OK(cowmem_image_new_from_bytes(page, PS, 0, &img));
    for (int k = 0; k < 2; k++) {
      cowmem_slot_t* s = NULL;
      ASSERT_OK(cowmem_pool_acquire(pool, img, 8 * PS, 8 * PS, &s));
      uint8_t* m = cowmem_slot_base(s);
      ASSERT_EQ(m[0], (uint8_t)i);
      m[PS] = 1;
      ASSERT_OK(cowmem_pool_release(pool, s));
    }
    if (i == 1299) {
      cowmem_pool_image_metrics_t im;
      ASSERT_OK(cowmem_pool_image_metrics(pool, img, &im));
      ASSERT_UEQ(im.resets, 2);
    }
    cowmem_image_release(img);
    if (i == 10) {
      cowmem_pool_metrics_t m;
      ASSERT_OK(cowmem_pool_metrics(pool, &m));
      copied_before = m.copied_pages + m.discarded_pages;
    }
  }
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_GT(m.copied_pages + m.discarded_pages, copied_before); /* totals kept */
  ASSERT_OK(cowmem_pool_free(pool));
  cowmem_stats_t st;
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, 0);
  return 0;
}

/* An image replaced while its slots wait in a BATCHED queue: once the
 * caller drops it, the next acquire frees it (before, the queue kept it,
 * memfd and all, until it happened to fill). */
TEST_IMPL(batched_queue_orphan) {
  PS = cowmem_page_size();
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_BATCHED, 4, 16, 0, NULL);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(0, 4, 0, 0x71);
  cowmem_slot_t *s, *t;
  ASSERT_OK(cowmem_pool_acquire(pool, img, 8 * PS, 8 * PS, &s));
  ASSERT_OK(cowmem_pool_acquire(pool, img, 8 * PS, 8 * PS, &t));
  ASSERT_OK(cowmem_pool_release(pool, s));
  ASSERT_OK(cowmem_pool_release(pool, t));
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.pending, 2);
  cowmem_image_release(img);
  cowmem_stats_t st;
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, 1);
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 8 * PS, 8 * PS, &s));
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, 0);
  ASSERT_OK(cowmem_pool_release(pool, s));
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* An image dropped while its slot is still in use, after the pool already
 * flushed for that drop: the slot's release queues it, and when a later
 * release fills the queue the flushed slot makes the image an orphan. That
 * flush must sweep it too; it used to wait for the next call (the churn
 * test saw the image alive at the end, now and then). */
TEST_IMPL(batched_flush_sweeps) {
  PS = cowmem_page_size();
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_BATCHED, 8, 16, 0, NULL);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(0, 4, 0, 0x72);
  cowmem_slot_t* s;
  ASSERT_OK(cowmem_pool_acquire(pool, img, 8 * PS, 8 * PS, &s));
  cowmem_image_release(img); /* the slot in use holds it now */
  cowmem_slot_t* t[7];
  for (int i = 0; i < 7; i++) { /* 7 queued; the drop's flush is done */
    ASSERT_OK(cowmem_pool_acquire(pool, NULL, 8 * PS, 8 * PS, &t[i]));
    ASSERT_OK(cowmem_pool_release(pool, t[i]));
  }
  cowmem_stats_t st;
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, 1);
  ASSERT_OK(cowmem_pool_release(pool, s)); /* the 8th: the queue flushes */
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, 0);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

/* Another thread's call while a flush holds the slots it took from the
 * queue: an acquire that finds no slot, after its sweep. */
static void acquire_meanwhile(void* pool) {
  cowmem_slot_t* s = NULL;
  if (cowmem_pool_acquire(pool, NULL, 8 * PS, 8 * PS, &s) == 0)
    cowmem_pool_release(pool, s);
}

/* An image dropped while its only slot is queued is an orphan there, and
 * the flush that takes the slot out makes it idle again. A sweep by another
 * thread in between, finding the slot in neither place, took the epoch of
 * the drop: the flush's own sweep then found nothing new, and the image
 * stayed in a warm slot until a trim (the churn test saw it now and then). */
TEST_IMPL(batched_flush_races_sweep) {
  PS = cowmem_page_size();
  cowmem_pool_t* pool = make_pool(COWMEM_RESET_BATCHED, 2, 16, 0, NULL);
  ASSERT_NOT_NULL(pool);
  cowmem_image_t* img = holed_image(0, 4, 0, 0x73);
  cowmem_slot_t *s, *t;
  ASSERT_OK(cowmem_pool_acquire(pool, img, 8 * PS, 8 * PS, &s));
  ASSERT_OK(cowmem_pool_acquire(pool, NULL, 8 * PS, 8 * PS, &t));
  ASSERT_OK(cowmem_pool_release(pool, s));
  cowmem_image_release(img); /* an orphan in the queue */
  cowmem__reset_flush_inject(acquire_meanwhile, pool);
  ASSERT_OK(cowmem_pool_release(pool, t)); /* flushes for the drop */
  cowmem_pool_metrics_t m;
  ASSERT_OK(cowmem_pool_metrics(pool, &m));
  ASSERT_UEQ(m.exhausted, 1); /* the acquire ran amid the flush */
  cowmem_stats_t st;
  cowmem_stats_get(&st);
  ASSERT_UEQ(st.images_live, 0);
  ASSERT_OK(cowmem_pool_free(pool));
  return 0;
}

TEST_MAIN(TEST_ENTRY(map_limit_named) TEST_ENTRY(map_limit_at_pool_new)
              TEST_ENTRY(fd_limit_images) TEST_ENTRY(fd_limit_scan)
                  TEST_ENTRY(fork_live_madvise) TEST_ENTRY(fork_live_keep_resident)
                      TEST_ENTRY(fork_live_batched) TEST_ENTRY(fork_live_adaptive)
                          TEST_ENTRY(image_file_rewritten)
                              TEST_ENTRY(image_file_truncated)
                              TEST_ENTRY(image_file_truncated_ready)
                              TEST_ENTRY(image_file_truncated_restore)
                              TEST_ENTRY(image_file_truncated_snapshot)
                              TEST_ENTRY(image_file_scan_reads_once)
                              TEST_ENTRY(image_reuse_no_syscall)
                                  TEST_ENTRY(image_file_renamed_over)
                                      TEST_ENTRY(adaptive_forgets_dead_images)
                                          TEST_ENTRY(batched_queue_orphan)
                                              TEST_ENTRY(batched_flush_sweeps)
                                                  TEST_ENTRY(batched_flush_races_sweep))
