/* qjs_app.c: a WASI reactor around QuickJS-NG (../shared/quickjs-ng-0.16.2),
 * the JavaScript workload of the WASI tests and benchmarks.
 *
 * _initialize (WAMR runs it at instantiation) creates the runtime and a
 * context, evaluates the application script below and answers one warm-up
 * order (its answer discarded): that is the program's own start-up. The
 * first request QuickJS answers pays for work done once and kept (atoms
 * and shapes created, inline caches filled, the heap grown), so start-up
 * does it: a snapshot of the start-up then holds it, and a run that starts
 * up in every request pays it there. Each call of the export `handle`
 * then reads one JSON request from stdin, passes it to the script's
 * handle(), and writes the JSON answer and a newline to stdout; it
 * returns 0, or 1 when the script threw (the exception on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quickjs.h"

/* An order-pricing service: catalogue and rules built at start-up. */
static const char app_script[] =
    "const catalogue = new Map();\n"
    "for (let i = 0; i < 2000; i++)\n"
    "  catalogue.set('sku' + i, {name: 'item ' + i, cents: 100 + (i * 7919) % 9000,\n"
    "                            tags: i % 3 ? ['plain'] : ['plain', 'fragile']});\n"
    "const rules = [\n"
    "  {when: o => o.lines.length >= 3, pct: 5, why: 'three or more lines'},\n"
    "  {when: o => o.total > 50000, pct: 10, why: 'over 500.00'},\n"
    "];\n"
    "globalThis.handle = function (req) {\n"
    "  const lines = req.items.map(([sku, qty]) => {\n"
    "    const p = catalogue.get(sku);\n"
    "    if (!p) throw new Error('unknown sku ' + sku);\n"
    "    return {sku, name: p.name, qty, cents: p.cents * qty, fragile: p.tags.includes('fragile')};\n"
    "  }).sort((a, b) => b.cents - a.cents || a.sku.localeCompare(b.sku));\n"
    "  const order = {lines, total: lines.reduce((s, l) => s + l.cents, 0)};\n"
    "  const applied = rules.filter(r => r.when(order));\n"
    "  const pct = applied.reduce((s, r) => s + r.pct, 0);\n"
    "  return {customer: req.customer.toUpperCase(), lines,\n"
    "          discount: applied.map(r => r.why), pct,\n"
    "          total: (Math.round(order.total * (100 - pct)) / 10000).toFixed(2)};\n"
    "};\n";

static JSRuntime* g_rt;
static JSContext* g_ctx;

static void print_exception(void) {
  JSValue e = JS_GetException(g_ctx);
  const char* s = JS_ToCString(g_ctx, e);
  fprintf(stderr, "exception: %s\n", s ? s : "?");
  JS_FreeCString(g_ctx, s);
  JS_FreeValue(g_ctx, e);
}

/* The script's answer to request text req (len bytes) as JSON text, to
 * free with JS_FreeValue; an exception value when it threw. */
static JSValue answer(const char* req, size_t len) {
  JSValue global = JS_GetGlobalObject(g_ctx);
  JSValue arg = JS_ParseJSON(g_ctx, req, len, "request");
  JSValue fn = JS_GetPropertyStr(g_ctx, global, "handle");
  JSValue res = JS_IsException(arg) ? arg : JS_Call(g_ctx, fn, global, 1, &arg);
  JSValue out = JS_IsException(res)
                    ? res
                    : JS_JSONStringify(g_ctx, res, JS_UNDEFINED, JS_UNDEFINED);
  /* An exception value holds nothing to free: each may be freed alike. */
  JS_FreeValue(g_ctx, res);
  JS_FreeValue(g_ctx, arg);
  JS_FreeValue(g_ctx, fn);
  JS_FreeValue(g_ctx, global);
  return out;
}

/* The warm-up order: every path of handle() (three lines sorted, both
 * discount rules, a fragile item). */
static const char warm_up[] =
    "{\"customer\":\"warm-up\",\"items\":[[\"sku0\",3],[\"sku1\",2],[\"sku1999\",40]]}";

__attribute__((constructor)) static void app_init(void) {
  g_rt = JS_NewRuntime();
  g_ctx = g_rt ? JS_NewContext(g_rt) : NULL;
  if (!g_ctx) abort();
  JSValue v = JS_Eval(g_ctx, app_script, sizeof app_script - 1, "app.js",
                      JS_EVAL_TYPE_GLOBAL);
  if (!JS_IsException(v)) {
    JS_FreeValue(g_ctx, v);
    v = answer(warm_up, sizeof warm_up - 1);
  }
  if (JS_IsException(v)) {
    print_exception();
    abort();
  }
  JS_FreeValue(g_ctx, v);
}

static char* read_stdin(size_t* len) {
  size_t cap = 4096, n = 0, k;
  char* buf = malloc(cap);
  while (buf && (k = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
    n += k;
    if (cap - n - 1 == 0) buf = realloc(buf, cap *= 2);
  }
  if (buf) buf[n] = 0;
  *len = n;
  return buf;
}

__attribute__((export_name("handle"))) int handle(void) {
  size_t len;
  char* req = read_stdin(&len);
  if (!req) return 1;
  JSValue out = answer(req, len);
  free(req);
  int rc = 0;
  if (JS_IsException(out)) {
    print_exception();
    rc = 1;
  } else {
    const char* s = JS_ToCString(g_ctx, out);
    printf("%s\n", s);
    JS_FreeCString(g_ctx, s);
  }
  fflush(stdout);
  JS_FreeValue(g_ctx, out);
  return rc;
}
