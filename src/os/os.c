/* The OS layer's shared part: system call counters, fault injection, and the
 * one place where a backend is chosen. */
#include "os/os.h"

#include <stdatomic.h>

_Thread_local int cowmem__os_tl_stripe __attribute__((tls_model("initial-exec"))) = -1;
static _Atomic unsigned os_next_stripe;

int cowmem__os_stripe_first(void) {
  unsigned n = atomic_fetch_add_explicit(&os_next_stripe, 1, memory_order_relaxed);
  unsigned shared = COWMEM__STRIPES - COWMEM__STRIPES_OWNED;
  cowmem__os_tl_stripe =
      (int)(n < COWMEM__STRIPES_OWNED
                ? n
                : COWMEM__STRIPES_OWNED + (n - COWMEM__STRIPES_OWNED) % shared);
  return cowmem__os_tl_stripe;
}

/* The counters, a stripe per thread: with one shared array, every system
 * call of every thread wrote the same two cache lines, and two threads
 * resetting slots bounced them on each call (the counters are written on
 * every reset, read only by cowmem_stats_get). */
typedef struct {
  _Alignas(64) _Atomic uint64_t n[COWMEM__OS_OP_COUNT];
} os_stripe_t;
static os_stripe_t os_counters[COWMEM__STRIPES];

void cowmem__os_count(cowmem__os_op_t op) {
  int s = cowmem__os_stripe();
  cowmem__stripe_add(s, &os_counters[s].n[op], 1);
}

uint64_t cowmem__os_counter(cowmem__os_op_t op) {
  uint64_t sum = 0;
  for (int i = 0; i < COWMEM__STRIPES; i++)
    sum += atomic_load_explicit(&os_counters[i].n[op], memory_order_relaxed);
  return sum;
}

#ifdef COWMEM_TESTING
/* One pending failure per kind: remaining calls to let through (+1), and
 * the errno. Atomic so that tests with threads stay race-free. */
static _Atomic unsigned inject_countdown[COWMEM__OS_OP_COUNT];
static _Atomic int inject_err[COWMEM__OS_OP_COUNT];

void cowmem__os_inject_fail(cowmem__os_op_t op, unsigned after, int err) {
  atomic_store(&inject_err[op], err);
  atomic_store(&inject_countdown[op], after + 1);
}

void cowmem__os_inject_clear(void) {
  for (int i = 0; i < COWMEM__OS_OP_COUNT; i++)
    atomic_store(&inject_countdown[i], 0);
}

int cowmem__os_inject_check(cowmem__os_op_t op) {
  unsigned n = atomic_load_explicit(&inject_countdown[op], memory_order_relaxed);
  while (n != 0) {
    if (atomic_compare_exchange_weak(&inject_countdown[op], &n, n - 1))
      return n == 1 ? atomic_load(&inject_err[op]) : 0;
  }
  return 0;
}
#endif

/* The backend. Exactly one is compiled, here, after the Unix common part. */
#include "os/unix.c"
#if defined(__linux__) && !defined(COWMEM_OS_FORCE_POSIX)
#include "os/linux.c"
#else
#include "os/posix.c"
#endif
