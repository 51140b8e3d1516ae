/* cowmem inspect module.wasm|module.cwimg [--json] [--segments] */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools.h"

static void help(FILE* f) {
  fprintf(f, "Usage: cowmem inspect FILE [--json] [--segments]\n"
             "\n"
             "FILE is a WebAssembly module or a cowmem image file (.cwimg).\n"
             "Prints the memories (limits, import/export), the data segments,\n"
             "and each memory's image layout: where it lies in memory (and in\n"
             "the file), its length, the bytes it holds (pages with data, which\n"
             "an instance may make resident) and its holes (runs of zero pages\n"
             "that are never resident), or why the memory has no image.\n"
             "\n"
             "Options:\n"
             "  --json      machine-readable output\n"
             "  --segments  list every segment (default: the first 16)\n"
             "  --module M  (image files) check that the file was compiled from\n"
             "              module M: exit 1 if not\n"
             "  --fresh-imports  (modules) as `cowmem compile --fresh-imports`:\n"
             "              imported memories get images like defined ones\n"
             "  --help      this text\n");
}

typedef struct {
  uint64_t mem_offset, len, data_bytes, holes, hole_bytes;
} layout_t;

typedef struct {
  layout_t* l;
  const cowmem_image_t* img;
  uint64_t next; /* memory offset after the last page accounted */
  bool in_hole;
  uint8_t* buf;
} scan_t;

static void account(scan_t* sc, bool zero, uint64_t pages) {
  uint64_t bytes = pages * cowmem_page_size();
  if (zero) {
    sc->l->hole_bytes += bytes;
    if (!sc->in_hole) sc->l->holes++;
  } else {
    sc->l->data_bytes += bytes;
  }
  sc->in_hole = zero;
}

/* One stretch that may hold data: the zeros before it are a hole; its own
 * pages are read and scanned. */
static int scan_extent(void* arg, uint64_t off, uint64_t len) {
  scan_t* sc = arg;
  size_t page = cowmem_page_size(), chunk = (size_t)1 << 20;
  if (off > sc->next) account(sc, true, (off - sc->next) / page);
  for (uint64_t done = 0; done < len;) {
    size_t n = len - done < chunk ? (size_t)(len - done) : chunk;
    int r = cowmem_image_read(sc->img, off + done, sc->buf, n);
    if (r != 0) return r;
    for (size_t p = 0; p < n; p += page) {
      bool zero = true;
      for (size_t k = 0; k < page && zero; k++)
        zero = sc->buf[p + k] == 0;
      account(sc, zero, 1);
    }
    done += n;
  }
  sc->next = off + len;
  return 0;
}

/* The image's data pages and the runs of zero pages inside it. Reads only
 * what its file holds (tool_image_extents): a sparse image file that
 * claims gigabytes costs its allocated pages. */
static int image_layout(cowmem_image_t* img, layout_t* l) {
  memset(l, 0, sizeof *l);
  if (!img) return 0;
  cowmem_image_info_t ii;
  int r = cowmem_image_info(img, &ii);
  if (r != 0) return r;
  l->mem_offset = ii.mem_offset;
  l->len = ii.len;
  scan_t sc = {l, img, ii.mem_offset, false, malloc((size_t)1 << 20)};
  if (!sc.buf) return COWMEM_ENOMEM;
  r = tool_image_extents(img, scan_extent, &sc);
  /* The zeros after the last stretch; by length: the image may end at 2^64. */
  uint64_t seen = sc.next - ii.mem_offset;
  if (r == 0 && seen < ii.len) account(&sc, true, (ii.len - seen) / cowmem_page_size());
  free(sc.buf);
  return r;
}

static const char* why_text(cowmem_noimage_t why) {
  switch (why) {
  case COWMEM_NOIMAGE_NONE: return "";
  case COWMEM_NOIMAGE_IMPORTED: return "the memory is imported";
  case COWMEM_NOIMAGE_GLOBAL_OFFSET: return "a segment's offset is an imported global";
  case COWMEM_NOIMAGE_OUT_OF_BOUNDS:
    return "a segment ends beyond the initial size (instantiation traps)";
  case COWMEM_NOIMAGE_TOO_SPARSE: return "the data spans more than the image size limit";
  case COWMEM_NOIMAGE_NOT_BUILT: return "images were not built";
  }
  return "unknown";
}

static const char* why_name(cowmem_noimage_t why) {
  static const char* names[] = {"none",          "imported",   "global_offset",
                                "out_of_bounds", "too_sparse", "not_built"};
  return (unsigned)why < 6 ? names[why] : "unknown";
}

typedef struct {
  bool json, all_segments;
  const char* module;
  unsigned flags; /* module parse flags: --fresh-imports */
} opts_t;

/* imported: 0 defined, 1 imported, 2 imported fresh (--fresh-imports). */
static void print_limits(FILE* o, bool json, uint32_t idx, int imported, bool m64,
                         bool shared, bool has_max, uint64_t min, uint64_t max) {
  if (json) {
    fprintf(o,
            "\"index\": %u, \"imported\": %s, \"fresh\": %s, \"memory64\": %s, "
            "\"shared\": %s, \"min_pages\": %llu, \"max_pages\": ",
            idx, imported ? "true" : "false", imported == 2 ? "true" : "false",
            m64 ? "true" : "false", shared ? "true" : "false", (unsigned long long)min);
    if (has_max)
      fprintf(o, "%llu", (unsigned long long)max);
    else
      fprintf(o, "null");
    return;
  }
  fprintf(o, "memory %u: %s%s%s, %llu pages initial, ", idx,
          imported == 2 ? "imported fresh"
          : imported    ? "imported"
                        : "defined",
          m64 ? ", memory64" : "", shared ? ", shared" : "", (unsigned long long)min);
  if (has_max)
    fprintf(o, "%llu max", (unsigned long long)max);
  else
    fprintf(o, "no max");
}

static void print_layout(FILE* o, bool json, const layout_t* l,
                         const cowmem_imgfile_memory_t* fm) {
  if (json) {
    fprintf(o,
            "\"image\": {\"mem_offset\": %llu, \"length\": %llu, "
            "\"resident_bytes\": %llu, \"holes\": %llu, \"hole_bytes\": "
            "%llu",
            (unsigned long long)l->mem_offset, (unsigned long long)l->len,
            (unsigned long long)l->data_bytes, (unsigned long long)l->holes,
            (unsigned long long)l->hole_bytes);
    if (fm)
      fprintf(o, ", \"file_offset\": %llu, \"file_length\": %llu",
              (unsigned long long)fm->file_offset, (unsigned long long)fm->file_len);
    fprintf(o, "}");
    return;
  }
  fprintf(o,
          "  image: memory offset %llu, length %llu, resident %llu bytes, "
          "%llu holes (%llu bytes)\n",
          (unsigned long long)l->mem_offset, (unsigned long long)l->len,
          (unsigned long long)l->data_bytes, (unsigned long long)l->holes,
          (unsigned long long)l->hole_bytes);
  if (fm)
    fprintf(o, "  in the file: offset %llu, length %llu\n",
            (unsigned long long)fm->file_offset, (unsigned long long)fm->file_len);
}

static int inspect_module(const char* path, const opts_t* op) {
  cowmem_module_t* m = tool_load_module(path, op->flags);
  if (!m) return EXIT_RUNTIME;
  FILE* o = stdout;
  size_t len = 0;
  cowmem_module_bytes(m, &len);
  uint8_t hash[32];
  char hex[65];
  cowmem_module_hash(m, hash);
  tool_hex(hash, 32, hex);
  uint32_t nmem = cowmem_module_memory_count(m);
  uint32_t nseg = cowmem_module_segment_count(m);
  int rc = EXIT_OK;
  uint32_t start = 0;
  bool has_start = cowmem_module_start(m, &start);
  if (op->json) {
    fprintf(o, "{\"file\": ");
    tool_json_str(o, path, strlen(path));
    fprintf(o,
            ", \"kind\": \"module\", \"size\": %zu, \"sha256\": \"%s\", "
            "\"start\": %s, \"memories\": [",
            len, hex, has_start ? "true" : "false");
  } else {
    fprintf(o, "%s: WebAssembly module, %zu bytes, sha256 %s\n", path, len, hex);
    if (has_start)
      fprintf(o, "start function %u (runs after the memory is initialized)\n", start);
  }
  /* Segments in each memory's image, in one pass (memories x segments
   * took 44 s for 10^5 of each). */
  uint32_t* in_image = calloc(nmem ? nmem : 1, sizeof *in_image);
  if (!in_image) {
    cowmem_module_free(m);
    return tool_fail(path, "out of memory");
  }
  for (uint32_t s = 0; s < nseg; s++) {
    cowmem_segment_info_t si;
    cowmem_module_segment_info(m, s, &si);
    if (si.mode == COWMEM_SEGMENT_ACTIVE && si.covered_by_image && si.memory < nmem)
      in_image[si.memory]++;
  }
  for (uint32_t i = 0; i < nmem; i++) {
    cowmem_memory_info_t mi;
    cowmem_module_memory_info(m, i, &mi);
    uint32_t covered = in_image[i];
    cowmem_image_t* img = NULL;
    cowmem_diag_t why;
    img = cowmem_image_retain(cowmem_module_image(m, i, &why));
    layout_t l;
    int r = image_layout(img, &l);
    cowmem_image_release(img);
    if (r != 0) {
      rc = tool_fail(path, "cannot read memory %u's image: %s", i, cowmem_strerror(r));
      break;
    }
    const char* whyt = why.reason;
    if (op->json) {
      fprintf(o, "%s{", i ? ", " : "");
      print_limits(o, true, i, mi.imported + mi.fresh, mi.memory64, mi.shared, mi.has_max,
                   mi.min_pages, mi.max_pages);
      fprintf(o,
              ", \"exports\": %u, \"active_segments\": %u, "
              "\"segments_in_image\": %u, \"segments_left\": %u, ",
              mi.export_count, mi.active_segments, covered, mi.active_segments - covered);
      if (why.noimage == COWMEM_NOIMAGE_NONE) {
        print_layout(o, true, &l, NULL);
      } else {
        fprintf(
            o, "\"image\": null, \"no_image\": \"%s\", \"why\": ", why_name(why.noimage));
        tool_json_str(o, whyt, strlen(whyt));
      }
      fprintf(o, "}");
      continue;
    }
    print_limits(o, false, i, mi.imported + mi.fresh, mi.memory64, mi.shared, mi.has_max,
                 mi.min_pages, mi.max_pages);
    if (mi.imported) { /* names are the module's bytes: escaped for the terminal */
      fprintf(o, ", from ");
      tool_text_str(o, mi.import_module, mi.import_module_len);
      fputc(' ', o);
      tool_text_str(o, mi.import_name, mi.import_name_len);
    }
    if (mi.export_count) fprintf(o, ", exported");
    fprintf(o,
            "\n  segments: %u active, %u in the image, %u left for "
            "instantiation\n",
            mi.active_segments, covered, mi.active_segments - covered);
    if (why.noimage != COWMEM_NOIMAGE_NONE)
      fprintf(o, "  no image: %s\n", whyt && *whyt ? whyt : why_text(why.noimage));
    else if (l.len == 0)
      fprintf(o, "  image: empty (the initial contents are all zeros)\n");
    else
      print_layout(o, false, &l, NULL);
  }
  uint32_t shown = op->all_segments || op->json ? nseg : (nseg < 16 ? nseg : 16);
  if (op->json)
    fprintf(o, "], \"segment_count\": %u, \"segments\": [", nseg);
  else
    fprintf(o, "segments: %u\n", nseg);
  for (uint32_t s = 0; s < shown && rc == EXIT_OK; s++) {
    cowmem_segment_info_t si;
    cowmem_module_segment_info(m, s, &si);
    bool active = si.mode == COWMEM_SEGMENT_ACTIVE;
    if (op->json) {
      fprintf(o, "%s{\"index\": %u, \"mode\": \"%s\", \"length\": %llu", s ? ", " : "", s,
              active ? "active" : "passive", (unsigned long long)si.data_len);
      if (active)
        fprintf(o, ", \"memory\": %u, \"%s\": %llu, \"in_image\": %s", si.memory,
                si.offset_kind == COWMEM_OFFSET_CONST ? "offset" : "global",
                (unsigned long long)si.offset, si.covered_by_image ? "true" : "false");
      fprintf(o, "}");
    } else if (active) {
      fprintf(o, "  %u: active, memory %u, offset %s%llu, %llu bytes%s\n", s, si.memory,
              si.offset_kind == COWMEM_OFFSET_CONST ? "" : "global ",
              (unsigned long long)si.offset, (unsigned long long)si.data_len,
              si.covered_by_image ? ", in the image" : "");
    } else {
      fprintf(o, "  %u: passive, %llu bytes\n", s, (unsigned long long)si.data_len);
    }
  }
  if (op->json)
    fprintf(o, "]}\n");
  else if (shown < nseg)
    fprintf(o, "  ... %u more (--segments lists them all)\n", nseg - shown);
  free(in_image);
  cowmem_module_free(m);
  return rc;
}

static int inspect_imgfile(const char* path, const opts_t* op) {
  cowmem_module_t* m = NULL;
  if (op->module && !(m = tool_load_module(op->module, op->flags))) return EXIT_RUNTIME;
  cowmem_imgfile_t* f = tool_open_imgfile(path, m);
  cowmem_module_free(m);
  if (!f) return EXIT_RUNTIME;
  FILE* o = stdout;
  uint8_t hash[32];
  char hex[65];
  cowmem_imgfile_module_hash(f, hash);
  tool_hex(hash, 32, hex);
  struct stat st;
  long long allocated = stat(path, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
  uint32_t n = cowmem_imgfile_memory_count(f);
  int rc = EXIT_OK;
  if (op->json) {
    fprintf(o, "{\"file\": ");
    tool_json_str(o, path, strlen(path));
    fprintf(o,
            ", \"kind\": \"imgfile\", \"version\": %u, \"page_size\": %zu, "
            "\"size\": %llu, \"allocated\": %lld, \"module_sha256\": "
            "\"%s\", \"memories\": [",
            cowmem_imgfile_version(f), cowmem_page_size(),
            (unsigned long long)cowmem_imgfile_size(f), allocated, hex);
  } else {
    fprintf(o,
            "%s: cowmem image file, version %u, %zu-byte pages, %llu "
            "bytes (%lld allocated)\n  module sha256 %s\n",
            path, cowmem_imgfile_version(f), cowmem_page_size(),
            (unsigned long long)cowmem_imgfile_size(f), allocated, hex);
  }
  for (uint32_t i = 0; i < n; i++) {
    cowmem_imgfile_memory_t fm;
    cowmem_imgfile_memory(f, i, &fm);
    layout_t l;
    int r = image_layout(fm.image, &l);
    if (r != 0) {
      rc = tool_fail(path, "cannot read memory %u's image: %s", fm.index,
                     cowmem_strerror(r));
      break;
    }
    if (op->json) {
      fprintf(o, "%s{", i ? ", " : "");
      print_limits(o, true, fm.index, fm.imported + fm.fresh, fm.memory64, fm.shared,
                   fm.has_max, fm.min_pages, fm.max_pages);
      fprintf(o, ", \"segments_left\": %u, \"data_pages\": %llu, ", fm.segments_left,
              (unsigned long long)fm.data_pages);
      if (fm.noimage == COWMEM_NOIMAGE_NONE) {
        print_layout(o, true, &l, &fm);
      } else {
        fprintf(o, "\"image\": null, \"no_image\": \"%s\", \"why\": \"%s\"",
                why_name(fm.noimage), why_text(fm.noimage));
      }
      fprintf(o, "}");
      continue;
    }
    print_limits(o, false, fm.index, fm.imported + fm.fresh, fm.memory64, fm.shared,
                 fm.has_max, fm.min_pages, fm.max_pages);
    fprintf(o, "\n  segments left for instantiation: %u\n", fm.segments_left);
    if (fm.noimage != COWMEM_NOIMAGE_NONE)
      fprintf(o, "  no image: %s\n", why_text(fm.noimage));
    else if (l.len == 0)
      fprintf(o, "  image: empty (the initial contents are all zeros)\n");
    else
      print_layout(o, false, &l, &fm);
  }
  if (op->json && rc == EXIT_OK) fprintf(o, "]}\n");
  cowmem_imgfile_free(f);
  return rc;
}

int cmd_inspect(int argc, char** argv) {
  opts_t op = {0};
  const char* in = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help(stdout);
      return EXIT_OK;
    } else if (strcmp(argv[i], "--json") == 0) {
      op.json = true;
    } else if (tool_opt_value(argc, argv, &i, "--module", &op.module)) {
      if (!op.module) return tool_usage("--module needs a file name");
    } else if (strcmp(argv[i], "--segments") == 0) {
      op.all_segments = true;
    } else if (strcmp(argv[i], TOOL_FRESH_OPT) == 0) {
      op.flags |= COWMEM_MODULE_FRESH_IMPORTS;
    } else if (argv[i][0] == '-' && argv[i][1] != 0) {
      return tool_usage("unknown option '%s'", argv[i]);
    } else if (in) {
      return tool_usage("more than one input file");
    } else {
      in = argv[i];
    }
  }
  if (!in) return tool_usage("no input file");
  switch (tool_file_kind(in)) {
  case FILE_WASM:
    if (op.module) return tool_usage("--module is for image files");
    return inspect_module(in, &op);
  case FILE_CWIMG: return inspect_imgfile(in, &op);
  default:
    if (errno) return tool_fail(in, "%s", strerror(errno));
    return tool_fail(in, "neither a WebAssembly module nor an image file "
                         "(unknown magic)");
  }
}
