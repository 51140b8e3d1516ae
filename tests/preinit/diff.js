// `cowmem preinit` end to end, and against Wizer when given.
//   node diff.js WORKDIR COWMEM PREINIT_STATE SRCDIR WAT2WASM [WIZER]
// For each module of SRCDIR/mods that can be pre-initialized: pre-initialize
// it (both forms; with WIZER, also with Wizer), then compare a fresh
// instance of every output with the original instance after its
// initialization, in V8 (state.js compare; not for several memories, which
// node 20 cannot run) and in WAMR (preinit_state): memory sizes and bytes,
// global values and an exported `run`'s result. The image form's memories
// are checked with `cowmem dump` against the original's. Wizer's output and
// cowmem's must match byte for byte in every section but data, data count
// and exports' order (printed). Each refusal: exit 1, the byte offset and
// the reason, no output; Wizer refuses too.
// Exit 0, 1 on a failure, 77 (skip) when node's helpers, wat2wasm or Wizer
// (when asked for) are missing.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const [work, cowmem, stateTool, src, wat2wasm, wizer] = process.argv.slice(2);
function skip(why) { console.log('SKIP: ' + why); process.exit(77); }
if (!wat2wasm) skip('wat2wasm (wabt) not found');
if (wizer !== undefined && !fs.existsSync(wizer))
  skip(`Wizer not installed at ${wizer} (npm @bytecodealliance/wizer-linux-x64@11.0.3 ` +
       'is installed when the project is configured with npm and a registry)');

let failures = 0;
function fail(msg) { console.log('FAIL: ' + msg); failures++; }
function run(cmd, args, opts) {
  return spawnSync(cmd, args, Object.assign({ encoding: 'utf8' }, opts));
}
function must(cmd, args) {
  const r = run(cmd, args);
  if (r.status !== 0)
    throw new Error(`${path.basename(cmd)} ${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r;
}

fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const w = (f) => path.join(work, f);
function compile(name) {
  must(wat2wasm, ['--enable-all', path.join(src, 'mods', name + '.wat'), '-o', w(name + '.wasm')]);
  return w(name + '.wasm');
}

// Sections by id: [id, bytes] in order.
function sections(file) {
  const b = fs.readFileSync(file), out = [];
  let p = 8;
  while (p < b.length) {
    const id = b[p++];
    let size = 0, shift = 0, byte;
    do { byte = b[p++]; size |= (byte & 0x7f) << shift; shift += 7; } while (byte & 0x80);
    out.push([id, b.subarray(p, p + size)]);
    p += size;
  }
  return out;
}
const NAMES = ['custom', 'type', 'import', 'function', 'table', 'memory', 'global',
               'export', 'start', 'element', 'code', 'data', 'data count'];

// In V8: the original after init against a fresh instance of out.
function v8Compare(orig, func, out, mode) {
  const oi = w(path.basename(orig) + '.inst'), ni = w(path.basename(out) + '.inst');
  must(stateTool, ['instrument', orig, oi]);
  must(stateTool, ['instrument', out, ni]);
  const r = run('node', ['--experimental-wasm-type-reflection',
                         path.join(src, 'state.js'), 'compare', oi, func, ni, mode]);
  if (r.status !== 0) fail(`V8: ${path.basename(out)}: ${r.stdout}${r.stderr}`);
}

// In WAMR: the state after the calls, as preinit_state writes it.
function wamrState(file, calls) {
  const dir = w(path.basename(file) + '.wamr');
  fs.mkdirSync(dir, { recursive: true });
  must(stateTool, ['wamr', file, dir, ...calls]);
  const lines = fs.readFileSync(path.join(dir, 'state.txt'), 'utf8').trim().split('\n');
  const mems = lines.filter((l) => l.startsWith('memory '))
    .map((l) => fs.readFileSync(path.join(dir, 'mem' + l.split(' ')[1])));
  return { dir, lines, mems, result: lines.filter((l) => l.startsWith('result run ')) };
}
function wamrCompare(before, out) {
  const after = wamrState(out, ['run']);
  const keep = (s) => s.lines.filter((l) => !l.startsWith('result '));
  if (keep(before).join('\n') !== keep(after).join('\n'))
    fail(`WAMR: ${path.basename(out)}: state\n${keep(after).join('\n')}\nwant\n${keep(before).join('\n')}`);
  before.mems.forEach((m, i) => {
    if (!m.equals(after.mems[i])) fail(`WAMR: ${path.basename(out)}: memory ${i} differs`);
  });
  if (before.result.join() !== after.result.join())
    fail(`WAMR: ${path.basename(out)}: ${after.result} want ${before.result}`);
}

const MODULES = [
  // name, init function (as state.js calls it), several memories
  ['globals', 'wizer-initialize', false],
  ['start', 'wizer-initialize', false],
  ['reactor', 'wizer.initialize', false],
  ['multi', 'wizer-initialize', true],
];
for (const [name, func, multi] of MODULES) {
  const orig = compile(name);
  const calls = [];
  if (name === 'reactor') calls.push('_initialize');
  calls.push(func, 'run');
  const before = wamrState(orig, calls);
  // (a) segments
  const cw = w(name + '.cowmem.wasm');
  must(cowmem, ['preinit', orig, '-o', cw]);
  must('wasm-validate', ['--enable-all', cw]);
  if (!multi) v8Compare(orig, func, cw, 'same');
  wamrCompare(before, cw);
  // (b) images: the module starts from zeros elsewhere; the image file
  // holds each memory as the original left it.
  const cwi = w(name + '.images.wasm'), img = w(name + '.cwimg');
  must(cowmem, ['preinit', orig, '-o', cwi, '--images', img]);
  if (!multi) v8Compare(orig, func, cwi, 'zeros');
  before.mems.forEach((m, i) => {
    const d = w(`${name}.dump${i}`);
    must(cowmem, ['dump', img, '--module', cwi, '--memory', String(i), '-o', d]);
    if (!m.equals(fs.readFileSync(d))) fail(`${name}: image file memory ${i} differs`);
  });
  // Wizer: the same state, and the sections it leaves alone byte for byte.
  if (wizer !== undefined) {
    const wz = w(name + '.wizer.wasm');
    must(wizer, ['--wasm-multi-memory', 'true', '-f', func, orig, '-o', wz]);
    if (!multi) v8Compare(orig, func, wz, 'same');
    wamrCompare(before, wz);
    const a = sections(cw), b = sections(wz);
    const ids = (s) => s.map(([id]) => id).join(',');
    if (ids(a) !== ids(b)) fail(`${name}: sections ${ids(a)} (cowmem) vs ${ids(b)} (Wizer)`);
    const diffs = [];
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      if (a[i][1].equals(b[i][1])) continue;
      diffs.push(NAMES[a[i][0]]);
      if (a[i][0] !== 11 && a[i][0] !== 12 && a[i][0] !== 7)
        fail(`${name}: ${NAMES[a[i][0]]} section differs from Wizer's`);
    }
    const sa = fs.statSync(cw).size, sb = fs.statSync(wz).size;
    console.log(`${name}: Wizer and cowmem: same state; sections that differ: ` +
                `${diffs.join(', ') || 'none'}; ${sa} bytes (cowmem) vs ${sb} (Wizer)`);
  } else {
    console.log(`${name}: same state in ${multi ? 'WAMR' : 'V8 and WAMR'}, both forms`);
  }
}

// Refusals: exit 1, the offset and reason, no output; Wizer refuses too.
const REFUSED = {
  'refuse_table.set': 'table.set', 'refuse_table.grow': 'table.grow',
  'refuse_table.fill': 'table.fill', 'refuse_table.copy': 'table.copy',
  'refuse_table.init': 'table.init', 'refuse_elem.drop': 'elem.drop',
  'refuse_data.drop': 'data.drop', 'refuse_global.ref': 'reference type',
  'refuse_import.global': 'imported global', 'refuse_import.table': 'imported table',
  'refuse_import.memory': 'imported memory', 'calls_import': '(host, clock)',
  'v128': 'no SIMD',
};
for (const [name, want] of Object.entries(REFUSED)) {
  const orig = compile(name), out = w(name + '.out.wasm');
  const r = run(cowmem, ['preinit', orig, '-o', out, '--images', out + '.cwimg']);
  const at = name.startsWith('refuse_') ? /at byte \d+: / : /initialization failed: /;
  if (r.status !== 1 || !r.stderr.includes(want) || !at.test(r.stderr))
    fail(`${name}: exit ${r.status}: ${r.stderr.trim()} (want exit 1 and '${want}')`);
  const left = fs.readdirSync(work).filter((f) => f.startsWith(name + '.out'));
  if (left.length) fail(`${name}: left ${left.join(' ')}`);
  if (wizer !== undefined && name !== 'v128') {
    const z = run(wizer, ['--wasm-reference-types', 'true', orig, '-o', w(name + '.wz.wasm')]);
    if (z.status === 0) fail(`${name}: Wizer pre-initialized it`);
  }
}
// v128 globals: Wizer handles them; cowmem's runner cannot (no SIMD in WAMR).
if (wizer !== undefined)
  must(wizer, [compile('v128'), '-o', w('v128.wz.wasm')]);
console.log(`refusals: ${Object.keys(REFUSED).length} modules refused with their reason`);

// Usage errors exit 2; a refused run leaves an existing output untouched.
for (const args of [['preinit'], ['preinit', w('globals.wasm')],
                    ['preinit', w('globals.wasm'), '-o', w('x.wasm'), '-r', 'norename'],
                    ['preinit', w('globals.wasm'), '-o', w('x.wasm'), '--bogus']]) {
  const r = run(cowmem, args);
  if (r.status !== 2) fail(`${args.join(' ')}: exit ${r.status}, want 2`);
}
fs.writeFileSync(w('keep.wasm'), 'previous');
const r = run(cowmem, ['preinit', w('globals.wasm'), '-o', w('keep.wasm'), '-f', 'nosuch']);
if (r.status !== 1 || fs.readFileSync(w('keep.wasm'), 'utf8') !== 'previous')
  fail(`-f nosuch: exit ${r.status}, output changed`);
const h = run(cowmem, ['preinit', '--help']);
if (h.status !== 0 || !h.stdout.includes('Usage: cowmem preinit')) fail('--help');

if (failures) { console.log(`${failures} failures`); process.exit(1); }
console.log('ok');
