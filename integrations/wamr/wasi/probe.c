/* probe.c: a small WASI command for the tests (built with clang-14
 * --target=wasm32-wasi). Its first argument chooses what it does; every
 * output is deterministic, so runs through different runtimes compare
 * byte for byte.
 *   args ...          print argc and each argument
 *   env NAME...       print each variable (or "NAME unset")
 *   cat               copy stdin to stdout, then print the byte count
 *   write PATH TEXT   write TEXT into PATH (created or truncated)
 *   read PATH         print PATH's contents, or why it cannot be opened
 *   ls DIR            print DIR's entries, sorted
 *   exit N            exit with status N (proc_exit)
 *   trap              execute unreachable
 *   secret PATH       report whether a static buffer and PATH are clean,
 *                     then leave a secret in both
 *   grow N            allocate and touch N MiB, print a checksum */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_secret[4096]; /* zero in every fresh instance */

static int cmp(const void* a, const void* b) {
  return strcmp(*(char* const*)a, *(char* const*)b);
}

static int list(const char* dir) {
  DIR* d = opendir(dir);
  if (!d) {
    printf("opendir %s: %s\n", dir, strerror(errno));
    return 1;
  }
  char* names[256];
  int n = 0;
  struct dirent* e;
  while ((e = readdir(d)) && n < 256)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], cmp);
  for (int i = 0; i < n; i++) {
    printf("%s\n", names[i]);
    free(names[i]);
  }
  return 0;
}

static int read_file(const char* path) {
  FILE* f = fopen(path, "r");
  if (!f) {
    printf("open %s: %s\n", path, strerror(errno));
    return 1;
  }
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
  fclose(f);
  return 0;
}

static int write_file(const char* path, const char* text) {
  FILE* f = fopen(path, "w");
  if (!f) {
    printf("create %s: %s\n", path, strerror(errno));
    return 1;
  }
  fputs(text, f);
  fclose(f);
  printf("wrote %zu bytes to %s\n", strlen(text), path);
  return 0;
}

static int secret(const char* path) {
  int dirty = 0;
  for (size_t i = 0; i < sizeof g_secret; i++) dirty |= g_secret[i];
  printf("memory %s\n", dirty ? "HOLDS A SECRET" : "clean");
  FILE* f = fopen(path, "r");
  printf("file %s\n", f ? "HOLDS A SECRET" : "absent");
  if (f) fclose(f);
  strcpy(g_secret, "the previous request's secret");
  f = fopen(path, "w");
  if (f) {
    fputs(g_secret, f);
    fclose(f);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    printf("usage: probe args|env|cat|write|read|ls|exit|trap|secret|grow ...\n");
    return 2;
  }
  const char* mode = argv[1];
  if (!strcmp(mode, "args")) {
    printf("argc %d\n", argc);
    for (int i = 1; i < argc; i++) printf("argv[%d] %s\n", i, argv[i]);
  } else if (!strcmp(mode, "env")) {
    for (int i = 2; i < argc; i++) {
      const char* v = getenv(argv[i]);
      if (v)
        printf("%s=%s\n", argv[i], v);
      else
        printf("%s unset\n", argv[i]);
    }
  } else if (!strcmp(mode, "cat")) {
    char buf[1024];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
      fwrite(buf, 1, n, stdout);
      total += n;
    }
    printf("\n%zu bytes\n", total);
  } else if (!strcmp(mode, "write") && argc == 4) {
    return write_file(argv[2], argv[3]);
  } else if (!strcmp(mode, "read") && argc == 3) {
    return read_file(argv[2]);
  } else if (!strcmp(mode, "ls") && argc == 3) {
    return list(argv[2]);
  } else if (!strcmp(mode, "exit") && argc == 3) {
    fflush(stdout);
    exit(atoi(argv[2]));
  } else if (!strcmp(mode, "trap")) {
    printf("about to trap\n");
    fflush(stdout);
    __builtin_trap();
  } else if (!strcmp(mode, "secret") && argc == 3) {
    return secret(argv[2]);
  } else if (!strcmp(mode, "grow") && argc == 3) {
    size_t n = (size_t)atoi(argv[2]) << 20;
    unsigned char* p = malloc(n);
    if (!p) {
      printf("out of memory\n");
      return 3;
    }
    unsigned sum = 0;
    for (size_t i = 0; i < n; i += 4096) p[i] = (unsigned char)(i >> 12), sum += p[i];
    printf("grew %s MiB, sum %u\n", argv[2], sum);
    free(p);
  } else {
    printf("unknown mode %s\n", mode);
    return 2;
  }
  return 0;
}
