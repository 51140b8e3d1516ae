/* reactor.c: a small WASI reactor for the tests (-mexec-model=reactor):
 * its constructor runs in _initialize, which WAMR calls at instantiation;
 * its exports then see what it set up. */
#include <stdio.h>
#include <string.h>

static int g_ready;     /* set by the constructor */
static int g_calls;     /* calls since instantiation */
static char g_table[64] = "initial data segment";

__attribute__((constructor)) static void setup(void) {
  g_ready = 42;
}

__attribute__((export_name("ready"))) int ready(void) {
  return g_ready;
}

/* Counts its calls: a fresh instance starts again at 1. */
__attribute__((export_name("add"))) int add(int a, int b) {
  return a + b + 1000 * ++g_calls;
}

/* Prints through WASI, then scribbles over its data segment. */
__attribute__((export_name("hello"))) int hello(void) {
  printf("hello from the reactor: %s\n", g_table);
  fflush(stdout);
  strcpy(g_table, "scribbled");
  return (int)strlen(g_table);
}
