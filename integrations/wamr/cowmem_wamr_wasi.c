/* cowmem_wamr_wasi.c: WASI arguments, commands and reactors for instances
 * of cowmem_wamr (see cowmem_wamr_wasi.h for the contract).
 *
 * Compiled a second time with WAMR_API_STOCK for programs that compare
 * with the stock runtime in the same process (wamr_wasi_stock.h renames
 * both WAMR's functions and this file's runtime-facing ones); what needs
 * cowmem (instantiate) or no runtime (the buffer fds) is built once.
 */
#define _GNU_SOURCE /* memfd_create */
#ifdef WAMR_API_STOCK
#include "wamr_wasi_stock.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cowmem_wamr_wasi.h"

static int fail(cowmem_diag_t* diag, int code, const char* fmt, const char* what,
                const char* why) {
  if (diag) {
    memset(diag, 0, sizeof *diag);
    diag->code = code;
    snprintf(diag->reason, sizeof diag->reason, fmt, what, why);
  }
  return code;
}

#ifndef WAMR_API_STOCK
void cowmem_wamr_wasi_init(cowmem_wamr_wasi_t* w) {
  memset(w, 0, sizeof *w);
  w->version = COWMEM_WAMR_WASI_VERSION;
  w->stdin_fd = w->stdout_fd = w->stderr_fd = -1;
}
#endif

/* A directory to preopen: WAMR would fail the instantiation with a bare
 * errno number; say which directory and why before that. */
static int check_dir(const char* path, const char* arg, cowmem_diag_t* diag) {
  struct stat st;
  if (stat(path, &st) != 0)
    return fail(diag, errno == ENOENT ? COWMEM_ENOENT : COWMEM_EACCES,
                "cannot preopen directory %s: %s", arg, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return fail(diag, COWMEM_EINVAL, "cannot preopen %s: %s", arg, "not a directory");
  return 0;
}

static int check_args(const cowmem_wamr_wasi_t* w, cowmem_diag_t* diag) {
  if (!w || w->version != COWMEM_WAMR_WASI_VERSION || w->argc < 0)
    return fail(diag, COWMEM_EINVAL, "%s%s", "WASI arguments not set up by ",
                "cowmem_wamr_wasi_init");
  for (int i = 0; i < w->argc; i++)
    if (!w->argv || !w->argv[i]) return fail(diag, COWMEM_EINVAL, "%s%s", "argv[i] ", "is NULL");
  for (uint32_t i = 0; i < w->env_count; i++) {
    const char* e = w->env ? w->env[i] : NULL;
    if (!e || e[0] == '=' || !strchr(e, '='))
      return fail(diag, COWMEM_EINVAL, "environment entry \"%s\": %s", e ? e : "(null)",
                  "expected KEY=value");
  }
  for (uint32_t i = 0; i < w->dir_count; i++) {
    const char* d = w->dirs ? w->dirs[i] : NULL;
    if (!d) return fail(diag, COWMEM_EINVAL, "%s%s", "dirs[i] ", "is NULL");
    int r = check_dir(d, d, diag);
    if (r) return r;
  }
  for (uint32_t i = 0; i < w->map_dir_count; i++) {
    const char* m = w->map_dirs ? w->map_dirs[i] : NULL;
    const char* sep = m ? strstr(m, "::") : NULL;
    if (!sep || sep == m || !sep[2])
      return fail(diag, COWMEM_EINVAL, "mapped directory \"%s\": %s", m ? m : "(null)",
                  "expected guest::host");
    int r = check_dir(sep + 2, m, diag);
    if (r) return r;
  }
  int fds[3] = {w->stdin_fd, w->stdout_fd, w->stderr_fd};
  static const char* names[3] = {"stdin", "stdout", "stderr"};
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0 && fcntl(fds[i], F_GETFD) < 0)
      return fail(diag, COWMEM_EBADF, "%s fd: %s", names[i], strerror(errno));
  return 0;
}

int cowmem_wamr_wasi_set(wasm_module_t module, const cowmem_wamr_wasi_t* w,
                         cowmem_diag_t* diag) {
  if (!module) return fail(diag, COWMEM_EINVAL, "%s%s", "no module", "");
  int r = check_args(w, diag);
  if (r) return r;
  /* WAMR's prototype is not const-correct; it only reads the strings. */
  wasm_runtime_set_wasi_args_ex(module, (const char**)w->dirs, w->dir_count,
                                (const char**)w->map_dirs, w->map_dir_count,
                                (const char**)w->env, w->env_count, (char**)w->argv,
                                w->argc, w->stdin_fd, w->stdout_fd, w->stderr_fd);
  return 0;
}

void cowmem_wamr_wasi_clear(wasm_module_t module) {
  if (module)
    wasm_runtime_set_wasi_args_ex(module, NULL, 0, NULL, 0, NULL, 0, NULL, 0, -1, -1, -1);
}

/* After a run: 0 and the exit code, or the trap as EINVALID. WAMR turns
 * proc_exit into an exception it clears again ("wasi proc exit"). */
static int outcome(wasm_module_inst_t inst, int* exit_code, cowmem_diag_t* diag) {
  const char* e = wasm_runtime_get_exception(inst);
  if (e && e[0]) return fail(diag, COWMEM_EINVALID, "%s%s", e, "");
  if (exit_code) *exit_code = (int)wasm_runtime_get_wasi_exit_code(inst);
  return 0;
}

int cowmem_wamr_wasi_run_main(wasm_module_inst_t inst, int* exit_code,
                              cowmem_diag_t* diag) {
  if (!inst) return fail(diag, COWMEM_EINVAL, "%s%s", "no instance", "");
  /* argc/argv are for modules without WASI; a WASI program reads the
   * arguments given at instantiation. */
  wasm_application_execute_main(inst, 0, NULL);
  return outcome(inst, exit_code, diag);
}

int cowmem_wamr_wasi_call(wasm_module_inst_t inst, const char* name, int argc,
                          char* argv[], int* exit_code, cowmem_diag_t* diag) {
  if (!inst || !name || argc < 0 || (argc > 0 && !argv))
    return fail(diag, COWMEM_EINVAL, "%s%s", "no instance or function name", "");
  wasm_application_execute_func(inst, name, argc, argv);
  return outcome(inst, exit_code, diag);
}

#ifndef WAMR_API_STOCK
/* WAMR keeps the arguments on the module: one instantiation at a time sets
 * and consumes them. */
static pthread_mutex_t g_args_lock = PTHREAD_MUTEX_INITIALIZER;

/* An instance of m with w's arguments, made by one of the two (the other
 * NULL) into *inst or *x. */
static int wasi_make(const cowmem_wamr_module_t* m, const cowmem_wamr_wasi_t* w,
                     uint32_t stack_size, uint32_t heap_size, wasm_module_inst_t* inst,
                     cowmem_wamr_instance_t** x, cowmem_diag_t* diag) {
  if (!m || !(inst || x))
    return fail(diag, COWMEM_EINVAL, "%s%s", "no module set or output", "");
  wasm_module_t mod = cowmem_wamr_module_wamr(m);
  char err[128] = "";
  pthread_mutex_lock(&g_args_lock);
  int r = cowmem_wamr_wasi_set(mod, w, diag);
  wasm_module_inst_t made = NULL;
  cowmem_wamr_instance_t* made_x = NULL;
  if (r == 0) {
    if (inst)
      made = cowmem_wamr_instantiate(m, stack_size, heap_size, err, sizeof err);
    else
      made_x = cowmem_wamr_instance_new(m, stack_size, heap_size, err, sizeof err);
    cowmem_wamr_wasi_clear(mod);
  }
  pthread_mutex_unlock(&g_args_lock);
  if (r) return r;
  if (!made && !made_x)
    return fail(diag,
                strstr(err, "alloc") || strstr(err, "no memory") ? COWMEM_ENOMEM
                                                                  : COWMEM_EINVALID,
                "instantiation failed: %s%s", err[0] ? err : "(no message)", "");
  if (inst)
    *inst = made;
  else
    *x = made_x;
  return 0;
}

int cowmem_wamr_wasi_instantiate(const cowmem_wamr_module_t* m,
                                 const cowmem_wamr_wasi_t* w, uint32_t stack_size,
                                 uint32_t heap_size, wasm_module_inst_t* out,
                                 cowmem_diag_t* diag) {
  return wasi_make(m, w, stack_size, heap_size, out, NULL, diag);
}

int cowmem_wamr_wasi_instance_new(const cowmem_wamr_module_t* m,
                                  const cowmem_wamr_wasi_t* w, uint32_t stack_size,
                                  uint32_t heap_size, cowmem_wamr_instance_t** out,
                                  cowmem_diag_t* diag) {
  return wasi_make(m, w, stack_size, heap_size, NULL, out, diag);
}

/* A run of _start that ended in proc_exit: WAMR reports it as an exception
 * its own run_main clears again, as here. */
static void clear_proc_exit(wasm_module_inst_t inst) {
  const char* e = wasm_runtime_get_exception(inst);
  if (e && strstr(e, "wasi proc exit")) wasm_runtime_clear_exception(inst);
}

int cowmem_wamr_wasi_instance_run_main(const cowmem_wamr_instance_t* x, int* exit_code,
                                       cowmem_diag_t* diag) {
  wasm_module_inst_t inst = cowmem_wamr_instance_inst(x);
  wasm_function_inst_t start = inst ? wasm_runtime_lookup_wasi_start_function(inst) : NULL;
  if (!start) return cowmem_wamr_wasi_run_main(inst, exit_code, diag);
  if (!wasm_runtime_call_wasm(cowmem_wamr_instance_exec_env(x), start, 0, NULL))
    clear_proc_exit(inst);
  return outcome(inst, exit_code, diag);
}

/* Results a call on the instance's environment prints, as WAMR's does. */
enum { CALL_RESULTS_MAX = 8 };

int cowmem_wamr_wasi_instance_call(const cowmem_wamr_instance_t* x, const char* name,
                                   int argc, char* argv[], int* exit_code,
                                   cowmem_diag_t* diag) {
  wasm_module_inst_t inst = cowmem_wamr_instance_inst(x);
  wasm_function_inst_t f = inst && name ? wasm_runtime_lookup_function(inst, name) : NULL;
  uint32_t nres = f ? wasm_func_get_result_count(f, inst) : 0;
  wasm_valkind_t kinds[CALL_RESULTS_MAX];
  bool simple = f && argc == 0 && wasm_func_get_param_count(f, inst) == 0 &&
                nres <= CALL_RESULTS_MAX;
  if (simple) wasm_func_get_result_types(f, inst, kinds);
  for (uint32_t i = 0; simple && i < nres; i++)
    simple = kinds[i] == WASM_I32 || kinds[i] == WASM_I64;
  if (!simple) return cowmem_wamr_wasi_call(inst, name, argc, argv, exit_code, diag);
  wasm_val_t res[CALL_RESULTS_MAX];
  wasm_runtime_clear_exception(inst); /* as WAMR's call does first */
  if (wasm_runtime_call_wasm_a(cowmem_wamr_instance_exec_env(x), f, nres, res, 0, NULL)) {
    for (uint32_t i = 0; i < nres; i++) {
      if (i > 0) putchar(',');
      if (kinds[i] == WASM_I32)
        printf("0x%" PRIx32 ":i32", (uint32_t)res[i].of.i32);
      else
        printf("0x%" PRIx64 ":i64", (uint64_t)res[i].of.i64);
    }
    putchar('\n');
  }
  return outcome(inst, exit_code, diag);
}

int cowmem_wamr_wasi_buffer_fd(const void* data, size_t len, int* fd) {
  if (!fd || (len && !data)) return COWMEM_EINVAL;
  int f = memfd_create("cowmem-wasi-stream", MFD_CLOEXEC);
  if (f < 0) return -errno;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(f, (const char*)data + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? -errno : COWMEM_EIO;
      close(f);
      return e;
    }
    done += (size_t)n;
  }
  if (lseek(f, 0, SEEK_SET) < 0) {
    int e = -errno;
    close(f);
    return e;
  }
  *fd = f;
  return 0;
}

int cowmem_wamr_wasi_read_fd(int fd, void* buf, size_t cap, size_t* len, size_t* total) {
  struct stat st;
  if (!len || (cap && !buf)) return COWMEM_EINVAL;
  if (fstat(fd, &st) != 0) return -errno;
  size_t done = 0;
  while (done < cap) {
    ssize_t n = pread(fd, (char*)buf + done, cap - done, (off_t)done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    done += (size_t)n;
  }
  *len = done;
  if (total) *total = (size_t)st.st_size;
  return 0;
}

int cowmem_wamr_wasi_reset_fd(int fd) {
  if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) < 0) return -errno;
  return 0;
}
#endif
