#!/usr/bin/env node
// `cowmem strip` against the spec test suite's modules:
//
//   node strip_spec.js <cowmem> <wasm-spec dir> <tmp dir>
//
// For every module of the core suite's memory and data tests (wast2json)
// that V8 compiles, that has no start function (it could write memory)
// and whose imports are spectest's:
//   - `cowmem strip` succeeds and wasm-validate accepts the output; the
//     segments it strips are removed in some modules (no memory.init or
//     data.drop) and kept as empty passive ones in others, and both
//     happen in the suite;
//   - instantiation fails for the stripped module exactly when it fails for
//     the original;
//   - with one defined, exported memory, what a runtime sees when it takes
//     its memory from cowmem equals V8's memory of the original. Image
//     coverage is all or nothing per memory, so: if the memory has an
//     image, V8's memory of the stripped module must be all zeros (nothing
//     left to apply) and the image (`cowmem dump` of the compiled .cwimg)
//     must equal V8's memory of the original; otherwise the stripped
//     module's own segments must give V8's memory of the original;
//   - `cowmem dump` of the original module equals V8's memory too;
//   - fresh imports: every module of the core and memory64 suites that
//     imports a memory (and no start function; globals and tables from
//     spectest) is instantiated by V8 with a NEW WebAssembly.Memory of the
//     declared limits for each imported memory, as a host keeping the
//     promise of COWMEM_MODULE_FRESH_IMPORTS does. `cowmem dump
//     --fresh-imports` must equal V8's memory byte for byte (or fail where
//     V8's instantiation traps); `cowmem strip --fresh-imports` must leave
//     a fresh memory all zeros when the image covers its segments (else
//     the stripped module writes what the original does); and the image
//     file (`compile --fresh-imports`, `dump`) must equal V8's memory;
//   - the wast's assertions (assert_return, assert_trap, actions) that
//     follow the module pass on the STRIPPED module given cowmem's memory:
//     the stripped binary gets one extra export of its memory (so that
//     memories the module does not export can be reached), is instantiated
//     by V8, and its memory is filled with the image (`cowmem dump` of the
//     compiled .cwimg) before the first call: what a runtime taking its
//     memory from cowmem does.
// Exit 0 pass, 1 fail, 77 skip.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const [cowmem, specDir, tmp] = process.argv.slice(2);
function skip(why) { console.log('SKIP: ' + why); process.exit(77); }
if (!cowmem || !specDir || !tmp) { console.error('usage: strip_spec.js <cowmem> <spec dir> <tmp>'); process.exit(2); }
if (!fs.existsSync(path.join(specDir, 'core'))) skip(`${specDir}/core is absent`);
for (const tool of ['wast2json', 'wasm-validate'])
  if (spawnSync(tool, ['--version']).status !== 0) skip(`${tool} (wabt) is not installed`);
fs.rmSync(tmp, { recursive: true, force: true });
fs.mkdirSync(tmp, { recursive: true });

const spectest = require('../spectest.js');
const GLOBAL_ARGS = { global_i32: '666', global_i64: '666', global_f32: '666.6', global_f64: '666.6' };

const run = (args) => spawnSync(cowmem, args, { encoding: 'utf8' });
const stats = { modules: 0, compared: 0, withImage: 0, skipped: 0, failed: 0, removed: 0, kept: 0,
                withActions: 0, actions: 0, actionsSkipped: 0 };
const failures = [];
function fail(where, msg) { stats.failed++; failures.push(`${where}: ${msg}`); }

function instantiate(bytes) {
  const mod = new WebAssembly.Module(bytes);
  const st = spectest();
  const imports = {};
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.module !== 'spectest' || !(imp.name in st)) return { unresolved: true };
    (imports.spectest ||= {})[imp.name] = st[imp.name];
  }
  try { return { instance: new WebAssembly.Instance(mod, imports), mod }; } catch (e) { return { error: e, mod }; }
}

function memoryOf(inst, mod) {
  const mems = WebAssembly.Module.exports(mod).filter((e) => e.kind === 'memory');
  if (mems.length !== 1) return null;
  return Buffer.from(inst.exports[mems[0].name].buffer);
}

// ---- binary helpers: add an export of memory 0 to a module -------------
function leb(buf, pos) {
  let v = 0, shift = 0, b;
  do { b = buf[pos++]; v += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80);
  return [v, pos];
}
function encLeb(v) {
  const out = [];
  do { let b = v % 128; v = Math.floor(v / 128); if (v) b |= 0x80; out.push(b); } while (v);
  return Buffer.from(out);
}
const EXPORT_NAME = '__cowmem_memory';
function withMemoryExport(bytes) {
  const entry = Buffer.concat([encLeb(EXPORT_NAME.length), Buffer.from(EXPORT_NAME), Buffer.from([2, 0])]);
  const parts = [bytes.subarray(0, 8)];
  let pos = 8, done = false;
  while (pos < bytes.length) {
    const id = bytes[pos];
    const [size, start] = leb(bytes, pos + 1);
    const end = start + size;
    if (!done && id === 7) {
      const [n, p] = leb(bytes, start);
      const payload = Buffer.concat([encLeb(n + 1), bytes.subarray(p, end), entry]);
      parts.push(Buffer.from([7]), encLeb(payload.length), payload);
      done = true;
    } else {
      // no export section: a new one before the first section that follows
      // exports in the spec's order (start, element, data count, code, data)
      if (!done && [8, 9, 12, 10, 11].includes(id)) {
        const payload = Buffer.concat([encLeb(1), entry]);
        parts.push(Buffer.from([7]), encLeb(payload.length), payload);
        done = true;
      }
      parts.push(bytes.subarray(pos, end));
    }
    pos = end;
  }
  if (!done) {
    const payload = Buffer.concat([encLeb(1), entry]);
    parts.push(Buffer.from([7]), encLeb(payload.length), payload);
  }
  return Buffer.concat(parts);
}

// ---- wast2json values ------------------------------------------------------
function toJs(a) {
  switch (a.type) {
    case 'i32': return Number(BigInt.asIntN(32, BigInt(a.value)));
    case 'i64': return BigInt.asIntN(64, BigInt(a.value));
    case 'f32': return new Float32Array(new Uint32Array([Number(a.value)]).buffer)[0];
    case 'f64': return new Float64Array(new BigUint64Array([BigInt(a.value)]).buffer)[0];
    default: throw new Error('unsupported type ' + a.type);
  }
}
function isNanBits(e) {
  if (e.type === 'f32') { const b = Number(e.value); return (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0; }
  if (e.type === 'f64') { const b = BigInt(e.value); return (b & 0x7ff0000000000000n) === 0x7ff0000000000000n && (b & 0xfffffffffffffn) !== 0n; }
  return false;
}
function same(r, e) {
  // JS numbers do not keep NaN payloads: any NaN stands for an expected one.
  if (String(e.value).startsWith('nan') || isNanBits(e)) return Number.isNaN(r);
  switch (e.type) {
    case 'i32': return (r | 0) === toJs(e);
    case 'i64': return BigInt.asIntN(64, r) === toJs(e);
    case 'f32': return new Uint32Array(new Float32Array([r]).buffer)[0] === Number(e.value);
    case 'f64': return new BigUint64Array(new Float64Array([r]).buffer)[0] === BigInt(e.value);
    default: throw new Error('unsupported type ' + e.type);
  }
}
const supported = (vs) => (vs || []).every((v) => ['i32', 'i64', 'f32', 'f64'].includes(v.type));
function act(inst, a) {
  if (a.type === 'get') return inst.exports[a.field].value;
  return inst.exports[a.field](...a.args.map(toJs));
}

const files = fs.readdirSync(path.join(specDir, 'core'))
  .filter((f) => /^(data|memory.*|bulk|address|linking|imports)\.wast$/.test(f)).sort();
for (const wast of files) {
  const dir = path.join(tmp, wast.replace(/\.wast$/, ''));
  fs.mkdirSync(dir, { recursive: true });
  const json = path.join(dir, 'x.json');
  const c = spawnSync('wast2json', [path.join(specDir, 'core', wast), '-o', json], { encoding: 'utf8' });
  if (c.status !== 0) { fail(wast, 'wast2json: ' + c.stderr); continue; }
  const cmds = JSON.parse(fs.readFileSync(json, 'utf8')).commands;
  let cur = null; // { instance, name } of the stripped module with cowmem's memory
  for (const cmd of cmds) {
    if (['assert_return', 'assert_trap', 'assert_exhaustion', 'action'].includes(cmd.type)) {
      const a = cmd.action;
      if (!cur || (a.module && a.module !== cur.name)) continue;
      if (!supported(a.args) || !supported(cmd.expected)) { stats.actionsSkipped++; continue; }
      const where = `${wast}:${cmd.line}`;
      let r, threw = null;
      try { r = act(cur.instance, a); } catch (e) { threw = e; }
      if (cmd.type === 'assert_trap' || cmd.type === 'assert_exhaustion') {
        if (threw) stats.actions++;
        else fail(where, `stripped module: ${a.field} did not trap (${cmd.text})`);
      } else if (threw) {
        fail(where, `stripped module: ${a.field} threw ${threw}`);
      } else if (cmd.type === 'assert_return') {
        const exp = cmd.expected || [];
        const got = exp.length > 1 ? r : [r];
        if (exp.every((e, k) => same(got[k], e))) stats.actions++;
        else fail(where, `stripped module: ${a.field} returned ${r}, expected ${JSON.stringify(exp)}`);
      } else {
        stats.actions++;
      }
      continue;
    }
    // Another module's instantiation may write the current module's memory
    // or tables through imports (assert_uninstantiable with a start
    // function, say): stop checking the current module there.
    if (cmd.filename && !['assert_invalid', 'assert_malformed'].includes(cmd.type)) cur = null;
    if (cmd.type !== 'module' || !cmd.filename.endsWith('.wasm')) continue;
    const file = path.join(dir, cmd.filename);
    const where = `${wast}:${cmd.line}`;
    const bytes = fs.readFileSync(file);
    let orig;
    try { orig = instantiate(bytes); } catch (e) { stats.skipped++; continue; }
    if (orig.unresolved) { stats.skipped++; continue; }
    const ins = run(['inspect', '--json', file]);
    if (ins.status !== 0) { stats.skipped++; continue; } // cowmem refuses it (conformance test's business)
    const info = JSON.parse(ins.stdout);
    if (info.start) { stats.skipped++; continue; }
    stats.modules++;
    const stripped = file.replace(/\.wasm$/, '.stripped.wasm');
    const s = run(['strip', file, '-o', stripped]);
    if (s.status !== 0) { fail(where, 'strip: ' + s.stderr); continue; }
    const counts = /(\d+) of (\d+) data segments stripped \((\d+) left\)/.exec(s.stdout);
    if (!counts) { fail(where, 'strip summary: ' + s.stdout); continue; }
    const [nstripped, nsegs, nleft] = counts.slice(1).map(Number);
    if (nstripped > 0 && nleft === nsegs) stats.kept++;
    else if (nstripped > 0 && nleft === nsegs - nstripped) stats.removed++;
    else if (nleft !== nsegs) { fail(where, 'strip summary: ' + s.stdout); continue; }
    const v = spawnSync('wasm-validate', [stripped], { encoding: 'utf8' });
    if (v.status !== 0) { fail(where, 'wasm-validate: ' + v.stderr); continue; }
    const st = instantiate(fs.readFileSync(stripped));
    if (!!orig.error !== !!st.error) {
      fail(where, `instantiation: original ${orig.error || 'ok'}, stripped ${st.error || 'ok'}`);
      continue;
    }
    if (orig.error) continue;
    const defined = info.memories.filter((m) => !m.imported);
    // The stripped module with cowmem's memory, for the assertions that
    // follow: memory 0 exported once more and filled with the image.
    if (info.memories.length === 0 || info.memories[0].imported) {
      cur = { instance: st.instance, name: cmd.name };
    } else if (info.memories.length === 1) {
      const cw = file.replace(/\.wasm$/, '.cwimg'), img = path.join(dir, 'img.bin');
      const withExp = withMemoryExport(fs.readFileSync(stripped));
      const ex = instantiate(withExp);
      if (!ex.instance || run(['compile', file, '-o', cw]).status !== 0) {
        fail(where, 'cannot instantiate the stripped module with a memory export');
      } else {
        const mem = new Uint8Array(ex.instance.exports[EXPORT_NAME].buffer);
        if (info.memories[0].segments_in_image > 0) {
          const dd = run(['dump', cw, '-o', img]);
          if (dd.status !== 0) fail(where, 'dump .cwimg: ' + dd.stderr);
          else mem.set(fs.readFileSync(img));
        }
        cur = { instance: ex.instance, name: cmd.name };
        stats.withActions++;
      }
    }
    if (info.memories.length !== 1 || defined.length !== 1) continue;
    const A = memoryOf(orig.instance, orig.mod), B = memoryOf(st.instance, st.mod);
    if (!A || !B) continue;
    stats.compared++;
    // cowmem dump of the original module, globals as spectest gives them
    const gargs = [];
    for (const imp of WebAssembly.Module.imports(orig.mod))
      if (imp.kind === 'global') gargs.push('--global', `spectest.${imp.name}=${GLOBAL_ARGS[imp.name]}`);
    const d1 = path.join(dir, 'dump.bin');
    const d = run(['dump', file, ...gargs, '-o', d1]);
    if (d.status !== 0) { fail(where, 'dump: ' + d.stderr); continue; }
    if (Buffer.compare(fs.readFileSync(d1), A) !== 0) { fail(where, 'cowmem dump differs from V8'); continue; }
    if (info.memories[0].segments_in_image > 0 || (info.memories[0].image && info.memories[0].active_segments > 0)) {
      stats.withImage++;
      if (B.some((x) => x !== 0)) { fail(where, "stripped module still writes an image-covered memory"); continue; }
      const cw = file.replace(/\.wasm$/, '.cwimg'), d2 = path.join(dir, 'img.bin');
      const cc = run(['compile', file, '-o', cw]);
      if (cc.status !== 0) { fail(where, 'compile: ' + cc.stderr); continue; }
      const dd = run(['dump', cw, '-o', d2]);
      if (dd.status !== 0) { fail(where, 'dump .cwimg: ' + dd.stderr); continue; }
      if (Buffer.compare(fs.readFileSync(d2), A) !== 0) fail(where, 'image + stripped module differs from the original');
    } else if (Buffer.compare(A, B) !== 0) {
      fail(where, 'stripped module (no image) differs from the original');
    }
  }
}
// ---- fresh imports --------------------------------------------------------
const fresh = { modules: 0, compared: 0, withImage: 0, traps: 0, skipped: 0, failed: 0 };
function freshFail(where, msg) { fresh.failed++; stats.failed++; failures.push(`${where} (fresh imports): ${msg}`); }
// Imports for mod: spectest's functions, globals and table; stubs for other
// functions; a new memory of the declared limits for each imported memory
// (mems: inspect's descriptions). null when something cannot be supplied.
function freshEnv(mod, mems) {
  const st = spectest(), imports = {}, memories = [];
  for (const imp of WebAssembly.Module.imports(mod)) {
    let v;
    if (imp.kind === 'memory') {
      const d = mems[memories.length];
      const desc = { initial: d.min_pages };
      if (d.max_pages !== null) desc.maximum = d.max_pages;
      if (d.shared) desc.shared = true;
      if (d.memory64) desc.index = 'i64';
      try { v = new WebAssembly.Memory(desc); } catch (e) { return null; }
      memories.push(v);
    } else if (imp.module === 'spectest' && imp.name in st) v = st[imp.name];
    else if (imp.kind === 'function') v = () => 0;
    else return null;
    (imports[imp.module] ||= {})[imp.name] = v;
  }
  return { imports, memories };
}
function freshInstantiate(bytes, mems) {
  let mod;
  try { mod = new WebAssembly.Module(bytes); } catch (e) { return { skip: 'V8 cannot compile it' }; }
  const env = freshEnv(mod, mems);
  if (!env) return { skip: 'an import V8 cannot be given here' };
  try { new WebAssembly.Instance(mod, env.imports); } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) return { trap: e, env };
    return { skip: 'V8: ' + e };
  }
  return { env };
}
const sameBytes = (file, mem) => {
  const got = fs.readFileSync(file), b = Buffer.from(mem.buffer);
  return got.length === b.length && Buffer.compare(got, b) === 0;
};
for (const suite of ['core', 'memory64']) {
  const sdir = path.join(specDir, suite);
  if (!fs.existsSync(sdir)) continue;
  const wabt = suite === 'memory64' ? ['--enable-memory64'] : [];
  for (const wast of fs.readdirSync(sdir).filter((f) => f.endsWith('.wast')).sort()) {
    const text = fs.readFileSync(path.join(sdir, wast), 'utf8');
    if (!/\(memory/.test(text) || !/\(import/.test(text)) continue;
    const dir = path.join(tmp, 'fresh', suite, wast.replace(/\.wast$/, ''));
    fs.mkdirSync(dir, { recursive: true });
    const json = path.join(dir, 'x.json');
    if (spawnSync('wast2json', [...wabt, path.join(sdir, wast), '-o', json]).status !== 0) continue;
    for (const cmd of JSON.parse(fs.readFileSync(json, 'utf8')).commands) {
      if (cmd.type !== 'module' || !cmd.filename.endsWith('.wasm')) continue;
      const file = path.join(dir, cmd.filename), where = `${suite}/${wast}:${cmd.line}`;
      const bytes = fs.readFileSync(file);
      let mod;
      try { mod = new WebAssembly.Module(bytes); } catch (e) { continue; }
      if (!WebAssembly.Module.imports(mod).some((i) => i.kind === 'memory')) continue;
      const ins = run(['inspect', '--json', '--fresh-imports', file]);
      if (ins.status !== 0) { fresh.skipped++; continue; }
      const info = JSON.parse(ins.stdout);
      const mems = info.memories.filter((m) => m.imported);
      if (info.start || info.memories.length !== 1) { fresh.skipped++; continue; }
      const orig = freshInstantiate(bytes, mems);
      if (orig.skip) { fresh.skipped++; continue; }
      fresh.modules++;
      const m = info.memories[0];
      if (!m.fresh) { freshFail(where, 'inspect --fresh-imports does not call the import fresh'); continue; }
      const gargs = [];
      for (const imp of WebAssembly.Module.imports(mod))
        if (imp.kind === 'global') gargs.push('--global', `${imp.module}.${imp.name}=${GLOBAL_ARGS[imp.name] || 0}`);
      const d1 = path.join(dir, 'fresh.bin');
      const d = run(['dump', '--fresh-imports', file, ...gargs, '-o', d1]);
      if (orig.trap) {
        if (d.status === 0 || !/instantiation traps: out of bounds/.test(d.stderr))
          freshFail(where, `V8 traps (${orig.trap.message}), cowmem dump: ${d.status} ${d.stderr.trim()}`);
        else fresh.traps++;
        continue;
      }
      const A = orig.env.memories[0];
      if (d.status !== 0) { freshFail(where, 'dump: ' + d.stderr.trim()); continue; }
      if (!sameBytes(d1, A)) { freshFail(where, 'cowmem dump --fresh-imports differs from V8'); continue; }
      fresh.compared++;
      const stripped = file.replace(/\.wasm$/, '.fresh.wasm');
      const s = run(['strip', '--fresh-imports', file, '-o', stripped]);
      if (s.status !== 0) { freshFail(where, 'strip: ' + s.stderr); continue; }
      if (spawnSync('wasm-validate', [...wabt, stripped]).status !== 0) { freshFail(where, 'stripped module invalid'); continue; }
      const st = freshInstantiate(fs.readFileSync(stripped), mems);
      if (!st.env || st.trap) { freshFail(where, 'stripped module: ' + (st.skip || st.trap)); continue; }
      const B = Buffer.from(st.env.memories[0].buffer);
      if (m.segments_in_image > 0) {
        fresh.withImage++;
        if (B.some((x) => x !== 0)) { freshFail(where, 'the stripped module still writes its imported memory'); continue; }
      } else if (Buffer.compare(B, Buffer.from(A.buffer)) !== 0) {
        freshFail(where, 'stripped module (no image) differs from the original'); continue;
      }
      const cw = file.replace(/\.wasm$/, '.fresh.cwimg'), d2 = path.join(dir, 'fresh-img.bin');
      if (run(['compile', '--fresh-imports', file, '-o', cw]).status !== 0) { freshFail(where, 'compile'); continue; }
      const more = m.segments_left > 0 ? ['--module', file, '--fresh-imports', ...gargs] : [];
      const dd = run(['dump', cw, ...more, '-o', d2]);
      if (dd.status !== 0) { freshFail(where, 'dump .cwimg: ' + dd.stderr.trim()); continue; }
      if (!sameBytes(d2, A)) freshFail(where, 'image file differs from V8');
    }
  }
}
console.log(`fresh imports on spec modules importing a memory: ${fresh.modules} instantiated by V8 with a new ` +
            `memory of the declared limits, ${fresh.compared} memories equal byte for byte (${fresh.withImage} ` +
            `with an image the stripped module no longer writes), ${fresh.traps} traps agreed, ${fresh.skipped} ` +
            `skipped (start function, other imports, more than one memory), ${fresh.failed} failed`);
console.log(`strip on spec modules: ${stats.modules} stripped and validated, ${stats.compared} memories compared ` +
            `(${stats.withImage} from an image), segments removed in ${stats.removed} and kept as empty ` +
            `passive ones in ${stats.kept}, ${stats.skipped} skipped (imports not from spectest, start function, ` +
            `rejected), ${stats.failed} failed`);
console.log(`assertions on stripped modules with cowmem's memory: ${stats.actions} passed in ` +
            `${stats.withActions} modules (${stats.actionsSkipped} with v128/reference values not run)`);
for (const f of failures.slice(0, 30)) console.log('FAIL ' + f);
if (stats.modules === 0) { console.log('FAIL: no module checked'); process.exit(1); }
if (!stats.removed || !stats.kept) { console.log('FAIL: strip did not both remove and keep segments'); process.exit(1); }
process.exit(stats.failed ? 1 : 0);
