/* cowmem_wamr_instance.c: instances with their execution environment, the
 * environments cached per module set and reused (see cowmem_wamr.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "wamr_internal.h"
#include "wasm_exec_env.h" /* wasm_exec_env_set_thread_info */

struct cowmem_wamr_envs_s {
  pthread_mutex_t lock;
  uint32_t stack_size; /* of every environment held (while count > 0) */
  uint32_t count;
  wasm_exec_env_t envs[COWMEM_WAMR_ENV_CACHE];
};

struct cowmem_wamr_instance_s {
  const cowmem_wamr_module_t* m;
  wasm_module_inst_t inst;
  wasm_exec_env_t env;
  uint32_t stack_size;
};

static _Atomic uint64_t g_created, g_reused;

struct cowmem_wamr_envs_s* cowmem_wamr__envs_new(void) {
  struct cowmem_wamr_envs_s* c = calloc(1, sizeof *c);
  if (c && pthread_mutex_init(&c->lock, NULL) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

void cowmem_wamr__envs_free(struct cowmem_wamr_envs_s* c) {
  if (!c) return;
  for (uint32_t i = 0; i < c->count; i++)
    wasm_runtime_destroy_exec_env(c->envs[i]);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

void cowmem_wamr__envs_counts(uint64_t* created, uint64_t* reused) {
  *created = atomic_load_explicit(&g_created, memory_order_relaxed);
  *reused = atomic_load_explicit(&g_reused, memory_order_relaxed);
}

/* An environment of stack_size bytes from the cache, or NULL. */
static wasm_exec_env_t take(struct cowmem_wamr_envs_s* c, uint32_t stack_size) {
  wasm_exec_env_t env = NULL;
  pthread_mutex_lock(&c->lock);
  if (c->count > 0 && c->stack_size == stack_size) env = c->envs[--c->count];
  pthread_mutex_unlock(&c->lock);
  return env;
}

/* Keep env for a later instance, or destroy it: the cache is full or
 * holds environments of another size. */
static void give_back(struct cowmem_wamr_envs_s* c, wasm_exec_env_t env,
                      uint32_t stack_size) {
  pthread_mutex_lock(&c->lock);
  bool keep =
      c->count == 0 || (c->count < COWMEM_WAMR_ENV_CACHE && c->stack_size == stack_size);
  if (keep) {
    c->stack_size = stack_size;
    c->envs[c->count++] = env;
  }
  pthread_mutex_unlock(&c->lock);
  if (!keep) wasm_runtime_destroy_exec_env(env);
}

/* What a reused environment carries of its last instance that WAMR does
 * not reset itself (cowmem_wamr.h lists the rest). The native stack
 * boundary is computed again: with hardware bounds checks WAMR computes
 * it only when a call starts on a thread with no current environment,
 * and a call refused for native stack overflow at its start leaves the
 * environment current, with the boundary of its instance's host. */
static void rebind(wasm_exec_env_t env, wasm_module_inst_t inst) {
  wasm_runtime_set_module_inst(env, inst);
  wasm_runtime_set_user_data(env, NULL);
  wasm_runtime_set_native_stack_boundary(env, NULL);
  wasm_exec_env_set_thread_info(env);
}

static void fail(char* err, uint32_t err_size, const char* why) {
  if (err && err_size > 0) snprintf(err, err_size, "%s", why);
}

cowmem_wamr_instance_t* cowmem_wamr_instance_new(const cowmem_wamr_module_t* m,
                                                 uint32_t stack_size, uint32_t heap_size,
                                                 char* err, uint32_t err_size) {
  if (!m) {
    fail(err, err_size, "cowmem_wamr_instance_new: no module set");
    return NULL;
  }
  cowmem_wamr_instance_t* x = malloc(sizeof *x);
  if (!x) {
    fail(err, err_size, "cowmem_wamr_instance_new: out of memory");
    return NULL;
  }
  *x = (cowmem_wamr_instance_t){m, NULL, NULL, stack_size};
  x->inst = cowmem_wamr_instantiate(m, stack_size, heap_size, err, err_size);
  if (x->inst && (x->env = take(m->envs, stack_size))) {
    rebind(x->env, x->inst);
    atomic_fetch_add_explicit(&g_reused, 1, memory_order_relaxed);
  } else if (x->inst && (x->env = wasm_runtime_create_exec_env(x->inst, stack_size))) {
    atomic_fetch_add_explicit(&g_created, 1, memory_order_relaxed);
  } else if (x->inst) {
    fail(err, err_size,
         "cowmem_wamr_instance_new: no memory for the execution environment");
  }
  if (!x->env) {
    cowmem_wamr_instance_free(x);
    return NULL;
  }
  return x;
}

wasm_module_inst_t cowmem_wamr_instance_inst(const cowmem_wamr_instance_t* x) {
  return x ? x->inst : NULL;
}

wasm_exec_env_t cowmem_wamr_instance_exec_env(const cowmem_wamr_instance_t* x) {
  return x ? x->env : NULL;
}

void cowmem_wamr_instance_free(cowmem_wamr_instance_t* x) {
  if (!x) return;
  if (x->env) give_back(x->m->envs, x->env, x->stack_size);
  if (x->inst) wasm_runtime_deinstantiate(x->inst);
  free(x);
}
