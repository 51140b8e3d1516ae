// The state of a module instance, for test_preinit (run with
// --experimental-wasm-type-reflection: a global's type() tells its type).
//   node state.js snapshot INST.wasm FUNC OUTDIR [MEMPAGES]
//     instantiate, call _initialize (if exported) then FUNC, and write each
//     cowmem:preinit:memory:N to OUTDIR/memN and a line per memory and
//     per cowmem:preinit:global:N to OUTDIR/state.txt:
//       memory N PAGES          global N TYPE LO HI   (bits, hex)
//   node state.js compare ORIG.wasm FUNC NEW.wasm MODE [MEMPAGES]
//     the original instance after its initialization against a fresh
//     instance of the rewritten one (nothing called): the same memory
//     sizes and globals; memory bytes equal (MODE same) or all zeros
//     (MODE zeros); the init exports gone; an exported `run` returns the
//     same on both. Both modules are instrumented (the reserved exports).
// Imported memories get a fresh memory of their declared limits
// (MEMPAGES without type reflection); any other import is an error.
'use strict';
const fs = require('fs');
const path = require('path');

const MEM = 'cowmem:preinit:memory:';
const GLOB = 'cowmem:preinit:global:';

// A module that imports a mutable v128 global and returns its halves:
// JS cannot read a v128 value, but it can pass the Global object on.
const V128_READER = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7e,                  // () -> i64
  0x02, 0x08, 0x01, 0x01, 0x6d, 0x01, 0x67, 0x03, 0x7b, 0x01, // m.g mut v128
  0x03, 0x03, 0x02, 0x00, 0x00,
  0x07, 0x0b, 0x02, 0x02, 0x6c, 0x6f, 0x00, 0x00, 0x02, 0x68, 0x69, 0x00, 0x01,
  0x0a, 0x11, 0x02,
  0x07, 0x00, 0x23, 0x00, 0xfd, 0x1d, 0x00, 0x0b,            // lane 0
  0x07, 0x00, 0x23, 0x00, 0xfd, 0x1d, 0x01, 0x0b,            // lane 1
]);

function hex64(x) { return BigInt.asUintN(64, x).toString(16); }

function globalBits(g) {
  const t = g.type().value;
  if (t === 'v128') {
    const r = new WebAssembly.Instance(new WebAssembly.Module(V128_READER),
                                       { m: { g } }).exports;
    return [t, hex64(r.lo()), hex64(r.hi())];
  }
  const dv = new DataView(new ArrayBuffer(8));
  if (t === 'i32') dv.setUint32(0, g.value >>> 0, true);
  else if (t === 'f32') dv.setFloat32(0, g.value, true);
  else if (t === 'f64') dv.setFloat64(0, g.value, true);
  else if (t === 'i64') dv.setBigUint64(0, BigInt.asUintN(64, g.value), true);
  else throw new Error('global of type ' + t);
  return [t, hex64(dv.getBigUint64(0, true)), '0'];
}

function instantiate(file, memPages) {
  const mod = new WebAssembly.Module(fs.readFileSync(file));
  const imports = {};
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.kind !== 'memory') throw new Error('unexpected import ' + imp.module + '.' + imp.name);
    imports[imp.module] = imports[imp.module] || {};
    // A fresh memory of the declared limits (type reflection), as a host
    // keeping the promise of COWMEM_MODULE_FRESH_IMPORTS gives.
    const t = imp.type || { minimum: memPages };
    const desc = { initial: t.minimum };
    if (t.maximum !== undefined) desc.maximum = t.maximum;
    imports[imp.module][imp.name] = new WebAssembly.Memory(desc);
  }
  return new WebAssembly.Instance(mod, imports).exports;
}

function initialize(ex, func) {
  if (ex._initialize) ex._initialize();
  if (!ex[func]) throw new Error('no export ' + func);
  ex[func]();
}

function state(ex) {
  const mems = [], globs = [];
  for (const [name, v] of Object.entries(ex)) {
    if (name.startsWith(MEM)) mems.push([+name.slice(MEM.length), v]);
    if (name.startsWith(GLOB)) globs.push([+name.slice(GLOB.length), v]);
  }
  mems.sort((a, b) => a[0] - b[0]);
  globs.sort((a, b) => a[0] - b[0]);
  return { mems, globs };
}

function fail(msg) { console.error('state.js: ' + msg); process.exit(1); }

const [mode, a, b, c, d, e] = process.argv.slice(2);
if (mode === 'snapshot') {
  const ex = instantiate(a, +(d || 1));
  initialize(ex, b);
  const s = state(ex);
  const lines = [];
  for (const [i, m] of s.mems) {
    fs.writeFileSync(path.join(c, 'mem' + i), new Uint8Array(m.buffer));
    lines.push(`memory ${i} ${m.buffer.byteLength / 65536}`);
  }
  for (const [i, g] of s.globs) lines.push(`global ${i} ${globalBits(g).join(' ')}`);
  fs.writeFileSync(path.join(c, 'state.txt'), lines.join('\n') + '\n');
} else if (mode === 'compare') {
  const orig = instantiate(a, +(e || 1));
  initialize(orig, b);
  const fresh = instantiate(c, +(e || 1));
  for (const n of ['_initialize', b])
    if (fresh[n]) fail(`the rewritten module still exports ${n}`);
  const so = state(orig), sn = state(fresh);
  if (so.mems.length !== sn.mems.length || so.globs.length !== sn.globs.length)
    fail('different exports');
  for (let k = 0; k < so.mems.length; k++) {
    const x = new Uint8Array(so.mems[k][1].buffer), y = new Uint8Array(sn.mems[k][1].buffer);
    if (x.length !== y.length) fail(`memory ${k}: ${x.length} bytes, rewritten ${y.length}`);
    for (let i = 0; i < x.length; i++) {
      const want = d === 'zeros' ? 0 : x[i];
      if (y[i] !== want) fail(`memory ${k}: byte ${i} is ${y[i]}, want ${want}`);
    }
  }
  for (let k = 0; k < so.globs.length; k++) {
    const x = globalBits(so.globs[k][1]).join(' '), y = globalBits(sn.globs[k][1]).join(' ');
    if (x !== y) fail(`global ${so.globs[k][0]}: ${y}, want ${x}`);
  }
  if (orig.run && d !== 'zeros') {
    const x = orig.run(), y = fresh.run();
    if (x !== y) fail(`run() returned ${y}, want ${x}`);
  }
  console.log(`same state: ${so.mems.length} memories, ${so.globs.length} globals`);
} else {
  fail('usage: state.js snapshot|compare ...');
}
