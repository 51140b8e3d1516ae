/* wasm_check: what cowmem makes of one .wasm file, as one JSON object on
 * stdout. Used by the conformance and real-module drivers (tests/conformance).
 *
 *   wasm_check [-f flags] [-d dir] [-g value]... [-m pages[:max]]... file
 *
 * -f   cowmem_module_parse flags (decimal)
 * -g   type:mut:value, imported global i (in import order) as supplied:
 *      type a value type byte (0x7f...), mut 0/1, value an integer or (for
 *      f32/f64) a float, or @bits: the value's bits as an integer
 * -m   the current size (and maximum) of imported memory i
 * -d   dump each defined memory's initial bytes, up to its last non-zero
 *      byte, to dir/mem<index>.bin
 * -f 256 (COWMEM_MODULE_FRESH_IMPORTS): imported memories without -i start
 *      as zeros of the -m size with their image, and are dumped
 * -i   k:path, the current bytes of imported memory k: the fallback writes
 *      into a copy of them, which is dumped too (also when instantiation
 *      traps: the writes made before the trap remain). Imports given the
 *      same path are one memory imported twice: they share the copy
 * With imports given (or none needed), it also runs the instantiation check
 * and the fallback, and reports "inst".
 *
 *   wasm_check -b [REQUESTS RESPONSES]
 *
 * Batch: one check per line of REQUESTS (standard input without it), its
 * arguments separated by tabs, one JSON line each on RESPONSES (standard
 * output without it), flushed after each. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cowmem.h"

#define MAX_IMPORTS 64
#define DUMP_MAX ((uint64_t)1 << 30)

static void json_str(const char* s, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static uint8_t* read_file(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  uint8_t* buf = malloc(cap);
  size_t k;
  while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
    n += k;
    if (n == cap) {
      uint8_t* nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

static uint64_t global_bits(uint8_t type, const char* text) {
  union { float f; uint32_t u; } f32;
  union { double d; uint64_t u; } f64;
  if (text[0] == '@') return strtoull(text + 1, NULL, 0);
  switch (type) {
    case COWMEM_TYPE_F32: f32.f = strtof(text, NULL); return f32.u;
    case COWMEM_TYPE_F64: f64.d = strtod(text, NULL); return f64.u;
    case COWMEM_TYPE_I32: return (uint32_t)strtoll(text, NULL, 0);
    default: return (uint64_t)strtoll(text, NULL, 0);
  }
}

static int dump(const char* dir, uint32_t idx, const uint8_t* mem,
                uint64_t size, uint64_t* dumped) {
  uint64_t n = size;
  while (n > 0 && mem[n - 1] == 0) n--;
  char path[4096];
  snprintf(path, sizeof path, "%s/mem%u.bin", dir, idx);
  FILE* f = fopen(path, "wb");
  if (!f) return -1;
  if (n && fwrite(mem, 1, (size_t)n, f) != n) n = 0;
  fclose(f);
  *dumped = n;
  return 0;
}

/* One check: argv as the command line's (argv[0] unused). Returns the exit
 * status: 0 when a JSON object was printed, 2 on a usage or file error. */
static int check(int argc, char** argv) {
  unsigned flags = 0;
  const char* dir = NULL;
  const char* gtext[MAX_IMPORTS];
  cowmem_memory_desc_t mdesc[MAX_IMPORTS];
  const char* init[MAX_IMPORTS] = {0};
  size_t ng = 0, nm = 0;
  int i = 1;
  memset(mdesc, 0, sizeof mdesc);
  for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
    if (!strcmp(argv[i], "-f")) flags = (unsigned)strtoul(argv[i + 1], 0, 0);
    else if (!strcmp(argv[i], "-d")) dir = argv[i + 1];
    else if (!strcmp(argv[i], "-g") && ng < MAX_IMPORTS) gtext[ng++] = argv[i + 1];
    else if (!strcmp(argv[i], "-i")) {
      char* end;
      unsigned long k = strtoul(argv[i + 1], &end, 0);
      if (*end == ':' && k < MAX_IMPORTS) init[k] = end + 1;
    } else if (!strcmp(argv[i], "-m") && nm < MAX_IMPORTS) {
      char* end;
      mdesc[nm].pages = strtoull(argv[i + 1], &end, 0);
      if (*end == ':') {
        mdesc[nm].has_max = true;
        mdesc[nm].max_pages = strtoull(end + 1, NULL, 0);
      }
      nm++;
    }
  }
  if (i != argc - 1) {
    fprintf(stderr, "usage: wasm_check [-f flags] [-d dir] [-g v]... [-m p[:max]]... file\n");
    return 2;
  }
  size_t len = 0;
  uint8_t* bytes = read_file(argv[i], &len);
  if (!bytes) {
    fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
    return 2;
  }
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  int err = cowmem_module_parse(bytes, len, flags, &m, &d);
  printf("{\"parse\":\"%s\",\"reason\":", err ? cowmem_err_name(err) : "OK");
  json_str(err ? d.reason : "", strlen(err ? d.reason : ""));
  printf(",\"offset\":%" PRIu64, err ? d.offset : 0);
  if (err) {
    printf("}\n");
    free(bytes);
    return 0;
  }
  uint32_t func = 0;
  printf(",\"start\":%s", cowmem_module_start(m, &func) ? "true" : "false");
  printf(",\"sections\":[");
  for (uint32_t k = 0; k < cowmem_module_section_count(m); k++) {
    cowmem_section_info_t s;
    cowmem_module_section_info(m, k, &s);
    printf("%s[%u,%" PRIu64 ",%" PRIu64 "]", k ? "," : "", s.id,
           s.payload_offset, s.payload_len);
  }
  printf("]");

  printf(",\"globals\":[");
  for (uint32_t k = 0; k < cowmem_module_global_count(m); k++) {
    cowmem_global_info_t g;
    cowmem_module_global_info(m, k, &g);
    printf("%s{\"type\":%u,\"mut\":%d,\"imported\":%s,\"init\":%d,"
           "\"value\":\"%" PRIu64 "\",\"global\":%u,\"module\":", k ? "," : "",
           g.type, g.is_mutable, g.imported ? "true" : "false", (int)g.init,
           g.value, g.global);
    json_str(g.import_module ? g.import_module : "", g.import_module_len);
    printf(",\"name\":");
    json_str(g.import_name ? g.import_name : "", g.import_name_len);
    printf("}");
  }
  printf("],\"exports\":[");
  for (uint32_t k = 0; k < cowmem_module_export_count(m); k++) {
    cowmem_export_info_t e;
    cowmem_module_export_info(m, k, &e);
    printf("%s{\"kind\":%d,\"index\":%u,\"name\":", k ? "," : "", (int)e.kind,
           e.index);
    json_str(e.name, e.name_len);
    printf("}");
  }
  printf("]");

  uint32_t nmem = cowmem_module_memory_count(m);
  uint32_t ig = cowmem_module_import_count(m, COWMEM_EXTERN_GLOBAL);
  uint32_t im = cowmem_module_import_count(m, COWMEM_EXTERN_MEMORY);
  cowmem_global_value_t gv[MAX_IMPORTS];
  bool have_imports = ng == ig && nm == im && ig <= MAX_IMPORTS;
  uint8_t** mem = calloc(nmem ? nmem : 1, sizeof *mem);
  uint64_t* size = calloc(nmem ? nmem : 1, sizeof *size);
  bool* alias = calloc(nmem ? nmem : 1, sizeof *alias);
  if (!mem || !size || !alias) {
    free(mem);
    free(size);
    free(alias);
    cowmem_module_free(m);
    free(bytes);
    return 2;
  }
  if (have_imports) {
    for (uint32_t k = 0; k < ig; k++) {
      cowmem_global_info_t g;
      cowmem_module_global_info(m, k, &g);
      char* end;
      (void)g;
      gv[k].type = (uint8_t)strtoul(gtext[k], &end, 0);
      gv[k].is_mutable = *end == ':' && end[1] == '1';
      const char* v = strchr(end + 1, ':');
      gv[k].bits = global_bits(gv[k].type, v ? v + 1 : "0");
    }
    for (uint32_t k = 0; k < im; k++) {
      cowmem_memory_info_t mi;
      cowmem_module_memory_info(m, k, &mi);
      mdesc[k].memory64 = mi.memory64;
      mdesc[k].shared = mi.shared;
    }
    err = cowmem_module_instantiate_check(m, mdesc, im, gv, ig, &d);
    if (err == 0 || err == COWMEM_EOOB) {
      /* The fallback, for memories without an image: a buffer each. */
      cowmem_memory_view_t* views = calloc(nmem ? nmem : 1, sizeof *views);
      for (uint32_t k = 0; views && k < nmem; k++) {
        cowmem_memory_info_t mi;
        cowmem_diag_t why;
        cowmem_image_t* img;
        cowmem_module_memory_info(m, k, &mi);
        img = cowmem_image_retain(cowmem_module_image(m, k, &why));
        size[k] = k < im ? mdesc[k].pages * 65536 : mi.min_pages * 65536;
        views[k].size = size[k];
        uint32_t same = 0;
        while (k < im && init[k] && same < k && !(init[same] && !strcmp(init[same], init[k])))
          same++;
        if (k < im && init[k] && same < k) {
          mem[k] = mem[same];
          views[k].base = mem[k];
          alias[k] = true;
        } else if (k < im && init[k] && size[k] <= DUMP_MAX) {
          size_t n = 0;
          uint8_t* b = read_file(init[k], &n);
          mem[k] = calloc(1, size[k] ? (size_t)size[k] : 1);
          if (b && mem[k]) memcpy(mem[k], b, n < size[k] ? n : (size_t)size[k]);
          views[k].base = mem[k];
          free(b);
        }
        /* A defined memory, or an imported one parsed with fresh imports
         * (-f 256) and no -i: zeros of the size given, then its image. */
        if ((k >= im || (mi.fresh && !init[k])) && size[k] <= DUMP_MAX) {
          mem[k] = calloc(1, size[k] ? (size_t)size[k] : 1);
          if (why.noimage != COWMEM_NOIMAGE_NONE) views[k].base = mem[k];
          else if (img) {
            cowmem_image_info_t ii;
            cowmem_image_info(img, &ii);
            uint64_t end = ii.mem_offset + ii.len;
            if (end > size[k]) end = size[k];
            if (end > ii.mem_offset)
              cowmem_image_read(img, ii.mem_offset, mem[k] + ii.mem_offset,
                                (size_t)(end - ii.mem_offset));
          }
        }
        cowmem_image_release(img);
      }
      err = views ? cowmem_module_apply(m, 0, views, nmem, gv, ig, COWMEM_APPLY_SKIP_COVERED, &d)
                  : COWMEM_ENOMEM;
      free(views);
    }
    printf(",\"inst\":\"%s\",\"inst_reason\":", err ? cowmem_err_name(err) : "OK");
    json_str(err ? d.reason : "", strlen(err ? d.reason : ""));
  }

  printf(",\"memories\":[");
  for (uint32_t k = 0; k < nmem; k++) {
    cowmem_memory_info_t mi;
    cowmem_diag_t why;
    cowmem_image_t* img;
    cowmem_module_memory_info(m, k, &mi);
    img = cowmem_image_retain(cowmem_module_image(m, k, &why));
    const char* text = why.reason;
    printf("%s{\"imported\":%s,\"fresh\":%s,\"min\":%" PRIu64 ",\"max\":%" PRId64
           ",\"mem64\":%s,\"why\":%d,\"image\":%s,\"module\":",
           k ? "," : "", mi.imported ? "true" : "false", mi.fresh ? "true" : "false",
           mi.min_pages,
           mi.has_max ? (int64_t)mi.max_pages : (int64_t)-1,
           mi.memory64 ? "true" : "false", (int)why.noimage, img ? "true" : "false");
    json_str(mi.import_module ? mi.import_module : "", mi.import_module_len);
    printf(",\"name\":");
    json_str(mi.import_name ? mi.import_name : "", mi.import_name_len);
    printf(",\"whytext\":");
    json_str(text, strlen(text));
    printf(",\"exports\":[");
    int first = 1;
    for (uint32_t e = 0; e < cowmem_module_export_count(m); e++) {
      cowmem_export_info_t ei;
      cowmem_module_export_info(m, e, &ei);
      if (ei.kind != COWMEM_EXTERN_MEMORY || ei.index != k) continue;
      if (!first) putchar(',');
      first = 0;
      json_str(ei.name, ei.name_len);
    }
    printf("]");
    uint64_t dumped = 0;
    if (dir && have_imports && mem[k] &&
        ((err == 0 && (k >= im || mi.export_count || mi.fresh)) || (k < im && init[k])) &&
        dump(dir, k, mem[k], size[k], &dumped) == 0)
      printf(",\"dump\":\"%s/mem%u.bin\",\"dumplen\":%" PRIu64
             ",\"size\":%" PRIu64, dir, k, dumped, size[k]);
    printf("}");
    cowmem_image_release(img);
  }
  printf("]}\n");
  for (uint32_t k = 0; k < nmem; k++)
    if (!alias[k]) free(mem[k]);
  free(alias);
  free(mem);
  free(size);
  cowmem_module_free(m);
  free(bytes);
  return 0;
}

/* -b: many checks in one process (a driver that runs thousands saves a
 * process start each, which under ASan is most of a check's time). Each
 * line read is one check's arguments separated by tabs; each check prints
 * its object on one line, or {"error":2} when its arguments or file were
 * bad (the reason on stderr). Ends at end of input. */
static int batch(FILE* in) {
  char* line = NULL;
  size_t cap = 0;
  ssize_t n;
  int status = 0;
  while ((n = getline(&line, &cap, in)) >= 0) {
    char* args[4 * MAX_IMPORTS + 8];
    int argc = 0;
    char* p = line;
    if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
    args[argc++] = "wasm_check";
    while (p && argc < (int)(sizeof args / sizeof *args)) {
      args[argc++] = p;
      p = strchr(p, '\t');
      if (p) *p++ = 0;
    }
    if (p) fprintf(stderr, "wasm_check -b: more than %d arguments\n", argc - 1);
    if (p || check(argc, args) != 0) printf("{\"error\":2}\n");
    if (fflush(stdout) != 0) {
      status = 1;
      break;
    }
  }
  free(line);
  return status;
}

int main(int argc, char** argv) {
  if (argc == 2 && !strcmp(argv[1], "-b")) return batch(stdin);
  if (argc == 4 && !strcmp(argv[1], "-b")) {
    /* -b REQUESTS RESPONSES: named pipes (a driver that reads replies
     * synchronously cannot use its child's stdio). */
    FILE* in = fopen(argv[2], "r");
    if (!in || !freopen(argv[3], "w", stdout)) {
      fprintf(stderr, "wasm_check -b: %s\n", strerror(errno));
      if (in) fclose(in);
      return 2;
    }
    int r = batch(in);
    fclose(in);
    return r;
  }
  return check(argc, argv);
}
