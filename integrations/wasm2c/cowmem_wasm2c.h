/* cowmem_wasm2c.h: cowmem as the memory provider of wasm2c-compiled modules,
 * without patching wasm2c or its output. One set of sources serves two
 * runtime ABIs, chosen by the wasm-rt.h it is compiled against (see
 * COWMEM_W2C_ABI below): wabt 1.0.32 (Debian bookworm) and wabt >= 1.0.37
 * (64-bit page counts, memory64, custom page sizes, shared memories).
 *
 * The integration defines __wrap_wasm_rt_allocate_memory,
 * __wrap_wasm_rt_grow_memory and __wrap_wasm_rt_free_memory (and, for
 * >= 1.0.37, their _shared versions); a program links it together with the
 * runtime's library (traps, signal handler) and -Wl,--wrap=... for each
 * (the CMake targets made by cowmem_wasm2c_provider() carry these flags),
 * so every call the generated code makes reaches the wrappers.
 *
 * The recipe for a module (cowmem_wasm2c_module() in CMake does it):
 *   1. `cowmem strip` the module: segments that an image covers are removed
 *      (or become empty passive segments when code names segments by
 *      index), so wasm2c's init_memories copies nothing;
 *   2. wasm2c the stripped module and compile it;
 *   3. `cowmem compile` the ORIGINAL module into an image file; at run
 *      time open it once (cowmem_w2c_module_open_images; or build the
 *      images from the original .wasm: cowmem_w2c_module_open) and
 *      instantiate with COWMEM_W2C_NEW(module, <name>, &instance), which
 *      checks that the set is <name>'s (its SHA-256, compiled in by
 *      cowmem_wasm2c_module() as COWMEM_W2C_ID(<name>)).
 *   COWMEM_W2C_FN(<name>, free)(&instance) gives the memory back to the pool.
 *
 * Memories: each memory the generated code allocates is a slot of one
 * process-wide pool of COWMEM_WASM32_SLOT_RESERVE + COWMEM_WASM32_GUARD_SIZE
 * bytes (4 GiB + 4 GiB, cowmem.h), with its image mapped copy-on-write.
 *   - 32-bit memories with 64 KiB pages: generated code has no bounds
 *     checks (guard pages, the default on 64-bit hosts): it forms data + u32
 *     address + u32 offset, up to 8 GiB past data, and relies on every such
 *     address being PROT_NONE memory of this instance beyond the accessible
 *     size, so that the access faults with SEGV_ACCERR, which the stock
 *     handler turns into WASM_RT_TRAP_OOB. A slot and the guard after it
 *     are exactly those 8 GiB; a smaller stride would let an access land in
 *     the next slot's accessible pages.
 *   - memory64 memories (>= 1.0.37): the generated code bounds-checks every
 *     access against `size`; the slot is their reservation, so they grow
 *     in place up to 4 GiB (their maximum, or the slot: a grow beyond the
 *     slot fails, as memory.grow may). An initial size beyond the slot is
 *     refused when the module is loaded.
 *   - shared memories (>= 1.0.37, wasm_rt_allocate_memory_shared): as the
 *     unshared memory of the same kind, their grow under the memory's lock;
 *     the slot never moves, so threads keep their pointers.
 *   - custom page sizes: refused (COWMEM_EUNSUPPORTED) when the module is
 *     loaded: cowmem's front end reads 64 KiB pages only, so it can build
 *     no image for them.
 *   - memories whose data cowmem cannot turn into an image keep their
 *     segments in the stripped module and wasm2c copies them, onto zeros.
 * With wabt 1.0.32, memory64 and shared memories are refused when the
 * module or its image file is loaded (its wasm_rt_memory_t has 32-bit sizes
 * and no shared flag).
 *
 * wasm_rt_allocate_memory cannot fail to its caller (the stock runtime
 * aborts when mmap fails): when every slot is taken (max_memories alive at
 * once), the limits do not match the module set, or the set was refused
 * (cowmem_w2c_begin_id) and the module is instantiated anyway, the process
 * aborts with a message on stderr.
 *
 * wasm_rt_free_memory and wasm_rt_grow_memory abort with a message naming
 * the pointers when given a memory whose data lies in the pool but is not
 * that struct's live memory: a double free, an interior pointer, a slot no
 * instance holds, or a stale copy of a wasm_rt_memory_t whose slot now
 * serves another instance (the struct a memory was allocated into is the
 * one that grows and frees it: do not move an instance). The stock free
 * would unmap part of the pool; the pool would hand another instance's
 * slot to the next tenant.
 *
 * Memories allocated while no module is set (cowmem_w2c_begin) go to the
 * stock runtime unchanged: an unstripped module compiled by wasm2c runs in
 * the same process as before. A STRIPPED module instantiated without its
 * module set would start from zeros: always instantiate it through
 * COWMEM_W2C_INSTANTIATE / COWMEM_W2C_NEW.
 *
 * Thread safety: init and shutdown once, from one thread. begin/end and the
 * instantiate macros act on the calling thread only (the module to map is
 * a thread-local), so threads may instantiate at once; allocate, grow and
 * free are thread-safe. With wabt 1.0.32 the stock runtime's trap buffer is
 * one global: only one thread at a time may run wasm code that can trap;
 * >= 1.0.37 keeps it per thread (call wasm_rt_init_thread in each thread:
 * COWMEM_W2C_THREAD_INIT).
 */
#ifndef COWMEM_WASM2C_H
#define COWMEM_WASM2C_H

#include <stddef.h>
#include <stdint.h>

#include <cowmem.h>

#include "cowmem_integ.h"
#include "wasm-rt.h"

/* The runtime ABI, from the wasm-rt.h this is compiled against: 1.0.37
 * introduced WASM_DEFAULT_PAGE_SIZE together with the page_size argument
 * (64-bit counts and is64 came in 1.0.33); 1.0.32 has neither and decides
 * bounds checks with WASM_RT_MEMCHECK_SIGNAL_HANDLER. */
#if defined(WASM_DEFAULT_PAGE_SIZE)
#define COWMEM_W2C_ABI 1037
#elif defined(WASM_RT_MEMCHECK_SIGNAL_HANDLER) && !defined(WASM_RT_MEMCHECK_GUARD_PAGES)
#define COWMEM_W2C_ABI 1032
#else
#error "cowmem_wasm2c: this wasm-rt.h is neither wabt 1.0.32's nor >= 1.0.37's"
#endif

/* The generated names: wabt 1.0.32 makes Z_<mod>_instance_t,
 * Z_<mod>_instantiate, Z_<mod>_free, Z_<mod>Z_<export> and needs
 * Z_<mod>_init_module(); later versions make w2c_<mod>,
 * wasm2c_<mod>_instantiate, wasm2c_<mod>_free, w2c_<mod>_<export>. */
#if COWMEM_W2C_ABI >= 1037
#define COWMEM_W2C_INSTANCE(mod) w2c_##mod
#define COWMEM_W2C_FN(mod, what) wasm2c_##mod##_##what
#define COWMEM_W2C_EXPORT(mod, name) w2c_##mod##_##name
#define COWMEM_W2C_INIT_MODULE(mod) ((void)0)
#define COWMEM_W2C_THREAD_INIT() wasm_rt_init_thread()
#define COWMEM_W2C_THREAD_FREE() wasm_rt_free_thread()
#else
#define COWMEM_W2C_INSTANCE(mod) Z_##mod##_instance_t
#define COWMEM_W2C_FN(mod, what) Z_##mod##_##what
#define COWMEM_W2C_EXPORT(mod, name) Z_##mod##Z_##name
#define COWMEM_W2C_INIT_MODULE(mod) Z_##mod##_init_module()
#define COWMEM_W2C_THREAD_INIT() ((void)0)
#define COWMEM_W2C_THREAD_FREE() ((void)0)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The pool's configuration: the common layer's (cowmem_integ.h), with the
 * same fields and defaults for every runtime integration. */
#define COWMEM_W2C_CONFIG_VERSION COWMEM_INTEG_CONFIG_VERSION
typedef cowmem_integ_config_t cowmem_w2c_config_t;

void cowmem_w2c_config_init(cowmem_w2c_config_t* cfg);

/* Create the process's pool. Optional: the first cowmem memory creates it
 * with the defaults. Errors: ESTATE (already created), EINVAL (max_memories
 * outside 1..2^20, or a field cowmem_pool_new refuses), ENOMEM (diag, if
 * not NULL, says which field or why). */
int cowmem_w2c_init(const cowmem_w2c_config_t* cfg, cowmem_diag_t* diag);
/* Free the pool. Errors: EBUSY while a cowmem memory is alive (nothing is
 * freed). Afterwards init may be called again. */
int cowmem_w2c_shutdown(void);
/* The pool (NULL before init), for metrics and trim. */
cowmem_pool_t* cowmem_w2c_pool(void);

/* A module's memory images, built from the ORIGINAL (unstripped) module. */
typedef struct cowmem_w2c_module_s cowmem_w2c_module_t;

/* Parse a module and build its images. Errors: those of
 * cowmem_module_parse (with *diag), EUNSUPPORTED for what this ABI cannot
 * serve (diag->reason says which memory and why: see the top of this file),
 * EINVAL, ENOMEM. */
int cowmem_w2c_module_new(const void* wasm, size_t len, cowmem_w2c_module_t** out,
                          cowmem_diag_t* diag);
/* The same from a file; also ENOENT, EIO and the errors of open/read. */
int cowmem_w2c_module_open(const char* wasm_path, cowmem_w2c_module_t** out,
                           cowmem_diag_t* diag);
/* The same from the image file `cowmem compile` wrote for the module
 * (.cwimg): the images map the file (shared page cache across processes),
 * and only its header is read. module_hash (SHA-256 of the original
 * module's bytes) is checked against the file's when not NULL. Errors:
 * those of cowmem_imgfile_open_hash (with *diag), EUNSUPPORTED as above,
 * and the errors of open. */
int cowmem_w2c_module_open_images(const char* cwimg_path, const uint8_t module_hash[32],
                                  cowmem_w2c_module_t** out, cowmem_diag_t* diag);
/* Free the module. Memories alive keep the images they map. NULL ignored. */
void cowmem_w2c_module_free(cowmem_w2c_module_t* m);
/* The module's memories, imported ones included, in index order (imports
 * first), as cowmem_wamr_module_memories counts them: what the module
 * declares, whoever allocates each (the generated code allocates the
 * defined ones, the host the imported ones: cowmem_w2c_module_imports
 * counts those). */
uint32_t cowmem_w2c_module_memories(const cowmem_w2c_module_t* m);
/* The image of memory i in that order (borrowed; NULL: zeros or none, or
 * an imported memory compiled without --fresh-imports). */
cowmem_image_t* cowmem_w2c_module_image(const cowmem_w2c_module_t* m, uint32_t i);
/* Imported memories (the first ones of cowmem_w2c_module_memories), and
 * the image of imported memory i (cowmem_w2c_module_image(m, i)). */
uint32_t cowmem_w2c_module_imports(const cowmem_w2c_module_t* m);
cowmem_image_t* cowmem_w2c_module_import_image(const cowmem_w2c_module_t* m, uint32_t i);

/* Imported memories (emscripten's -sIMPORTED_MEMORY, pthread builds): the
 * generated code asks the host for each imported memory (1.0.32:
 * Z_<module>Z_<name>(instance) returning a wasm_rt_memory_t*; later:
 * w2c_<module>_<name>(instance)) and applies the module's active segments
 * to it at instantiation. A host that gives every instance a FRESH memory
 * of the declared limits (what emscripten's loader does) can take it from
 * the pool instead, with the module's image for it already mapped:
 *
 *   cowmem_w2c_import_memory(m, 0, &env.memory);   // before instantiate
 *   COWMEM_W2C_NEW(m, mymod, &inst, &env);         // env hands &env.memory
 *   ...
 *   COWMEM_W2C_FN(mymod, free)(&inst);
 *   wasm_rt_free_memory(&env.memory);              // the slot goes back
 *
 * Build the module with cowmem_wasm2c_module(... FRESH_IMPORTS) (`cowmem
 * strip --fresh-imports` and `cowmem compile --fresh-imports`): the
 * stripped module then applies nothing to the imported memory, whose
 * bytes the image already holds. (Stripped without it, the module applies
 * its segments over the image: the same bytes, written again.)
 *
 * Fill *out with imported memory `import` (0: the module's first imported
 * memory) in a slot of the pool: its declared minimum, the image mapped,
 * its maximum (or what wasm2c passes without one) for grow. The stock
 * wasm_rt_free_memory (the wrapper) gives it back; wasm_rt_grow_memory
 * grows it in its slot. Errors: EINVAL (NULL, no such import, or a shared
 * memory: use cowmem_w2c_import_memory_shared), EUNSUPPORTED (a kind this
 * runtime ABI cannot hold: see the top of this file), EEXHAUSTED (every
 * slot taken), and the errors of creating the pool; *out is unchanged on
 * error. Thread-safe. */
int cowmem_w2c_import_memory(const cowmem_w2c_module_t* m, uint32_t import,
                             wasm_rt_memory_t* out);
#if COWMEM_W2C_ABI >= 1037 && defined(WASM_RT_C11_AVAILABLE)
/* The same for an imported shared memory (pthread builds); freed by
 * wasm_rt_free_memory_shared. EINVAL for an unshared one. */
int cowmem_w2c_import_memory_shared(const cowmem_w2c_module_t* m, uint32_t import,
                                    wasm_rt_shared_memory_t* out);
#endif

/* Map m's images into the memories the calling thread allocates until
 * cowmem_w2c_end: the k-th wasm_rt_allocate_memory gets defined memory k
 * (imported memories are the host's: see cowmem_w2c_import_memory).
 * Its limits must be the module's (else the process aborts with a message:
 * the wrong module was set). begin does not know which module is being
 * instantiated: another module with the same limits is not caught and
 * would map m's images. COWMEM_W2C_NEW (cowmem_w2c_begin_id) catches it.
 * m must stay valid until cowmem_w2c_end.
 * An instantiation can trap (a data segment that cowmem left in the
 * module because it does not fit the memory, an element segment out of
 * bounds): the trap path (after wasm_rt_impl_try returns the trap) must
 * call cowmem_w2c_end, then Z_<name>_free to give the memories back, as
 * the stock runtime needs Z_<name>_free to unmap them. A begin without end
 * is superseded by the next begin. */
void cowmem_w2c_begin(const cowmem_w2c_module_t* m);
/* begin, for the module whose identity is id (COWMEM_W2C_ID(<name>): the
 * SHA-256 of the original module), checked against the one m records (the
 * hash in its image file, or that of the .wasm it was built from).
 * Returns 0, or, with nothing mapped:
 *   COWMEM_EMISMATCH  m belongs to another module (or, opened from an image
 *                     file that records no module hash, to none);
 *   COWMEM_EINVAL     m or id is NULL.
 * After an error the calling thread is still in the set, refused: do not
 * instantiate, call cowmem_w2c_end (which returns the same error). A
 * memory allocated anyway aborts the process with a message naming both
 * modules (wasm_rt_allocate_memory cannot fail), rather than map m's
 * images into another module. The check compares 32 bytes: no lock, no
 * system call. */
int cowmem_w2c_begin_id(const cowmem_w2c_module_t* m, const uint8_t id[32]);
/* Stop mapping for this thread. Returns 0, the error of a refused
 * cowmem_w2c_begin_id, or COWMEM_ESTATE when the number of memories
 * allocated since begin is not the module's number of defined memories
 * (the instantiate function does not belong to m). */
int cowmem_w2c_end(void);

/* The identity of wasm2c module <name> (a const uint8_t[32]: the SHA-256
 * of the original .wasm), which cowmem_wasm2c_module() compiles into the
 * module's library. A program that runs wasm2c itself defines
 *   const uint8_t cowmem_w2c_id_<name>[32] = {...};
 * with that hash (e.g. from `sha256sum <name>.wasm`), or uses
 * COWMEM_W2C_INSTANTIATE. COWMEM_W2C_DECLARE_ID(<name>); declares it, for
 * a caller of cowmem_w2c_begin_id (COWMEM_W2C_NEW declares it itself). */
#define COWMEM_W2C_ID(mod) cowmem_w2c_id_##mod
#define COWMEM_W2C_DECLARE_ID(mod) extern const uint8_t COWMEM_W2C_ID(mod)[32]

/* Instantiate module <mod> (the name given to wasm2c) inside module set m:
 * COWMEM_W2C_NEW(m, mymod, &inst, imports...) calls Z_mymod_instantiate
 * (1.0.32) or wasm2c_mymod_instantiate (>= 1.0.37) between
 * cowmem_w2c_begin_id(m, COWMEM_W2C_ID(mymod)) and cowmem_w2c_end, and
 * evaluates to what end returns: 0, or COWMEM_EMISMATCH (m is not mymod's
 * set: the instance is not instantiated, nothing to free), COWMEM_EINVAL
 * (m is NULL), COWMEM_ESTATE (see cowmem_w2c_end). A GNU C statement
 * expression (gcc, clang), declaring COWMEM_W2C_ID(mod) at block scope. */
#define COWMEM_W2C_NEW(m, mod, ...)                                                      \
  __extension__({                                                                        \
    COWMEM_W2C_DECLARE_ID(mod);                                                          \
    if (cowmem_w2c_begin_id((m), COWMEM_W2C_ID(mod)) == 0)                               \
      COWMEM_W2C_FN(mod, instantiate)(__VA_ARGS__);                                      \
    cowmem_w2c_end();                                                                    \
  })
/* instantiate_fn(instance, imports...) with m's images, for an instantiate
 * function without an identity: only the limits are checked (see
 * cowmem_w2c_begin). Evaluates to cowmem_w2c_end(). */
#define COWMEM_W2C_INSTANTIATE(m, instantiate_fn, ...)                                   \
  (cowmem_w2c_begin(m), instantiate_fn(__VA_ARGS__), cowmem_w2c_end())

/* The runtime ABI the library was compiled for (COWMEM_W2C_ABI); a program
 * compiled against the same wasm-rt.h sees the same number. */
int cowmem_w2c_abi(void);

/* Counters (relaxed; for tests and demos): allocations and grows since the
 * process started; cowmem_frees and live are the pool's metrics (releases
 * and slots in use of the pool now: 0 without one). */
typedef struct cowmem_w2c_counters_s {
  uint64_t cowmem_allocs, cowmem_grows, cowmem_frees;
  uint64_t stock_allocs, stock_grows, stock_frees;
  uint64_t live; /* cowmem memories alive */
} cowmem_w2c_counters_t;
void cowmem_w2c_counters(cowmem_w2c_counters_t* out);

#ifdef __cplusplus
}
#endif
#endif /* COWMEM_WASM2C_H */
