/* test_death.h: behaviour that ends the process, tested in a forked child
 * whose stderr is captured: the integrations' refusals that abort with a
 * message (a stale, double or interior free), as the stock runtimes' own
 * checks do. */
#ifndef COWMEM_TEST_DEATH_H
#define COWMEM_TEST_DEATH_H

#include <errno.h>

#include "test.h"

/* How a child ended: killed by `signal` (0: exited with `code`), and the
 * start of what it wrote to stderr. */
typedef struct {
  int signal, code;
  char err[4096];
} test_death_t;

/* Run fn(arg) in a forked child with stderr into d->err. 0, or -1 when
 * fork, pipe or wait failed. */
static inline int test_death_run(void (*fn)(void* arg), void* arg, test_death_t* d) {
  memset(d, 0, sizeof *d);
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  while (n < sizeof d->err - 1) {
    ssize_t k = read(fds[0], d->err + n, sizeof d->err - 1 - n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    n += (size_t)k;
  }
  /* Drain what does not fit, so the child never blocks on a full pipe. */
  char sink[512];
  while (read(fds[0], sink, sizeof sink) > 0) {
  }
  close(fds[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  d->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  d->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return 0;
}

/* "%p" of p, as the messages print it (a static buffer). */
static inline const char* test_ptr_text(const void* p) {
  static char buf[32];
  snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

/* fn(arg) must end the child by SIGABRT after writing `text` to stderr. */
#define ASSERT_ABORTS(fn, arg, text)                                           \
  do {                                                                         \
    test_death_t d_;                                                           \
    ASSERT_EQ(test_death_run(fn, arg, &d_), 0);                                \
    if (d_.signal != SIGABRT || !strstr(d_.err, (text)))                       \
      TEST_FAIL_("%s: expected an abort saying \"%s\"; got signal %d, exit "   \
                 "%d, stderr \"%s\"",                                          \
                 #fn, (text), d_.signal, d_.code, d_.err);                     \
  } while (0)

#endif
