/* Process-wide statistics: the OS layer's system call counters and the
 * core's own counters, read and printed in one place. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

_Atomic uint64_t cowmem__stat_images_live;
_Atomic uint64_t cowmem__stat_image_copies;

size_t cowmem_page_size(void) { return cowmem__os_page_size(); }

void cowmem_stats_get(cowmem_stats_t* out) {
  if (out == NULL) return;
  memset(out, 0, sizeof *out);
  out->version = COWMEM_STATS_VERSION;
#define COWMEM__STAT_READ(name)                                                \
  out->sys_##name = cowmem__os_counter(COWMEM__OS_##name);                     \
  out->syscalls_total += out->sys_##name;
  COWMEM_SYSCALLS(COWMEM__STAT_READ)
#undef COWMEM__STAT_READ
  out->images_live = atomic_load(&cowmem__stat_images_live);
  out->image_copies = atomic_load(&cowmem__stat_image_copies);
}

static void stats_to_stderr(const char* line, void* arg) {
  (void)arg;
  fputs(line, stderr);
}

void cowmem_stats_print(void (*out)(const char* line, void* arg), void* arg) {
  if (out == NULL) out = stats_to_stderr;
  cowmem_stats_t s;
  cowmem_stats_get(&s);
  char line[96];
#define COWMEM__STAT_PRINT(name)                                               \
  snprintf(line, sizeof line, "%-18s %12llu\n", "sys." #name,                  \
           (unsigned long long)s.sys_##name);                                  \
  out(line, arg);
  COWMEM_SYSCALLS(COWMEM__STAT_PRINT)
#undef COWMEM__STAT_PRINT
  snprintf(line, sizeof line, "%-18s %12llu\n", "syscalls.total",
           (unsigned long long)s.syscalls_total);
  out(line, arg);
  snprintf(line, sizeof line, "%-18s %12llu\n", "images.live",
           (unsigned long long)s.images_live);
  out(line, arg);
  snprintf(line, sizeof line, "%-18s %12llu\n", "images.copies",
           (unsigned long long)s.image_copies);
  out(line, arg);
}
