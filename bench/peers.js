#!/usr/bin/env node
// cowmem against today's runtimes, for the same module, in one run:
//
//   node bench/peers.js --cowmem build/tools/cowmem [--iterations N]
//        [--work DIR] [--npm DIR] [--json] [module.wasm ...]
//
//   cowmem      `cowmem bench --json`: slot and pool instantiate/reset of
//               the module's memory image, and its copy baseline;
//   wasm2c      Debian's wabt: wasm2c the module, compile it with a
//               generated harness (imports stubbed) against the stock
//               runtime (libwasm-rt-impl.a), time instantiate and free;
//   wasm2c 1.0.39  the same with a current wasm2c: the runtime sources of
//               --wabt39 DIR (default ../shared/wabt-1.0.39/wasm2c) and
//               npm's wabt@1.0.39 (installed into --work); its harness
//               also times the memory part (wrapped wasm_rt_allocate_memory
//               to the end of instantiate, and wasm_rt_free_memory);
//   WAMR        for the bundled demo, the WAMR integration's demo
//               (integrations/wamr/cowmem_wamr_demo beside the cowmem
//               command's build, or --wamr-demo EXE): WAMR 2.4.5 with and
//               without cowmem's memory in one process;
//   V8          Node: new WebAssembly.Instance with stub imports (the
//               module compiled once, outside the timing).
// Without modules: the bundled demo (what `cowmem bench` uses by default).
// --npm DIR installs sql.js and esbuild-wasm (pinned) into DIR and adds
// their modules. Prints one table per module with what each row covers and
// the ratios to cowmem's instantiate, then the issue's targets.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { spawnSync } = require('child_process');

// ---- V8 worker mode: time instantiation of one module -------------------
if (process.argv[2] === '--v8-worker') {
  const [file, n] = [process.argv[3], Number(process.argv[4])];
  const mod = new WebAssembly.Module(fs.readFileSync(file));
  const imports = {};
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.kind !== 'function') {
      console.log(JSON.stringify({ error: `imports a ${imp.kind} (${imp.module}.${imp.name})` }));
      process.exit(0);
    }
    (imports[imp.module] ||= {})[imp.name] = () => 0;
  }
  const t = [];
  const warm = Math.floor(n / 10) + 10;
  let keep = null;
  for (let i = 0; i < warm + n; i++) {
    const t0 = process.hrtime.bigint();
    const inst = new WebAssembly.Instance(mod, imports);
    const t1 = process.hrtime.bigint();
    keep = inst; // one instance alive at a time, like the other rows
    if (i >= warm) t.push(Number(t1 - t0));
  }
  if (!keep) process.exit(1);
  t.sort((a, b) => a - b);
  const q = (p) => t[Math.min(t.length - 1, Math.round(p * (t.length - 1)))];
  console.log(JSON.stringify({ median: q(0.5), p99: q(0.99), n: t.length }));
  process.exit(0);
}

// ---- options --------------------------------------------------------------
const args = process.argv.slice(2);
const opt = { cowmem: null, iterations: 2000, work: path.join(os.tmpdir(), 'cowmem-peers'),
              npm: null, json: false, modules: [] };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--help' || a === '-h') {
    console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 24)
      .map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  } else if (a === '--cowmem') opt.cowmem = args[++i];
  else if (a === '--iterations') opt.iterations = Number(args[++i]);
  else if (a === '--work') opt.work = args[++i];
  else if (a === '--npm') opt.npm = args[++i];
  else if (a === '--json') opt.json = true;
  else if (a === '--w2c-demo') opt.w2cDemo = args[++i];
  else if (a === '--wamr-demo') opt.wamrDemo = args[++i];
  else if (a === '--wabt39') opt.wabt39 = args[++i];
  else if (a.startsWith('-')) { console.error(`peers.js: unknown option ${a}`); process.exit(2); }
  else opt.modules.push(a);
}
if (!opt.cowmem) {
  for (const c of ['build/tools/cowmem', 'build-rel/tools/cowmem'])
    if (fs.existsSync(c)) { opt.cowmem = c; break; }
}
if (!opt.cowmem || !fs.existsSync(opt.cowmem)) {
  console.error('peers.js: the cowmem command was not found (--cowmem PATH)');
  process.exit(2);
}
if (!(opt.iterations > 0)) { console.error('peers.js: --iterations needs a positive count'); process.exit(2); }
fs.mkdirSync(opt.work, { recursive: true });
const log = (s) => { if (!opt.json) console.log(s); };

// The bundled demo when no module is named (also with --npm).
if (opt.modules.length === 0) opt.modules.push(null);
if (opt.npm) {
  const pk = ['sql.js@1.10.3', 'esbuild-wasm@0.20.2'];
  const mods = ['node_modules/sql.js/dist/sql-wasm.wasm', 'node_modules/esbuild-wasm/esbuild.wasm'];
  if (!mods.every((m) => fs.existsSync(path.join(opt.npm, m)))) {
    const r = spawnSync('npm', ['install', '--prefix', opt.npm, '--no-audit', '--no-fund',
                                '--ignore-scripts', '--no-save', ...pk], { encoding: 'utf8', timeout: 240000 });
    if (r.status !== 0) console.error(`peers.js: npm install failed; npm modules skipped: ${String(r.stderr).trim().split('\n').pop()}`);
  }
  for (const m of mods) if (fs.existsSync(path.join(opt.npm, m))) opt.modules.push(path.join(opt.npm, m));
}

// ---- cowmem -----------------------------------------------------------------
function cowmemBench(file) {
  const a = ['bench', '--json', '--iterations', String(opt.iterations), '--dirty', '0'];
  if (file) a.push(file);
  const r = spawnSync(opt.cowmem, a, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) return { error: r.stderr.trim() };
  return JSON.parse(r.stdout);
}

// ---- wasm2c stock runtime -----------------------------------------------------
function findRuntime() {
  const lib = ['/usr/lib/x86_64-linux-gnu/libwasm-rt-impl.a', '/usr/lib/aarch64-linux-gnu/libwasm-rt-impl.a',
               '/usr/lib/libwasm-rt-impl.a'].find((p) => fs.existsSync(p));
  const inc = ['/usr/share/wabt/wasm2c', '/usr/src/wasm2c'].find((p) => fs.existsSync(path.join(p, 'wasm-rt-impl.h')));
  const w2c = spawnSync('wasm2c', ['--version'], { encoding: 'utf8' });
  if (w2c.status !== 0) return { error: 'wasm2c (wabt) is not installed' };
  if (!lib || !inc) return { error: 'the wasm2c stock runtime (libwasm-rt-impl.a, wasm-rt-impl.h) is not installed' };
  return { lib, inc, version: w2c.stdout.trim() };
}

// wabt 1.0.39: the runtime's sources compiled once into the work folder,
// the translator from npm (pinned), both optional (their rows say why not).
const WABT39 = '1.0.39';
function findRuntime39() {
  const dir = opt.wabt39 || path.join(__dirname, '..', '..', 'shared', 'wabt-' + WABT39, 'wasm2c');
  if (!fs.existsSync(path.join(dir, 'wasm-rt-impl.c'))) return { error: `no wasm2c ${WABT39} runtime sources in ${dir} (--wabt39 DIR)` };
  const npmDir = path.join(opt.work, 'npm-wabt');
  const bin = path.join(npmDir, 'node_modules', 'wabt', 'bin', 'wasm2c');
  if (!fs.existsSync(bin)) {
    const r = spawnSync('npm', ['install', '--prefix', npmDir, '--no-audit', '--no-fund', '--ignore-scripts',
                                '--no-save', 'wabt@' + WABT39], { encoding: 'utf8', timeout: 240000 });
    if (r.status !== 0 || !fs.existsSync(bin)) return { error: `npm install wabt@${WABT39} failed: ${String(r.stderr).trim().split('\n').pop()}` };
  }
  const objDir = path.join(opt.work, 'rt-' + WABT39);
  fs.mkdirSync(objDir, { recursive: true });
  const objs = [];
  for (const f of ['wasm-rt-impl.c', 'wasm-rt-mem-impl.c', 'wasm-rt-exceptions-impl.c']) {
    if (!fs.existsSync(path.join(dir, f))) continue;
    const o = path.join(objDir, f.replace(/\.c$/, '.o'));
    if (!fs.existsSync(o)) {
      const cc = spawnSync('cc', ['-O2', '-w', '-c', '-I', dir, path.join(dir, f), '-o', o], { encoding: 'utf8' });
      if (cc.status !== 0) return { error: `compiling ${f} failed: ${String(cc.stderr).trim().split('\n')[0]}` };
    }
    objs.push(o);
  }
  return { abi: 1037, inc: dir, lib: objs, wasm2c: [process.execPath, bin], version: 'wasm2c ' + WABT39 };
}

// The harness: stub definitions for the imported functions the generated
// header declares, and a loop timing instantiate and free.
function harness(name, header, abi) {
  const lines = header.split('\n');
  const stubs = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith('/* import:')) continue;
    const decl = lines[i + 1];
    const m = /^(.+?)\s*(\b(?:Z|w2c)_\w+)\((.*)\);$/.exec(decl);
    if (!m) return { error: `cannot stub: ${decl}` };
    const [ret, fn, params] = [m[1].trim(), m[2], m[3]];
    if (ret.includes('*')) return { error: `imports a memory, table or global (${lines[i].slice(3, -3).trim()})` };
    const ps = params.trim() === '' || params.trim() === 'void' ? [] : params.split(',').map((p, k) => `${p.trim()} p${k}`);
    stubs.push(`${ret} ${fn}(${ps.join(', ') || 'void'}) {${ps.map((_, k) => ` (void)p${k};`).join('')}${ret === 'void' ? '' : ' return 0;'} }`);
  }
  const v39 = abi >= 1037;
  const [T, fnInst, fnFree] = v39 ? [`w2c_${name}`, `wasm2c_${name}_instantiate`, `wasm2c_${name}_free`]
    : [`Z_${name}_instance_t`, `Z_${name}_instantiate`, `Z_${name}_free`];
  const inst = new RegExp(`void ${fnInst}\\(${T}\\*(.*)\\);`).exec(header);
  if (!inst) return { error: 'no instantiate function in the generated header' };
  const extra = inst[1].split(',').filter((s) => s.trim()).map(() => 'NULL');
  const call = `${fnInst}(&inst${extra.length ? ', ' + extra.join(', ') : ''})`;
  // >= 1.0.37: the memory part of instantiate (from the first
  // wasm_rt_allocate_memory to the end: init_memories is its last step
  // but for clearing dropped-segment flags) and of free, through --wrap.
  const memWrap = v39 ? `
static unsigned long long now(void);
static unsigned long long g_mem_t0, g_mem_free;
void __real_wasm_rt_allocate_memory(wasm_rt_memory_t*, uint64_t, uint64_t, bool, uint32_t);
void __wrap_wasm_rt_allocate_memory(wasm_rt_memory_t* m, uint64_t a, uint64_t b, bool c, uint32_t d) {
  if (!g_mem_t0) g_mem_t0 = now();
  __real_wasm_rt_allocate_memory(m, a, b, c, d);
}
void __real_wasm_rt_free_memory(wasm_rt_memory_t*);
void __wrap_wasm_rt_free_memory(wasm_rt_memory_t* m) {
  unsigned long long t = now();
  __real_wasm_rt_free_memory(m);
  g_mem_free += now() - t;
}` : '';
  return { source: `/* generated by bench/peers.js */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "${name}.h"
#include "wasm-rt-impl.h"
${stubs.join('\n')}${memWrap}
static unsigned long long now(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}
static int cmp(const void* a, const void* b) {
  unsigned long long x = *(const unsigned long long*)a, y = *(const unsigned long long*)b;
  return x < y ? -1 : x > y;
}
static void q(const char* k, unsigned long long* v, int n, const char* sep) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  printf("\\"%s\\": {\\"median\\": %llu, \\"p99\\": %llu}%s", k, v[n / 2], v[(int)(0.99 * (n - 1) + 0.5)], sep);
}
int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000, warm = n / 10 + 10;
  unsigned long long* a = calloc((size_t)n, sizeof *a);
  unsigned long long* b = calloc((size_t)n, sizeof *b);
  unsigned long long* c = calloc((size_t)n, sizeof *c);
  unsigned long long* d = calloc((size_t)n, sizeof *d);
  unsigned long long* e = calloc((size_t)n, sizeof *e);
  if (!a || !b || !c || !d || !e) return 1;
  wasm_rt_init();
  ${v39 ? '' : `Z_${name}_init_module();`}
  for (int i = 0; i < warm + n; i++) {
    ${T} inst;
    ${v39 ? 'g_mem_t0 = 0; g_mem_free = 0;' : ''}
    unsigned long long t0 = now();
    ${call};
    unsigned long long t1 = now();
    ${fnFree}(&inst);
    unsigned long long t2 = now();
    if (i >= warm) { a[i - warm] = t1 - t0; b[i - warm] = t2 - t1; c[i - warm] = t2 - t0; }
    ${v39 ? 'if (i >= warm) { d[i - warm] = g_mem_t0 ? t1 - g_mem_t0 : 0; e[i - warm] = d[i - warm] + g_mem_free; }' : ''}
  }
  printf("{");
  q("instantiate", a, n, ", "); q("free", b, n, ", "); q("cycle", c, n, "");
  ${v39 ? 'printf(", "); q("memory", d, n, ", "); q("memory_cycle", e, n, "");' : ''}
  printf("}\\n");
  free(a); free(b); free(c); free(d); free(e);
  return 0;
}
` };
}

function wasm2cBench(file, rt) {
  if (rt.error) return { error: rt.error };
  const bytes = fs.readFileSync(file);
  const hash = crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const dir = path.join(opt.work, (rt.abi >= 1037 ? 'w2c39-' : 'w2c-') + hash);
  const [w2cExe, ...w2cPre] = rt.wasm2c || ['wasm2c'];
  fs.mkdirSync(dir, { recursive: true });
  const name = 'm' + hash.slice(0, 8);
  const exe = path.join(dir, 'harness');
  if (!fs.existsSync(exe)) {
    const g = spawnSync(w2cExe, [...w2cPre, file, '-n', name, '-o', path.join(dir, name + '.c')], { encoding: 'utf8', timeout: 600000 });
    if (g.status !== 0) return { error: 'wasm2c failed: ' + g.stderr.trim().split('\n')[0] };
    const h = harness(name, fs.readFileSync(path.join(dir, name + '.h'), 'utf8'), rt.abi || 1032);
    if (h.error) return { error: h.error };
    fs.writeFileSync(path.join(dir, 'harness.c'), h.source);
    // -O1 (-O0 beyond 32 MB of C, e.g. esbuild's 140 MB): instantiate is
    // the runtime's allocation, the memcpy of each segment and the table
    // initialization; the module's own functions are not run.
    const src = path.join(dir, name + '.c'), obj = path.join(dir, name + '.o');
    const level = fs.statSync(src).size > (32 << 20) ? '-O0' : '-O1';
    log(`  (compiling ${path.basename(file)}'s wasm2c output with ${level}; large modules take minutes)`);
    const cc = spawnSync('cc', [level, '-w', '-c', '-I', rt.inc, '-I', dir, src, '-o', obj],
                         { encoding: 'utf8', timeout: 3600000 });
    if (cc.status !== 0) return { error: 'compiling the wasm2c output failed: ' + String(cc.stderr || cc.error).trim().split('\n')[0] };
    const wrap = rt.abi >= 1037 ? ['-Wl,--wrap=wasm_rt_allocate_memory', '-Wl,--wrap=wasm_rt_free_memory'] : [];
    const ld = spawnSync('cc', ['-O1', '-w', '-I', rt.inc, '-I', dir, path.join(dir, 'harness.c'), obj, ...[].concat(rt.lib),
                                ...wrap, '-lm', '-lpthread', '-o', exe], { encoding: 'utf8' });
    if (ld.status !== 0) return { error: 'linking the harness failed: ' + String(ld.stderr || ld.error).trim().split('\n')[0] };
  }
  // 1.0.32's stock runtime leaks its 8 GiB reservation per instance (see
  // integrations/wasm2c/NOTES.md): stay far below the ~16k the address
  // space allows (1.0.39's unmaps it, the same cap keeps runs comparable).
  const n = Math.min(opt.iterations, 5000);
  const r = spawnSync(exe, [String(n)], { encoding: 'utf8' });
  if (r.status !== 0) return { error: 'harness failed: ' + r.stderr.trim() };
  return JSON.parse(r.stdout);
}

// The wasm2c integration's demo (integrations/wasm2c): the same
// wasm2c-generated code of demo.wasm, stripped, with its memory from a
// cowmem pool, against the stock runtime: the like-for-like row for whole
// instances. Its "instantiate+free" lines are read from its report.
function w2cIntegration(file, sfx = '') {
  const exe = (opt.w2cDemo && opt.w2cDemo + sfx) ||
    path.join(path.dirname(opt.cowmem), '..', 'integrations', 'wasm2c', 'cowmem_wasm2c_demo' + sfx);
  if (path.basename(file) !== 'demo.wasm' || !fs.existsSync(exe)) return null;
  const n = String(Math.min(opt.iterations, 5000));
  const r = spawnSync(exe, ['--iters', n, '--stock-iters', n], { encoding: 'utf8' });
  if (r.status !== 0) return { error: 'cowmem_wasm2c_demo failed: ' + r.stderr.trim().split('\n')[0] };
  const num = (re) => { const m = re.exec(r.stdout); return m ? { median: Number(m[1]) * 1000, p99: Number(m[2]) * 1000 } : null; };
  const cow = num(/^\s*cowmem wasm2c\s+([\d.]+) \(([\d.]+)\)/m), stock = num(/^\s*stock wasm2c\s+([\d.]+) \(([\d.]+)\)/m);
  if (!cow || !stock) return { error: 'cowmem_wasm2c_demo: report not understood' };
  return { cowmem: cow, stock };
}

// The WAMR integration's demo (integrations/wamr): WAMR's fast interpreter
// with the stripped demo.wasm and its memory from a cowmem pool, against
// stock WAMR in the same process. Its instantiate + deinstantiate lines.
function wamrIntegration(file) {
  const exe = opt.wamrDemo ||
    path.join(path.dirname(opt.cowmem), '..', 'integrations', 'wamr', 'cowmem_wamr_demo');
  if (path.basename(file) !== 'demo.wasm' || !fs.existsSync(exe)) return null;
  const n = String(Math.min(opt.iterations, 5000));
  const r = spawnSync(exe, ['--iters', n, '--stock-iters', n], { encoding: 'utf8' });
  if (r.status !== 0) return { error: 'cowmem_wamr_demo failed: ' + r.stderr.trim().split('\n')[0] };
  const num = (re) => { const m = re.exec(r.stdout); return m ? { median: Number(m[1]) * 1000, p99: Number(m[2]) * 1000 } : null; };
  const cow = num(/^\s*cowmem WAMR\s+([\d.]+) \(([\d.]+)\)/m), stock = num(/^\s*stock WAMR\s+([\d.]+) \(([\d.]+)\)/m);
  if (!cow || !stock) return { error: 'cowmem_wamr_demo: report not understood' };
  return { cowmem: cow, stock };
}

function v8Bench(file) {
  const r = spawnSync(process.execPath, [__filename, '--v8-worker', file, String(opt.iterations)],
                      { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) return { error: r.stderr.trim().split('\n')[0] };
  return JSON.parse(r.stdout);
}

// ---- report ---------------------------------------------------------------------
const us = (ns) => (ns / 1000).toFixed(ns < 10000 ? 3 : 1);
const results = [];
const rt = findRuntime();
const rt39 = findRuntime39();
for (const file of opt.modules) {
  if (file && !fs.existsSync(file)) { console.error(`peers.js: ${file}: no such file`); process.exitCode = 1; continue; }
  const cw = cowmemBench(file);
  if (cw.error) { console.error(`peers.js: cowmem bench ${file || '(default)'}: ${cw.error}`); process.exitCode = 1; continue; }
  const mod = cw.module;
  log(`\n== ${path.basename(mod)} (${fs.statSync(mod).size} bytes): memory ${cw.memory} ${cw.initial_bytes} bytes initial, ` +
      `image ${cw.image_bytes} bytes, ${cw.active_segments} active segments (${cw.copy_bytes} bytes)`);
  const w2c = wasm2cBench(mod, rt);
  const w2c39 = wasm2cBench(mod, rt39);
  const v8 = v8Bench(mod);
  const integ = w2cIntegration(mod);
  const integ39 = w2cIntegration(mod, '39');
  const wamr = wamrIntegration(mod);
  const row = (n) => cw.rows.find((r) => r.name === n);
  const slot = row('slot'), pool = row('pool-madvise'), fresh = row('copy-fresh');
  const base = slot.instantiate_ns.median;
  const rows = [
    ['cowmem slot instantiate', slot.instantiate_ns, 'memory only: the image mapped copy-on-write; same image again: no system call'],
    ['cowmem slot .cwimg', row('slot-cwimg').instantiate_ns, 'as above, image mapped from the precompiled file'],
    ['cowmem pool acquire', pool.instantiate_ns, 'memory only: a pool slot of the same image (madvise reset)'],
    ['cowmem slot inst+reset', slot.cycle_ns, 'memory only: instantiate + madvise reset'],
    ['wasm2c memory part', fresh.instantiate_ns, 'like-for-like: what wasm2c\'s instantiate does for memory (mmap 8 GiB + mprotect + copy segments), measured by cowmem bench'],
    ['wasm2c memory part+free', fresh.cycle_ns, 'as above + munmap'],
    ['wasm2c stock instantiate', w2c.instantiate, 'whole instance: globals, memory (8 GiB reserve + segment copy), tables and elements'],
    ['wasm2c stock inst+free', w2c.cycle, 'as above + free (munmap of the accessible part)'],
    ...(integ && !integ.error ? [
      ['wasm2c+cowmem inst+free', integ.cowmem, 'like-for-like whole instance: the same wasm2c code, stripped, memory from a cowmem pool; free resets the 11 pages a request wrote (integrations/wasm2c)'],
      ['  same run: stock', integ.stock, 'its stock-runtime baseline in the same process (instantiate + free)'],
    ] : []),
    ['w2c 1.0.39 memory part', w2c39.memory, 'like-for-like: the memory part of wasm2c 1.0.39\'s instantiate (8 GiB reserve + mprotect + segment copies), timed in its harness'],
    ['w2c 1.0.39 memory+free', w2c39.memory_cycle, 'as above + its free (munmap of the whole reservation)'],
    ['w2c 1.0.39 instantiate', w2c39.instantiate, 'whole instance with the stock 1.0.39 runtime: globals, tables, memory'],
    ['w2c 1.0.39 inst+free', w2c39.cycle, 'as above + free'],
    ...(integ39 && !integ39.error ? [
      ['w2c 1.0.39+cowmem i+f', integ39.cowmem, 'like-for-like whole instance with wasm2c 1.0.39: the same code, stripped, memory from a cowmem pool'],
      ['  same run: stock 1.0.39', integ39.stock, 'its stock 1.0.39 baseline in the same process (instantiate + free)'],
    ] : []),
    ...(wamr && !wamr.error ? [
      ['WAMR+cowmem inst+deinst', wamr.cowmem, 'like-for-like whole instance: WAMR 2.4.5 fast interpreter, the stripped module, memory from a cowmem pool, with an execution environment (integrations/wamr)'],
      ['  same run: stock WAMR', wamr.stock, 'stock WAMR 2.4.5 in the same process: 8 GiB reserve, mprotect, segment copies'],
    ] : []),
    ['V8 new Instance', v8.error ? undefined : v8, 'whole instance: memory + segments, tables, globals, JS export objects (compile excluded)'],
  ];
  if (!opt.json) {
    console.log(`${'row'.padEnd(26)} ${'median us'.padStart(11)} ${'p99 us'.padStart(10)} ${'/ cowmem'.padStart(10)}  covers`);
    for (const [n, q, covers] of rows) {
      if (!q) { console.log(`${n.padEnd(26)} ${'n/a'.padStart(11)} ${''.padStart(10)} ${''.padStart(10)}  ${(n.startsWith('V8') ? v8.error : n.startsWith('w2c 1.0.39') ? w2c39.error : w2c.error) || ''}`); continue; }
      console.log(`${n.padEnd(26)} ${us(q.median).padStart(11)} ${us(q.p99).padStart(10)} ${(q.median / base).toFixed(1).padStart(9)}x  ${covers}`);
    }
    console.log(`opening the precompiled .cwimg: median ${us(cw.open_cwimg_ns.median)} us, p99 ${us(cw.open_cwimg_ns.p99)} us`);
  }
  const ratio = (q) => (q ? q.median / base : null);
  results.push({ module: mod, size: fs.statSync(mod).size, image_bytes: cw.image_bytes, initial_bytes: cw.initial_bytes,
                 cowmem_instantiate_ns: slot.instantiate_ns, cowmem_pool_acquire_ns: pool.instantiate_ns,
                 cowmem_cycle_ns: slot.cycle_ns, open_cwimg_ns: cw.open_cwimg_ns,
                 wasm2c_memory_part_ns: fresh.instantiate_ns,
                 wasm2c_stock: w2c.error ? { error: w2c.error } : w2c,
                 v8: v8.error ? { error: v8.error } : v8,
                 wasm2c_integration: integ,
                 wasm2c39_stock: w2c39.error ? { error: w2c39.error } : w2c39,
                 wasm2c39_integration: integ39,
                 wamr_integration: wamr,
                 ratio_wasm2c39_stock: ratio(w2c39.instantiate), ratio_wasm2c39_memory_part: ratio(w2c39.memory),
                 ratio_wasm2c_stock: ratio(w2c.instantiate), ratio_wasm2c_memory_part: ratio(fresh.instantiate_ns),
                 ratio_v8: ratio(v8.error ? null : v8) });
}
if (opt.json) { console.log(JSON.stringify({ runtime: rt.version || null, runtime39: rt39.version || null, results }, null, 1)); process.exit(process.exitCode || 0); }

console.log('\nTargets (instantiate with the same image vs the peers; open of a .cwimg):');
for (const r of results) {
  const f = (x, t) => (x == null ? 'n/a' : `${x.toFixed(0)}x (${x >= t ? 'met' : 'MISSED'}, target >= ${t}x)`);
  console.log(`  ${path.basename(r.module).padEnd(16)} vs wasm2c stock ${f(r.ratio_wasm2c_stock, 50)}; ` +
              `vs V8 ${f(r.ratio_v8, 300)}; .cwimg open ${us(r.open_cwimg_ns.median)} us ` +
              `(${r.open_cwimg_ns.median <= 50000 ? 'met' : 'MISSED'}, target <= 50 us)`);
  if (r.wasm2c_integration && !r.wasm2c_integration.error)
    console.log(`  ${''.padEnd(16)} wasm2c with cowmem's memory (integration), instantiate+free: ` +
                `${us(r.wasm2c_integration.cowmem.median)} us vs stock ${us(r.wasm2c_integration.stock.median)} us = ` +
                `${(r.wasm2c_integration.stock.median / r.wasm2c_integration.cowmem.median).toFixed(0)}x`);
  if (r.wasm2c39_integration && !r.wasm2c39_integration.error)
    console.log(`  ${''.padEnd(16)} wasm2c 1.0.39 with cowmem's memory (integration), instantiate+free: ` +
                `${us(r.wasm2c39_integration.cowmem.median)} us vs stock 1.0.39 ${us(r.wasm2c39_integration.stock.median)} us = ` +
                `${(r.wasm2c39_integration.stock.median / r.wasm2c39_integration.cowmem.median).toFixed(0)}x`);
  if (r.wamr_integration && !r.wamr_integration.error)
    console.log(`  ${''.padEnd(16)} WAMR with cowmem's memory (integration), instantiate+deinstantiate: ` +
                `${us(r.wamr_integration.cowmem.median)} us vs stock WAMR ${us(r.wamr_integration.stock.median)} us = ` +
                `${(r.wamr_integration.stock.median / r.wamr_integration.cowmem.median).toFixed(0)}x (target >= 20x)`);
  if (!r.wasm2c39_stock.error)
    console.log(`  ${''.padEnd(16)} vs wasm2c 1.0.39 stock ${f(r.ratio_wasm2c39_stock, 50)}; memory part (like-for-like) ` +
                `${r.ratio_wasm2c39_memory_part == null ? 'n/a' : r.ratio_wasm2c39_memory_part.toFixed(0) + 'x'}`);
  if (!r.wasm2c_stock.error)
    console.log(`  ${''.padEnd(16)} whole cycles: cowmem inst+reset ${us(r.cowmem_cycle_ns.median)} us vs wasm2c ` +
                `inst+free ${us(r.wasm2c_stock.cycle.median)} us = ${(r.wasm2c_stock.cycle.median / r.cowmem_cycle_ns.median).toFixed(0)}x`);
}
console.log('Ratios: peer median / cowmem slot instantiate median. cowmem rows cover memory only; ' +
            'the wasm2c and V8 rows cover whole instances (see "covers"); the like-for-like row is ' +
            "wasm2c's memory part.");
