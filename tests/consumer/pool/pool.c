/* A pool of wasm32 slots: acquire an instance of an image, write to it,
 * release it, and check that the next instance sees exactly the image and
 * zeros again, that the pool's guard stops the farthest address a wasm32
 * access can form (in a child), and that everything is freed. */
#include <cowmem.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WASM_PAGE ((size_t)65536)

/* 1 if reading p in a child process dies of SIGSEGV. */
static int faults(const volatile uint8_t* p) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL);
    (void)*p;
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

int main(void) {
  static const char data[] = "initial data";
  cowmem_image_t* img = NULL;
  cowmem_pool_t* pool = NULL;
  cowmem_diag_t diag;
  cowmem_pool_config_t cfg;
  cowmem_pool_config_init_wasm32(&cfg); /* 4 GiB slots, 4 GiB guards */
  cfg.max_slots = 8;
  int r = cowmem_image_new_from_bytes(data, sizeof data, 0, &img);
  if (r == 0) r = cowmem_pool_new(&cfg, &pool, &diag);
  if (r != 0) {
    fprintf(stderr, "pool: %s (%s)\n", cowmem_err_name(r),
            pool == NULL ? diag.reason : "");
    cowmem_image_release(img);
    return 1;
  }
  int ok = 1;
  for (int i = 0; i < 100 && ok; i++) {
    cowmem_slot_t* slot = NULL;
    r = cowmem_pool_acquire(pool, img, WASM_PAGE, 16 * WASM_PAGE, &slot);
    if (r != 0) {
      fprintf(stderr, "acquire: %s\n", cowmem_strerror(r));
      ok = 0;
      break;
    }
    uint8_t* mem = cowmem_slot_base(slot);
    /* The last instance's writes are gone. */
    ok = memcmp(mem, data, sizeof data) == 0 && mem[100] == 0;
    memset(mem, 0xab, WASM_PAGE);
    if (i == 0)
      ok = ok && faults(mem + 0xffffffffu + 0xffffffffu) && faults(mem - 1);
    r = cowmem_pool_release(pool, slot);
    ok = ok && r == 0;
  }
  /* The image can go while the pool lives; the pool frees its slots. */
  cowmem_image_release(img);
  r = cowmem_pool_free(pool);
  ok = ok && r == 0;
  printf("pool: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
