/* cowmem preinit in.wasm -o out.wasm [-f NAME] [-r dst=src]...
 *   [--keep-init-func] [--images out.cwimg] [--fresh-imports]
 * Validate, instrument, run the initialization in WAMR (preinit_run.c),
 * rewrite from what it left. Outputs are written to temporaries beside
 * their targets and renamed only when everything succeeded. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preinit_run.h"
#include "tools.h"

#define MAX_RENAMES 64

static void help(FILE* f) {
  fprintf(f,
          "Usage: cowmem preinit MODULE.wasm -o OUT.wasm [-f NAME] [-r DST=SRC]...\n"
          "                      [--keep-init-func] [--images OUT.cwimg]\n"
          "\n"
          "Pre-initialize a module (as Wizer does): instantiate it once in WAMR's\n"
          "interpreter, call its _initialize export (if any) and then its init\n"
          "function, and write a module that starts from the state they left:\n"
          "memories grown to their size and holding their bytes, mutable\n"
          "globals set to their values, the start function and the init\n"
          "exports gone. No import is provided: an init that calls an imported\n"
          "function fails, naming it.\n"
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
          "                      memory not from cowmem)\n");
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
} args_t;

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
    return -tool_usage("--allow-wasi is not available: this runner provides no "
                       "WASI (every import traps)") - 1;
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
  return -1;
}

/* Is `name` exported as a function? */
static bool exports_func(const cowmem_module_t* m, const char* name) {
  size_t n = strlen(name);
  for (uint32_t i = 0; i < cowmem_module_export_count(m); i++) {
    cowmem_export_info_t e;
    if (cowmem_module_export_info(m, i, &e) == 0 && e.kind == COWMEM_EXTERN_FUNC &&
        e.name_len == n && memcmp(e.name, name, n) == 0)
      return true;
  }
  return false;
}

/* The rewritten module (and image file) from the runner's state, written
 * to temporaries and renamed over the targets. */
static int write_outputs(const char* in, const args_t* a, const cowmem_module_t* m,
                         const preinit_state_t* st, const char* func) {
  cowmem_preinit_options_t opt;
  cowmem_preinit_options_init(&opt);
  opt.flags = a->rw_flags;
  opt.init_func = func;
  opt.renames = a->renames;
  opt.nrenames = a->nrenames;
  cowmem_preinit_snapshot_t snap = {st->memories, st->nmemories, st->globals,
                                    st->nglobals};
  char img_tmp[PATH_MAX] = "";
  int img_fd = -1, rc = EXIT_OK;
  if (a->images && (img_fd = tool_tmp_beside(a->images, img_tmp, sizeof img_tmp)) < 0)
    return tool_fail(a->images, "%s", strerror(errno));
  uint8_t* out = NULL;
  size_t out_len = 0;
  cowmem_diag_t d;
  int r = cowmem_preinit_rewrite(m, &snap, &opt, &out, &out_len, img_fd, &d);
  if (img_fd >= 0 && close(img_fd) != 0 && r == 0) r = -errno;
  if (r != 0) {
    rc = tool_fail(in, "cannot rewrite: %s (%s)", d.reason[0] ? d.reason : "",
                   cowmem_strerror(r));
  } else if (tool_write_atomic(a->out, out, out_len) != 0) {
    rc = tool_fail(a->out, "%s", strerror(errno));
  } else if (a->images && rename(img_tmp, a->images) != 0) {
    rc = tool_fail(a->images, "%s", strerror(errno));
    unlink(a->out); /* no module without its images */
  } else {
    img_tmp[0] = 0;
    printf("%s: %u memories, %u globals pre-initialized, %zu bytes%s%s\n", a->out,
           st->nmemories, st->nglobals, out_len, a->images ? "; images: " : "",
           a->images ? a->images : "");
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
  uint8_t* inst = NULL;
  size_t inst_len = 0;
  preinit_state_t st = {0};
  cowmem_diag_t d;
  const char* func = a.func;
  int r = cowmem_preinit_validate(m, &d);
  if (r != 0) {
    rc = tool_fail(a.in, "cannot pre-initialize: at byte %llu: %s",
                   (unsigned long long)d.offset, d.reason);
    goto done;
  }
  if (!func) {
    func = exports_func(m, COWMEM_PREINIT_DEFAULT_FUNC)       ? COWMEM_PREINIT_DEFAULT_FUNC
           : exports_func(m, COWMEM_PREINIT_DEFAULT_FUNC_ALT) ? COWMEM_PREINIT_DEFAULT_FUNC_ALT
                                                               : NULL;
    if (!func) {
      rc = tool_fail(a.in, "no init function: the module exports neither '%s' nor '%s' "
                     "(name one with -f)", COWMEM_PREINIT_DEFAULT_FUNC,
                     COWMEM_PREINIT_DEFAULT_FUNC_ALT);
      goto done;
    }
  } else if (!exports_func(m, func)) {
    rc = tool_fail(a.in, "the module exports no function '%s' (-f)", func);
    goto done;
  }
  r = cowmem_preinit_instrument(m, &inst, &inst_len, &d);
  if (r != 0) {
    rc = tool_fail(a.in, "cannot instrument: at byte %llu: %s",
                   (unsigned long long)d.offset, d.reason);
    goto done;
  }
  const char* calls[2];
  size_t ncalls = 0;
  if (strcmp(func, "_initialize") != 0 && exports_func(m, "_initialize"))
    calls[ncalls++] = "_initialize";
  calls[ncalls++] = func;
  char err[512];
  r = preinit_run(m, inst, inst_len, calls, ncalls, &st, err, sizeof err);
  if (r != 0) {
    rc = tool_fail(a.in, "initialization failed: %s", err);
    goto done;
  }
  rc = write_outputs(a.in, &a, m, &st, func);
done:
  preinit_state_free(&st);
  free(inst);
  cowmem_module_free(m);
  return rc;
}
