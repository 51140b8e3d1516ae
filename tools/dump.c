/* cowmem dump module.wasm|module.cwimg [--memory I] [--module M]
 *             [--global NAME=VALUE]... -o FILE */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools.h"

static void help(FILE* f) {
  fprintf(f, "Usage: cowmem dump FILE [--memory I] [--global NAME=VALUE]... "
             "-o OUT\n"
             "\n"
             "Write memory I's initial contents exactly as an instance sees\n"
             "them right after instantiation (before any start function): the\n"
             "initial size, the image, and the active segments it does not\n"
             "cover, applied in module order with the spec's semantics. OUT is\n"
             "a sparse file of the initial size; compare it with another\n"
             "runtime's memory. Only the image's data and the segments' ranges\n"
             "are read and written: the rest is holes.\n"
             "\n"
             "With a module, the whole instantiation is checked first (every\n"
             "memory's active segments): if it traps, nothing is written and\n"
             "the trap is named (exit 1).\n"
             "\n"
             "FILE is a module or an image file. An image file alone has no\n"
             "segment bytes: if a memory has segments left, pass --module.\n"
             "\n"
             "Options:\n"
             "  --memory I          memory index (default 0)\n"
             "  --global NAME=VAL   value of imported global NAME (\"field\" or\n"
             "                      \"module.field\"); integers in decimal or\n"
             "                      0x hex, floats for f32/f64. Imported globals\n"
             "                      not given are 0.\n"
             "  --module M.wasm     the module an image file was compiled from\n"
             "  --fresh-imports     an imported memory is a fresh one of its\n"
             "                      declared minimum, all zeros, before the\n"
             "                      module's segments (a new WebAssembly.Memory\n"
             "                      per instance); without it imported memories\n"
             "                      are refused. Image files record it.\n"
             "  -o FILE             output (required)\n"
             "  --help              this text\n");
}

typedef struct {
  const char* name;
  const char* value;
  bool used;
} gopt_t;

static bool name_matches(const char* want, const cowmem_global_info_t* g) {
  size_t n = strlen(want);
  if (n == g->import_name_len && memcmp(want, g->import_name, n) == 0) return true;
  size_t ml = g->import_module_len;
  return n == ml + 1 + g->import_name_len && memcmp(want, g->import_module, ml) == 0 &&
         want[ml] == '.' &&
         memcmp(want + ml + 1, g->import_name, g->import_name_len) == 0;
}

static bool parse_value(const char* s, uint8_t type, uint64_t* bits) {
  char* end = NULL;
  errno = 0;
  if (type == COWMEM_TYPE_F32 || type == COWMEM_TYPE_F64) {
    double d = strtod(s, &end);
    if (!*s || *end || errno) return false;
    if (type == COWMEM_TYPE_F32) {
      float fl = (float)d;
      uint32_t u;
      memcpy(&u, &fl, 4);
      *bits = u;
    } else {
      memcpy(bits, &d, 8);
    }
    return true;
  }
  if (type != COWMEM_TYPE_I32 && type != COWMEM_TYPE_I64) return false;
  if (*s == '-') {
    long long v = strtoll(s, &end, 0);
    if (!*s || *end || errno) return false;
    *bits = type == COWMEM_TYPE_I32 ? (uint32_t)(int32_t)v : (uint64_t)v;
    if (type == COWMEM_TYPE_I32 && v < INT32_MIN) return false;
    return true;
  }
  unsigned long long v = strtoull(s, &end, 0);
  if (!*s || *end || errno) return false;
  if (type == COWMEM_TYPE_I32 && v > UINT32_MAX) return false;
  *bits = v;
  return true;
}

/* Imported globals' values from the command line. Returns an exit code. */
static int build_globals(const cowmem_module_t* m, gopt_t* g, int ng,
                         cowmem_global_value_t** out, size_t* nout) {
  size_t n = cowmem_module_import_count(m, COWMEM_EXTERN_GLOBAL);
  cowmem_global_value_t* v = calloc(n ? n : 1, sizeof *v);
  if (!v) return tool_fail("--global", "out of memory");
  for (size_t i = 0; i < n; i++) {
    cowmem_global_info_t gi;
    cowmem_module_global_info(m, (uint32_t)i, &gi);
    v[i].type = gi.type;
    v[i].is_mutable = gi.is_mutable;
    for (int k = 0; k < ng; k++) {
      if (!name_matches(g[k].name, &gi)) continue;
      g[k].used = true;
      if (!parse_value(g[k].value, gi.type, &v[i].bits)) {
        free(v);
        return tool_usage("--global %s=%s: not a valid value for its type", g[k].name,
                          g[k].value);
      }
    }
  }
  for (int k = 0; k < ng; k++) {
    if (g[k].used) continue;
    free(v);
    return tool_usage("--global %s: the module imports no global of that "
                      "name",
                      g[k].name);
  }
  *out = v;
  *nout = n;
  return EXIT_OK;
}

/* The stretches of memory that may hold a non-zero byte after
 * instantiation: the image's data extents and the active segments'
 * ranges. Everything else is zeros the dump leaves as holes, so a module
 * that claims 4 GiB with one byte of data costs its data, not its claim. */
typedef struct {
  uint64_t off, len;
} range_t;

typedef struct {
  range_t* r;
  size_t n, cap;
} ranges_t;

static int range_add(void* arg, uint64_t off, uint64_t len) {
  ranges_t* rs = arg;
  if (len == 0) return 0;
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? 2 * rs->cap : 64;
    range_t* r = realloc(rs->r, cap * sizeof *r);
    if (!r) return COWMEM_ENOMEM;
    rs->r = r;
    rs->cap = cap;
  }
  rs->r[rs->n++] = (range_t){off, len};
  return 0;
}

static int range_cmp(const void* a, const void* b) {
  uint64_t x = ((const range_t*)a)->off, y = ((const range_t*)b)->off;
  return x < y ? -1 : x > y;
}

/* Memory idx's active segments at the offsets instantiation gives them
 * (constant, or the imported global's value). They all fit: the
 * instantiation check ran first. */
static int segment_ranges(const cowmem_module_t* m, uint32_t idx,
                          const cowmem_global_value_t* gv, size_t ngv, ranges_t* rs) {
  cowmem_memory_info_t mi;
  cowmem_module_memory_info(m, idx, &mi);
  for (uint32_t s = 0; s < cowmem_module_segment_count(m); s++) {
    cowmem_segment_info_t si;
    cowmem_module_segment_info(m, s, &si);
    if (si.mode != COWMEM_SEGMENT_ACTIVE || si.memory != idx) continue;
    uint64_t off = si.offset;
    if (si.offset_kind == COWMEM_OFFSET_GLOBAL) {
      off = si.offset < ngv ? gv[si.offset].bits : 0;
      if (!mi.memory64) off &= 0xffffffffu;
    }
    int r = range_add(rs, off, si.data_len);
    if (r != 0) return r;
  }
  return 0;
}

/* Write the non-zero pages of mem[0, size) inside the ranges to path, a
 * sparse file of size bytes, atomically. */
static int write_sparse(const char* path, const uint8_t* mem, uint64_t size,
                        ranges_t* rs) {
  char tmp[PATH_MAX];
  int fd = tool_tmp_beside(path, tmp, sizeof tmp);
  if (fd < 0) return tool_fail(path, "%s", strerror(errno));
  uint64_t page = cowmem_page_size();
  if (rs->n > 0) qsort(rs->r, rs->n, sizeof *rs->r, range_cmp);
  int e = 0;
  uint64_t done_to = 0; /* pages below are written or known zero */
  for (size_t i = 0; i < rs->n && e == 0; i++) {
    uint64_t a = rs->r[i].off / page * page;
    /* By length: the range may end at the memory's end. */
    uint64_t left = size - (rs->r[i].off < size ? rs->r[i].off : size);
    uint64_t end = rs->r[i].off + (rs->r[i].len < left ? rs->r[i].len : left);
    end = end > size - size % page ? size : (end + page - 1) / page * page;
    if (a < done_to) a = done_to;
    for (uint64_t off = a; off < end && e == 0; off += page) {
      size_t n = end - off < page ? (size_t)(end - off) : (size_t)page;
      bool zero = true;
      for (size_t k = 0; k < n && zero; k++)
        zero = mem[off + k] == 0;
      size_t w = 0;
      while (!zero && w < n && e == 0) {
        ssize_t r = pwrite(fd, mem + off + w, n - w, (off_t)(off + w));
        if (r < 0 && errno != EINTR) e = errno;
        if (r > 0) w += (size_t)r;
      }
    }
    if (end > done_to) done_to = end;
  }
  if (e == 0 && ftruncate(fd, (off_t)size) != 0) e = errno;
  if (close(fd) != 0 && e == 0) e = errno;
  if (e == 0 && rename(tmp, path) != 0) e = errno;
  if (e != 0) {
    unlink(tmp);
    return tool_fail(path, "%s", strerror(e));
  }
  return EXIT_OK;
}

/* The whole module's instantiation, as far as memories decide it: a
 * segment of any memory that does not fit traps before the memory asked
 * for is seen, so there is nothing to dump. Fresh imports are their
 * declared minimum; other imported memories their largest size (only a
 * trap no host's memory avoids is reported). */
static int check_instantiation(const char* in, const cowmem_module_t* m,
                               const cowmem_global_value_t* gv, size_t ngv) {
  uint32_t nimp = cowmem_module_import_count(m, COWMEM_EXTERN_MEMORY);
  cowmem_memory_desc_t* md = calloc(nimp ? nimp : 1, sizeof *md);
  if (!md) return tool_fail(in, "out of memory");
  for (uint32_t i = 0; i < nimp; i++) {
    cowmem_memory_info_t mi;
    cowmem_module_memory_info(m, i, &mi);
    uint64_t cap = COWMEM_WASM_MAX_PAGES(mi.memory64);
    md[i] = (cowmem_memory_desc_t){mi.fresh ? mi.min_pages : mi.has_max ? mi.max_pages : cap,
                                   mi.max_pages, mi.has_max, mi.memory64, mi.shared};
  }
  cowmem_diag_t d = {0};
  int r = cowmem_module_instantiate_check(m, md, nimp, gv, ngv, &d);
  free(md);
  if (r == 0) return EXIT_OK;
  if (d.reason[0] == 0) snprintf(d.reason, sizeof d.reason, "%s", cowmem_strerror(r));
  return tool_fail(in, "instantiation traps: %s (%s, the segment at byte %llu of the module)",
                   d.reason, cowmem_err_name(r), (unsigned long long)d.offset);
}

int cmd_dump(int argc, char** argv) {
  const char *in = NULL, *out = NULL, *modpath = NULL;
  uint64_t memidx = 0;
  unsigned flags = 0;
  gopt_t* globals = calloc((size_t)argc, sizeof *globals);
  int ng = 0, rc = EXIT_OK;
  if (!globals) return tool_fail("cowmem", "out of memory");
  for (int i = 1; i < argc && rc == EXIT_OK; i++) {
    const char* v;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help(stdout);
      free(globals);
      return EXIT_OK;
    } else if (tool_opt_value(argc, argv, &i, "-o", &v) ||
               tool_opt_value(argc, argv, &i, "--output", &v)) {
      if (!v) rc = tool_usage("-o needs a file name");
      out = v;
    } else if (tool_opt_value(argc, argv, &i, "--memory", &v)) {
      if (!tool_parse_u64(v, &memidx) || memidx > UINT32_MAX)
        rc = tool_usage("--memory needs a memory index");
    } else if (tool_opt_value(argc, argv, &i, "--module", &v)) {
      if (!v) rc = tool_usage("--module needs a file name");
      modpath = v;
    } else if (tool_opt_value(argc, argv, &i, "--global", &v)) {
      const char* eq = v ? strchr(v, '=') : NULL;
      if (!eq || eq == v) {
        rc = tool_usage("--global needs NAME=VALUE");
      } else {
        globals[ng].name = strndup(v, (size_t)(eq - v));
        globals[ng++].value = eq + 1;
      }
    } else if (strcmp(argv[i], TOOL_FRESH_OPT) == 0) {
      flags |= COWMEM_MODULE_FRESH_IMPORTS;
    } else if (argv[i][0] == '-' && argv[i][1] != 0) {
      rc = tool_usage("unknown option '%s'", argv[i]);
    } else if (in) {
      rc = tool_usage("more than one input file");
    } else {
      in = argv[i];
    }
  }
  if (rc == EXIT_OK && !in) rc = tool_usage("no input file");
  if (rc == EXIT_OK && !out) rc = tool_usage("no output file (-o)");

  cowmem_module_t* m = NULL;
  cowmem_imgfile_t* f = NULL;
  cowmem_image_t* img = NULL;
  cowmem_global_value_t* gv = NULL;
  cowmem_slot_t* slot = NULL;
  size_t ngv = 0;
  uint64_t min_pages = 0;
  uint32_t left = 0;
  tool_kind_t kind = FILE_OTHER;
  if (rc == EXIT_OK) {
    kind = tool_file_kind(in);
    if (kind == FILE_OTHER)
      rc = errno ? tool_fail(in, "%s", strerror(errno))
                 : tool_fail(in, "neither a WebAssembly module nor an image "
                                 "file (unknown magic)");
  }
  if (rc == EXIT_OK && kind == FILE_WASM && modpath)
    rc = tool_usage("--module is for image files");
  if (rc == EXIT_OK && (kind == FILE_WASM || modpath)) {
    m = tool_load_module(kind == FILE_WASM ? in : modpath, flags);
    if (!m) rc = EXIT_RUNTIME;
  }
  if (rc == EXIT_OK && kind == FILE_CWIMG) {
    f = tool_open_imgfile(in, m);
    if (!f) rc = EXIT_RUNTIME;
  }
  if (rc == EXIT_OK && m)
    rc = build_globals(m, globals, ng, &gv, &ngv);
  if (rc == EXIT_OK && m) rc = check_instantiation(in, m, gv, ngv);
  else if (rc == EXIT_OK && ng > 0)
    rc = tool_usage("--global needs the module (--module)");
  if (rc == EXIT_OK && m) {
    cowmem_memory_info_t mi;
    if (cowmem_module_memory_info(m, (uint32_t)memidx, &mi) != 0)
      rc = tool_fail(in, "no memory %llu (the module has %u)", (unsigned long long)memidx,
                     cowmem_module_memory_count(m));
    else if (mi.imported && !mi.fresh)
      rc = tool_fail(in,
                     "memory %llu is imported: its contents are the "
                     "importer's (--fresh-imports: a fresh memory of the "
                     "declared limits)",
                     (unsigned long long)memidx);
    min_pages = mi.min_pages;
  }
  if (rc == EXIT_OK && f) {
    cowmem_imgfile_memory_t fm = {0};
    bool found = false;
    for (uint32_t i = 0; i < cowmem_imgfile_memory_count(f); i++) {
      cowmem_imgfile_memory(f, i, &fm);
      if (fm.index == memidx) {
        found = true;
        break;
      }
    }
    if (!found)
      rc = tool_fail(in, "no memory %llu in the image file", (unsigned long long)memidx);
    else if (fm.imported && !fm.fresh)
      rc = tool_fail(in,
                     "memory %llu is imported: its contents are the "
                     "importer's (compile with --fresh-imports for its image)",
                     (unsigned long long)memidx);
    else if (fm.segments_left > 0 && !m)
      rc = tool_fail(in,
                     "memory %llu has %u segments applied at "
                     "instantiation; pass --module MODULE.wasm",
                     (unsigned long long)memidx, fm.segments_left);
    min_pages = fm.min_pages;
    left = fm.segments_left;
    if (rc == EXIT_OK)
      img = cowmem_image_retain(cowmem_imgfile_image(f, (uint32_t)memidx, NULL));
  } else if (rc == EXIT_OK && m) {
    img = cowmem_image_retain(cowmem_module_image(m, (uint32_t)memidx, NULL));
    left = 1; /* apply_segments decides */
  }
  uint64_t size = min_pages * COWMEM_WASM_PAGE_SIZE;
  if (rc == EXIT_OK && (min_pages > COWMEM_WASM32_MAX_PAGES || size > SIZE_MAX))
    rc = tool_fail(in,
                   "memory %llu's initial size (%llu pages) is too large "
                   "to dump",
                   (unsigned long long)memidx, (unsigned long long)min_pages);
  if (rc == EXIT_OK) {
    int r = cowmem_slot_new(size ? (size_t)size : cowmem_page_size(), &slot);
    if (r == 0) r = cowmem_slot_instantiate(slot, (size_t)size, img);
    if (r != 0) rc = tool_fail(in, "cannot map the memory: %s", cowmem_strerror(r));
  }
  if (rc == EXIT_OK && m && left > 0) {
    cowmem_diag_t d;
    int r = cowmem_module_apply(
        m, (uint32_t)memidx, &(cowmem_memory_view_t){cowmem_slot_base(slot), size}, 1, gv,
        ngv, (img != NULL) ? COWMEM_APPLY_SKIP_COVERED : 0, &d);
    if (r != 0)
      rc = tool_fail(in,
                     "instantiation fails: %s (at byte %llu of the "
                     "module)",
                     d.reason, (unsigned long long)d.offset);
  }
  ranges_t rs = {0};
  if (rc == EXIT_OK) {
    int r = tool_image_extents(img, range_add, &rs);
    if (r == 0 && m && left > 0) r = segment_ranges(m, (uint32_t)memidx, gv, ngv, &rs);
    if (r != 0) rc = tool_fail(in, "%s", cowmem_strerror(r));
  }
  if (rc == EXIT_OK)
    rc = write_sparse(out, size ? cowmem_slot_base(slot) : (const uint8_t*)"", size, &rs);
  free(rs.r);
  cowmem_slot_free(slot);
  cowmem_image_release(img);
  cowmem_imgfile_free(f);
  cowmem_module_free(m);
  free(gv);
  for (int k = 0; k < ng; k++)
    free((char*)globals[k].name);
  free(globals);
  return rc;
}
