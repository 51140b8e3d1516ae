/* Pre-initialization, internal: shared by the decoder and validator
 * (preinit_code.c), the module rewriter (preinit.c) and the snapshot's
 * data (preinit_data.c). See cowmem_preinit_* in cowmem.h. */
#ifndef COWMEM_WASM_PREINIT_H
#define COWMEM_WASM_PREINIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "cowmem.h"
#include "wasm/reader.h"

/* A growing output buffer. Appends after a failed allocation do nothing
 * and the failure is reported once, by cowmem__pbuf_done. */
typedef struct {
  uint8_t* p;
  size_t len, cap;
  bool failed;
} cowmem__pbuf_t;

void cowmem__pbuf_add(cowmem__pbuf_t* b, const void* src, size_t n);
void cowmem__pbuf_byte(cowmem__pbuf_t* b, uint8_t v);
void cowmem__pbuf_uleb(cowmem__pbuf_t* b, uint64_t v);
void cowmem__pbuf_sleb(cowmem__pbuf_t* b, int64_t v);
/* Append a section: id, payload size, payload. */
void cowmem__pbuf_section(cowmem__pbuf_t* b, uint8_t id,
                          const cowmem__pbuf_t* payload);
/* 0, or ENOMEM (and the buffer freed) after a failed append. */
int cowmem__pbuf_done(cowmem__pbuf_t* b);

/* One entry of the import or global section, as byte ranges of the
 * module: [start, end) the whole entry, desc where its type (import: the
 * kind byte; global: the init expression) starts. */
typedef struct {
  uint64_t start, desc, end;
  uint8_t kind; /* import: cowmem_extern_kind_t; global: its value type */
  bool is_mutable; /* global */
} cowmem__preinit_entry_t;

/* The entries of the module's import (id 2) or global (id 6) section, in
 * order: *out malloc'd (NULL with *n 0 when there is no such section).
 * Errors: ENOMEM; EMALFORMED only on bytes the parser would refuse. */
int cowmem__preinit_entries(const cowmem_module_t* m, uint8_t section,
                            cowmem__preinit_entry_t** out, uint32_t* n,
                            cowmem_diag_t* diag);

/* The first section with this id (false if none). */
bool cowmem__preinit_find_section(const cowmem_module_t* m, uint32_t id,
                                  cowmem_section_info_t* out);

/* The data section's payload of the rewritten module and its segment
 * count: the original segments (active ones emptied), then, without
 * `images`, the snapshot's as active segments (a).
 * Errors: EINVAL, ENOMEM, those of cowmem_image_read. */
int cowmem__preinit_data(const cowmem_module_t* m,
                         const cowmem_preinit_snapshot_t* snap,
                         const cowmem_preinit_options_t* opt, bool images,
                         cowmem__pbuf_t* payload, uint32_t* count,
                         cowmem_diag_t* diag);

/* Write the image file of the rewritten module (module, len bytes) for
 * the snapshot to fd: every memory with its snapshot image and size. */
int cowmem__preinit_images(const cowmem_module_t* m,
                           const cowmem_preinit_snapshot_t* snap,
                           const uint8_t* module, size_t len, int fd);

/* Set *diag (if not NULL) and return code. */
int cowmem__preinit_fail(cowmem_diag_t* diag, int code, uint64_t offset,
                         const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif
