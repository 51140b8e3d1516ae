#!/usr/bin/env node
// Real modules from npm: cowmem's initial memories against V8's, byte for
// byte, for modules without a start function.
//
//   node real.js <wasm_check> <npm prefix dir>
//
// Installs pinned packages into <npm prefix dir> (the build tree) with
// npm; exits 77 (skip) if npm or the registry is unreachable. Every import
// a module has is given a stub function (the modules here import only
// functions; any other kind is reported and the module skipped).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const PACKAGES = ['sql.js@1.10.3', 'esbuild-wasm@0.20.2'];
const MODULES = ['node_modules/sql.js/dist/sql-wasm.wasm',
                 'node_modules/esbuild-wasm/esbuild.wasm'];

const [checker, prefix] = process.argv.slice(2);
if (!checker || !prefix) { console.error('usage: real.js <wasm_check> <npm prefix>'); process.exit(2); }
function skip(why) { console.log('SKIP: ' + why); process.exit(77); }

fs.mkdirSync(prefix, { recursive: true });
if (!MODULES.every((m) => fs.existsSync(path.join(prefix, m)))) {
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
console.log(`real modules: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
