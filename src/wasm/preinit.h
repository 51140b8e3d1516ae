/* Pre-initialization, internal: shared by the decoder and validator
 * (preinit_code.c), the module rewriter (preinit_rewrite.c) and the snapshot's
 * data (preinit_data.c). See cowmem_preinit_* in cowmem.h. */
#ifndef COWMEM_WASM_PREINIT_H
#define COWMEM_WASM_PREINIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "cowmem.h"
#include "wasm/reader.h"
#include "wasm/rewrite.h"

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

/* The data section's payload of the rewritten module and its segment
 * count: the original segments, active ones emptied, or removed when
 * nkept (the original segments that stay) is below their count; then,
 * without `images`, the snapshot's as active segments (a).
 * Errors: EINVAL, ENOMEM, those of cowmem_image_read. */
int cowmem__preinit_data(const cowmem_module_t* m,
                         const cowmem_preinit_snapshot_t* snap,
                         const cowmem_preinit_options_t* opt, bool images,
                         uint32_t nkept, cowmem__pbuf_t* payload, uint32_t* count,
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
