/* What every Unix backend shares (included by os.c before the backend):
 * anonymous mappings, protection, unmapping, reads and fd plumbing. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

/* Backend: is the process at its mapping limit (after an ENOMEM)? */
static bool os_at_map_limit(void);
/* Backend: keep [addr, addr+len) in base pages (cowmem__os_reserve). */
static int os_base_pages(void* addr, size_t len);

/* ENOMEM from a mapping call: the map limit, or memory. */
static int os_nomem(int e) {
  return e == ENOMEM && os_at_map_limit() ? COWMEM__OS_EMAPLIMIT : e;
}

static int os_prot(cowmem__prot_t p) {
  switch (p) {
    case COWMEM__PROT_RW: return PROT_READ | PROT_WRITE;
    case COWMEM__PROT_READ: return PROT_READ;
    default: return PROT_NONE;
  }
}


size_t cowmem__os_page_size(void) {
  static _Atomic size_t cached;
  size_t ps = atomic_load_explicit(&cached, memory_order_relaxed);
  if (ps == 0) {
    long v = sysconf(_SC_PAGESIZE);
    ps = v > 0 ? (size_t)v : 4096;
    atomic_store_explicit(&cached, ps, memory_order_relaxed);
  }
  return ps;
}


uint64_t cowmem__os_coarse_ns(void) {
  struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* the last tick: no TSC read */
#else
  clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cowmem__os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int cowmem__os_reserve(size_t len, void** out) {
  COWMEM__OS_INJECT(COWMEM__OS_mmap);
  cowmem__os_count(COWMEM__OS_mmap);
  void* p = mmap(NULL, len, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return os_nomem(errno);
  int e = os_base_pages(p, len);
  if (e) {
    cowmem__os_count(COWMEM__OS_munmap);
    munmap(p, len);
    return e;
  }
  *out = p;
  return 0;
}


int cowmem__os_unmap(void* addr, size_t len) {
  COWMEM__OS_INJECT(COWMEM__OS_munmap);
  cowmem__os_count(COWMEM__OS_munmap);
  return munmap(addr, len) == 0 ? 0 : errno;
}


int cowmem__os_map_anon(void* addr, size_t len, cowmem__prot_t prot) {
  COWMEM__OS_INJECT(COWMEM__OS_mmap);
  cowmem__os_count(COWMEM__OS_mmap);
  void* p = mmap(addr, len, os_prot(prot),
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? os_nomem(errno) : os_base_pages(addr, len);
}


int cowmem__os_protect(void* addr, size_t len, cowmem__prot_t prot) {
  COWMEM__OS_INJECT(COWMEM__OS_mprotect);
  cowmem__os_count(COWMEM__OS_mprotect);
  return mprotect(addr, len, os_prot(prot)) == 0 ? 0 : os_nomem(errno);
}


int cowmem__os_pread_all(int fd, void* buf, size_t len, uint64_t off) {
  char* p = buf;
  while (len > 0) {
    COWMEM__OS_INJECT(COWMEM__OS_read);
    cowmem__os_count(COWMEM__OS_read);
    ssize_t r = pread(fd, p, len, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return EIO;
    p += r;
    off += (uint64_t)r;
    len -= (size_t)r;
  }
  return 0;
}


int cowmem__os_dup(int fd, int* out) {
  COWMEM__OS_INJECT(COWMEM__OS_fcntl);
  cowmem__os_count(COWMEM__OS_fcntl);
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) return errno;
  *out = r;
  return 0;
}


int cowmem__os_file_id(int fd, cowmem__os_file_id_t* out) {
  COWMEM__OS_INJECT(COWMEM__OS_fstat);
  cowmem__os_count(COWMEM__OS_fstat);
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  out->size = (uint64_t)st.st_size;
  out->dev = (uint64_t)st.st_dev;
  out->ino = (uint64_t)st.st_ino;
#if defined(__APPLE__)
  out->mtime_ns = (int64_t)st.st_mtimespec.tv_sec * 1000000000 + st.st_mtimespec.tv_nsec;
  out->ctime_ns = (int64_t)st.st_ctimespec.tv_sec * 1000000000 + st.st_ctimespec.tv_nsec;
#else
  out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  out->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
#endif
  return 0;
}


/* glibc declares these only with _GNU_SOURCE; Linux has had them since 3.1
 * (the values differ elsewhere: macOS swaps them). */
#if defined(__linux__) && !defined(SEEK_DATA)
#define SEEK_DATA 3
#define SEEK_HOLE 4
#endif

int cowmem__os_data_extent(int fd, uint64_t off, uint64_t end, uint64_t* data,
                           uint64_t* hole) {
  *data = off;
  *hole = end;
#if defined(SEEK_DATA) && defined(SEEK_HOLE)
  cowmem__os_count(COWMEM__OS_other);
  off_t cur = lseek(fd, 0, SEEK_CUR);
  if (cur < 0) return errno;
  off_t d = lseek(fd, (off_t)off, SEEK_DATA);
  int e = d < 0 ? errno : 0;
  off_t h = d < 0 ? -1 : lseek(fd, d, SEEK_HOLE);
  if (d >= 0 && h < 0) e = errno;
  lseek(fd, cur, SEEK_SET);
  if (e == ENXIO) { /* no data after off */
    *data = end;
    return 0;
  }
  if (e == EINVAL) return 0; /* the file system cannot tell: all data */
  if (e) return e;
  *data = (uint64_t)d < end ? (uint64_t)d : end;
  *hole = (uint64_t)h < end ? (uint64_t)h : end;
#else
  (void)fd;
#endif
  return 0;
}

void cowmem__os_close(int fd) {
  cowmem__os_count(COWMEM__OS_close);
  close(fd);
}


int cowmem__os_resident(void* addr, size_t len, size_t* bytes) {
  size_t ps = cowmem__os_page_size(), pages = len / ps, count = 0;
  unsigned char vec[256];
  for (size_t done = 0; done < pages;) {
    size_t n = pages - done < sizeof vec ? pages - done : sizeof vec;
    cowmem__os_count(COWMEM__OS_other);
    if (mincore((char*)addr + done * ps, n * ps, (void*)vec) != 0) return errno;
    for (size_t i = 0; i < n; i++) count += vec[i] & 1;
    done += n;
  }
  *bytes = count * ps;
  return 0;
}

/* Discard ranges one call each: the fallback of cowmem__os_discard_many. */
static int os_discard_each(const cowmem__os_range_t* ranges, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int e = cowmem__os_discard(ranges[i].addr, ranges[i].len);
    if (e) return e;
  }
  return 0;
}

int cowmem__os_pwrite_all(int fd, const void* buf, size_t len, uint64_t off) {
  const char* p = buf;
  while (len > 0) {
    COWMEM__OS_INJECT(COWMEM__OS_write);
    cowmem__os_count(COWMEM__OS_write);
    ssize_t w = pwrite(fd, p, len, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    off += (uint64_t)w;
    len -= (size_t)w;
  }
  return 0;
}

int cowmem__os_ftruncate(int fd, uint64_t size) {
  COWMEM__OS_INJECT(COWMEM__OS_ftruncate);
  cowmem__os_count(COWMEM__OS_ftruncate);
  return ftruncate(fd, (off_t)size) == 0 ? 0 : errno;
}
