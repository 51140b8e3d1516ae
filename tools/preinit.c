/* cowmem preinit in.wasm -o out.wasm [-f NAME] [-r dst=src]...
 *   [--keep-init-func] [--images out.cwimg] [--fresh-imports]
 *   [--allow-wasi [--dir D]... [--map-dir G::H]... [--env K=V]...]
 * Validate, instrument, run the initialization in WAMR, rewrite from what
 * it left (cowmem_wamr_preinit.h). Outputs are written to temporaries
 * beside their targets and renamed only when everything succeeded. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowmem_wamr_preinit.h"
#include "tools.h"

#define MAX_RENAMES 64
#define MAX_WASI_ARGS 64 /* --dir, --map-dir, --env each */

static void help(FILE* f) {
  fprintf(f,
          "Usage: cowmem preinit MODULE.wasm -o OUT.wasm [-f NAME] [-r DST=SRC]...\n"
          "                      [--keep-init-func] [--images OUT.cwimg]\n"
          "                      [--allow-wasi [--dir D] [--map-dir G::H] [--env K=V]]\n"
          "\n"
          "Pre-initialize a module (as Wizer does): instantiate it once in WAMR's\n"
          "interpreter, call its _initialize export (if any) and then its init\n"
          "function, and write a module that starts from the state they left:\n"
          "memories grown to their size and holding their bytes, mutable\n"
          "globals set to their values, the start function and the init\n"
          "exports gone. Without --allow-wasi no import is provided: an init\n"
          "that calls an imported function fails, naming it.\n"
          "\n"
          "Options:\n"
          "  -o FILE             the pre-initialized module (required)\n"
          "  -f, --init-func NAME  the init function's export (default\n"
          "                      wizer-initialize, else wizer.initialize)\n"
          "  -r, --rename-func DST=SRC  export the function SRC as DST instead\n"
          "                      (replacing an export DST); repeatable\n"
          "  --keep-init-func    keep exporting the init function\n"
          "  --images FILE       write the memories' state as an image file\n"
          "                      (.cwimg) for cowmem's runtimes, and leave it out\n"
          "                      of OUT.wasm (which then starts from zeros on\n"
          "                      memory not from cowmem)\n"
          "  --allow-wasi        provide WASI preview 1 to the initialization (the\n"
          "                      process's stdin, stdout and stderr; no directory\n"
          "                      or variable unless given); other imports still\n"
          "                      fail. Files it opens are not in the output: only\n"
          "                      memories and globals are\n"
          "  --dir DIR           with --allow-wasi: preopen DIR (repeatable)\n"
          "  --map-dir G::H      with --allow-wasi: preopen host H as G (repeatable)\n"
          "  --env KEY=VALUE     with --allow-wasi: an environment variable\n"
          "                      (repeatable)\n");
  fputs(TOOL_FRESH_HELP
        "                   (pre-initialized: the output's instances need a\n"
        "                   fresh memory too)\n"
        "  --help           this text\n"
        "\n"
        "Refused, with the byte offset and the reason: what the output could\n"
        "not carry (table changes, dropped segments, imported globals or\n"
        "tables, imported memories without --fresh-imports, mutable\n"
        "reference globals).\n",
        f);
}

typedef struct args_s {
  const char* in;
  const char* out;
  const char* images;
  const char* func;
  const char* renames[MAX_RENAMES];
  size_t nrenames;
  unsigned flags;      /* cowmem_module_parse */
  unsigned rw_flags;   /* cowmem_preinit_flag_t */
  bool allow_wasi;
  const char* dirs[MAX_WASI_ARGS];
  const char* maps[MAX_WASI_ARGS];
  const char* envs[MAX_WASI_ARGS];
  uint32_t ndirs, nmaps, nenvs;
} args_t;

/* Append a repeatable option's value: 1, or the usage exit code negated
 * minus one (tool_more_opt_fn's convention). */
static int push(const char** list, uint32_t* n, const char* v, const char* opt) {
  if (!v || !*v) return -tool_usage("%s needs a value", opt) - 1;
  if (*n == MAX_WASI_ARGS) return -tool_usage("more than %d %s", MAX_WASI_ARGS, opt) - 1;
  list[(*n)++] = v;
  return 1;
}

/* The options beyond input, -o and --fresh-imports (tool_more_opt_fn). */
static int more_opt(void* ctx, int argc, char** argv, int* i) {
  args_t* a = ctx;
  const char* v = NULL;
  if (tool_opt_value(argc, argv, i, "-f", &v) ||
      tool_opt_value(argc, argv, i, "--init-func", &v)) {
    if (!v || !*v) return -tool_usage("-f needs an export name") - 1;
    a->func = v;
  } else if (tool_opt_value(argc, argv, i, "-r", &v) ||
             tool_opt_value(argc, argv, i, "--rename-func", &v)) {
    if (!v || !strchr(v, '=')) return -tool_usage("-r needs DST=SRC") - 1;
    if (a->nrenames == MAX_RENAMES)
      return -tool_usage("more than %d renames", MAX_RENAMES) - 1;
    a->renames[a->nrenames++] = v;
  } else if (tool_opt_value(argc, argv, i, "--images", &v)) {
    if (!v) return -tool_usage("--images needs a file name") - 1;
    a->images = v;
    a->rw_flags |= COWMEM_PREINIT_IMAGES;
  } else if (strcmp(argv[*i], "--keep-init-func") == 0) {
    a->rw_flags |= COWMEM_PREINIT_KEEP_INIT_FUNC;
  } else if (strcmp(argv[*i], "--allow-wasi") == 0) {
    a->allow_wasi = true;
  } else if (tool_opt_value(argc, argv, i, "--dir", &v)) {
    return push(a->dirs, &a->ndirs, v, "--dir");
  } else if (tool_opt_value(argc, argv, i, "--map-dir", &v)) {
    return push(a->maps, &a->nmaps, v, "--map-dir");
  } else if (tool_opt_value(argc, argv, i, "--env", &v)) {
    return push(a->envs, &a->nenvs, v, "--env");
  } else {
    return 0;
  }
  return 1;
}

/* -1 when *a is complete, else the exit code. */
static int parse_args(int argc, char** argv, args_t* a) {
  memset(a, 0, sizeof *a);
  int r = tool_args_in_out_more(argc, argv, help, &a->in, &a->out, &a->flags, more_opt, a);
  if (r >= 0) return r;
  if (a->images && strcmp(a->images, a->out) == 0)
    return tool_usage("--images and -o name the same file");
  if (!a->allow_wasi && a->ndirs + a->nmaps + a->nenvs > 0)
    return tool_usage("--dir, --map-dir and --env need --allow-wasi");
  return -1;
}

/* Write the outputs: the module and (with --images) the image file, to
 * temporaries renamed over the targets only when both are complete. */
static int preinit_to_files(const args_t* a, const cowmem_module_t* m,
                            const cowmem_wamr_preinit_t* o) {
  char img_tmp[PATH_MAX] = "";
  int img_fd = -1, rc = EXIT_OK;
  if (a->images && (img_fd = tool_tmp_beside(a->images, img_tmp, sizeof img_tmp)) < 0)
    return tool_fail(a->images, "%s", strerror(errno));
  uint8_t* out = NULL;
  size_t out_len = 0;
  char err[768];
  cowmem_wamr_preinit_result_t res;
  int r = cowmem_wamr_preinit(m, o, &out, &out_len, img_fd, &res, err, sizeof err);
  if (img_fd >= 0 && close(img_fd) != 0 && r == 0) {
    r = -errno;
    snprintf(err, sizeof err, "%s: %s", a->images, strerror(errno));
  }
  if (r != 0) {
    rc = tool_fail(a->in, "%s", err);
  } else if (tool_write_atomic(a->out, out, out_len) != 0) {
    rc = tool_fail(a->out, "%s", strerror(errno));
  } else if (a->images && rename(img_tmp, a->images) != 0) {
    rc = tool_fail(a->images, "%s", strerror(errno));
    unlink(a->out); /* no module without its images */
  } else {
    img_tmp[0] = 0;
    printf("%s: %u memories, %u globals pre-initialized by '%s', %zu bytes%s%s\n", a->out,
           res.memories, res.globals, res.init_func, out_len,
           a->images ? "; images: " : "", a->images ? a->images : "");
  }
  if (img_tmp[0]) unlink(img_tmp);
  free(out);
  return rc;
}

int cmd_preinit(int argc, char** argv) {
  args_t a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  cowmem_module_t* m = tool_load_module(a.in, a.flags);
  if (!m) return EXIT_RUNTIME;
  if (!cowmem_wamr_runtime_init(NULL)) {
    cowmem_module_free(m);
    return tool_fail(a.in, "WAMR's runtime did not initialize");
  }
  cowmem_wamr_wasi_t w;
  cowmem_wamr_wasi_init(&w);
  w.dirs = a.dirs;
  w.dir_count = a.ndirs;
  w.map_dirs = a.maps;
  w.map_dir_count = a.nmaps;
  w.env = a.envs;
  w.env_count = a.nenvs;
  cowmem_wamr_preinit_t o;
  cowmem_wamr_preinit_init(&o);
  o.init_func = a.func;
  o.flags = a.rw_flags;
  o.renames = a.renames;
  o.nrenames = a.nrenames;
  o.wasi = a.allow_wasi ? &w : NULL;
  rc = preinit_to_files(&a, m, &o);
  wasm_runtime_destroy();
  cowmem_module_free(m);
  return rc;
}
