/* preinit_app.c: a WASI reactor whose init function reads what only
 * `cowmem preinit --allow-wasi` gives it: an environment variable and a
 * file in a preopened directory. `show` prints what it read, so a
 * pre-initialized module run with neither shows what the init saw. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_greeting[64] = "(not initialized)";
static char g_file[128] = "(not initialized)";

__attribute__((export_name("wizer-initialize"))) void init(void) {
  const char* g = getenv("GREETING");
  snprintf(g_greeting, sizeof g_greeting, "%s", g ? g : "(unset)");
  FILE* f = fopen("/data/hello.txt", "r");
  if (!f) {
    snprintf(g_file, sizeof g_file, "(no file)");
    return;
  }
  size_t n = fread(g_file, 1, sizeof g_file - 1, f);
  g_file[n] = 0;
  fclose(f);
}

__attribute__((export_name("show"))) int show(void) {
  printf("greeting=%s file=%s\n", g_greeting, g_file);
  fflush(stdout);
  return 0;
}
