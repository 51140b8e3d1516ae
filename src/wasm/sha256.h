/* SHA-256 (FIPS 180-4), for image files: the hash that ties a .cwimg to
 * the module it was compiled from, and the checksum of its header.
 * Internal; the public entry is cowmem_sha256 in cowmem.h. */
#ifndef COWMEM_SHA256_H
#define COWMEM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t h[8];
  uint64_t total; /* bytes hashed so far */
  uint8_t block[64];
  size_t fill; /* bytes in block */
} cowmem__sha256_t;

void cowmem__sha256_init(cowmem__sha256_t* s);
void cowmem__sha256_update(cowmem__sha256_t* s, const void* p, size_t n);
void cowmem__sha256_final(cowmem__sha256_t* s, uint8_t out[32]);

#endif
