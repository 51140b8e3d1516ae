/* Pre-initialization: validate's refusals with their offsets, instrument,
 * and rewrite checked end to end against V8. Modules are written in WAT
 * and assembled with wat2wasm; the state after initialization comes from
 * node (tests/preinit/state.js), which then compares the original
 * instance after its initialization with a fresh instance of each
 * rewritten module. Outputs are checked with wasm-validate and cowmem's
 * own parser. Tests skip when wabt or node is missing. */
#include <cowmem.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "test.h"

#ifndef COWMEM_PREINIT_SCRIPT
#define COWMEM_PREINIT_SCRIPT "tests/preinit/state.js"
#endif

#define PAGE 65536u
#define WAT_FLAGS "--enable-all"

static char g_dir[256];

static bool have(const char* tool) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
  return system(cmd) == 0;
}

static int run(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char* fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  if (st != 0) fprintf(stderr, "command failed (%d): %s\n", st, cmd);
  return st == 0 ? 0 : -1;
}

static void path_of(char* out, size_t n, const char* name) {
  snprintf(out, n, "%s/%s", g_dir, name);
}

static int write_file(const char* name, const void* p, size_t n) {
  char path[512];
  path_of(path, sizeof path, name);
  FILE* f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(p, 1, n, f);
  return fclose(f) == 0 && w == n ? 0 : -1;
}

static int read_file(const char* name, uint8_t** p, size_t* n) {
  char path[512];
  path_of(path, sizeof path, name);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  int r = cowmem_module_read(fd, p, n);
  close(fd);
  return r;
}

static int setup(void) {
  snprintf(g_dir, sizeof g_dir, "%s/cowmem-preinit-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  return mkdtemp(g_dir) ? 0 : -1;
}

static void teardown(void) {
  if (g_dir[0]) run("rm -rf '%s'", g_dir);
}

/* Assemble WAT text into name.wasm; its bytes in *p. */
static int wat(const char* name, const char* text, uint8_t** p, size_t* n) {
  char file[128];
  snprintf(file, sizeof file, "%s.wat", name);
  if (write_file(file, text, strlen(text)) != 0) return -1;
  if (run("wat2wasm " WAT_FLAGS " --debug-names '%s/%s.wat' -o '%s/%s.wasm'", g_dir, name,
          g_dir, name) != 0)
    return -1;
  snprintf(file, sizeof file, "%s.wasm", name);
  return read_file(file, p, n);
}

/* Parse, and expect cowmem_preinit_validate to refuse with this code at
 * the offset where `at` is found (its first occurrence after `after`). */
static int refused_at(const char* text, unsigned flags, const uint8_t* at,
                      size_t at_len, size_t after, const char* reason_part) {
  uint8_t* b;
  size_t n, want = SIZE_MAX;
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  CHECK(wat("refused", text, &b, &n));
  for (size_t i = after; i + at_len <= n && want == SIZE_MAX; i++)
    if (memcmp(b + i, at, at_len) == 0) want = i;
  ASSERT_TRUE(want != SIZE_MAX);
  ASSERT_OK(cowmem_module_parse(b, n, flags, &m, NULL));
  ASSERT_ERR(cowmem_preinit_validate(m, &d), COWMEM_EUNSUPPORTED);
  ASSERT_EQ(d.code, COWMEM_EUNSUPPORTED);
  ASSERT_UEQ(d.offset, want);
  if (!strstr(d.reason, reason_part))
    TEST_FAIL_("reason \"%s\" does not name %s", d.reason, reason_part);
  /* Rewrite refuses the same way, and returns nothing. */
  cowmem_preinit_snapshot_t snap = {0};
  uint8_t* out = (uint8_t*)&snap;
  size_t out_len = 7;
  ASSERT_ERR(cowmem_preinit_rewrite(m, &snap, NULL, &out, &out_len, -1, &d),
             COWMEM_EUNSUPPORTED);
  ASSERT_PTR_EQ(out, &snap);
  ASSERT_EQ(out_len, 7);
  cowmem_module_free(m);
  free(b);
  return 0;
}

#define NEED_WABT()                                                            \
  do {                                                                         \
    if (!have("wat2wasm") || !have("wasm-validate"))                           \
      TEST_SKIP("wabt (wat2wasm, wasm-validate) not installed");               \
    CHECK(setup());                                                            \
  } while (0)

/* A body whose immediates spell the refused opcodes: a decoder that
 * misread them would refuse this module. */
#define DECOY_BODY                                                             \
  "(local $x i32) (local.set 38 (i32.const 0x26))"                             \
  "(drop (i32.const 0x7fc09))"                                                 \
  "(drop (v128.const i8x16 0xfc 9 0xfc 12 0xfc 13 0xfc 14 0xfc 15 0xfc 17 "   \
  "0x26 0x26 0 0))"                                                            \
  "(drop (i8x16.shuffle 9 12 13 14 15 17 0 1 2 3 4 5 6 7 8 10 "               \
  "(v128.const i64x2 0 0) (v128.const i64x2 0 0)))"                            \
  "(drop (i32.atomic.rmw.add offset=0x26 (i32.const 0) (i32.const 9)))"        \
  "(drop (i32.load offset=0x7e09 (i32.const 0)))"                              \
  "(memory.fill (i32.const 0) (i32.const 0xfc) (i32.const 0))"                 \
  "(drop (table.size $t))"

static const char k_decoy_locals[] =
    "(local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 "
    "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 "
    "i32 i32 i32 i32 i32 i32)";

TEST_IMPL(validate_decodes_immediates) {
  NEED_WABT();
  char text[4096];
  uint8_t* b;
  size_t n;
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  snprintf(text, sizeof text,
           "(module (memory 1 1 shared) (table $t 1 funcref)"
           "(func $f %s " DECOY_BODY "))",
           k_decoy_locals);
  CHECK(wat("decoy", text, &b, &n));
  ASSERT_OK(cowmem_module_parse(b, n, 0, &m, NULL));
  ASSERT_OK(cowmem_preinit_validate(m, &d));
  ASSERT_EQ(d.code, 0);
  cowmem_module_free(m);
  free(b);
  teardown();
  return 0;
}

/* Each refused instruction, after the decoy instructions, at the offset of
 * its first byte. */
TEST_IMPL(validate_refuses_instructions) {
  NEED_WABT();
  static const struct {
    const char* code;
    uint8_t op[2];
    size_t oplen;
    const char* name;
  } cases[] = {
      {"(table.set $t (i32.const 0) (ref.null func))", {0x26}, 1, "table.set"},
      {"(drop (table.grow $t (ref.null func) (i32.const 1)))", {0xfc, 15}, 2,
       "table.grow"},
      {"(table.fill $t (i32.const 0) (ref.null func) (i32.const 0))", {0xfc, 17},
       2, "table.fill"},
      {"(table.copy $t $t (i32.const 0) (i32.const 0) (i32.const 0))",
       {0xfc, 14}, 2, "table.copy"},
      {"(table.init $t $e (i32.const 0) (i32.const 0) (i32.const 0))",
       {0xfc, 12}, 2, "table.init"},
      {"(elem.drop $e)", {0xfc, 13}, 2, "elem.drop"},
      {"(data.drop $d)", {0xfc, 9}, 2, "data.drop"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[4096];
    uint8_t* b;
    size_t n, body = 0;
    /* The refused instruction comes after the decoys: find its offset
     * after the marker constant (i32.const 0x5a5a, "c1 b4 01"). */
    static const uint8_t marker[] = {0x41, 0xda, 0xb4, 0x01, 0x1a};
    snprintf(text, sizeof text,
             "(module (memory 1 1 shared) (table $t 1 funcref)"
             "(elem $e func $f) (data $d \"x\")"
             "(func $f %s " DECOY_BODY " (drop (i32.const 0x5a5a)) %s))",
             k_decoy_locals, cases[i].code);
    CHECK(wat("find", text, &b, &n));
    for (size_t k = 0; k + sizeof marker <= n && !body; k++)
      if (memcmp(b + k, marker, sizeof marker) == 0) body = k + sizeof marker;
    free(b);
    ASSERT_TRUE(body != 0);
    /* The operands (i32.const, ref.null) come first: the op follows. */
    CHECK(refused_at(text, 0, cases[i].op, cases[i].oplen, body, cases[i].name));
  }
  teardown();
  return 0;
}

TEST_IMPL(validate_refuses_imports_and_globals) {
  NEED_WABT();
  /* The import section's first entry starts right after its count. */
  static const uint8_t env_table[] = {0x03, 'e', 'n', 'v', 0x01, 't'};
  static const uint8_t env_global[] = {0x03, 'e', 'n', 'v', 0x01, 'g'};
  static const uint8_t env_memory[] = {0x03, 'e', 'n', 'v', 0x01, 'm'};
  CHECK(refused_at("(module (import \"env\" \"t\" (table 1 funcref)))", 0,
                   env_table, sizeof env_table, 8, "imported table"));
  CHECK(refused_at("(module (import \"env\" \"g\" (global i32)))", 0, env_global,
                   sizeof env_global, 8, "imported global"));
  CHECK(refused_at("(module (import \"env\" \"m\" (memory 1)))", 0, env_memory,
                   sizeof env_memory, 8, "imported memory"));
  /* A fresh imported memory is fine. */
  uint8_t* b;
  size_t n;
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  CHECK(wat("fresh", "(module (import \"env\" \"m\" (memory 1)))", &b, &n));
  ASSERT_OK(cowmem_module_parse(b, n, COWMEM_MODULE_FRESH_IMPORTS, &m, NULL));
  ASSERT_OK(cowmem_preinit_validate(m, &d));
  cowmem_module_free(m);
  free(b);
  /* Mutable globals of reference type, at their entry (type byte). */
  static const uint8_t funcref_mut[] = {0x70, 0x01, 0xd0, 0x70, 0x0b};
  static const uint8_t externref_mut[] = {0x6f, 0x01, 0xd0, 0x6f, 0x0b};
  CHECK(refused_at("(module (global i32 (i32.const 1))"
                   "(global (mut funcref) (ref.null func)))",
                   0, funcref_mut, sizeof funcref_mut, 8, "reference type"));
  CHECK(refused_at("(module (global (mut externref) (ref.null extern)))", 0,
                   externref_mut, sizeof externref_mut, 8, "reference type"));
  /* An immutable one is fine. */
  CHECK(wat("immref", "(module (global funcref (ref.null func)))", &b, &n));
  ASSERT_OK(cowmem_module_parse(b, n, 0, &m, NULL));
  ASSERT_OK(cowmem_preinit_validate(m, &d));
  cowmem_module_free(m);
  free(b);
  teardown();
  return 0;
}

TEST_IMPL(validate_malformed_body) {
  /* A body whose i32.const runs past the body's end, by hand. */
  static const uint8_t k[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60,
      0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x0a, 0x05, 0x01, 0x03, 0x00, 0x41,
      0x80,
  };
  static const uint8_t gc[] = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60,
      0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x0a, 0x06, 0x01, 0x04, 0x00, 0xfb,
      0x00, 0x0b,
  };
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  ASSERT_OK(cowmem_module_parse(k, sizeof k, 0, &m, NULL));
  ASSERT_ERR(cowmem_preinit_validate(m, &d), COWMEM_EMALFORMED);
  ASSERT_EQ(d.code, COWMEM_EMALFORMED);
  cowmem_module_free(m);
  ASSERT_OK(cowmem_module_parse(gc, sizeof gc, 0, &m, NULL));
  ASSERT_ERR(cowmem_preinit_validate(m, &d), COWMEM_EUNSUPPORTED);
  ASSERT_UEQ(d.offset, 23);
  cowmem_module_free(m);
  ASSERT_ERR(cowmem_preinit_validate(NULL, NULL), COWMEM_EINVAL);
  return 0;
}

/* ---- Rewrite, end to end ------------------------------------------------ */

typedef struct {
  cowmem_preinit_memory_t mem[8];
  cowmem_preinit_global_t glob[32];
  cowmem_preinit_snapshot_t snap;
  uint8_t* bytes[8]; /* each memory's bytes, as node read them */
  size_t len[8];
} state_t;

static void state_free(state_t* s) {
  for (int i = 0; i < 8; i++) {
    cowmem_image_release(s->mem[i].image);
    free(s->bytes[i]);
  }
  memset(s, 0, sizeof *s);
}

static uint8_t type_code(const char* t) {
  return !strcmp(t, "i32")   ? COWMEM_TYPE_I32
         : !strcmp(t, "i64") ? COWMEM_TYPE_I64
         : !strcmp(t, "f32") ? COWMEM_TYPE_F32
         : !strcmp(t, "f64") ? COWMEM_TYPE_F64
                             : COWMEM_TYPE_V128;
}

/* Instantiate inst.wasm in node, initialize it and read back its state. */
static int node_snapshot(const char* func, unsigned import_pages, state_t* s) {
  char path[512], line[256];
  memset(s, 0, sizeof *s);
  if (run("node --experimental-wasm-type-reflection '%s' snapshot '%s/inst.wasm' "
          "'%s' '%s' %u", COWMEM_PREINIT_SCRIPT, g_dir, func, g_dir,
          import_pages) != 0)
    return -1;
  path_of(path, sizeof path, "state.txt");
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    unsigned idx;
    unsigned long long pages, lo, hi;
    char type[8], name[16];
    if (sscanf(line, "memory %u %llu", &idx, &pages) == 2 && idx < 8) {
      snprintf(name, sizeof name, "mem%u", idx);
      if (read_file(name, &s->bytes[idx], &s->len[idx]) != 0 ||
          cowmem_image_new_from_bytes(s->bytes[idx], s->len[idx], 0,
                                      &s->mem[idx].image) != 0)
        break;
      s->mem[idx].pages = pages;
      s->snap.nmemories = idx + 1;
    } else if (sscanf(line, "global %u %7s %llx %llx", &idx, type, &lo, &hi) == 4 &&
               s->snap.nglobals < 32) {
      cowmem_preinit_global_t* g = &s->glob[s->snap.nglobals++];
      g->index = idx, g->type = type_code(type), g->bits[0] = lo, g->bits[1] = hi;
    }
  }
  fclose(f);
  s->snap.memories = s->mem;
  s->snap.globals = s->glob;
  return 0;
}

/* wasm-validate accepts the file and says nothing (it reports a name
 * section's stale indices on stderr, exiting 0). */
static int validate_file(const char* name) {
  return run("e=$(wasm-validate " WAT_FLAGS " '%s/%s' 2>&1) && [ -z \"$e\" ]", g_dir,
             name);
}

/* out (a rewritten module) parses, has no start, every memory's minimum
 * is the snapshot's size and, with segments, its image is the snapshot. */
static int check_rewritten(const uint8_t* out, size_t len, const state_t* s,
                           unsigned parse_flags, bool segments) {
  cowmem_module_t* m = NULL;
  ASSERT_OK(cowmem_module_parse(out, len, parse_flags, &m, NULL));
  ASSERT_FALSE(cowmem_module_start(m, NULL));
  ASSERT_EQ(cowmem_module_memory_count(m), s->snap.nmemories);
  for (uint32_t i = 0; i < s->snap.nmemories; i++) {
    cowmem_memory_info_t mi;
    cowmem_diag_t why;
    ASSERT_OK(cowmem_module_memory_info(m, i, &mi));
    ASSERT_UEQ(mi.min_pages, s->mem[i].pages);
    cowmem_image_t* img = cowmem_module_image(m, i, &why);
    ASSERT_EQ(why.noimage, COWMEM_NOIMAGE_NONE);
    if (!segments) {
      ASSERT_NULL(img); /* all zeros: the image file holds the state */
      continue;
    }
    uint8_t* got = malloc(s->len[i] ? s->len[i] : 1);
    ASSERT_NOT_NULL(got);
    memset(got, 0xee, s->len[i]);
    if (img) ASSERT_OK(cowmem_image_read(img, 0, got, s->len[i]));
    else memset(got, 0, s->len[i]);
    int same = memcmp(got, s->bytes[i], s->len[i]);
    free(got);
    ASSERT_EQ(same, 0);
  }
  for (uint32_t i = 0; i < cowmem_module_segment_count(m); i++) {
    cowmem_segment_info_t seg;
    ASSERT_OK(cowmem_module_segment_info(m, i, &seg));
    if (!segments) ASSERT_EQ(seg.mode, COWMEM_SEGMENT_PASSIVE);
  }
  cowmem_module_free(m);
  return 0;
}

/* The image file holds exactly the snapshot, for exactly this module. */
static int check_imgfile(const uint8_t* module, size_t len, const state_t* s) {
  char path[512];
  uint8_t hash[32];
  cowmem_imgfile_t* f = NULL;
  path_of(path, sizeof path, "b.cwimg");
  int fd = open(path, O_RDONLY);
  ASSERT_TRUE(fd >= 0);
  cowmem_sha256(module, len, hash);
  ASSERT_OK(cowmem_imgfile_open(fd, hash, 0, &f, NULL));
  close(fd);
  ASSERT_EQ(cowmem_imgfile_memory_count(f), s->snap.nmemories);
  for (uint32_t i = 0; i < s->snap.nmemories; i++) {
    cowmem_imgfile_memory_t mem;
    ASSERT_OK(cowmem_imgfile_memory(f, i, &mem));
    ASSERT_UEQ(mem.min_pages, s->mem[i].pages);
    uint8_t* got = calloc(1, s->len[i] ? s->len[i] : 1);
    ASSERT_NOT_NULL(got);
    if (mem.image) ASSERT_OK(cowmem_image_read(mem.image, 0, got, s->len[i]));
    int same = memcmp(got, s->bytes[i], s->len[i]);
    free(got);
    ASSERT_EQ(same, 0);
  }
  cowmem_imgfile_free(f);
  return 0;
}

/* Write `module` instrumented as name. */
static int instrument_to(const uint8_t* b, size_t n, unsigned flags,
                         const char* name) {
  cowmem_module_t* m = NULL;
  uint8_t* out;
  size_t len;
  ASSERT_OK(cowmem_module_parse(b, n, flags, &m, NULL));
  ASSERT_OK(cowmem_preinit_instrument(m, &out, &len, NULL));
  cowmem_module_free(m);
  int r = write_file(name, out, len);
  free(out);
  CHECK(r);
  return validate_file(name);
}

/* The whole path for one module: validate, instrument, initialize in
 * node, rewrite both ways, and compare with V8 (unless v8 is false: a
 * feature node 20 lacks). */
static int roundtrip(const char* text, const char* func, unsigned import_pages,
                     bool v8) {
  uint8_t *b, *out;
  size_t n, len;
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  state_t s;
  unsigned pflags = import_pages ? COWMEM_MODULE_FRESH_IMPORTS : 0;
  cowmem_preinit_options_t opt;
  char path[512];
  CHECK(wat("orig", text, &b, &n));
  ASSERT_OK(cowmem_module_parse(b, n, pflags, &m, NULL));
  ASSERT_OK(cowmem_preinit_validate(m, &d));
  CHECK(instrument_to(b, n, pflags, "inst.wasm"));
  if (!v8) { /* the state from a node without the feature: simulated */
    cowmem_module_free(m);
    free(b);
    return 0;
  }
  CHECK(node_snapshot(func, import_pages, &s));
  cowmem_preinit_options_init(&opt);
  opt.init_func = func;
  /* (a) segments */
  ASSERT_OK(cowmem_preinit_rewrite(m, &s.snap, &opt, &out, &len, -1, &d));
  CHECK(write_file("a.wasm", out, len));
  CHECK(validate_file("a.wasm"));
  CHECK(check_rewritten(out, len, &s, pflags, true));
  CHECK(instrument_to(out, len, pflags, "a-inst.wasm"));
  free(out);
  CHECK(run("node --experimental-wasm-type-reflection '%s' compare '%s/inst.wasm' "
            "'%s' '%s/a-inst.wasm' same %u", COWMEM_PREINIT_SCRIPT, g_dir, func,
            g_dir, import_pages));
  /* (b) images */
  path_of(path, sizeof path, "b.cwimg");
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_TRUE(fd >= 0);
  opt.flags |= COWMEM_PREINIT_IMAGES;
  ASSERT_OK(cowmem_preinit_rewrite(m, &s.snap, &opt, &out, &len, fd, &d));
  close(fd);
  CHECK(write_file("b.wasm", out, len));
  CHECK(validate_file("b.wasm"));
  CHECK(check_rewritten(out, len, &s, pflags, false));
  CHECK(check_imgfile(out, len, &s));
  CHECK(instrument_to(out, len, pflags, "b-inst.wasm"));
  free(out);
  CHECK(run("node --experimental-wasm-type-reflection '%s' compare '%s/inst.wasm' "
            "'%s' '%s/b-inst.wasm' zeros %u", COWMEM_PREINIT_SCRIPT, g_dir, func,
            g_dir, import_pages));
  state_free(&s);
  cowmem_module_free(m);
  free(b);
  return 0;
}

#define NEED_NODE()                                                            \
  do {                                                                         \
    NEED_WABT();                                                               \
    if (!have("node")) TEST_SKIP("node not installed");                        \
  } while (0)

TEST_IMPL(rewrite_every_global_type) {
  NEED_NODE();
  CHECK(roundtrip(
      "(module (memory 1) (data (i32.const 100) \"hello\")"
      "(global $a (mut i32) (i32.const 1)) (global $k i32 (i32.const 7))"
      "(global $b (mut i64) (i64.const 2)) (global $c (mut f32) (f32.const 3))"
      "(global $d (mut f64) (f64.const 4)) (global $e (mut v128) (v128.const i64x2 5 6))"
      "(global $z (mut i32) (i32.const 0))"
      "(func (export \"init\")"
      "  (global.set $a (i32.const -123456789))"
      "  (global.set $b (i64.const 0x8000000000000001))"
      "  (global.set $c (f32.const -1.25e-3)) (global.set $d (f64.const 6.02e23))"
      "  (global.set $e (v128.const i32x4 0x11223344 -1 0 0x7fffffff))"
      "  (i32.store (i32.const 200) (i32.const 0x01020304))"
      "  (i32.store8 (i32.const 100) (i32.const 72)))"
      "(func (export \"run\") (result i32)"
      "  (i32.add (global.get $a) (i32.load (i32.const 200)))))",
      "init", 0, true));
  teardown();
  return 0;
}

TEST_IMPL(rewrite_memory_grown) {
  NEED_NODE();
  CHECK(roundtrip(
      "(module (memory 1 10)"
      "(func (export \"wizer-initialize\")"
      "  (drop (memory.grow (i32.const 3)))"
      "  (i32.store (i32.const 0x30000) (i32.const 0xdeadbeef))"
      "  (i32.store (i32.const 0x3fffc) (i32.const 1)))"
      "(func (export \"run\") (result i32) (memory.size)))",
      "wizer-initialize", 0, true));
  /* The maximum is kept: the rewritten module still declares 10. */
  uint8_t* b;
  size_t n;
  cowmem_module_t* m = NULL;
  cowmem_memory_info_t mi;
  CHECK(read_file("a.wasm", &b, &n));
  ASSERT_OK(cowmem_module_parse(b, n, 0, &m, NULL));
  ASSERT_OK(cowmem_module_memory_info(m, 0, &mi));
  ASSERT_UEQ(mi.min_pages, 4);
  ASSERT_TRUE(mi.has_max);
  ASSERT_UEQ(mi.max_pages, 10);
  cowmem_module_free(m);
  free(b);
  teardown();
  return 0;
}

TEST_IMPL(rewrite_passive_segments) {
  NEED_NODE();
  /* memory.init during init and again in run: the passive segment keeps
   * its bytes, the active one is emptied (the snapshot holds it). */
  CHECK(roundtrip(
      "(module (memory 1) (data $act (i32.const 8) \"active\")"
      "(data $pas \"passive bytes\")"
      "(func (export \"init\")"
      "  (memory.init $pas (i32.const 1000) (i32.const 0) (i32.const 13)))"
      "(func (export \"run\") (result i32)"
      "  (memory.init $pas (i32.const 2000) (i32.const 8) (i32.const 5))"
      "  (i32.load8_u (i32.const 2000))))",
      "init", 0, true));
  teardown();
  return 0;
}

TEST_IMPL(rewrite_start_and_initialize) {
  NEED_NODE();
  /* The start function and _initialize ran before the snapshot: the
   * rewritten module has neither (state.js checks the exports). */
  CHECK(roundtrip(
      "(module (memory 1) (global $n (mut i32) (i32.const 0))"
      "(func $start (global.set $n (i32.add (global.get $n) (i32.const 1)))"
      "  (i32.store (i32.const 16) (global.get $n)))"
      "(start $start)"
      "(func (export \"_initialize\") (global.set $n (i32.mul (global.get $n) (i32.const 10))))"
      "(func (export \"init\") (i32.store (i32.const 20) (global.get $n)))"
      "(func (export \"run\") (result i32) (global.get $n)))",
      "init", 0, true));
  teardown();
  return 0;
}

TEST_IMPL(rewrite_fresh_imported_memory) {
  NEED_NODE();
  CHECK(roundtrip(
      "(module (import \"env\" \"mem\" (memory 1 4))"
      "(data (i32.const 3) \"abc\")"
      "(func (export \"init\") (drop (memory.grow (i32.const 1)))"
      "  (i32.store (i32.const 70000) (i32.const 42))))",
      "init", 1, true));
  teardown();
  return 0;
}

TEST_IMPL(rewrite_several_memories) {
  NEED_WABT();
  /* Node 20's V8 has no multi-memory: the state is written here, and the
   * outputs are checked with wasm-validate and cowmem's parser. */
  uint8_t *b, *out;
  size_t n, len;
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  CHECK(wat("multi",
            "(module (memory $a 1) (memory $b 2 3) (memory $c 1)"
            "(data (memory $b) (i32.const 5) \"bbb\") (data $p \"kept\")"
            "(global $g (mut i64) (i64.const 0))"
            "(func (export \"init\") (i32.store $b (i32.const 70000) (i32.const 9))))",
            &b, &n));
  ASSERT_OK(cowmem_module_parse(b, n, 0, &m, NULL));
  ASSERT_OK(cowmem_preinit_validate(m, &d));
  CHECK(instrument_to(b, n, 0, "inst.wasm"));
  state_t s;
  memset(&s, 0, sizeof s);
  static const uint64_t pages[3] = {1, 3, 1};
  for (int i = 0; i < 3; i++) {
    s.len[i] = pages[i] * PAGE;
    s.bytes[i] = calloc(1, s.len[i]);
    ASSERT_NOT_NULL(s.bytes[i]);
    s.mem[i].pages = pages[i];
  }
  memcpy(s.bytes[1] + 5, "bbb", 3);
  s.bytes[1][70000] = 9;
  s.bytes[1][3 * PAGE - 1] = 0x77; /* grown during init */
  s.bytes[2][0] = 1;
  for (int i = 0; i < 3; i++)
    if (i != 0)
      ASSERT_OK(cowmem_image_new_from_bytes(s.bytes[i], s.len[i], 0, &s.mem[i].image));
  s.glob[0] = (cowmem_preinit_global_t){0, COWMEM_TYPE_I64, {(uint64_t)-5, 0}};
  s.snap = (cowmem_preinit_snapshot_t){s.mem, 3, s.glob, 1};
  ASSERT_OK(cowmem_preinit_rewrite(m, &s.snap, NULL, &out, &len, -1, &d));
  CHECK(write_file("a.wasm", out, len));
  CHECK(validate_file("a.wasm"));
  CHECK(check_rewritten(out, len, &s, 0, true));
  cowmem_module_t* r = NULL;
  cowmem_global_info_t gi;
  ASSERT_OK(cowmem_module_parse(out, len, 0, &r, NULL));
  ASSERT_OK(cowmem_module_global_info(r, 0, &gi));
  ASSERT_EQ(gi.init, COWMEM_INIT_CONST);
  ASSERT_UEQ(gi.value, (uint64_t)-5);
  /* No body names a data index: the original active segment is gone, the
   * passive one is segment 0 with its bytes, the snapshot's follow. */
  cowmem_segment_info_t seg;
  ASSERT_OK(cowmem_module_segment_info(r, 0, &seg));
  ASSERT_EQ(seg.mode, COWMEM_SEGMENT_PASSIVE);
  ASSERT_EQ(seg.data_len, 4);
  ASSERT_GT(cowmem_module_segment_count(r), 1);
  for (uint32_t i = 1; i < cowmem_module_segment_count(r); i++) {
    ASSERT_OK(cowmem_module_segment_info(r, i, &seg));
    ASSERT_EQ(seg.mode, COWMEM_SEGMENT_ACTIVE);
  }
  cowmem_module_free(r);
  free(out);
  /* As images: the passive segment alone, renumbered in the name section
   * too (wat2wasm --debug-names names it $p). */
  cowmem_preinit_options_t opt;
  char path[512];
  cowmem_preinit_options_init(&opt);
  opt.flags = COWMEM_PREINIT_IMAGES;
  path_of(path, sizeof path, "b.cwimg");
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_TRUE(fd >= 0);
  ASSERT_OK(cowmem_preinit_rewrite(m, &s.snap, &opt, &out, &len, fd, &d));
  close(fd);
  CHECK(write_file("b.wasm", out, len));
  CHECK(validate_file("b.wasm"));
  ASSERT_OK(cowmem_module_parse(out, len, 0, &r, NULL));
  ASSERT_EQ(cowmem_module_segment_count(r), 1);
  ASSERT_OK(cowmem_module_segment_info(r, 0, &seg));
  ASSERT_EQ(seg.data_len, 4);
  CHECK(run("wasm-objdump -x '%s/b.wasm' | grep -q 'segment\\[0\\] <p> passive'",
            g_dir));
  cowmem_module_free(r);
  free(out);
  state_free(&s);
  cowmem_module_free(m);
  free(b);
  teardown();
  return 0;
}

/* Options and bad snapshots, without node: segments merged and bounded,
 * renames, keep-init, and every EINVAL leaving the outputs alone. */
TEST_IMPL(rewrite_options_and_errors) {
  NEED_WABT();
  uint8_t *b, *out;
  size_t n, len;
  cowmem_module_t *m = NULL, *r = NULL;
  cowmem_diag_t d;
  CHECK(wat("opts",
            "(module (memory 1 2) (global $g (mut f32) (f32.const 0))"
            "(func $a) (func $b) (func $i)"
            "(export \"a\" (func $a)) (export \"b\" (func $b))"
            "(export \"wizer-initialize\" (func $i)) (export \"mem\" (memory 0)))",
            &b, &n));
  ASSERT_OK(cowmem_module_parse(b, n, 0, &m, NULL));
  uint8_t* bytes = calloc(1, PAGE);
  ASSERT_NOT_NULL(bytes);
  bytes[0] = 1, bytes[3] = 2, bytes[100] = 3, bytes[200] = 4, bytes[300] = 5;
  cowmem_preinit_memory_t mem = {1, NULL};
  ASSERT_OK(cowmem_image_new_from_bytes(bytes, PAGE, 0, &mem.image));
  cowmem_preinit_global_t g = {0, COWMEM_TYPE_F32, {0x3fc00000, 0}};
  cowmem_preinit_snapshot_t snap = {&mem, 1, &g, 1};
  cowmem_preinit_options_t opt;
  const char* renames[] = {"b=a"};
  cowmem_preinit_options_init(&opt);
  opt.renames = renames, opt.nrenames = 1;
  opt.max_segments = 2;
  opt.flags = COWMEM_PREINIT_KEEP_INIT_FUNC;
  ASSERT_OK(cowmem_preinit_rewrite(m, &snap, &opt, &out, &len, -1, &d));
  CHECK(write_file("opts-a.wasm", out, len));
  CHECK(validate_file("opts-a.wasm"));
  ASSERT_OK(cowmem_module_parse(out, len, 0, &r, NULL));
  ASSERT_LE(cowmem_module_segment_count(r), 2);
  uint8_t* got = calloc(1, PAGE);
  ASSERT_NOT_NULL(got);
  ASSERT_OK(cowmem_image_read(cowmem_module_image(r, 0, NULL), 0, got, PAGE));
  ASSERT_EQ(memcmp(got, bytes, PAGE), 0);
  /* Exports: b is a's function, the old b gone, the init func kept. */
  ASSERT_EQ(cowmem_module_export_count(r), 3);
  cowmem_export_info_t e;
  ASSERT_OK(cowmem_module_export_info(r, 0, &e));
  ASSERT_TRUE(e.name_len == 1 && e.name[0] == 'b' && e.index == 0);
  ASSERT_OK(cowmem_module_export_info(r, 1, &e));
  ASSERT_TRUE(e.name_len == 16 && memcmp(e.name, "wizer-initialize", 16) == 0);
  cowmem_global_info_t gi;
  ASSERT_OK(cowmem_module_global_info(r, 0, &gi));
  ASSERT_UEQ(gi.value, 0x3fc00000);
  cowmem_module_free(r);
  free(out);
  /* merge_gap 8 without a bound: runs [0,4), 100, 200, 300. */
  cowmem_preinit_options_init(&opt);
  ASSERT_OK(cowmem_preinit_rewrite(m, &snap, &opt, &out, &len, -1, &d));
  ASSERT_OK(cowmem_module_parse(out, len, 0, &r, NULL));
  ASSERT_EQ(cowmem_module_segment_count(r), 4);
  cowmem_segment_info_t seg;
  ASSERT_OK(cowmem_module_segment_info(r, 0, &seg));
  ASSERT_EQ(seg.data_len, 4);
  cowmem_module_free(r);
  free(out);
  /* Errors: nothing returned, diag names the field. */
  uint8_t* keep = (uint8_t*)&opt;
  out = keep, len = 5;
  const char* bad_renames[][1] = {{"x=nope"}, {"=a"}, {"b"}};
  for (int i = 0; i < 3; i++) {
    cowmem_preinit_options_init(&opt);
    opt.renames = bad_renames[i], opt.nrenames = 1;
    ASSERT_ERR(cowmem_preinit_rewrite(m, &snap, &opt, &out, &len, -1, &d),
               COWMEM_EINVAL);
    ASSERT_TRUE(strstr(d.reason, "rename") != NULL);
  }
  cowmem_preinit_options_init(&opt);
  opt.max_segments = 0;
  ASSERT_ERR(cowmem_preinit_rewrite(m, &snap, &opt, &out, &len, -1, &d),
             COWMEM_EINVAL);
  mem.pages = 3; /* beyond the maximum */
  ASSERT_ERR(cowmem_preinit_rewrite(m, &snap, NULL, &out, &len, -1, &d),
             COWMEM_EINVAL);
  mem.pages = 1;
  g.type = COWMEM_TYPE_I32;
  ASSERT_ERR(cowmem_preinit_rewrite(m, &snap, NULL, &out, &len, -1, &d),
             COWMEM_EINVAL);
  snap.nglobals = 0;
  ASSERT_ERR(cowmem_preinit_rewrite(m, &snap, NULL, &out, &len, -1, &d),
             COWMEM_EINVAL);
  ASSERT_PTR_EQ(out, keep);
  ASSERT_EQ(len, 5);
  ASSERT_ERR(cowmem_preinit_rewrite(NULL, &snap, NULL, &out, &len, -1, &d),
             COWMEM_EINVAL);
  free(got);
  free(bytes);
  cowmem_image_release(mem.image);
  cowmem_module_free(m);
  free(b);
  teardown();
  return 0;
}

TEST_MAIN(TEST_ENTRY(validate_decodes_immediates)
          TEST_ENTRY(validate_refuses_instructions)
          TEST_ENTRY(validate_refuses_imports_and_globals)
          TEST_ENTRY(validate_malformed_body)
          TEST_ENTRY(rewrite_every_global_type)
          TEST_ENTRY(rewrite_memory_grown)
          TEST_ENTRY(rewrite_passive_segments)
          TEST_ENTRY(rewrite_start_and_initialize)
          TEST_ENTRY(rewrite_fresh_imported_memory)
          TEST_ENTRY(rewrite_several_memories)
          TEST_ENTRY(rewrite_options_and_errors))
