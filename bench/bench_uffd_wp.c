/* A kernel experiment, not a test of cowmem: why the adaptive reset does not
 * use userfaultfd write-protection to find written pages (see src/dirty.c).
 *
 * With UFFD_FEATURE_WP_ASYNC on an anonymous range, a PAGEMAP_SCAN with
 * WP_MATCHING arms the tracking, and a later write shows as WRITTEN. But
 * MADV_DONTNEED (the reset) drops the tracking of the pages it zaps, so they
 * read as written until armed again, and arming populates page tables. This
 * program reports both facts on the running kernel and times a scan of
 * 16 MiB that re-arms against one that does not (medians, microseconds). It prints why it
 * cannot run where userfaultfd, WP_ASYNC or PAGEMAP_SCAN is missing, and
 * exits 0 then. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "pagemap_scan.h"

#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1u << 15) /* Linux >= 6.7 */
#endif

#define NPAGES 4096 /* 16 MiB of 4 KiB pages */

static int pagemap = -1;
static struct page_region regions[16];

/* PAGEMAP_SCAN for WRITTEN pages of [m, m + len): the number of ranges,
 * or -1. flags: 0, or PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC to arm. */
static long scan_written(uint8_t* m, size_t len, uint64_t flags) {
  struct pm_scan_arg a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.flags = flags;
  a.start = (uintptr_t)m;
  a.end = (uintptr_t)m + len;
  a.vec = (uintptr_t)regions;
  a.vec_len = 16;
  a.category_mask = PAGE_IS_WRITTEN;
  a.return_mask = PAGE_IS_WRITTEN;
  return ioctl(pagemap, PAGEMAP_SCAN, &a);
}

/* Median microseconds of a scan of [m, m + len) with flags after a write
 * to one page, the range armed again after each (untimed when flags do
 * not arm): the state a reset would scan in. */
static double median_scan_us(uint8_t* m, size_t len, size_t ps, uint64_t flags,
                             uint64_t arm, size_t n) {
  bench_samples_t s = {0};
  for (size_t i = 0; i < n; i++) {
    m[(i * 7 % NPAGES) * ps] = 1;
    uint64_t t0 = bench_now_ns();
    if (scan_written(m, len, flags) < 0) bench_must(-errno, "PAGEMAP_SCAN");
    bench_add(&s, (double)(bench_now_ns() - t0) / 1000.0);
    if (flags != arm && scan_written(m, len, arm) < 0) bench_must(-errno, "PAGEMAP_SCAN");
  }
  double med = bench_quantile(&s, 0.5);
  bench_free(&s);
  return med;
}

int main(void) {
  size_t ps = cowmem_page_size(), len = NPAGES * ps;
  printf("userfaultfd write-protection vs MADV_DONTNEED (a kernel experiment)\n");
  pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (pagemap < 0 || uffd < 0) {
    printf("not run: no /proc/self/pagemap or userfaultfd not permitted "
           "(vm.unprivileged_userfaultfd=0?)\n");
    return 0;
  }
  struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC};
  if (ioctl(uffd, UFFDIO_API, &api) != 0) {
    printf("not run: UFFD_FEATURE_WP_ASYNC missing (Linux >= 6.7)\n");
    return 0;
  }
  uint8_t* m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) bench_must(-errno, "mmap");
  struct uffdio_register reg = {.range = {(uintptr_t)m, len},
                                .mode = UFFDIO_REGISTER_MODE_WP};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) bench_must(-errno, "UFFDIO_REGISTER");
  const uint64_t arm = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
  if (scan_written(m, len, arm) < 0) {
    printf("not run: no PAGEMAP_SCAN here (Linux >= 6.7)\n");
    return 0;
  }

  /* Detection: armed, one page written, exactly that page reported. */
  bool none = scan_written(m, len, 0) == 0;
  m[3 * ps] = 1;
  bool exact = scan_written(m, len, 0) == 1 && regions[0].start == (uintptr_t)m + 3 * ps &&
               regions[0].end == (uintptr_t)m + 4 * ps;
  printf("  a write to an armed range is seen, and only it: %s\n",
         none && exact ? "yes" : "no");

  /* The interaction: re-armed, then 8 unwritten pages zapped. */
  scan_written(m, len, arm);
  madvise(m + 8 * ps, 8 * ps, MADV_DONTNEED);
  long r = scan_written(m, len, 0);
  printf("  after MADV_DONTNEED of 8 armed, unwritten pages: %s\n",
         r > 0 ? "they read as written (tracking lost until re-armed)"
               : "still tracked (not written)");

  size_t n = bench_iters(2000);
  double plain = median_scan_us(m, len, ps, 0, arm, n);
  double armed = median_scan_us(m, len, ps, arm, arm, n);
  printf("  PAGEMAP_SCAN of 16 MiB after one write, median us: plain %.2f, "
         "arming (WP) %.2f\n",
         plain, armed);
  munmap(m, len);
  close(uffd);
  close(pagemap);
  return 0;
}
