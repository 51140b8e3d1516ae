/* Thread and process scaling (scale.h). */
#include "scale.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowmem.h"
#include "measure.h"

/* A worker's run, on a cache line of its own: the workers' runs sit side
 * by side in one array, and a worker that wrote its result next to another
 * worker's every cycle would bounce that line between them (it made the
 * arithmetic control scale 1.1-1.4x on two cores). The loop keeps its state
 * in locals and writes the run once, at the end. */
typedef struct {
  _Alignas(64) const bench_worker_t* w;
  size_t iters;
  double per_s;
  int err;
} run_t;

static void* worker_main(void* p) {
  run_t* r = p;
  const bench_worker_t* w = r->w;
  void* state = w->ctx;
  int err = w->open != NULL ? w->open(w->ctx, &state) : 0;
  r->err = err;
  if (err != 0) return NULL;
  size_t iters = r->iters;
  uint64_t t0 = bench_now_ns();
  for (size_t i = 0; i < iters + iters / 10 && err == 0; i++) {
    if (i == iters / 10) t0 = bench_now_ns();
    err = w->cycle(state);
  }
  r->err = err;
  r->per_s = (double)iters / ((double)(bench_now_ns() - t0) / 1e9);
  if (w->close != NULL) w->close(state);
  return NULL;
}

static double rate_procs(const bench_worker_t* w, int n, size_t iters, int* err) {
  int fds[64][2];
  pid_t pids[64];
  int started = 0;
  for (; started < n; started++) {
    if (pipe(fds[started]) != 0) break;
    fflush(NULL);
    pids[started] = fork();
    if (pids[started] < 0) {
      close(fds[started][0]);
      close(fds[started][1]);
      break;
    }
    if (pids[started] == 0) {
      run_t me = {w, iters, 0, 0};
      worker_main(&me);
      double v = me.err ? (double)me.err : me.per_s; /* errors are negative */
      ssize_t k = write(fds[started][1], &v, sizeof v);
      _exit(k == (ssize_t)sizeof v ? 0 : 1);
    }
    close(fds[started][1]);
  }
  double total = 0;
  int e = started == n ? 0 : COWMEM_EIO;
  for (int i = 0; i < started; i++) {
    double v = 0;
    if (read(fds[i][0], &v, sizeof v) != (ssize_t)sizeof v) e = COWMEM_EIO;
    else if (v < 0) e = (int)v;
    else total += v;
    close(fds[i][0]);
    waitpid(pids[i], NULL, 0);
  }
  if (err != NULL) *err = e;
  return e ? 0 : total;
}

double bench_rate(const bench_worker_t* w, int n, bool procs, size_t iters, int* err) {
  if (n < 1 || n > 64) {
    if (err != NULL) *err = COWMEM_EINVAL;
    return 0;
  }
  if (procs) return rate_procs(w, n, iters, err);
  run_t r[64];
  pthread_t th[64];
  int started = 0, e = 0;
  for (; started < n; started++) {
    r[started] = (run_t){w, iters, 0, 0};
    if (pthread_create(&th[started], NULL, worker_main, &r[started]) != 0) {
      e = COWMEM_ENOMEM;
      break;
    }
  }
  double total = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    if (r[i].err != 0 && e == 0) e = r[i].err;
    total += r[i].per_s;
  }
  if (err != NULL) *err = e;
  return e ? 0 : total;
}

size_t bench_iters_for(const bench_worker_t* w, double seconds, size_t probe) {
  double rate = bench_rate(w, 1, false, probe, NULL);
  size_t n = rate > 0 ? (size_t)(rate * seconds) : probe;
  return bench_iters(n > probe ? n : probe);
}

void bench_scaling(const bench_worker_t* w, int n, bool procs, size_t iters, double* one,
                   double* many) {
  *one = *many = 0;
  for (int rep = 0; rep < 3; rep++) {
    double o = bench_rate(w, 1, procs, iters, NULL);
    double m = bench_rate(w, n, procs, iters, NULL);
    if (o > *one) *one = o;
    if (m > *many) *many = m;
  }
}

/* ---- the controls ---- */

static _Atomic uint64_t control_sink;

/* Each worker's state has a cache line of its own and its sum is folded
 * into the shared sink once, at close: a control that wrote a shared line
 * every cycle would measure the line's bouncing, not the cores. */
typedef struct {
  _Alignas(64) uint64_t i, sum;
  uint8_t pad[64 - 2 * sizeof(uint64_t)];
} arith_state_t;

static int arith_cycle(void* state) {
  arith_state_t* a = state;
  uint64_t x = 0;
  for (uint64_t j = 0; j < 200; j++)
    x += (a->i + j) * (a->i ^ j);
  a->i++;
  a->sum += x;
  return 0;
}
static int arith_open(void* ctx, void** state) {
  (void)ctx;
  arith_state_t* a = aligned_alloc(64, sizeof *a);
  if (a == NULL) return COWMEM_ENOMEM;
  memset(a, 0, sizeof *a);
  *state = a;
  return 0;
}
static void arith_close(void* state) {
  arith_state_t* a = state;
  control_sink += a->sum;
  free(a);
}

typedef struct {
  uint8_t src[65536], dst[65536];
  size_t i;
} copy_state_t;

static int copy_open(void* ctx, void** state) {
  (void)ctx;
  copy_state_t* c = malloc(sizeof *c);
  if (c == NULL) return COWMEM_ENOMEM;
  memset(c->src, 3, sizeof c->src);
  memset(c->dst, 4, sizeof c->dst);
  c->i = 0;
  *state = c;
  return 0;
}
static int copy_cycle(void* state) {
  copy_state_t* c = state;
  memcpy(c->dst, c->src, sizeof c->dst);
  c->src[c->i & 63] = c->dst[(c->i * 7) & 63];
  c->i++;
  return 0;
}
static void copy_close(void* state) {
  copy_state_t* c = state;
  control_sink += c->dst[5]; /* the copies are used */
  free(c);
}

const bench_worker_t bench_control_arith = {arith_open, arith_cycle, arith_close, NULL};
const bench_worker_t bench_control_memcpy = {copy_open, copy_cycle, copy_close, NULL};
