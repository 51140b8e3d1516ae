/* libFuzzer target over the image file opener (cowmem_imgfile_open_hash).
 *
 * Each input is opened twice from a memfd: as it is, and with its header
 * hash recomputed, so that mutations reach the descriptor checks behind the
 * checksum instead of stopping at it. Whatever opens must keep the format's
 * invariants (ranges aligned and inside the file, images inside their
 * memory's initial size) and be usable: images are read and, for small
 * memories, instantiated in a slot. Any broken invariant traps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cowmem.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static uint32_t ld32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void exercise(cowmem_imgfile_t* f, uint64_t size) {
  uint64_t page = cowmem_page_size();
  uint64_t prev_end = 0;
  for (uint32_t i = 0; i < cowmem_imgfile_memory_count(f); i++) {
    cowmem_imgfile_memory_t m;
    if (cowmem_imgfile_memory(f, i, &m) != 0) __builtin_trap();
    /* Fresh only on imports; an imported image only when fresh. */
    if (m.fresh && !m.imported) __builtin_trap();
    if (m.image && m.imported && !m.fresh) __builtin_trap();
    if (!m.image) {
      if (m.mem_len != 0) __builtin_trap();
      continue;
    }
    if (m.mem_len == 0 || m.mem_len % page || m.file_offset % page ||
        m.mem_offset % page || m.file_offset < prev_end || m.file_offset > size ||
        m.file_len > size - m.file_offset)
      __builtin_trap();
    prev_end = m.file_offset + m.file_len;
    if (m.min_pages > ((uint64_t)1 << (m.memory64 ? 48 : 16))) __builtin_trap();
    uint64_t mem = m.min_pages >= COWMEM_WASM64_MAX_PAGES ? UINT64_MAX
                                                         : m.min_pages * COWMEM_WASM_PAGE_SIZE;
    if (m.mem_offset > mem || m.mem_len > mem - m.mem_offset) __builtin_trap();
    uint8_t buf[256];
    if (cowmem_image_read(m.image, m.mem_offset, buf, sizeof buf) != 0) __builtin_trap();
    if (mem <= ((uint64_t)16 << 20)) {
      cowmem_slot_t* s = NULL;
      if (cowmem_slot_new((size_t)mem, &s) == 0) {
        if (cowmem_slot_instantiate(s, (size_t)mem, m.image) == 0 &&
            cowmem_slot_reset(s) != 0)
          __builtin_trap();
        cowmem_slot_free(s);
      }
    }
  }
}

static void open_once(const uint8_t* data, size_t size, unsigned flags) {
  int fd = memfd_create("fuzz_imgfile", MFD_CLOEXEC);
  if (fd < 0) return;
  size_t done = 0;
  while (done < size) {
    ssize_t w = write(fd, data + done, size - done);
    if (w <= 0) break;
    done += (size_t)w;
  }
  cowmem_imgfile_t* f = NULL;
  cowmem_diag_t d;
  int r = cowmem_imgfile_open(fd, NULL, flags, &f, &d);
  if (r == 0) {
    exercise(f, size);
    cowmem_imgfile_free(f);
  } else if (d.code != r || d.reason[0] == 0) {
    __builtin_trap(); /* every failure says why */
  }
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > ((size_t)1 << 20)) return 0;
  open_once(data, size, 0);
  /* The same bytes with a valid header checksum. */
  if (size < 96) return 0;
  uint32_t n = ld32(data + 20);
  if (n > 4096 || 96 + (size_t)n * 80 > size) return 0;
  size_t hdr = 96 + (size_t)n * 80;
  uint8_t* copy = malloc(size);
  if (!copy) return 0;
  memcpy(copy, data, size);
  memset(copy + 64, 0, 32);
  uint8_t h[32];
  cowmem_sha256(copy, hdr, h);
  memcpy(copy + 64, h, 32);
  open_once(copy, size, data[size - 1] & 1 ? COWMEM_IMGFILE_COPY : 0);
  free(copy);
  return 0;
}
