/* cowmem_wamr.h: cowmem as the linear-memory provider of WAMR
 * (wasm-micro-runtime 2.x), through WAMR's documented allocator hook,
 * without patching WAMR.
 *
 * WAMR built with WAMR_BUILD_ALLOC_WITH_USAGE=1 and initialized with
 * Alloc_With_Allocator takes every linear memory from the embedder's
 * malloc(Alloc_For_LinearMemory, size), grows it with
 * realloc(Alloc_For_LinearMemory, full_size_mmaped, ptr, size) and frees it
 * with free(Alloc_For_LinearMemory, ptr), in the interpreters and the AOT
 * runtime alike. cowmem_wamr_runtime_init installs callbacks that serve
 * those from one process-wide cowmem pool and pass everything else
 * (Alloc_For_Runtime) to the C library's malloc, realloc and free.
 *
 * The recipe for a module (cowmem_wamr_module() in cowmem_wamr.cmake):
 *   1. `cowmem strip` the module: segments that an image covers are removed
 *      (or become empty passive segments when code names segments by
 *      index), so WAMR's instantiation copies nothing;
 *   2. `cowmem compile` the ORIGINAL module into an image file;
 *   3. at run time, open both once (cowmem_wamr_module_open_images; or give
 *      the original .wasm to cowmem_wamr_module_open, which builds the
 *      images and strips in memory), which loads the stripped module into
 *      WAMR; instantiate with cowmem_wamr_instantiate (or
 *      COWMEM_WAMR_INSTANTIATE around any wasm_runtime_instantiate* call).
 *   wasm_runtime_deinstantiate gives the memory back to the pool (reset).
 *
 * How the callbacks know the module and the memory: they are told neither.
 * The module set ("module being instantiated") is a thread-local set by
 * cowmem_wamr_begin around wasm_runtime_instantiate on the calling thread,
 * and the linear-memory allocation made during it is the module's memory:
 * WAMR allocates linear memories only while instantiating (grow is a
 * realloc, found by its pointer), and a module has at most one memory here
 * (multi-memory is refused, see below), so there is nothing to guess. The
 * size WAMR asks for is the truth: WAMR changes a memory's layout at load
 * (a module without memory.grow is "shrunk" to __heap_base; an app heap,
 * heap_size > 0, adds pages) without moving any data, so the image maps at
 * its offset whatever the size, as long as it ends within it (else the
 * allocation fails and so does the instantiation, with WAMR's error).
 *
 * An imported memory is allocated like a defined one: without multi-module
 * WAMR creates it fresh and zeroed for every instance, so its data comes
 * from an image too (modules are parsed, stripped and compiled with
 * COWMEM_MODULE_FRESH_IMPORTS / --fresh-imports).
 *
 * Memories: slots of COWMEM_WASM32_SLOT_RESERVE + COWMEM_WASM32_GUARD_SIZE
 * bytes (4 GiB + 4 GiB, cowmem.h). With hardware bounds checks (WAMR's default on 64-bit
 * Linux) the interpreter and AOT code form memory_data + u32 address + u32
 * offset, up to 8 GiB past the base, with no check, and WAMR's signal
 * handler turns a fault in [base, base + 8 GiB) into "out of bounds memory
 * access". A slot and the guard after it are exactly those 8 GiB: every
 * address is this instance's accessible memory or PROT_NONE, never the next
 * slot. A memory never moves (realloc grows in place), as WAMR requires
 * when full_size_mmaped. Builds with software bounds checks work unchanged.
 *
 * Refused when a module is loaded (COWMEM_EUNSUPPORTED, diag->reason says
 * which): more than one memory (WAMR 2.4 without WAMR_BUILD_MULTI_MEMORY
 * refuses them too; with it, which allocation is which memory depends on
 * the bounds-check mode, and a guess could map the wrong image), shared
 * memories (one allocation serves several instances), memory64 memories
 * that may exceed 4 GiB (the hook's sizes are unsigned int: 4 GiB arrives
 * as 0; more cannot be told apart). Multi-module
 * loading (a memory imported from another WAMR module is not allocated by
 * the importer) is refused at build time: cowmem_wamr_runtime() never
 * enables WAMR_BUILD_MULTI_MODULE.
 *
 * Memories allocated while no module is set (no cowmem_wamr_begin on the
 * thread) come from the same pool with no image (zeros): an unstripped
 * module loaded with plain wasm_runtime_load runs as before, with WAMR
 * copying its segments. A STRIPPED module instantiated without its module
 * set would start from zeros: always instantiate it through
 * cowmem_wamr_instantiate or COWMEM_WAMR_INSTANTIATE.
 *
 * A size of 0 is an empty memory, with no accessible byte, as WAMR asks
 * (a module it shrinks to __heap_base = 0 traps on every access, as in
 * stock WAMR), except where it can only be 4 GiB (65536 pages, which the
 * hook's unsigned int sizes also carry as 0): with a module set whose
 * memory declares 65536 initial pages, or with an app heap given through
 * cowmem_wamr_instantiate (WAMR never asks for 0 bytes with one). A module
 * declaring 24575 pages or more (about 1.5 GiB) can reach exactly 4 GiB
 * with an app heap; instantiated through COWMEM_WAMR_INSTANTIATE, whose
 * heap size the hook is not told, its 0-byte request is refused (the
 * instantiation returns NULL, "allocate linear memory failed", the reason
 * on stderr): instantiate such modules with cowmem_wamr_instantiate. Every
 * instantiation through a module set then checks that the instance's
 * memory is as large as its slot; the rare memories still read the wrong
 * way (a module of 65536 pages shrunk to 0 bytes; an app heap that WAMR
 * drops because the module exports malloc and free, for a module of 24575
 * pages or more shrunk to 0 bytes) are refused there. Without a module
 * set 0 is always an empty memory.
 *
 * Free and grow of a pointer that is not a live linear memory's base (a
 * double free, a stale or an interior pointer, a foreign one) abort the
 * process with a message naming it: going on would release or grow
 * another instance's slot.
 *
 * Thread safety: runtime_init, init and shutdown once, from one thread.
 * begin/end act on the calling thread only; the callbacks are thread-safe.
 * A thread that runs wasm calls wasm_runtime_init_thread_env first (WAMR's
 * rule: its signal handler and alternate stack are per thread), one thread
 * at a time (WAMR 2.4.5 saves the previous signal actions in process-wide
 * variables there: TSan reports two threads initializing at once).
 */
#ifndef COWMEM_WAMR_H
#define COWMEM_WAMR_H

#include <stddef.h>
#include <stdint.h>

#include <cowmem.h>

#include "cowmem_integ.h"
#include "wasm_export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The pool's configuration: the common layer's (cowmem_integ.h), with the
 * same fields and defaults for every runtime integration. */
#define COWMEM_WAMR_CONFIG_VERSION COWMEM_INTEG_CONFIG_VERSION
typedef cowmem_integ_config_t cowmem_wamr_config_t;

void cowmem_wamr_config_init(cowmem_wamr_config_t* cfg);

/* wasm_runtime_full_init with the cowmem callbacks: args (NULL: WAMR's
 * defaults) is copied and its mem_alloc_type and allocator fields are
 * replaced. Returns WAMR's verdict. Call wasm_runtime_destroy at the end. */
bool cowmem_wamr_runtime_init(const RuntimeInitArgs* args);

/* Create the process's pool. Optional: the first linear memory creates it
 * with the defaults. Errors: ESTATE (already created), EINVAL (max_memories
 * outside 1..2^20, or a field cowmem_pool_new refuses), ENOMEM (*diag, if
 * not NULL, says which field or why). */
int cowmem_wamr_init(const cowmem_wamr_config_t* cfg, cowmem_diag_t* diag);
/* Free the pool. Errors: EBUSY while a linear memory is alive (nothing is
 * freed). Afterwards init may be called again. */
int cowmem_wamr_shutdown(void);
/* The pool (NULL before init), for metrics and trim. */
cowmem_pool_t* cowmem_wamr_pool(void);

/* A module set: the images of the ORIGINAL module's memory and the
 * stripped module loaded into WAMR (which the set owns). */
typedef struct cowmem_wamr_module_s cowmem_wamr_module_t;

/* Parse the original module, build its images, strip it in memory and load
 * the stripped bytes with wasm_runtime_load (the runtime must be
 * initialized). Errors: those of cowmem_module_parse and
 * cowmem_module_strip (with *diag), EUNSUPPORTED (see above; diag->reason
 * says which), EINVALID when WAMR refuses the stripped module (diag->reason
 * holds WAMR's message), EINVAL, ENOMEM. */
int cowmem_wamr_module_new(const void* wasm, size_t len, cowmem_wamr_module_t** out,
                           cowmem_diag_t* diag);
/* The same from a file; also ENOENT, EIO and the errors of open/read. */
int cowmem_wamr_module_open(const char* wasm_path, cowmem_wamr_module_t** out,
                            cowmem_diag_t* diag);
/* The production path: the images from the image file `cowmem compile`
 * wrote (mapped from the file: shared page cache across processes, only
 * its header read) and the module `cowmem strip` wrote, loaded into WAMR.
 * module_hash (SHA-256 of the original module) is checked against the
 * image file's when not NULL. The stripped module's memory must have the
 * image file's limits and still hold exactly the active segments the file
 * leaves to instantiation (EMISMATCH otherwise: files of two modules, or
 * stripped and compiled with different --fresh-imports).
 * Errors: those of cowmem_imgfile_open and of reading and parsing the
 * stripped module (with *diag), EUNSUPPORTED, EMISMATCH, EINVALID (WAMR). */
int cowmem_wamr_module_open_images(const char* cwimg_path, const char* stripped_path,
                                   const uint8_t module_hash[32],
                                   cowmem_wamr_module_t** out, cowmem_diag_t* diag);
/* Unload the stripped module from WAMR and free the set. No instance of it
 * may be alive (WAMR's rule for wasm_runtime_unload). NULL ignored. */
void cowmem_wamr_module_free(cowmem_wamr_module_t* m);
/* The stripped module as WAMR loaded it (borrowed). */
wasm_module_t cowmem_wamr_module_wamr(const cowmem_wamr_module_t* m);
/* The module's memories (0 or 1 here), imported ones included, as
 * cowmem_w2c_module_memories counts them: what the module declares (without
 * multi-module WAMR allocates an imported memory like a defined one). */
uint32_t cowmem_wamr_module_memories(const cowmem_wamr_module_t* m);
/* The image of memory i (borrowed; NULL: zeros, or the memory's segments
 * are left in the stripped module and WAMR copies them). */
cowmem_image_t* cowmem_wamr_module_image(const cowmem_wamr_module_t* m, uint32_t i);

/* Map m's image into the linear memory the calling thread allocates until
 * cowmem_wamr_end. m must stay valid until then. A begin without end is
 * superseded by the next begin. */
void cowmem_wamr_begin(const cowmem_wamr_module_t* m);
/* Stop mapping for this thread. Returns 0, or COWMEM_ESTATE when the
 * instantiation allocated a memory other than m's (a second one, or one
 * too small for the image: the allocation failed and so did the
 * instantiation) or did not allocate m's memory that has an image (the
 * instance does not belong to m). */
int cowmem_wamr_end(void);
/* cowmem_wamr_end() for the instance `inst` just made, which must also be
 * an instance of m's WAMR module (another module with the same limits
 * would silently run on m's image) whose memory is its slot's size (see
 * above): returns inst, or deinstantiates it and returns NULL, the reason
 * on stderr. The check comes after wasm_runtime_instantiate, so a start
 * function of the wrong module has run by then; instantiate through
 * cowmem_wamr_instantiate, which cannot take the wrong module. */
wasm_module_inst_t cowmem_wamr_end_instance(wasm_module_inst_t inst);

/* Evaluates `call` (a wasm_runtime_instantiate* call of m's WAMR module)
 * with m set: the instance, or NULL. */
#define COWMEM_WAMR_INSTANTIATE(m, call)                                                 \
  (cowmem_wamr_begin(m), cowmem_wamr_end_instance(call))

/* wasm_runtime_instantiate of m's stripped module with m's images. */
wasm_module_inst_t cowmem_wamr_instantiate(const cowmem_wamr_module_t* m,
                                           uint32_t stack_size, uint32_t heap_size,
                                           char* error_buf, uint32_t error_buf_size);

/* An instance with its execution environment, for hosts that make one per
 * request: cowmem_wamr_instantiate plus wasm_runtime_create_exec_env, but
 * the environment comes from the module set's cache when one of the same
 * stack size is there, and goes back to it at _free. Creating and
 * destroying an environment costs a malloc of its operand stack and, with
 * hardware bounds checks, an mmap and a munmap of its guard page; a reused
 * one costs neither.
 *
 * The cache holds up to COWMEM_WAMR_ENV_CACHE environments of one stack
 * size (the first one given back sets it while the cache is empty); one
 * given back to a full cache, or of another size, is destroyed, and
 * cowmem_wamr_module_free destroys them all. A set's instances may be made
 * and freed from several threads at once.
 *
 * A reused environment is bound to the new instance
 * (wasm_runtime_set_module_inst), its user data and the native stack
 * boundary its host set are cleared (wasm_runtime_set_user_data,
 * _set_native_stack_boundary), and its thread handle and native stack
 * boundary are the calling thread's again (WAMR computes them only when a
 * call starts on a thread with no current environment, and a call
 * refused for native stack overflow at its start leaves its environment
 * current). The rest of its state WAMR itself returns to the start when
 * each top-level call returns, trapped or not (the current frame, the
 * operand stack's top, the chain of jump buffers), or never changes in
 * the runtimes cowmem_wamr_runtime builds (suspend flags and the
 * auxiliary stack's bounds, which only the thread manager and the
 * debugger write, and the instruction budget of metering: none of them
 * enabled; the bounds are the module's, the same for every instance of
 * the set); the exception is the instance's. The bytes of the operand
 * stack are not cleared: host memory that no wasm code can address, only
 * overwritten by later frames.
 *
 * _new returns NULL on failure, with the reason in err (if err_size > 0):
 * no module set, WAMR's instantiation error, or no memory for the
 * environment. The instance belongs to the caller until
 * cowmem_wamr_instance_free (NULL ignored), which deinstantiates it; no
 * call may be running on its environment then. Free every instance before
 * cowmem_wamr_module_free. */
#define COWMEM_WAMR_ENV_CACHE 16
typedef struct cowmem_wamr_instance_s cowmem_wamr_instance_t;
cowmem_wamr_instance_t* cowmem_wamr_instance_new(const cowmem_wamr_module_t* m,
                                                 uint32_t stack_size, uint32_t heap_size,
                                                 char* err, uint32_t err_size);
/* The module instance and its execution environment (borrowed). */
wasm_module_inst_t cowmem_wamr_instance_inst(const cowmem_wamr_instance_t* x);
wasm_exec_env_t cowmem_wamr_instance_exec_env(const cowmem_wamr_instance_t* x);
void cowmem_wamr_instance_free(cowmem_wamr_instance_t* x);

/* Counters (relaxed; for tests and demos): allocations and grows since the
 * process started; frees and live are the pool's metrics (releases and
 * slots in use of the pool now: 0 without one). */
typedef struct cowmem_wamr_counters_s {
  uint64_t image_allocs;   /* linear memories of a module set */
  uint64_t plain_allocs;   /* linear memories with no module set (zeros) */
  uint64_t refused_allocs; /* linear-memory allocations that failed */
  uint64_t grows, frees;
  uint64_t live;         /* linear memories alive */
  uint64_t envs_created; /* by cowmem_wamr_instance_new: environments made */
  uint64_t envs_reused;  /* and taken from a module set's cache */
} cowmem_wamr_counters_t;
void cowmem_wamr_counters(cowmem_wamr_counters_t* out);

#ifdef __cplusplus
}
#endif
#endif /* COWMEM_WAMR_H */
