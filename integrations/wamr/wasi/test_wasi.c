/* test_wasi.c: WASI programs through cowmem_wamr (cowmem_wamr_wasi.h), on
 * probe.wasm (a command) and reactor.wasm (a reactor), with the stock
 * runtime in the same process as the reference. ctest runs each test as
 * wamr_wasi_<name>. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cowmem_wamr_wasi.h"
#include "iwasm_runner.h"
#include "test.h"
#include "wamr_wasi_stock.h"

#define STACK (64u << 10)

static cowmem_wamr_module_t* g_probe;
static cowmem_wamr_module_t* g_reactor;

static int setup(void) {
  RuntimeInitArgs args;
  memset(&args, 0, sizeof args);
  args.mem_alloc_type = Alloc_With_System_Allocator;
  ASSERT_TRUE(wamr_api_stock.full_init(&args));
  ASSERT_TRUE(cowmem_wamr_runtime_init(NULL));
  /* A small pool: TSan's address space holds no 256 slots of 8 GiB. */
  cowmem_wamr_config_t cfg;
  cowmem_wamr_config_init(&cfg);
  cfg.max_memories = 8;
  cowmem_diag_t diag = {0};
  ASSERT_OK(cowmem_wamr_init(&cfg, &diag));
  ASSERT_OK(cowmem_wamr_module_open(COWMEM_WASI_PROBE, &g_probe, &diag));
  ASSERT_OK(cowmem_wamr_module_open(COWMEM_WASI_REACTOR, &g_reactor, &diag));
  ASSERT_EQ(cowmem_wamr_module_memories(g_probe), 1);
  return 0;
}

static int teardown(void) {
  cowmem_wamr_module_free(g_probe);
  cowmem_wamr_module_free(g_reactor);
  wasm_runtime_destroy();
  ASSERT_OK(cowmem_wamr_shutdown());
  wamr_api_stock.destroy();
  return 0;
}

/* A run of probe.wasm with argv (NULL-terminated, after "probe"), stdin
 * `in`, the other fields of *base (may be NULL): its stdout in out, its
 * exit code, or -1 after a trap. */
typedef struct {
  char out[4096];
  size_t len;
  int code;
  int err; /* cowmem_wamr_wasi_run_main's result */
} run_t;

static int run_probe(const cowmem_wamr_wasi_t* base, const char* in, run_t* r,
                     const char* const* args) {
  cowmem_wamr_wasi_t w;
  if (base)
    w = *base;
  else
    cowmem_wamr_wasi_init(&w);
  char* argv[16] = {"probe"};
  int argc = 1;
  while (args[argc - 1] && argc < 15) {
    argv[argc] = (char*)args[argc - 1];
    argc++;
  }
  w.argv = argv;
  w.argc = argc;
  ASSERT_OK(cowmem_wamr_wasi_buffer_fd(in, in ? strlen(in) : 0, &w.stdin_fd));
  ASSERT_OK(cowmem_wamr_wasi_buffer_fd(NULL, 0, &w.stdout_fd));
  wasm_module_inst_t inst;
  cowmem_diag_t diag = {0};
  ASSERT_OK(cowmem_wamr_wasi_instantiate(g_probe, &w, STACK, 0, &inst, &diag));
  r->code = -1;
  r->err = cowmem_wamr_wasi_run_main(inst, &r->code, &diag);
  wasm_runtime_deinstantiate(inst);
  size_t total;
  ASSERT_OK(cowmem_wamr_wasi_read_fd(w.stdout_fd, r->out, sizeof r->out - 1, &r->len,
                                     &total));
  ASSERT_EQ(total, r->len);
  r->out[r->len] = 0;
  close(w.stdin_fd);
  close(w.stdout_fd);
  return 0;
}
#define RUN(base, in, r, ...)                                                            \
  CHECK(run_probe(base, in, r, (const char* const[]){__VA_ARGS__, NULL}))

TEST_IMPL(command_streams) {
  CHECK(setup());
  run_t r;
  RUN(NULL, "a request body", &r, "cat");
  ASSERT_OK(r.err);
  ASSERT_EQ(r.code, 0);
  ASSERT_STR_EQ(r.out, "a request body\n14 bytes\n");
  RUN(NULL, NULL, &r, "args", "one", "two words");
  ASSERT_STR_EQ(r.out, "argc 4\nargv[1] args\nargv[2] one\nargv[3] two words\n");
  cowmem_wamr_wasi_t w;
  cowmem_wamr_wasi_init(&w);
  const char* env[] = {"GREETING=hello=there", "EMPTY="};
  w.env = env;
  w.env_count = 2;
  RUN(&w, NULL, &r, "env", "GREETING", "EMPTY", "HOME");
  ASSERT_STR_EQ(r.out, "GREETING=hello=there\nEMPTY=\nHOME unset\n");
  /* The memories came from the pool with the module's image. */
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.image_allocs, 3);
  ASSERT_EQ(n.live, 0);
  return teardown();
}

TEST_IMPL(exit_codes) {
  CHECK(setup());
  run_t r;
  RUN(NULL, NULL, &r, "exit", "7");
  ASSERT_OK(r.err);
  ASSERT_EQ(r.code, 7);
  RUN(NULL, NULL, &r, "exit", "0");
  ASSERT_EQ(r.code, 0);
  RUN(NULL, NULL, &r, "trap");
  ASSERT_EQ(r.err, COWMEM_EINVALID);
  ASSERT_STR_EQ(r.out, "about to trap\n");
  RUN(NULL, NULL, &r, "grow", "64");
  ASSERT_OK(r.err);
  ASSERT_STR_EQ(r.out, "grew 64 MiB, sum 2088960\n");
  return teardown();
}

static char g_tmp[2][64];

static int make_dirs(void) {
  for (int i = 0; i < 2; i++) {
    snprintf(g_tmp[i], sizeof g_tmp[i], "/tmp/cowmem-wasi-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(g_tmp[i]));
  }
  return 0;
}

static void remove_dirs(void) {
  char path[128];
  for (int i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s/secret", g_tmp[i]);
    unlink(path);
    rmdir(g_tmp[i]);
  }
}

/* Each request gets its own directory as /work: what one leaves in memory
 * or in its directory is not seen by the next, except its own directory
 * given again. */
TEST_IMPL(isolation) {
  CHECK(setup());
  CHECK(make_dirs());
  char map[2][96];
  const char* maps[2][1];
  cowmem_wamr_wasi_t w[2];
  for (int i = 0; i < 2; i++) {
    snprintf(map[i], sizeof map[i], "/work::%s", g_tmp[i]);
    maps[i][0] = map[i];
    cowmem_wamr_wasi_init(&w[i]);
    w[i].map_dirs = maps[i];
    w[i].map_dir_count = 1;
  }
  run_t r;
  RUN(&w[0], NULL, &r, "secret", "/work/secret");
  ASSERT_STR_EQ(r.out, "memory clean\nfile absent\n");
  RUN(&w[1], NULL, &r, "secret", "/work/secret");
  ASSERT_STR_EQ(r.out, "memory clean\nfile absent\n");
  /* Outside its preopen, by any path, there is nothing to open. */
  char other[128];
  snprintf(other, sizeof other, "/work/../%s/secret", strrchr(g_tmp[0], '/') + 1);
  RUN(&w[1], NULL, &r, "read", other);
  ASSERT_TRUE(strncmp(r.out, "open ", 5) == 0);
  snprintf(other, sizeof other, "%s/secret", g_tmp[0]);
  RUN(&w[1], NULL, &r, "read", other);
  ASSERT_TRUE(strncmp(r.out, "open ", 5) == 0);
  RUN(NULL, NULL, &r, "ls", "/work");
  ASSERT_TRUE(strncmp(r.out, "opendir /work: ", 15) == 0);
  /* Its own directory again: the file is there (the host gave it), the
   * memory is clean. */
  RUN(&w[0], NULL, &r, "secret", "/work/secret");
  ASSERT_STR_EQ(r.out, "memory clean\nfile HOLDS A SECRET\n");
  remove_dirs();
  return teardown();
}

TEST_IMPL(reactor) {
  CHECK(setup());
  for (int round = 0; round < 2; round++) {
    cowmem_wamr_wasi_t w;
    cowmem_wamr_wasi_init(&w);
    ASSERT_OK(cowmem_wamr_wasi_buffer_fd(NULL, 0, &w.stdout_fd));
    wasm_module_inst_t inst;
    cowmem_diag_t diag = {0};
    ASSERT_OK(cowmem_wamr_wasi_instantiate(g_reactor, &w, STACK, 0, &inst, &diag));
    wasm_exec_env_t env = wasm_runtime_create_exec_env(inst, STACK);
    ASSERT_NOT_NULL(env);
    uint32_t argv[2] = {0};
    ASSERT_TRUE(wasm_runtime_call_wasm(env, wasm_runtime_lookup_function(inst, "ready"),
                                       0, argv));
    ASSERT_EQ(argv[0], 42); /* _initialize ran its constructor */
    for (uint32_t k = 1; k <= 2; k++) {
      argv[0] = 2;
      argv[1] = 3;
      ASSERT_TRUE(wasm_runtime_call_wasm(env, wasm_runtime_lookup_function(inst, "add"),
                                         2, argv));
      ASSERT_EQ(argv[0], 5 + 1000 * k); /* counts from 1 in each instance */
    }
    ASSERT_TRUE(wasm_runtime_call_wasm(env, wasm_runtime_lookup_function(inst, "hello"),
                                       0, argv));
    ASSERT_EQ(argv[0], 9);
    /* iwasm -f: text arguments, the result printed by WAMR. */
    int code = -1;
    char* args[] = {"40", "2"};
    ASSERT_OK(cowmem_wamr_wasi_call(inst, "add", 2, args, &code, &diag));
    ASSERT_EQ(code, 0);
    ASSERT_ERR(cowmem_wamr_wasi_call(inst, "nope", 0, NULL, &code, &diag), COWMEM_EINVALID);
    wasm_runtime_destroy_exec_env(env);
    wasm_runtime_deinstantiate(inst);
    char out[256];
    size_t len;
    ASSERT_OK(cowmem_wamr_wasi_read_fd(w.stdout_fd, out, sizeof out - 1, &len, NULL));
    out[len] = 0;
    /* The scribble of round 0 is gone in round 1: the data is the image's. */
    ASSERT_STR_EQ(out, "hello from the reactor: initial data segment\n");
    close(w.stdout_fd);
  }
  return teardown();
}

TEST_IMPL(bad_arguments) {
  CHECK(setup());
  cowmem_wamr_wasi_t w;
  wasm_module_inst_t inst = NULL;
  cowmem_diag_t diag;
  const char* missing[] = {"/nonexistent/cowmem-wasi"};
  const char* file[] = {"/etc/hostname"};
  const char* bad_map[] = {"/work:/tmp"};
  const char* bad_env[] = {"NOEQUALS"};
  const char* key_env[] = {"=value"};
  struct {
    const char* const* dirs;
    const char* const* maps;
    const char* const* env;
    int fd;
    int code;
    const char* says;
  } cases[] = {
      {missing, NULL, NULL, -1, COWMEM_ENOENT, "/nonexistent/cowmem-wasi"},
      {file, NULL, NULL, -1, COWMEM_EINVAL, "not a directory"},
      {NULL, bad_map, NULL, -1, COWMEM_EINVAL, "guest::host"},
      {NULL, NULL, bad_env, -1, COWMEM_EINVAL, "KEY=value"},
      {NULL, NULL, key_env, -1, COWMEM_EINVAL, "KEY=value"},
      {NULL, NULL, NULL, 1000, COWMEM_EBADF, "stdout fd"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cowmem_wamr_wasi_init(&w);
    w.dirs = cases[i].dirs;
    w.dir_count = cases[i].dirs ? 1 : 0;
    w.map_dirs = cases[i].maps;
    w.map_dir_count = cases[i].maps ? 1 : 0;
    w.env = cases[i].env;
    w.env_count = cases[i].env ? 1 : 0;
    w.stdout_fd = cases[i].fd;
    memset(&diag, 0, sizeof diag);
    ASSERT_ERR(cowmem_wamr_wasi_instantiate(g_probe, &w, STACK, 0, &inst, &diag),
               cases[i].code);
    ASSERT_NULL(inst); /* untouched */
    if (!strstr(diag.reason, cases[i].says))
      TEST_FAIL_("case %zu: reason \"%s\" lacks \"%s\"", i, diag.reason, cases[i].says);
  }
  ASSERT_ERR(cowmem_wamr_wasi_instantiate(g_probe, NULL, STACK, 0, &inst, &diag),
             COWMEM_EINVAL);
  ASSERT_ERR(cowmem_wamr_wasi_instantiate(NULL, &w, STACK, 0, &inst, &diag),
             COWMEM_EINVAL);
  cowmem_wamr_wasi_t old;
  memset(&old, 0, sizeof old);
  ASSERT_ERR(cowmem_wamr_wasi_set(cowmem_wamr_module_wamr(g_probe), &old, &diag),
             COWMEM_EINVAL);
  ASSERT_ERR(cowmem_wamr_wasi_run_main(NULL, NULL, &diag), COWMEM_EINVAL);
  /* The same through an instance with its environment. */
  cowmem_wamr_instance_t* x = NULL;
  w.stdout_fd = 1000;
  ASSERT_ERR(cowmem_wamr_wasi_instance_new(g_probe, &w, STACK, 0, &x, &diag), COWMEM_EBADF);
  ASSERT_NULL(x); /* untouched */
  ASSERT_ERR(cowmem_wamr_wasi_instance_new(NULL, &w, STACK, 0, &x, &diag), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_wamr_wasi_instance_new(g_probe, &w, STACK, 0, NULL, &diag),
             COWMEM_EINVAL);
  ASSERT_ERR(cowmem_wamr_wasi_instance_run_main(NULL, NULL, &diag), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_wamr_wasi_instance_call(NULL, "f", 0, NULL, NULL, &diag),
             COWMEM_EINVAL);
  /* Nothing was left behind: no slot taken, and the next run is normal. */
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.live, 0);
  run_t r;
  RUN(NULL, NULL, &r, "args");
  ASSERT_STR_EQ(r.out, "argc 2\nargv[1] args\n");
  return teardown();
}

/* The same runs through the stock runtime: byte-identical stdout. */
static int run_stock(const char* const* args, const char* in, char* out, size_t cap,
                     int* code) {
  uint8_t* bytes;
  uint32_t size;
  int fd = open(COWMEM_WASI_PROBE, O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  size_t n;
  ASSERT_OK(cowmem_module_read(fd, &bytes, &n));
  close(fd);
  size = (uint32_t)n;
  char err[128];
  wasm_module_t m = wamr_api_stock.load(bytes, size, err, sizeof err);
  ASSERT_NOT_NULL(m);
  cowmem_wamr_wasi_t w;
  cowmem_wamr_wasi_init(&w);
  char* argv[16] = {"probe"};
  int argc = 1;
  while (args[argc - 1] && argc < 15) argv[argc] = (char*)args[argc - 1], argc++;
  w.argv = argv;
  w.argc = argc;
  ASSERT_OK(cowmem_wamr_wasi_buffer_fd(in, in ? strlen(in) : 0, &w.stdin_fd));
  ASSERT_OK(cowmem_wamr_wasi_buffer_fd(NULL, 0, &w.stdout_fd));
  cowmem_diag_t diag;
  ASSERT_OK(cowmem_stock_wamr_wasi_set(m, &w, &diag));
  wasm_module_inst_t inst = wamr_api_stock.instantiate(m, STACK, 0, err, sizeof err);
  cowmem_stock_wamr_wasi_clear(m);
  ASSERT_NOT_NULL(inst);
  *code = -1;
  ASSERT_OK(cowmem_stock_wamr_wasi_run_main(inst, code, &diag));
  wamr_api_stock.deinstantiate(inst);
  wamr_api_stock.unload(m);
  free(bytes);
  size_t len;
  ASSERT_OK(cowmem_wamr_wasi_read_fd(w.stdout_fd, out, cap - 1, &len, NULL));
  out[len] = 0;
  close(w.stdin_fd);
  close(w.stdout_fd);
  return 0;
}

TEST_IMPL(same_as_stock) {
  CHECK(setup());
  static const char* const cases[][5] = {
      {"cat", NULL},         {"args", "x", "y z", NULL},
      {"exit", "3", NULL},   {"grow", "3", NULL},
      {"env", "PATH", NULL}, {"nothing", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char stock[4096];
    int code;
    CHECK(run_stock(cases[i], "stdin bytes\n", stock, sizeof stock, &code));
    run_t r;
    CHECK(run_probe(NULL, "stdin bytes\n", &r, cases[i]));
    ASSERT_STR_EQ(r.out, stock);
    ASSERT_EQ(r.code, code);
  }
  return teardown();
}

TEST_IMPL(buffers) {
  int fd;
  ASSERT_OK(cowmem_wamr_wasi_buffer_fd("0123456789", 10, &fd));
  char buf[8];
  size_t len, total;
  ASSERT_OK(cowmem_wamr_wasi_read_fd(fd, buf, 4, &len, &total));
  ASSERT_EQ(len, 4);
  ASSERT_EQ(total, 10); /* the caller sees the buffer was too small */
  ASSERT_TRUE(memcmp(buf, "0123", 4) == 0);
  ASSERT_EQ(read(fd, buf, 2), 2); /* stdin reads from the start */
  ASSERT_TRUE(memcmp(buf, "01", 2) == 0);
  ASSERT_OK(cowmem_wamr_wasi_reset_fd(fd));
  ASSERT_OK(cowmem_wamr_wasi_read_fd(fd, buf, sizeof buf, &len, &total));
  ASSERT_EQ(len, 0);
  ASSERT_EQ(total, 0);
  close(fd);
  ASSERT_ERR(cowmem_wamr_wasi_buffer_fd(NULL, 3, &fd), COWMEM_EINVAL);
  ASSERT_ERR(cowmem_wamr_wasi_read_fd(fd, buf, sizeof buf, &len, NULL), COWMEM_EBADF);
  ASSERT_ERR(cowmem_wamr_wasi_read_fd(0, buf, 1, NULL, NULL), COWMEM_EINVAL);
  return 0;
}

/* Two threads instantiating one module with their own arguments at once:
 * WAMR keeps WASI arguments on the module, so without the lock in
 * cowmem_wamr_wasi_instantiate one thread's instance could start with the
 * other's argv. */
static pthread_mutex_t g_env_lock = PTHREAD_MUTEX_INITIALIZER;

static void* thread_requests(void* arg) {
  const char* me = arg;
  void* bad = (void*)1;
  pthread_mutex_lock(&g_env_lock); /* WAMR: one thread env init at a time */
  bool ok = wasm_runtime_init_thread_env();
  pthread_mutex_unlock(&g_env_lock);
  if (!ok) return bad;
  char expect[128];
  snprintf(expect, sizeof expect, "argc 3\nargv[1] args\nargv[2] %s\n", me);
  void* r = NULL;
  for (int i = 0; i < 40 && !r; i++) {
    run_t out;
    if (run_probe(NULL, NULL, &out, (const char* const[]){"args", me, NULL}) != 0 ||
        strcmp(out.out, expect) != 0)
      r = bad;
  }
  pthread_mutex_lock(&g_env_lock);
  wasm_runtime_destroy_thread_env();
  pthread_mutex_unlock(&g_env_lock);
  return r;
}

TEST_IMPL(threads) {
  CHECK(setup());
  pthread_t a, b;
  void *ra = (void*)1, *rb = (void*)1;
  ASSERT_EQ(pthread_create(&a, NULL, thread_requests, "first-thread"), 0);
  ASSERT_EQ(pthread_create(&b, NULL, thread_requests, "second"), 0);
  ASSERT_EQ(pthread_join(a, &ra) | pthread_join(b, &rb), 0);
  ASSERT_TRUE(ra == NULL && rb == NULL); /* each saw only its own argv */
  cowmem_wamr_counters_t n;
  cowmem_wamr_counters(&n);
  ASSERT_EQ(n.image_allocs, 80);
  return teardown();
}

TEST_MAIN(TEST_ENTRY(command_streams) TEST_ENTRY(exit_codes) TEST_ENTRY(isolation)
              TEST_ENTRY(reactor) TEST_ENTRY(bad_arguments) TEST_ENTRY(same_as_stock)
                  TEST_ENTRY(buffers) TEST_ENTRY(threads))
