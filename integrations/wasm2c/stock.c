/* stock.c: the "stock runtime" baseline for the wasm2c integration.
 *
 * demo.wasm compiled by wasm2c and linked with the stock runtime of the same
 * wabt (Debian's 1.0.32 libwasm-rt-impl.a; or 1.0.39's, built from
 * ../shared: cowmem_w2c39_*), which reserves 8 GiB per memory and copies
 * the data segments at every instantiation (1.0.32 unmaps only the
 * accessible part on free, 1.0.39 the whole reservation). The program instantiates,
 * serves one request, and frees, in a loop, and prints the median and p99 of each step.
 *
 * Built twice (see CMakeLists.txt):
 *   cowmem_w2c_stock    the runtime as shipped;
 *   cowmem_w2c_wrapped  the same, linked with
 *                       -Wl,--wrap=wasm_rt_{allocate,grow,free}_memory: the
 *                       wrappers below count the calls (proving that --wrap
 *                       reaches every call the generated code makes) and,
 *                       with --unmap-all, unmap the whole 8 GiB reservation
 *                       on free instead of only the accessible part (what
 *                       1.0.39's runtime does itself; there it changes
 *                       nothing).
 *
 * Usage: cowmem_w2c_stock [--iters N] [--warmup N] [--vmsize N] [--unmap-all]
 *   --vmsize N   only run N instantiate/free cycles and print VmSize and the
 *                number of mappings before and after (the reservation leak).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>

#include "demo_w.h"
#include "w2c_util.h" /* the generated names of either wabt */
#include "wasm-rt-impl.h"

#define STOCK_RESERVE 0x200000000ull /* what wasm_rt_allocate_memory maps */

static const char k_request[] =
    "The quick brown fox jumps over the lazy dog. Copy on write maps the "
    "image of each instance; the slot is reset with one madvise, so the next "
    "instance of the same image needs no system call at all.";

#ifdef STOCK_WRAPPED
static unsigned long g_allocs, g_grows, g_frees;
static int g_unmap_all;

#if COWMEM_W2C_ABI >= 1037
void __real_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint64_t, uint64_t, bool,
                                    uint32_t);
uint64_t __real_wasm_rt_grow_memory(wasm_rt_memory_t*, uint64_t);
void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint64_t, uint64_t, bool,
                                    uint32_t);
uint64_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t*, uint64_t);

void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t* m, uint64_t initial, uint64_t max,
                                    bool is64, uint32_t page_size) {
  g_allocs++;
  __real_wasm_rt_allocate_memory(m, initial, max, is64, page_size);
}

uint64_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t* m, uint64_t delta) {
  g_grows++;
  return __real_wasm_rt_grow_memory(m, delta);
}
#else
void __real_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint32_t, uint32_t);
uint32_t __real_wasm_rt_grow_memory(wasm_rt_memory_t*, uint32_t);
void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint32_t, uint32_t);
uint32_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t*, uint32_t);

void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t* m, uint32_t initial, uint32_t max) {
  g_allocs++;
  __real_wasm_rt_allocate_memory(m, initial, max);
}

uint32_t __wrap_wasm_rt_grow_memory(wasm_rt_memory_t* m, uint32_t delta) {
  g_grows++;
  return __real_wasm_rt_grow_memory(m, delta);
}
#endif
void __real_wasm_rt_free_memory(wasm_rt_memory_t*);
void __wrap_wasm_rt_free_memory(wasm_rt_memory_t*);

void __wrap_wasm_rt_free_memory(wasm_rt_memory_t* m) {
  g_frees++;
  if (g_unmap_all && COWMEM_W2C_ABI == 1032)
    munmap(m->data, STOCK_RESERVE); /* the fix: the whole reservation */
  else
    __real_wasm_rt_free_memory(m);
}
#endif

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

static void print_stat(const char* what, uint64_t* v, size_t n) {
  qsort(v, n, sizeof *v, cmp_u64);
  printf("%-22s median %8.2f us   p99 %8.2f us\n", what, v[n / 2] / 1e3,
         v[n * 99 / 100] / 1e3);
}

/* VmSize in KiB and the number of lines of /proc/self/maps. */
static void vm_status(unsigned long* vmsize_kb, unsigned long* maps) {
  char line[256];
  *vmsize_kb = 0;
  *maps = 0;
  FILE* f = fopen("/proc/self/status", "r");
  if (f) {
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "VmSize:", 7) == 0) *vmsize_kb = strtoul(line + 7, 0, 10);
    fclose(f);
  }
  f = fopen("/proc/self/maps", "r");
  if (f) {
    while (fgets(line, sizeof line, f))
      if (strchr(line, '\n')) ++*maps;
    fclose(f);
  }
}

/* One request: copy it into the instance's input buffer and run it. */
static uint32_t serve(W2C_T(demo) * inst, const char* req, uint32_t len) {
  wasm_rt_memory_t* mem = W2C_X(demo, memory)(inst);
  uint32_t in = W2C_X(demo, input_ptr)(inst);
  memcpy(mem->data + in, req, len);
  return W2C_X(demo, run)(inst, in, len);
}

static int check_behaviour(void) {
  W2C_T(demo) inst;
  W2C_FN(demo, instantiate)(&inst);
  uint32_t n = serve(&inst, k_request, sizeof k_request - 1);
  wasm_rt_memory_t* mem = W2C_X(demo, memory)(&inst);
  printf("report: %.*s", (int)n, (const char*)mem->data + W2C_X(demo, result_ptr)(&inst));
  W2C_X(demo, write_secret)(&inst, 0x5ec2e7u);
  uint32_t secret = W2C_X(demo, read_secret)(&inst);
  uint32_t pages0 = W2C_X(demo, pages)(&inst);
  uint32_t old = W2C_X(demo, grow)(&inst, 3);
  printf("memory: %u pages, grow(3) -> %u, now %u pages; secret %#x\n", pages0, old,
         W2C_X(demo, pages)(&inst), secret);
  wasm_rt_trap_t trap = (wasm_rt_trap_t)wasm_rt_impl_try();
  if (trap == WASM_RT_TRAP_NONE) {
    W2C_X(demo, trap_oob)(&inst);
    printf("trap_oob returned: no trap?\n");
    W2C_FN(demo, free)(&inst);
    return 1;
  }
  printf("trap_oob: trap %d (%s)\n", trap, wasm_rt_strerror(trap));
  W2C_FN(demo, free)(&inst);

  W2C_FN(demo, instantiate)(&inst);
  secret = W2C_X(demo, read_secret)(&inst);
  printf("fresh instance: read_secret %#x (0 expected)\n", secret);
  W2C_FN(demo, free)(&inst);
  return secret != 0;
}

int main(int argc, char** argv) {
  size_t iters = 2000, warmup = 100, vm_cycles = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
      iters = strtoul(argv[++i], 0, 10);
    else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
      warmup = strtoul(argv[++i], 0, 10);
    else if (strcmp(argv[i], "--vmsize") == 0 && i + 1 < argc)
      vm_cycles = strtoul(argv[++i], 0, 10);
#ifdef STOCK_WRAPPED
    else if (strcmp(argv[i], "--unmap-all") == 0)
      g_unmap_all = 1;
#endif
    else {
      fprintf(stderr,
              "usage: %s [--iters N] [--warmup N] [--vmsize N]"
#ifdef STOCK_WRAPPED
              " [--unmap-all]"
#endif
              "\n",
              argv[0]);
      return 2;
    }
  }
  if (iters == 0) iters = 1;

  wasm_rt_init();
  COWMEM_W2C_INIT_MODULE(demo);

  if (vm_cycles) {
    unsigned long vm0, maps0, vm1, maps1;
    W2C_T(demo) inst;
    vm_status(&vm0, &maps0);
    for (size_t i = 0; i < vm_cycles; i++) {
      W2C_FN(demo, instantiate)(&inst);
      W2C_FN(demo, free)(&inst);
    }
    vm_status(&vm1, &maps1);
    printf("%zu instantiate/free cycles: VmSize %lu -> %lu KiB (+%.3f GiB, "
           "%.3f GiB per cycle), mappings %lu -> %lu\n",
           vm_cycles, vm0, vm1, (vm1 - vm0) / 1048576.0,
           (vm1 - vm0) / 1048576.0 / (double)vm_cycles, maps0, maps1);
    wasm_rt_free();
    return 0;
  }

  if (check_behaviour() != 0) return 1;

  uint64_t* inst_ns = calloc(iters, sizeof *inst_ns);
  uint64_t* run_ns = calloc(iters, sizeof *run_ns);
  uint64_t* free_ns = calloc(iters, sizeof *free_ns);
  uint64_t* cycle_ns = calloc(iters, sizeof *cycle_ns);
  if (!inst_ns || !run_ns || !free_ns || !cycle_ns) return 1;
  uint32_t expect = 0;
  for (size_t i = 0; i < warmup + iters; i++) {
    W2C_T(demo) inst;
    uint64_t t0 = now_ns();
    W2C_FN(demo, instantiate)(&inst);
    uint64_t t1 = now_ns();
    uint32_t n = serve(&inst, k_request, sizeof k_request - 1);
    uint64_t t2 = now_ns();
    W2C_FN(demo, free)(&inst);
    uint64_t t3 = now_ns();
    if (i == 0) expect = n;
    if (n != expect) {
      fprintf(stderr, "iteration %zu: report length %u, expected %u\n", i, n, expect);
      return 1;
    }
    if (i >= warmup) {
      size_t k = i - warmup;
      inst_ns[k] = t1 - t0;
      run_ns[k] = t2 - t1;
      free_ns[k] = t3 - t2;
      cycle_ns[k] = (t1 - t0) + (t3 - t2);
    }
  }
  printf("%zu iterations after %zu warm-up\n", iters, warmup);
  print_stat("instantiate", inst_ns, iters);
  print_stat("run (one request)", run_ns, iters);
  print_stat("free", free_ns, iters);
  print_stat("instantiate+free", cycle_ns, iters);
#ifdef STOCK_WRAPPED
  printf("wrapped calls: allocate %lu, grow %lu, free %lu\n", g_allocs, g_grows, g_frees);
#endif
  free(inst_ns);
  free(run_ns);
  free(free_ns);
  free(cycle_ns);
  wasm_rt_free();
  return 0;
}
