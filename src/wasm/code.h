/* The instruction decoder (code.c): function bodies and constant
 * expressions walked instruction by instruction, for the passes over a
 * parsed module that need to know which instructions it uses
 * (pre-initialization's validator, strip and the rewriter's "does any
 * body name a data segment?"), and the readers those passes open on its
 * sections. Internal to the front end. */
#ifndef COWMEM_WASM_CODE_H
#define COWMEM_WASM_CODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "cowmem.h"
#include "wasm/reader.h"

/* For the passes over a parsed module (strip, pre-initialization): the
 * first section with this id (false if none), and a reader over a
 * section's payload whose errors go to *d and *inv. */
bool cowmem__code_find_section(const cowmem_module_t* m, uint32_t id,
                               cowmem_section_info_t* out);
void cowmem__code_section(cowmem__rd_t* r, const cowmem_module_t* m,
                          const cowmem_section_info_t* s, cowmem_diag_t* d,
                          cowmem_diag_t* inv);

/* A prefixed opcode as one number: the prefix byte, then its LEB128. */
#define COWMEM__OP(prefix, sub) (((uint32_t)(prefix) << 24) | (sub))
#define COWMEM__OP_MEMORY_INIT COWMEM__OP(0xfc, 8)
#define COWMEM__OP_DATA_DROP COWMEM__OP(0xfc, 9)

/* A value type: one byte, or (ref null? heaptype) with its s33; *out is
 * the first byte. */
int cowmem__code_valtype(cowmem__rd_t* r, uint8_t* out);
/* A constant expression, up to and including its end (0x0b). */
int cowmem__code_expr(cowmem__rd_t* r);

/* Called for each instruction of function `func` (its index, imports
 * included), `op` its opcode (a prefixed one as COWMEM__OP), `at` its
 * offset in the module. A non-zero return stops the walk. */
typedef int (*cowmem__code_visit_t)(void* ctx, uint32_t func, uint32_t op, size_t at);

/* Walk every function body of m, calling visit on each instruction, and
 * return the first non-zero visit result, or 0. Bodies are decoded, not
 * validated (types, nesting). Errors: EMALFORMED, or EUNSUPPORTED for an
 * instruction the decoder does not know (GC's 0xfb among them) rather
 * than a guess at its length; *diag (if not NULL) says where. diag is not
 * touched when visit stops the walk. */
int cowmem__code_walk(const cowmem_module_t* m, cowmem__code_visit_t visit, void* ctx,
                      cowmem_diag_t* diag);

/* Does any function body name a data segment (memory.init, data.drop)?
 * Errors: those of cowmem__code_walk (then *uses is unchanged). */
int cowmem__code_uses_data(const cowmem_module_t* m, bool* uses);

#endif
