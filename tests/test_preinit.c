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
  if (run("wat2wasm " WAT_FLAGS " '%s/%s.wat' -o '%s/%s.wasm'", g_dir, name,
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

TEST_MAIN(TEST_ENTRY(validate_decodes_immediates)
          TEST_ENTRY(validate_refuses_instructions)
          TEST_ENTRY(validate_refuses_imports_and_globals)
          TEST_ENTRY(validate_malformed_body))
