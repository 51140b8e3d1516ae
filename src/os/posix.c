/* The portable backend (included by os.c): plain POSIX mmap. No memfd, so
 * every image is kept in ordinary memory and copied at instantiation; a
 * discard maps fresh zero pages, because MADV_DONTNEED is only a hint
 * outside Linux. Compiled on Linux too with COWMEM_OS_FORCE_POSIX, so the
 * fallback runs the same tests. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int cowmem__os_map_file(void* addr, size_t len, int fd, uint64_t off,
                        cowmem__prot_t prot) {
  (void)addr; (void)len; (void)fd; (void)off; (void)prot;
  return ENOSYS;
}

int cowmem__os_map_shared_ro(int fd, uint64_t off, size_t len, void** out) {
  (void)fd; (void)off; (void)len; (void)out;
  return ENOSYS;
}

static bool os_at_map_limit(void) { return false; }

int cowmem__os_map_limit(uint64_t* out) {
  (void)out;
  return ENOSYS;
}

int cowmem__os_map_count(uint64_t* out) {
  (void)out;
  return ENOSYS;
}

int cowmem__os_discard(void* addr, size_t len) {
  COWMEM__OS_INJECT(COWMEM__OS_madvise);
  cowmem__os_count(COWMEM__OS_mmap);
  void* p = mmap(addr, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? errno : 0;
}

int cowmem__os_discard_many(const cowmem__os_range_t* ranges, size_t n) {
  return os_discard_each(ranges, n);
}

int cowmem__os_discard_empty(const cowmem__os_range_t* ranges, size_t n) {
  return os_discard_each(ranges, n);
}

bool cowmem__os_discard_contended(void) { return false; }
bool cowmem__os_discard_busy(void) { return false; }
bool cowmem__os_discards_batch(void) { return false; }

#ifdef COWMEM_TESTING
void cowmem__os_discard_hold(bool hold) { (void)hold; }
#endif

bool cowmem__os_has_memfd(void) { return false; }

int cowmem__os_memfd_new(const char* name, int* fd) {
  (void)name; (void)fd;
  return ENOSYS;
}

int cowmem__os_seal(int fd) {
  (void)fd;
  return ENOSYS;
}

int cowmem__os_fstat(int fd, uint64_t* size, bool* write_sealed) {
  COWMEM__OS_INJECT(COWMEM__OS_fstat);
  cowmem__os_count(COWMEM__OS_fstat);
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  if (!S_ISREG(st.st_mode)) return EINVAL;
  *size = (uint64_t)st.st_size;
  *write_sealed = false;
  return 0;
}

int cowmem__os_file_fixed(int fd, bool* fixed) {
  (void)fd;
  *fixed = false;
  return 0;
}

/* No PAGEMAP_SCAN outside Linux: the adaptive reset learns by comparing
 * contents instead, and snapshots read what mincore reports resident. */
bool cowmem__os_has_pagemap_scan(void) { return false; }

int cowmem__os_written_ranges(void* addr, size_t len, cowmem__os_range_fn fn,
                              void* arg) {
  (void)addr; (void)len; (void)fn; (void)arg;
  return ENOSYS;
}

int cowmem__os_written_batches(void* addr, size_t len, cowmem__os_ranges_fn fn,
                               void* arg) {
  (void)addr; (void)len; (void)fn; (void)arg;
  return ENOSYS;
}

int cowmem__os_mapped_ranges(void* addr, size_t len, cowmem__os_range_fn fn,
                             void* arg) {
  (void)addr; (void)len; (void)fn; (void)arg;
  return ENOSYS;
}

static int os_base_pages(void* addr, size_t len) {
  (void)addr;
  (void)len;
  return 0;
}

/* What ru_minflt counts elsewhere is not known to include every fault. */
int cowmem__os_fault_count(uint64_t* out) {
  (void)out;
  return ENOSYS;
}

int cowmem__os_private_map(void* addr, size_t len, uint8_t* vec) {
  cowmem__os_count(COWMEM__OS_other);
  return mincore(addr, len, (void*)vec) == 0 ? 0 : errno;
}
