/* The Linux backend (included by os.c). memfd with seals, private file
 * mappings for copy-on-write, MADV_DONTNEED to discard, process_madvise to
 * discard many ranges in one call. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

int cowmem__os_map_file(void* addr, size_t len, int fd, uint64_t off,
                        cowmem__prot_t prot) {
  COWMEM__OS_INJECT(COWMEM__OS_mmap);
  cowmem__os_count(COWMEM__OS_mmap);
  void* p = mmap(addr, len, os_prot(prot), MAP_PRIVATE | MAP_FIXED, fd, (off_t)off);
  return p == MAP_FAILED ? os_nomem(errno) : 0;
}

int cowmem__os_map_shared_ro(int fd, uint64_t off, size_t len, void** out) {
  COWMEM__OS_INJECT(COWMEM__OS_mmap);
  cowmem__os_count(COWMEM__OS_mmap);
  void* p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
  if (p == MAP_FAILED) return os_nomem(errno);
  *out = p;
  return 0;
}

/* ---- kernel limits ---- */

/* Read a small /proc file into buf (NUL-terminated); bytes read or -1. */
static ssize_t os_read_small(const char* path, char* buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n >= 0) buf[n] = 0;
  return n;
}

int cowmem__os_map_limit(uint64_t* out) {
  char buf[32];
  cowmem__os_count(COWMEM__OS_other);
  if (os_read_small("/proc/sys/vm/max_map_count", buf, sizeof buf) <= 0) return ENOSYS;
  char* end = NULL;
  unsigned long long v = strtoull(buf, &end, 10);
  if (end == buf) return ENOSYS;
  *out = v;
  return 0;
}

int cowmem__os_map_count(uint64_t* out) {
  cowmem__os_count(COWMEM__OS_other);
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ENOSYS;
  char buf[16384];
  uint64_t lines = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (const char* p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))) != NULL; p++)
      lines++;
  }
  close(fd);
  *out = lines;
  return 0;
}

/* The kernel refuses a mapping, or a split of one, when the process has
 * vm.max_map_count of them (ENOMEM, like a memory shortage); a call that
 * splits a mapping in three needs two more. So within 3 of the limit, that
 * was the cause. */
static bool os_at_map_limit(void) {
  int saved = errno;
  uint64_t limit = 0, count = 0;
  bool at = cowmem__os_map_limit(&limit) == 0 && cowmem__os_map_count(&count) == 0 &&
            count + 3 > limit;
  errno = saved;
  return at;
}

/* process_madvise(MADV_DONTNEED) on our own process: Linux >= 6.13 accepts
 * any advice for the caller itself. The pidfd is per process: after fork
 * the child opens its own (a pidfd names the parent otherwise). */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
static _Atomic int pm_state; /* 0 unknown, 1 works, -1 unsupported */
static _Atomic int pm_pidfd = -1;
static _Atomic pid_t pm_pid;

/* After fork the child closes the pidfd and pagemap fd it inherited (they
 * name the parent): a fork handler, which runs while the child has one
 * thread, so no other thread can be using them. A child made without the
 * handlers (a raw clone) still sees the pid change below and opens its own,
 * leaving the inherited ones open. */
static void os_atfork_child(void);
static pthread_once_t os_atfork_once = PTHREAD_ONCE_INIT;

/* Is this still the process whose pid was stored? Asked on every reset
 * that scans or batches, and getpid() is a real system call (glibc does
 * not cache it): 1.0 us on the CI VM, where the scan it guards costs
 * 1.5 us. So the pid that last checked is kept on a MADV_WIPEONFORK page
 * (Linux >= 4.14), which reads 0 in any child, however it was made (a raw
 * clone runs no fork handler): equal means no fork since, with no system
 * call. Without that page, getpid() as before. */
static _Atomic pid_t* os_wipe_pid;      /* on the wipe page; NULL: unsupported */
static _Atomic uint32_t* os_wipe_turn;  /* the discard turn, on the same page */
static _Atomic uint32_t os_turn_static; /* the discard turn without that page */
static void os_atfork_register(void) {
  pthread_atfork(NULL, NULL, os_atfork_child);
  size_t ps = (size_t)sysconf(_SC_PAGESIZE);
  void* p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
#ifdef MADV_WIPEONFORK
  if (madvise(p, ps, MADV_WIPEONFORK) == 0) {
    os_wipe_turn = (_Atomic uint32_t*)((char*)p + 64); /* a line of its own */
    os_wipe_pid = p;
    return;
  }
#endif
  munmap(p, ps);
}

static bool os_same_process(pid_t stored) {
  pthread_once(&os_atfork_once, os_atfork_register);
  if (os_wipe_pid != NULL && stored != 0 &&
      atomic_load_explicit(os_wipe_pid, memory_order_relaxed) == stored)
    return true;
  pid_t me = getpid();
  if (me != stored) return false;
  if (os_wipe_pid != NULL) atomic_store_explicit(os_wipe_pid, me, memory_order_relaxed);
  return true;
}

/* ---- discards of nothing take turns ----
 *
 * Two threads of one process in MADV_DONTNEED at once make the kernel
 * treat the later zap as nested in the other and flush the TLBs of every
 * CPU the process runs on, by IPI, whether or not a page was freed. In a
 * pool of 16 MiB slots on the 2-core VM, two threads resetting with
 * madvise at K=0 took 7 us a reset against 0.37 us alone (0.07x one
 * thread's cycles). A discard expected to free nothing (ADAPTIVE's blind
 * reset decommits the complement of the hot set) therefore first waits,
 * briefly, for the turn: such a discard takes 0.2-0.4 us, and in turns
 * two threads resetting blind ran 0.9x one. Discards that free pages
 * flush other CPUs' TLBs whatever the others do, and making them take
 * turns too cost more than it saved (two threads of 16-page MADVISE
 * resets: 0.57-0.62x one against 0.73x), so they do not. The turn never
 * blocks: after TURN_WAIT_NS the discard goes ahead without it (the
 * holder may be descheduled), so no deadlock, and a child that
 * inherits it taken waits at most that long; the word sits on the
 * wipe-on-fork page where there is one, so it reads free in any child,
 * and the fork handler frees it otherwise. */
/* Long enough for a queue's flush: 8 slots' gaps in one process_madvise
 * take about 10 us (K=16 blind resets of 16 MiB memories, Zen 5 VM), and
 * going ahead costs more: the forced flush of every CPU's TLBs took 19 us
 * there (a hypercall in this VM). With 2 us, two threads of queued blind
 * resets at K=16 ran 0.90x one thread; with 20 us, 1.43x. */
#define TURN_WAIT_NS 20000
static _Atomic uint32_t* os_turn_word(void) {
  pthread_once(&os_atfork_once, os_atfork_register);
  return os_wipe_turn != NULL ? os_wipe_turn : &os_turn_static;
}

static void os_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

static bool os_turn_try(_Atomic uint32_t* w) {
  uint32_t c = 0;
  return atomic_load_explicit(w, memory_order_relaxed) == 0 &&
         atomic_compare_exchange_strong_explicit(w, &c, 1, memory_order_acquire,
                                                 memory_order_relaxed);
}

/* Take the turn: false if another discard kept it past TURN_WAIT_NS;
 * forever (the tests' hold) waits as long as it takes. */
static bool os_turn_take(_Atomic uint32_t* w, bool forever) {
  if (os_turn_try(w)) return true;
  uint64_t t0 = cowmem__os_now_ns();
  for (unsigned i = 1;; i++) {
    os_relax();
    if (os_turn_try(w)) return true;
    if (!forever && (i & 15) == 0 && cowmem__os_now_ns() - t0 > TURN_WAIT_NS) return false;
  }
}

static void os_turn_give(_Atomic uint32_t* w) {
  atomic_store_explicit(w, 0, memory_order_release);
}

#ifdef COWMEM_TESTING
void cowmem__os_discard_hold(bool hold) {
  _Atomic uint32_t* w = os_turn_word();
  if (hold)
    os_turn_take(w, true);
  else
    os_turn_give(w);
}
#endif

/* A thread whose discard of nothing had to wait for the turn asks
 * cowmem__os_discard_contended "yes" for its next TURN_AVOID asks: with
 * another thread discarding blind beside it, the next discard would very
 * likely wait too. Per thread, so that no shared line is written on a
 * reset; a thread alone never waits, and pays one thread-local load. */
#define TURN_AVOID 128
static _Thread_local uint32_t os_turn_avoid __attribute__((tls_model("initial-exec")));

bool cowmem__os_discard_contended(void) {
  if (os_turn_avoid != 0) {
    os_turn_avoid--;
    return true;
  }
  return cowmem__os_discard_busy();
}

bool cowmem__os_discard_busy(void) {
  return atomic_load_explicit(os_turn_word(), memory_order_relaxed) != 0;
}

int cowmem__os_discard(void* addr, size_t len) {
  COWMEM__OS_INJECT(COWMEM__OS_madvise);
  cowmem__os_count(COWMEM__OS_madvise);
  return madvise(addr, len, MADV_DONTNEED) == 0 ? 0 : errno;
}

static int os_self_pidfd(void) {
  int fd = atomic_load(&pm_pidfd);
  if (fd >= 0 && os_same_process(atomic_load(&pm_pid))) return fd;
  pid_t me = getpid();
  pthread_once(&os_atfork_once, os_atfork_register);
  cowmem__os_count(COWMEM__OS_other);
  int nfd = (int)syscall(SYS_pidfd_open, me, 0);
  if (nfd < 0) return -1;
  int expected = fd;
  if (atomic_compare_exchange_strong(&pm_pidfd, &expected, nfd)) {
    atomic_store(&pm_pid, me);
    /* An inherited fd from the parent stays open: closing it could race with
     * a thread still using it, and it is one fd per fork. */
    return nfd;
  }
  close(nfd);
  return atomic_load(&pm_pidfd);
}

int cowmem__os_discard_many(const cowmem__os_range_t* ranges, size_t n) {
  if (n == 0) return 0;
  if (atomic_load_explicit(&pm_state, memory_order_relaxed) >= 0) {
    int pidfd = os_self_pidfd();
    size_t done = 0;
    while (pidfd >= 0 && done < n) {
      struct iovec iov[512];
      size_t k = n - done < 512 ? n - done : 512;
      size_t bytes = 0;
      for (size_t i = 0; i < k; i++) {
        iov[i].iov_base = ranges[done + i].addr;
        iov[i].iov_len = ranges[done + i].len;
        bytes += ranges[done + i].len;
      }
      int inj = 0;
#ifdef COWMEM_TESTING
      inj = cowmem__os_inject_check(COWMEM__OS_process_madvise);
      if (inj != 0) return inj;
#endif
      (void)inj;
      cowmem__os_count(COWMEM__OS_process_madvise);
      long r = syscall(SYS_process_madvise, pidfd, iov, k, MADV_DONTNEED, 0);
      if (r < 0) {
        int e = errno;
        if (done == 0 && (e == EINVAL || e == ENOSYS || e == EPERM || e == EOPNOTSUPP)) {
          atomic_store(&pm_state, -1); /* old kernel: per-range from now on */
          break;
        }
        return e;
      }
      atomic_store_explicit(&pm_state, 1, memory_order_relaxed);
      if ((size_t)r != bytes) {
        /* Partial advice: finish this batch range by range. */
        size_t left = (size_t)r;
        for (size_t i = 0; i < k; i++) {
          const cowmem__os_range_t* rg = &ranges[done + i];
          if (left >= rg->len) {
            left -= rg->len;
            continue;
          }
          int e = cowmem__os_discard((char*)rg->addr + left, rg->len - left);
          if (e) return e;
          left = 0;
        }
      }
      done += k;
    }
    if (done == n) return 0;
  }
  return os_discard_each(ranges, n);
}

bool cowmem__os_discards_batch(void) {
  return atomic_load_explicit(&pm_state, memory_order_relaxed) >= 0;
}

int cowmem__os_discard_empty(const cowmem__os_range_t* ranges, size_t n) {
  _Atomic uint32_t* w = os_turn_word();
  bool turn = os_turn_try(w);
  if (!turn) {
    os_turn_avoid = TURN_AVOID;
    turn = os_turn_take(w, false);
  }
  int e = n == 1 ? cowmem__os_discard(ranges[0].addr, ranges[0].len)
                 : cowmem__os_discard_many(ranges, n);
  if (turn) os_turn_give(w);
  return e;
}

/* Probed once, with raw system calls (not counted in the statistics, not
 * subject to fault injection): can this kernel make a memfd and seal it?
 * 0 not probed yet, 1 yes, 2 no. */
static _Atomic int memfd_probe;

bool cowmem__os_has_memfd(void) {
  int v = atomic_load_explicit(&memfd_probe, memory_order_relaxed);
  if (v == 0) {
    int fd =
        (int)syscall(SYS_memfd_create, "cowmem-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    v = 2;
    if (fd >= 0) {
      if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) == 0) v = 1;
      close(fd);
    } else if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
      /* Out of descriptors or memory for now, not a kernel without memfd:
       * answer no this time and probe again next time (cached, this would
       * make every image a copy for the rest of the process's life). */
      return false;
    }
    atomic_store_explicit(&memfd_probe, v, memory_order_relaxed);
  }
  return v == 1;
}

int cowmem__os_memfd_new(const char* name, int* fd) {
  COWMEM__OS_INJECT(COWMEM__OS_memfd_create);
  cowmem__os_count(COWMEM__OS_memfd_create);
  int r = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (r < 0) return errno;
  *fd = r;
  return 0;
}

int cowmem__os_seal(int fd) {
  COWMEM__OS_INJECT(COWMEM__OS_fcntl);
  cowmem__os_count(COWMEM__OS_fcntl);
  int seals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
  return fcntl(fd, F_ADD_SEALS, seals) == 0 ? 0 : errno;
}

int cowmem__os_fstat(int fd, uint64_t* size, bool* write_sealed) {
  COWMEM__OS_INJECT(COWMEM__OS_fstat);
  cowmem__os_count(COWMEM__OS_fstat);
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  if (!S_ISREG(st.st_mode)) return EINVAL;
  cowmem__os_count(COWMEM__OS_fcntl);
  int seals = fcntl(fd, F_GET_SEALS);
  *size = (uint64_t)st.st_size;
  *write_sealed = seals >= 0 && (seals & F_SEAL_WRITE) != 0;
  return 0;
}

int cowmem__os_file_fixed(int fd, bool* fixed) {
  COWMEM__OS_INJECT(COWMEM__OS_fcntl);
  cowmem__os_count(COWMEM__OS_fcntl);
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals >= 0 && (seals & (F_SEAL_WRITE | F_SEAL_SHRINK)) == (F_SEAL_WRITE | F_SEAL_SHRINK)) {
    *fixed = true;
    return 0;
  }
  /* Filesystems without attributes say ENOTTY (or EINVAL): not fixed. */
  cowmem__os_count(COWMEM__OS_other);
  int attr = 0;
  *fixed = ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0 && (attr & FS_IMMUTABLE_FL) != 0;
  return 0;
}

/* ---- PAGEMAP_SCAN (Linux >= 6.7) ---- */
#include <string.h>

#include "pagemap_scan.h"

/* The pagemap fd and the pid that opened it, packed in one word so that a
 * thread never pairs a fresh pid with a stale fd: after fork the child must
 * not scan through its parent's fd (that reads the parent's page tables). */
static _Atomic uint64_t pagemap_fd_pid; /* (pid << 32) | (fd + 1); 0: none */
static _Atomic int pagemap_state;       /* 0 unknown, 1 works, -1 missing */

static int os_pagemap_fd(void) {
  uint64_t cur = atomic_load(&pagemap_fd_pid);
  if (cur != 0 && os_same_process((pid_t)(cur >> 32)))
    return (int)(cur & 0xffffffffu) - 1;
  pid_t me = getpid();
  pthread_once(&os_atfork_once, os_atfork_register);
  cowmem__os_count(COWMEM__OS_other);
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  uint64_t mine = ((uint64_t)(uint32_t)me << 32) | (uint64_t)(fd + 1);
  if (atomic_compare_exchange_strong(&pagemap_fd_pid, &cur, mine)) {
    /* An fd inherited from the parent stays open (one per fork): another
     * thread may still hold it for a moment. */
    return fd;
  }
  close(fd);
  if (cur != 0 && (pid_t)(cur >> 32) == me) return (int)(cur & 0xffffffffu) - 1;
  return -1;
}

static void os_atfork_child(void) {
  atomic_store(&os_turn_static, 0); /* the wipe page's word reads 0 already */
  int fd = atomic_exchange(&pm_pidfd, -1);
  if (fd >= 0) close(fd);
  uint64_t cur = atomic_exchange(&pagemap_fd_pid, 0);
  if (cur != 0) close((int)(cur & 0xffffffffu) - 1);
}

/* written: the pages cowmem__os_written_ranges reports; else every page
 * present or swapped (cowmem__os_mapped_ranges). */
static long os_pagemap_scan(int fd, uint64_t start, uint64_t end, struct page_region* vec,
                            size_t n, bool written, uint64_t* walk_end) {
  struct pm_scan_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.size = sizeof arg;
  arg.start = start;
  arg.end = end;
  arg.vec = (uint64_t)(uintptr_t)vec;
  arg.vec_len = n;
  /* written = (present or swapped) and not file and not the zero page */
  if (written) {
    arg.category_inverted = PAGE_IS_FILE | PAGE_IS_PFNZERO;
    arg.category_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO;
  }
  arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
  arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
  cowmem__os_count(COWMEM__OS_other);
  long r = ioctl(fd, PAGEMAP_SCAN, &arg);
  *walk_end = arg.walk_end;
  return r;
}

bool cowmem__os_has_pagemap_scan(void) {
  int st = atomic_load_explicit(&pagemap_state, memory_order_relaxed);
  if (st != 0) return st > 0;
  int fd = os_pagemap_fd();
  st = -1;
  /* Out of descriptors is not a missing feature: ask again later. */
  if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOMEM)) return false;
  if (fd >= 0) {
    /* Scan one page of our own stack: any answer >= 0 means it works. */
    static _Thread_local uint8_t probe_page[8];
    uint64_t a =
        (uint64_t)(uintptr_t)probe_page & ~(uint64_t)(cowmem__os_page_size() - 1);
    struct page_region v[1];
    uint64_t we = 0;
    if (os_pagemap_scan(fd, a, a + cowmem__os_page_size(), v, 1, true, &we) >= 0) st = 1;
  }
  atomic_store_explicit(&pagemap_state, st, memory_order_relaxed);
  return st > 0;
}

/* The ranges go to fn a scan's vector at a time. */
static int os_scan_ranges(void* addr, size_t len, bool written, cowmem__os_ranges_fn fn,
                          void* arg) {
  if (!cowmem__os_has_pagemap_scan()) return ENOSYS;
  int fd = os_pagemap_fd();
  if (fd < 0) return errno ? errno : EBADF;
  uint64_t start = (uint64_t)(uintptr_t)addr, end = start + len;
  struct page_region vec[64];
  cowmem__os_range_t got[64];
  while (start < end) {
    uint64_t we = end;
    long r = os_pagemap_scan(fd, start, end, vec, 64, written, &we);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (long i = 0; i < r; i++) {
      got[i].addr = (uint8_t*)(uintptr_t)vec[i].start;
      got[i].len = (size_t)(vec[i].end - vec[i].start);
    }
    if (r > 0) fn(arg, got, (size_t)r);
    /* The vector filled before the end: go on from where the walk stopped. */
    if (we <= start) return EIO; /* no progress: never expected */
    start = we;
  }
  return 0;
}

/* A caller's fn for each range of a batch. */
typedef struct {
  cowmem__os_range_fn fn;
  void* arg;
} os_each_t;

static void os_each(void* arg, const cowmem__os_range_t* ranges, size_t n) {
  const os_each_t* e = arg;
  for (size_t i = 0; i < n; i++)
    e->fn(e->arg, ranges[i].addr, ranges[i].len);
}

int cowmem__os_written_ranges(void* addr, size_t len, cowmem__os_range_fn fn, void* arg) {
  COWMEM__OS_INJECT(COWMEM__OS_other);
  os_each_t e = {fn, arg};
  return os_scan_ranges(addr, len, true, os_each, &e);
}

int cowmem__os_written_batches(void* addr, size_t len, cowmem__os_ranges_fn fn,
                               void* arg) {
  COWMEM__OS_INJECT(COWMEM__OS_other);
  return os_scan_ranges(addr, len, true, fn, arg);
}

int cowmem__os_mapped_ranges(void* addr, size_t len, cowmem__os_range_fn fn, void* arg) {
  COWMEM__OS_INJECT(COWMEM__OS_other);
  os_each_t e = {fn, arg};
  return os_scan_ranges(addr, len, false, os_each, &e);
}

/* /proc/self/pagemap entries: bit 63 present, 62 swapped, 61 a file page
 * (or shared anonymous). A page the slot's process wrote is an anonymous
 * page over the file or in the anonymous part: present or swapped, not 61.
 * mincore cannot tell it: over the image it reports the page cache, so a
 * sample compared every cached image page and read each through the slot,
 * faulting it in (p99 of 400 us in bench_adaptive's no-scan rows). */
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)

static int os_pagemap_read(void* addr, size_t len, uint8_t* vec) {
  int fd = os_pagemap_fd();
  if (fd < 0) return errno ? errno : EBADF;
  size_t ps = cowmem__os_page_size(), n = len / ps;
  uint64_t e[512];
  if (n > 512) return EINVAL;
  off_t at = (off_t)((uintptr_t)addr / ps * sizeof e[0]);
  size_t got = 0, want = n * sizeof e[0];
  while (got < want) {
    cowmem__os_count(COWMEM__OS_read);
    ssize_t r = pread(fd, (uint8_t*)e + got, want - got, at + (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? errno : EIO;
    got += (size_t)r;
  }
  for (size_t i = 0; i < n; i++)
    vec[i] = (e[i] & (PM_PRESENT | PM_SWAPPED)) && !(e[i] & PM_FILE);
  return 0;
}

static _Atomic int pagemap_read_state; /* 0 unknown, 1 works, -1 does not */

int cowmem__os_private_map(void* addr, size_t len, uint8_t* vec) {
  if (atomic_load_explicit(&pagemap_read_state, memory_order_relaxed) >= 0) {
    int e = os_pagemap_read(addr, len, vec);
    if (e == 0) {
      atomic_store_explicit(&pagemap_read_state, 1, memory_order_relaxed);
      return 0;
    }
    /* Out of descriptors is no answer about /proc: ask again next time. */
    if (e != EMFILE && e != ENFILE && e != ENOMEM && e != EINTR)
      atomic_store_explicit(&pagemap_read_state, -1, memory_order_relaxed);
  }
  cowmem__os_count(COWMEM__OS_other);
  return mincore(addr, len, (unsigned char*)vec) == 0 ? 0 : errno;
}

/* ---- the process's page faults ---- */
#include <sys/resource.h>

/* MADV_NOHUGEPAGE: no huge page is faulted in or collapsed there by
 * khugepaged, which makes absent pages present and writable with no fault
 * counted. Mappings split by mprotect keep the advice; a new mapping over
 * the range does not, hence the advice at every reservation and fresh
 * mapping. A kernel without transparent huge pages has nothing to keep. */
static int os_base_pages(void* addr, size_t len) {
  COWMEM__OS_INJECT(COWMEM__OS_madvise);
  cowmem__os_count(COWMEM__OS_madvise);
  if (madvise(addr, len, MADV_NOHUGEPAGE) == 0) return 0;
  return errno == EINVAL ? 0 : errno; /* no transparent huge pages here */
}

static _Atomic pid_t fault_pid;

int cowmem__os_fault_count(uint64_t* out) {
  COWMEM__OS_INJECT(COWMEM__OS_other);
  pid_t pid = atomic_load_explicit(&fault_pid, memory_order_relaxed);
  if (!os_same_process(pid)) {
    pid = getpid();
    atomic_store_explicit(&fault_pid, pid, memory_order_relaxed);
  }
  cowmem__os_count(COWMEM__OS_other);
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return errno;
  *out =
      ((uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt) ^ ((uint64_t)(uint32_t)pid << 40);
  return 0;
}
