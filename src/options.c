/* Options: defaults from the table in cowmem.h, each overridable once by the
 * environment variable COWMEM_<NAME>, and by cowmem_option_set. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

typedef struct {
  const char* name;
  long def;
} option_desc_t;

static const option_desc_t option_descs[COWMEM_OPTION_COUNT_] = {
#define COWMEM__OPT_DESC(name, def, doc) {#name, def},
    COWMEM_OPTIONS(COWMEM__OPT_DESC)
#undef COWMEM__OPT_DESC
};

static _Atomic long option_values[COWMEM_OPTION_COUNT_];
static _Atomic int option_state[COWMEM_OPTION_COUNT_]; /* 0 unread, 1 set */

static long option_from_env(cowmem_option_t opt) {
  char var[64];
  snprintf(var, sizeof var, "COWMEM_%s", option_descs[opt].name);
  const char* s = getenv(var);
  if (s == NULL || *s == '\0') return option_descs[opt].def;
  char* end = NULL;
  long v = strtol(s, &end, 0);
  if (end == s) return option_descs[opt].def;
  return v;
}

/* The first read of an option, apart: every reset reads one, and with the
 * environment's parsing inlined each read saved and restored six
 * registers. */
static __attribute__((noinline)) void option_first_read(cowmem_option_t opt) {
  long v = option_from_env(opt);
  int expected = 0;
  /* First reader publishes the environment's value; a racing set wins. */
  atomic_store_explicit(&option_values[opt], v, memory_order_relaxed);
  atomic_compare_exchange_strong(&option_state[opt], &expected, 1);
}

long cowmem_option_get(cowmem_option_t opt) {
  if ((unsigned)opt >= COWMEM_OPTION_COUNT_) return 0;
  if (atomic_load_explicit(&option_state[opt], memory_order_acquire) == 0)
    option_first_read(opt);
  return atomic_load_explicit(&option_values[opt], memory_order_relaxed);
}

void cowmem_option_set(cowmem_option_t opt, long value) {
  if ((unsigned)opt >= COWMEM_OPTION_COUNT_) return;
  atomic_store_explicit(&option_values[opt], value, memory_order_relaxed);
  atomic_store_explicit(&option_state[opt], 1, memory_order_release);
}

const char* cowmem_option_name(cowmem_option_t opt) {
  if ((unsigned)opt >= COWMEM_OPTION_COUNT_) return "UNKNOWN";
  return option_descs[opt].name;
}

void cowmem__verbose(const char* fmt, ...) {
  if (cowmem_option_get(COWMEM_OPTION_VERBOSE) == 0) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("cowmem: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
