/* cowmem_wamr_wasi.h: WASI preview 1 programs through cowmem_wamr, with a
 * runtime built by cowmem_wamr_runtime(... WASI) (WAMR_BUILD_LIBC_WASI=1).
 *
 * Per instance, the host chooses argv, the environment, the preopened
 * directories and the three standard streams (any fd: a file, a pipe, a
 * socket, or a memory buffer made with cowmem_wamr_wasi_buffer_fd), so a
 * request loop feeds each request to a fresh instance and reads its answer:
 *
 *   cowmem_wamr_wasi_t w;
 *   cowmem_wamr_wasi_init(&w);
 *   w.argv = argv; w.argc = 2;            // argv[0] is the program's name
 *   w.map_dirs = maps; w.map_dir_count = 1; // "guest::host"
 *   cowmem_wamr_wasi_buffer_fd("request", 7, &w.stdin_fd);
 *   cowmem_wamr_wasi_buffer_fd(NULL, 0, &w.stdout_fd);
 *   wasm_module_inst_t inst;
 *   cowmem_wamr_wasi_instantiate(m, &w, 64 << 10, 0, &inst, &diag);
 *   int code;
 *   cowmem_wamr_wasi_run_main(inst, &code, &diag);  // a command: _start
 *   cowmem_wamr_wasi_read_fd(w.stdout_fd, buf, sizeof buf, &len);
 *   wasm_runtime_deinstantiate(inst);     // the slot goes back to the pool
 *
 * Commands export _start: cowmem_wamr_wasi_run_main runs it and gives the
 * exit code (proc_exit's, or 0 when _start returns). Reactors export
 * _initialize: WAMR calls it while instantiating, so after
 * cowmem_wamr_wasi_instantiate the instance is ready for its exports
 * (wasm_runtime_call_wasm, or cowmem_wamr_wasi_call with text arguments).
 *
 * What the next instance sees: its memory is the module's image and zeros
 * (the slot was reset), its fd table holds only what its own arguments
 * give. Files a program writes in a preopened directory stay there: a host
 * that must keep requests apart gives each its own directory.
 *
 * The standard streams are borrowed: WAMR never closes them, and the caller
 * closes them after the instance is gone. heap_size 0 (what iwasm uses with
 * WASI) adds no WAMR app heap to the memory: wasi-libc has its own malloc.
 *
 * Thread safety: WAMR keeps WASI arguments on the module until an
 * instantiation copies them; cowmem_wamr_wasi_instantiate therefore holds a
 * process-wide lock while it sets them and instantiates. run_main and call
 * act on one instance, from one thread at a time.
 */
#ifndef COWMEM_WAMR_WASI_H
#define COWMEM_WAMR_WASI_H

#include <stddef.h>
#include <stdint.h>

#include "cowmem_wamr.h"

#ifdef __cplusplus
extern "C" {
#endif

#define COWMEM_WAMR_WASI_VERSION 1
typedef struct cowmem_wamr_wasi_s {
  uint32_t version;          /* set by cowmem_wamr_wasi_init */
  char* const* argv;         /* argc strings, argv[0] the program's name */
  int argc;                  /* 0 */
  const char* const* env;    /* env_count "KEY=value" strings */
  uint32_t env_count;        /* 0 */
  const char* const* dirs;   /* host directories, preopened as named */
  uint32_t dir_count;        /* 0 */
  const char* const* map_dirs; /* "guest::host": host dir seen as guest */
  uint32_t map_dir_count;    /* 0 */
  int stdin_fd, stdout_fd, stderr_fd; /* -1: the process's own (default) */
} cowmem_wamr_wasi_t;

void cowmem_wamr_wasi_init(cowmem_wamr_wasi_t* w);

/* Check w and set it as the WASI arguments of `module` (a WAMR module of
 * the runtime this file is linked with), which keeps pointers into w until
 * cowmem_wamr_wasi_clear. Errors (*diag says which argument and why; the
 * module's arguments are then left as they were): EINVAL (w not made by
 * cowmem_wamr_wasi_init, a NULL string, an environment entry that is not
 * KEY=value, a map that is not guest::host, a path to preopen that is not
 * a directory), ENOENT or EACCES (a directory to preopen that cannot be
 * reached), EBADF (a stream fd that is not open). */
int cowmem_wamr_wasi_set(wasm_module_t module, const cowmem_wamr_wasi_t* w,
                         cowmem_diag_t* diag);
/* Forget module's WASI arguments (none, default streams). */
void cowmem_wamr_wasi_clear(wasm_module_t module);

/* set + cowmem_wamr_instantiate + clear, under the lock: a fresh instance of
 * m with w's arguments (*out on success). Errors: those of set; ENOMEM or
 * EINVALID when WAMR fails to instantiate (diag->reason holds WAMR's
 * message, e.g. a preopen that disappeared, an import it lacks). */
int cowmem_wamr_wasi_instantiate(const cowmem_wamr_module_t* m,
                                 const cowmem_wamr_wasi_t* w, uint32_t stack_size,
                                 uint32_t heap_size, wasm_module_inst_t* out,
                                 cowmem_diag_t* diag);

/* The same, as an instance with its execution environment
 * (cowmem_wamr_instance_new: the environment comes from m's cache), for
 * request loops: *out on success, freed with cowmem_wamr_instance_free.
 * Errors as cowmem_wamr_wasi_instantiate's (ENOMEM also when no
 * environment could be made). */
int cowmem_wamr_wasi_instance_new(const cowmem_wamr_module_t* m,
                                  const cowmem_wamr_wasi_t* w, uint32_t stack_size,
                                  uint32_t heap_size, cowmem_wamr_instance_t** out,
                                  cowmem_diag_t* diag);
/* run_main and call on the instance x's own environment, where run_main
 * and call use one WAMR creates on the instance's first such call and
 * destroys with it: a command's _start, or an export that takes no
 * arguments and returns nothing or up to 8 i32 and i64 values (printed as
 * call prints them). Anything else (no _start, text arguments to parse,
 * other results) runs as run_main and call run it. Same results and
 * errors as theirs. */
int cowmem_wamr_wasi_instance_run_main(const cowmem_wamr_instance_t* x, int* exit_code,
                                       cowmem_diag_t* diag);
int cowmem_wamr_wasi_instance_call(const cowmem_wamr_instance_t* x, const char* name,
                                   int argc, char* argv[], int* exit_code,
                                   cowmem_diag_t* diag);

/* Run a command's _start (or main, as wasm_application_execute_main
 * does) with the argv the instance was given. 0 with *exit_code the
 * program's (proc_exit's argument, 0 when _start returned); EINVALID when
 * it trapped or has no entry point (diag->reason: WAMR's exception, as
 * iwasm prints it). The instance cannot run again after proc_exit. */
int cowmem_wamr_wasi_run_main(wasm_module_inst_t inst, int* exit_code,
                              cowmem_diag_t* diag);
/* Call export `name` with argc text arguments (iwasm -f: numbers parsed by
 * the export's parameter types; the results are printed to the process's
 * stdout by WAMR as iwasm does). 0, *exit_code as for run_main (0 if the
 * call returned). EINVALID after a trap or for a missing export. */
int cowmem_wamr_wasi_call(wasm_module_inst_t inst, const char* name, int argc,
                          char* argv[], int* exit_code, cowmem_diag_t* diag);

/* A memory buffer as an fd (a memfd): holds len bytes of data (NULL with
 * 0: empty), positioned at 0, for stdin; or empty, for stdout/stderr.
 * *fd on success; the caller closes it. ENOMEM, EMFILE... */
int cowmem_wamr_wasi_buffer_fd(const void* data, size_t len, int* fd);
/* Read what fd holds from offset 0 (not moving its position): up to cap
 * bytes into buf, *len the bytes read; *total (if not NULL) the fd's size,
 * so total > cap says the buffer was too small. */
int cowmem_wamr_wasi_read_fd(int fd, void* buf, size_t cap, size_t* len, size_t* total);
/* Truncate a buffer fd to empty and rewind it, for the next request. */
int cowmem_wamr_wasi_reset_fd(int fd);

#ifdef __cplusplus
}
#endif
#endif /* COWMEM_WAMR_WASI_H */
