#!/usr/bin/env node
// Real modules from npm: cowmem's initial memories against V8's, byte for
// byte, for modules without a start function.
//
//   node real.js <wasm_check> <npm prefix dir> [<cowmem command>]
//
// FRESH lists modules that import their memory (emscripten's
// -sIMPORTED_MEMORY): parsed with fresh imports (wasm_check -f 256), their
// imported memory's image against V8's memory after instantiating the
// module with a new WebAssembly.Memory of the declared limits, as their
// loader does; with the cowmem command also `strip --fresh-imports` (V8
// must then find a fresh memory still all zeros: the stripped module
// copies nothing) and the image file (`compile`, `dump --fresh-imports`).
//
// Installs pinned packages into <npm prefix dir> (the build tree) with
// npm; exits 77 (skip) if npm or the registry is unreachable. Every import
// a module has is given a stub function (the modules here import only
// functions; any other kind is reported and the module skipped).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const PACKAGES = ['sql.js@1.10.3', 'esbuild-wasm@0.20.2', '@sqlite.org/sqlite-wasm@3.46.1-build1'];
const MODULES = ['node_modules/sql.js/dist/sql-wasm.wasm',
                 'node_modules/esbuild-wasm/esbuild.wasm'];
// SQLite's official wasm build (emscripten, -sIMPORTED_MEMORY: it imports
// "env" "memory", 256 pages, maximum 32768).
const FRESH = ['node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm'];

const [checker, prefix, cowmem] = process.argv.slice(2);
if (!checker || !prefix) { console.error('usage: real.js <wasm_check> <npm prefix>'); process.exit(2); }
function skip(why) { console.log('SKIP: ' + why); process.exit(77); }

fs.mkdirSync(prefix, { recursive: true });
if (!MODULES.concat(FRESH).every((m) => fs.existsSync(path.join(prefix, m)))) {
  const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund',
                              '--ignore-scripts', '--no-save', ...PACKAGES],
                      { encoding: 'utf8', timeout: 240000 });
  if (r.error || r.status !== 0)
    skip(`npm install ${PACKAGES.join(' ')} failed (no npm or no registry?): ` +
         String(r.error || r.stderr).trim().split('\n').slice(-2).join(' '));
}

let passed = 0, failed = 0, skipped = 0;
for (const rel of MODULES) {
  const file = path.join(prefix, rel);
  const dumpDir = path.join(prefix, 'dump', path.basename(rel));
  fs.rmSync(dumpDir, { recursive: true, force: true });
  fs.mkdirSync(dumpDir, { recursive: true });
  const r = spawnSync(checker, ['-d', dumpDir, file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) { console.log(`FAIL ${rel}: wasm_check exit ${r.status} ${r.stderr}`); failed++; continue; }
  const info = JSON.parse(r.stdout);
  if (info.parse !== 'OK' || info.inst !== 'OK') {
    console.log(`FAIL ${rel}: ${info.parse} ${info.reason} ${info.inst || ''} ${info.inst_reason || ''}`);
    failed++;
    continue;
  }
  if (info.start) { console.log(`skip ${rel}: has a start function`); skipped++; continue; }
  const mod = new WebAssembly.Module(fs.readFileSync(file));
  const imports = {};
  let other = null;
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.kind !== 'function') { other = imp; break; }
    (imports[imp.module] = imports[imp.module] || {})[imp.name] = () => 0;
  }
  if (other) { console.log(`skip ${rel}: imports a ${other.kind}`); skipped++; continue; }
  const inst = new WebAssembly.Instance(mod, imports);
  for (const [k, mem] of info.memories.entries()) {
    if (mem.imported || mem.exports.length === 0) continue;
    const v8 = new Uint8Array(inst.exports[mem.exports[0]].buffer);
    const got = fs.readFileSync(mem.dump);
    let ok = v8.length === mem.size, first = -1;
    if (ok) ok = Buffer.compare(got, Buffer.from(v8.buffer, 0, got.length)) === 0;
    for (let i = got.length; ok && i < v8.length; i++) if (v8[i]) { ok = false; first = i; }
    const segs = info.sections.find((s) => s[0] === 11);
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${rel} memory ${k} "${mem.exports[0]}": ` +
                `${mem.size} bytes, image ${mem.image ? 'yes' : 'no (' + mem.whytext + ')'}, ` +
                `data section ${segs ? segs[2] : 0} bytes, last non-zero byte ${got.length}` +
                (first >= 0 ? `, V8 non-zero at ${first}` : ''));
    if (ok) passed++; else failed++;
  }
}
// A module importing its memory: stub functions, a new memory of the
// declared limits for each imported memory; null if it imports anything else.
function freshImports(mod, info) {
  const imports = {}, memories = [];
  for (const imp of WebAssembly.Module.imports(mod)) {
    let v;
    if (imp.kind === 'function') v = () => 0;
    else if (imp.kind === 'memory') {
      const d = info.memories[memories.length];
      const desc = { initial: d.min };
      if (d.max >= 0) desc.maximum = d.max;
      v = new WebAssembly.Memory(desc);
      memories.push(v);
    } else return null;
    (imports[imp.module] = imports[imp.module] || {})[imp.name] = v;
  }
  return { imports, memories };
}

// Whole memories: V8's bytes against a dump (up to its last non-zero byte).
function sameAsDump(v8, dumpFile) {
  const got = fs.readFileSync(dumpFile);
  if (got.length > v8.length || Buffer.compare(got, Buffer.from(v8.buffer, 0, got.length)) !== 0) return false;
  for (let i = got.length; i < v8.length; i++) if (v8[i]) return false;
  return true;
}

const run = (args) => spawnSync(cowmem, args, { encoding: 'utf8' });
for (const rel of FRESH) {
  const file = path.join(prefix, rel);
  const dumpDir = path.join(prefix, 'dump', path.basename(rel));
  fs.rmSync(dumpDir, { recursive: true, force: true });
  fs.mkdirSync(dumpDir, { recursive: true });
  const mod = new WebAssembly.Module(fs.readFileSync(file));
  const probe = JSON.parse(spawnSync(checker, ['-f', '256', file], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout);
  const margs = [];
  for (const m of probe.memories.filter((x) => x.imported)) margs.push('-m', m.max >= 0 ? `${m.min}:${m.max}` : String(m.min));
  const r = spawnSync(checker, ['-f', '256', '-d', dumpDir, ...margs, file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const info = r.status === 0 ? JSON.parse(r.stdout) : null;
  if (!info || info.parse !== 'OK' || info.inst !== 'OK') { console.log(`FAIL ${rel}: wasm_check ${r.status} ${r.stderr} ${info && info.parse} ${info && info.inst}`); failed++; continue; }
  if (info.start) { console.log(`skip ${rel}: has a start function`); skipped++; continue; }
  const env = freshImports(mod, info);
  if (!env) { console.log(`skip ${rel}: imports a table or global`); skipped++; continue; }
  new WebAssembly.Instance(mod, env.imports);
  info.memories.filter((m) => m.imported).forEach((mem, k) => {
    const v8 = new Uint8Array(env.memories[k].buffer);
    let ok = mem.fresh && mem.image && mem.dump && v8.length === mem.size && sameAsDump(v8, mem.dump);
    const notes = [];
    if (ok && cowmem) {
      // The stripped module on a fresh memory writes nothing; the image
      // file holds V8's bytes.
      const stripped = path.join(dumpDir, 'stripped.wasm'), cw = path.join(dumpDir, 'm.cwimg'), d = path.join(dumpDir, 'img.bin');
      const st = run(['strip', '--fresh-imports', file, '-o', stripped]);
      if (st.status !== 0) { ok = false; notes.push('strip: ' + st.stderr.trim()); }
      else {
        const smod = new WebAssembly.Module(fs.readFileSync(stripped));
        const senv = freshImports(smod, info);
        new WebAssembly.Instance(smod, senv.imports);
        if (new Uint8Array(senv.memories[k].buffer).some((x) => x !== 0)) { ok = false; notes.push('the stripped module still writes its memory'); }
        else notes.push(st.stdout.trim().replace(/^.*: /, 'strip: '));
      }
      if (ok && (run(['compile', '--fresh-imports', file, '-o', cw]).status !== 0 ||
                 run(['dump', cw, '--memory', String(k), '-o', d]).status !== 0 || !sameAsDump(v8, d))) {
        ok = false; notes.push('image file differs from V8');
      } else if (ok) notes.push('image file equal');
    }
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${rel} imported memory ${k} (fresh, ${mem.min}..${mem.max} pages): ` +
                `${mem.size} bytes, image ${mem.image ? 'yes' : 'no (' + mem.whytext + ')'}, ` +
                `last non-zero byte ${mem.dumplen}${notes.length ? '; ' + notes.join('; ') : ''}`);
    if (ok) passed++; else failed++;
  });
}
console.log(`real modules: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
