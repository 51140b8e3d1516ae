/* The cowmem command: dispatch to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "tools.h"

static const struct {
  const char* name;
  int (*fn)(int, char**);
  const char* what;
} k_cmds[] = {
    {"inspect", cmd_inspect,
     "memories, segments and image layout of a "
     "module or image file"},
    {"compile", cmd_compile,
     "write a module's precompiled image file "
     "(.cwimg)"},
    {"strip", cmd_strip,
     "rewrite a module without the data its images "
     "hold"},
    {"dump", cmd_dump,
     "write a memory's initial contents as an instance "
     "sees them"},
    {"bench", cmd_bench,
     "instantiate and reset: copy baselines vs cowmem "
     "slot and pool strategies"},
#ifdef COWMEM_TOOL_PREINIT
    {"preinit", cmd_preinit,
     "run a module's initialization once and write "
     "the module that starts from its state"},
#endif
};

static void help(FILE* f) {
  fprintf(f, "Usage: cowmem <command> [options]\n"
             "\n"
             "Copy-on-write initial memory images for WebAssembly runtimes.\n"
             "\n"
             "Commands:\n");
  for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
    fprintf(f, "  %-8s %s\n", k_cmds[i].name, k_cmds[i].what);
  fprintf(f, "\n"
             "'cowmem <command> --help' describes a command.\n"
             "A module that imports its memory: --fresh-imports (inspect, compile,\n"
             "strip, dump) when the host gives each instance a fresh zeroed memory\n"
             "of the declared minimum; imported memories then get images.\n"
             "Exit status: 0 ok, 1 runtime error, 2 usage error.\n");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    help(stderr);
    return EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    help(stdout);
    return EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("cowmem %d.%d.%d (image file format %d)\n", COWMEM_VERSION_MAJOR,
           COWMEM_VERSION_MINOR, COWMEM_VERSION_PATCH, COWMEM_IMGFILE_VERSION);
    return EXIT_OK;
  }
  for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++) {
    if (strcmp(argv[1], k_cmds[i].name) != 0) continue;
    static char name[32];
    snprintf(name, sizeof name, "cowmem %s", k_cmds[i].name);
    tool_cmd = name;
    /* Subcommands see argv[0] = their name, argv[1..] = their arguments. */
    int r = k_cmds[i].fn(argc - 1, argv + 1);
    if (fflush(stdout) != 0 && r == EXIT_OK) {
      perror("cowmem: stdout");
      r = EXIT_RUNTIME;
    }
    return r;
  }
#ifndef COWMEM_TOOL_PREINIT
  if (strcmp(argv[1], "preinit") == 0) {
    fprintf(stderr, "cowmem: 'preinit' is not in this build: it needs a WAMR tree "
                    "(COWMEM_WAMR_DIR) and the examples (COWMEM_BUILD_EXAMPLES)\n");
    return EXIT_USAGE;
  }
#endif
  fprintf(stderr, "cowmem: unknown command '%s'\n", argv[1]);
  help(stderr);
  return EXIT_USAGE;
}
