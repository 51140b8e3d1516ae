/* A small test harness in libuv's manner: each test is TEST_IMPL(name), a
 * program's tests are listed by TEST_LIST, and every test runs alone by name:
 *   ./test_slot             run all, in order, each in its own process
 *   ./test_slot slot_images run one in this process (what ctest does)
 * Assertions print both values and the line, then fail the test. A test that
 * cannot run here calls TEST_SKIP("reason"), exit code 77 (ctest's skip). */
#ifndef COWMEM_TEST_H
#define COWMEM_TEST_H

#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Built with ASan or TSan: they reserve shadow memory and grow the process,
 * so tests that measure address space, RSS or mappings check less. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

#define TEST_SKIP_CODE 77

/* The length of a randomized test: COWMEM_TEST_OPS when set, else ops, or
 * a quarter of it under a sanitizer. Those builds look for memory and
 * thread errors, which a shorter run meets on the same paths, and each
 * operation costs them several times a release build's. */
static inline size_t test_ops(size_t ops) {
  const char* e = getenv("COWMEM_TEST_OPS");
  if (e != NULL && *e != '\0') return (size_t)strtoull(e, NULL, 0);
#ifdef UNDER_SANITIZER
  ops /= 4;
#endif
  return ops;
}

typedef int (*test_fn)(void);
typedef struct {
  const char* name;
  test_fn fn;
} test_entry_t;

#define TEST_IMPL(name) int test_##name(void)
#define TEST_ENTRY(name) {#name, test_##name},

#define TEST_FAIL_(...)                                                        \
  do {                                                                         \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                           \
    fprintf(stderr, __VA_ARGS__);                                              \
    fprintf(stderr, "\n");                                                     \
    fflush(stderr);                                                            \
    return 1;                                                                  \
  } while (0)

#define TEST_SKIP(reason)                                                      \
  do {                                                                         \
    fprintf(stderr, "SKIP: %s\n", reason);                                     \
    return TEST_SKIP_CODE;                                                     \
  } while (0)

#define ASSERT_BASE_(a, op, b, type, fmt)                                      \
  do {                                                                         \
    type a_ = (type)(a);                                                       \
    type b_ = (type)(b);                                                       \
    if (!(a_ op b_))                                                           \
      TEST_FAIL_("assertion failed: %s %s %s (" fmt " %s " fmt ")", #a, #op,   \
                 #b, a_, #op, b_);                                             \
  } while (0)

#define ASSERT_EQ(a, b) ASSERT_BASE_(a, ==, b, int64_t, "%" PRId64)
#define ASSERT_NE(a, b) ASSERT_BASE_(a, !=, b, int64_t, "%" PRId64)
#define ASSERT_LT(a, b) ASSERT_BASE_(a, <, b, int64_t, "%" PRId64)
#define ASSERT_LE(a, b) ASSERT_BASE_(a, <=, b, int64_t, "%" PRId64)
#define ASSERT_GT(a, b) ASSERT_BASE_(a, >, b, int64_t, "%" PRId64)
#define ASSERT_GE(a, b) ASSERT_BASE_(a, >=, b, int64_t, "%" PRId64)
#define ASSERT_UEQ(a, b) ASSERT_BASE_(a, ==, b, uint64_t, "%" PRIu64)
#define ASSERT_PTR_EQ(a, b) ASSERT_BASE_(a, ==, b, const void*, "%p")
#define ASSERT_PTR_NE(a, b) ASSERT_BASE_(a, !=, b, const void*, "%p")
#define ASSERT_NULL(a) ASSERT_PTR_EQ(a, NULL)
#define ASSERT_NOT_NULL(a) ASSERT_PTR_NE(a, NULL)
#define ASSERT_TRUE(a)                                                         \
  do {                                                                         \
    if (!(a)) TEST_FAIL_("assertion failed: %s", #a);                          \
  } while (0)
#define ASSERT_FALSE(a) ASSERT_TRUE(!(a))
#define ASSERT_STR_EQ(a, b)                                                    \
  do {                                                                         \
    const char* a_ = (a);                                                      \
    const char* b_ = (b);                                                      \
    if (strcmp(a_, b_) != 0)                                                   \
      TEST_FAIL_("assertion failed: %s == %s (\"%s\" == \"%s\")", #a, #b, a_,  \
                 b_);                                                          \
  } while (0)
/* A cowmem call that must succeed: prints the error's name on failure. */
#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    int r_ = (expr);                                                           \
    if (r_ != 0)                                                               \
      TEST_FAIL_("%s failed: %d (%s: %s)", #expr, r_, cowmem_err_name(r_),     \
                 cowmem_strerror(r_));                                         \
  } while (0)
/* A cowmem call that must fail with this code. */
#define ASSERT_ERR(expr, code)                                                 \
  do {                                                                         \
    int r_ = (expr);                                                           \
    if (r_ != (code))                                                          \
      TEST_FAIL_("%s: expected %s, got %d (%s)", #expr, cowmem_err_name(code), \
                 r_, cowmem_err_name(r_));                                     \
  } while (0)
/* A helper returning int that must return 0 (propagates the failure line). */
#define CHECK(expr)                                                            \
  do {                                                                         \
    if ((expr) != 0) TEST_FAIL_("check failed: %s", #expr);                    \
  } while (0)

/* Run fn in a forked child; returns the signal that killed it, or 0 if it
 * exited normally. Guard-page tests use this. */
static inline int test_run_in_child(void (*fn)(void* arg), void* arg) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    /* Sanitizers catch SIGSEGV and exit; the test wants the signal itself. */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    fn(arg);
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  if (WIFSIGNALED(status)) return WTERMSIG(status);
  return 0;
}

static inline int test_main_(int argc, char** argv, const test_entry_t* tests,
                             size_t n) {
  if (argc > 1) {
    for (size_t i = 0; i < n; i++)
      if (strcmp(argv[1], tests[i].name) == 0) return tests[i].fn();
    if (strcmp(argv[1], "--list") == 0) {
      for (size_t i = 0; i < n; i++) printf("%s\n", tests[i].name);
      return 0;
    }
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
  }
  int passed = 0, failed = 0, skipped = 0;
  for (size_t i = 0; i < n; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(tests[i].fn());
    int status = 0;
    waitpid(pid, &status, 0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const char* verdict = code == 0 ? "ok" : code == TEST_SKIP_CODE ? "skip" : "FAIL";
    printf("%-4s %s\n", verdict, tests[i].name);
    if (code == 0) passed++;
    else if (code == TEST_SKIP_CODE) skipped++;
    else failed++;
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}

#define TEST_MAIN(...)                                                         \
  int main(int argc, char** argv) {                                            \
    static const test_entry_t tests_[] = {__VA_ARGS__};                        \
    return test_main_(argc, argv, tests_, sizeof tests_ / sizeof tests_[0]);   \
  }

#endif
