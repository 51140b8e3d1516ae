/* Image files (.cwimg): the format, shared by the writer (imgfile_write.c)
 * and the opener (imgfile_open.c). Layout and contract in cowmem.h ("Image
 * files").
 *
 * Why the front end and not the core: a file describes a WebAssembly
 * module's memories, index by index, with their limits in 64 KiB pages,
 * the memory64 and shared flags, the segments left to apply and why a
 * memory has no image, keyed by the module's hash. Stripped of all that it
 * would be a list of (offset, image) pairs, which the core already has in
 * cowmem_image_new_from_file; keeping the format in the core would mean
 * either wasm meaning there or an opaque descriptor every reader decodes
 * again. So the core offers images from file ranges and the image's
 * internal interface; these files add the WebAssembly meaning. */
#ifndef COWMEM_WASM_IMGFILE_H
#define COWMEM_WASM_IMGFILE_H

#include <stdint.h>
#include <string.h>

#include "image/image.h"
#include "wasm/sha256.h"
#include "wasm/wasm.h"

/* The file's first 8 bytes. */
extern const uint8_t cowmem__imgfile_magic[8];

enum {
  HDR_FIXED = 96, /* bytes before the descriptors */
  DESC_SIZE = 80,
  MAX_MEMORIES = 4096, /* so the header stays within 320 KiB */
  OFF_VERSION = 8,
  OFF_HDR_LEN = 12,
  OFF_PAGE = 16,
  OFF_COUNT = 20,
  OFF_FILE_SIZE = 24,
  OFF_MODULE_HASH = 32,
  OFF_HDR_HASH = 64,
};

/* Descriptor flags. */
#define F_IMPORTED 0x1u
#define F_MEMORY64 0x2u
#define F_SHARED 0x4u
#define F_HAS_MAX 0x8u
/* An imported memory the module was compiled to get fresh from its host
 * (COWMEM_MODULE_FRESH_IMPORTS): only then may an imported memory have an
 * image. A new bit rather than a new version: files written before it never
 * set it and read exactly as they did, and an older reader refuses a file
 * that has it (unknown flags), so nothing is misread either way. */
#define F_FRESH 0x10u
/* The image is a state reached by running (a snapshot, pre-initialization),
 * not the module's segments: checked against the memory's size only. */
#define F_SNAPSHOT 0x20u
#define F_KNOWN 0x3fu

struct cowmem_imgfile_s {
  uint32_t n;
  uint32_t version;
  uint64_t size;
  uint8_t module_hash[32];
  cowmem_imgfile_memory_t* mems; /* image references owned */
};

/* Little-endian stores and loads of the format's fields. */
static inline void st32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void st64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t ld32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}
static inline uint64_t ld64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* The header's own hash: over the header with the hash field zeroed. */
static inline void header_hash(const uint8_t* hdr, size_t len, uint8_t out[32]) {
  static const uint8_t zeros[32];
  cowmem__sha256_t s;
  cowmem__sha256_init(&s);
  cowmem__sha256_update(&s, hdr, OFF_HDR_HASH);
  cowmem__sha256_update(&s, zeros, 32);
  cowmem__sha256_update(&s, hdr + OFF_HDR_HASH + 32, len - OFF_HDR_HASH - 32);
  cowmem__sha256_final(&s, out);
}

#endif
