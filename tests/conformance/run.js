#!/usr/bin/env node
// Spec conformance of cowmem's WebAssembly front end.
//
//   node run.js <wasm_check> <wasm-spec dir> <tmp dir>
//
// Each .wast is converted with wast2json; its commands are walked in order:
//   module             cowmem must parse it and (imports resolved as V8
//                      resolves them) instantiate it; each exported memory it
//                      defines must hold, byte for byte, what V8's instance
//                      holds; where V8 cannot show them (several memories,
//                      a start function), every memory must match wabt's
//                      interpreter (below);
//   assert_malformed / assert_invalid (binary)
//                      cowmem must fail with EMALFORMED / EINVALID; a
//                      module cowmem accepts whose fault wabt's
//                      wasm-validate places in a function body or element
//                      segment is a KNOWN LIMITATION (cowmem does not
//                      validate those), counted and listed;
//   assert_unlinkable  cowmem must say EUNLINKABLE for memory/global
//                      imports; function/table/unknown imports are the
//                      embedder's (known limitation);
//   assert_trap / assert_uninstantiable on a module
//                      "out of bounds memory access" must be cowmem's EOOB;
//                      other traps (tables, start) are known limitations;
//   register           later modules import from it.
// Memories V8 cannot show (multi-memory is not in Node 20; a start function
// runs before V8's memory can be read) go to a second oracle, wabt's
// spectest interpreter: see probe.js. A module V8 cannot instantiate
// exports, to the modules after it, what cowmem made of it; the interpreter
// links them for real, so a wrong hand-over shows as a difference.
// Text-format assertions and invocations are not about binaries: counted as
// not applicable. Exit 0 when nothing failed, 1 otherwise, 77 to skip.
'use strict';
// memory64 is behind a flag in Node 20's V8 (unknown flags are ignored);
// multi-memory is not in it at all, so those memories are not compared.
require('v8').setFlagsFromString('--experimental-wasm-memory64');
const fs = require('fs');
const path = require('path');
const { spawn, spawnSync } = require('child_process');

const [checker, specDir, tmpRoot] = process.argv.slice(2);
if (!checker || !specDir || !tmpRoot) {
  console.error('usage: run.js <wasm_check> <wasm-spec dir> <tmp dir>');
  process.exit(2);
}
function skip(why) { console.log('SKIP: ' + why); process.exit(77); }
if (!fs.existsSync(specDir)) skip(`${specDir} is absent`);
for (const tool of ['wast2json', 'wasm-validate', 'spectest-interp'])
  if (spawnSync(tool, ['--version']).status !== 0) skip(`${tool} (wabt) is not installed`);

// cowmem_module_parse flags per suite: the rules of the era the tests
// assert (see cowmem.h).
const F = { NO_MULTI: 4, NO_M64: 8, NO_DEFGG: 16, NO_THREADS: 32, NO_EXC: 128 };
const SUITES = [
  { dir: 'core', wabt: [], flags: F.NO_MULTI | F.NO_M64 | F.NO_DEFGG | F.NO_THREADS | F.NO_EXC },
  { dir: 'memory64', wabt: ['--enable-memory64'], flags: F.NO_MULTI | F.NO_DEFGG | F.NO_THREADS | F.NO_EXC },
  { dir: 'multi-memory', wabt: ['--enable-multi-memory'], flags: F.NO_M64 | F.NO_DEFGG | F.NO_THREADS | F.NO_EXC },
];

const stats = { passed: 0, failed: 0, skipped: 0, limitation: 0, na: 0,
                memcmp: 0, memcmpSkipped: 0, oracle: 0, trapWrites: 0, importWrites: 0, reasonMatch: 0, reasonTotal: 0 };
const limits = {}, skips = {}, failures = [];
function pass() { stats.passed++; }
function fail(where, msg) { stats.failed++; failures.push(`${where}: ${msg}`); }
function limitation(cat) { stats.limitation++; limits[cat] = (limits[cat] || 0) + 1; }
function skipped(cat) { stats.skipped++; skips[cat] = (skips[cat] || 0) + 1; }

// One wasm_check for the whole walk, in batch mode (-b), instead of a
// process per check: the walk makes thousands, and under ASan a process's
// start and exit are most of a check's cost. Node cannot read a child's
// stdio synchronously, so requests and replies go through two named pipes.
// LeakSanitizer checks the one process at its exit, so every check is
// leak-checked.
fs.mkdirSync(tmpRoot, { recursive: true });
const checkerDir = fs.mkdtempSync(path.join(tmpRoot, 'checker-'));
const checkerReq = path.join(checkerDir, 'requests');
const checkerResp = path.join(checkerDir, 'replies');
const checkerErr = path.join(checkerDir, 'stderr');
for (const p of [checkerReq, checkerResp])
  if (spawnSync('mkfifo', [p]).status !== 0) { console.error(`mkfifo ${p} failed`); process.exit(2); }
const checkerErrFd = fs.openSync(checkerErr, 'w');
const checkerProc = spawn(checker, ['-b', checkerReq, checkerResp],
                          { stdio: ['ignore', 'ignore', checkerErrFd] });
const checkerExit = new Promise((resolve) =>
  checkerProc.on('exit', (code, signal) => resolve(signal || code)));
// The child opens the requests first, then the replies: the same order here.
const reqFd = fs.openSync(checkerReq, 'w');
const respFd = fs.openSync(checkerResp, 'r');
let respPending = Buffer.alloc(0);
const respBuf = Buffer.alloc(1 << 16);
function checkerTail() { return fs.readFileSync(checkerErr, 'utf8').slice(-2000); }
function checkerLine() {
  for (;;) {
    const nl = respPending.indexOf(10);
    if (nl >= 0) {
      const line = respPending.subarray(0, nl).toString('utf8');
      respPending = respPending.subarray(nl + 1);
      return line;
    }
    const n = fs.readSync(respFd, respBuf, 0, respBuf.length, null);
    if (n === 0) return null;
    respPending = Buffer.concat([respPending, respBuf.subarray(0, n)]);
  }
}

function check(file, flags, args = [], dumpDir = null) {
  const a = ['-f', String(flags)];
  if (dumpDir) a.push('-d', dumpDir);
  const argv = a.concat(args, [file]);
  if (argv.some((x) => /[\t\n]/.test(x))) throw new Error(`a tab or newline in wasm_check's arguments: ${argv}`);
  fs.writeSync(reqFd, argv.join('\t') + '\n');
  const line = checkerLine();
  if (line === null) throw new Error(`wasm_check crashed on ${file}: ${checkerTail()}`);
  const r = JSON.parse(line);
  if (r.error) throw new Error(`wasm_check failed on ${file}: ${checkerTail()}`);
  return r;
}

const spectest = require('../spectest.js');
const { probeModule, hashOf } = require('./probe.js');
const SPECTEST_TYPES = { global_i32: [0x7f, 0], global_i64: [0x7e, 0],
                         global_f32: [0x7d, 0], global_f64: [0x7c, 0] };

// What an import resolves to: { value (JS), type, mut } for globals,
// { pages, max } for memories; null when nothing of that name is registered.
function resolve(reg, mod, name, kind) {
  const r = reg[mod];
  if (!r) return null;
  if (mod === 'spectest' && r.spectest) {
    const v = r.exports[name];
    if (!v) return null;
    if (kind === 'global') {
      const t = SPECTEST_TYPES[name];
      return t ? { value: v.value, type: t[0], mut: t[1] } : { bad: true };
    }
    if (kind === 'memory')
      return name === 'memory' ? { pages: v.buffer.byteLength / 65536, max: 2 } : { bad: true };
    return v;
  }
  const e = (r.info.exports || []).find((x) => x.name === name);
  if (!e) return null;
  const want = { global: 3, memory: 2 }[kind];
  if (want === undefined) return r.exports ? r.exports[name] : {};
  if (e.kind !== want) return { bad: true };
  if (kind === 'global') {
    const g = r.info.globals[e.index];
    if (r.exports && r.exports[name]) return { value: r.exports[name].value, type: g.type, mut: g.mut };
    // Without a V8 instance: the value cowmem's front end gave it.
    const bits = r.cow ? r.cow.globals[e.index] : null;
    return bits === null || bits === undefined ? null : { bits, type: g.type, mut: g.mut };
  }
  const m = r.info.memories[e.index];
  if (r.exports && r.exports[name]) return { pages: r.exports[name].buffer.byteLength / 65536, max: m.max };
  const c = r.cow ? r.cow.mems[e.index] : null;
  return c ? { pages: c.pages, max: m.max, bytes: c.bytes } : null;
}

// The bits of a global's value as V8 hands it to JS.
function jsBits(type, v) {
  const dv = new DataView(new ArrayBuffer(8));
  switch (type) {
    case 0x7f: return BigInt.asUintN(32, BigInt(v));
    case 0x7e: return BigInt.asUintN(64, BigInt(v));
    case 0x7d: dv.setFloat32(0, v); return BigInt(dv.getUint32(0));
    case 0x7c: dv.setFloat64(0, v); return dv.getBigUint64(0);
    default: return null;
  }
}

// What cowmem made of an instantiated module, for the modules that import
// from it when V8 holds no instance: each global's value bits (null when
// not tracked) and each dumped memory's bytes and pages.
function cowState(info, importBits) {
  const globals = info.globals.map((g, k) => {
    if (g.imported) return importBits[k];
    if (g.init === 0) return BigInt(g.value);
    if (g.init === 1) return importBits[g.global];
    return null;
  });
  const mems = info.memories.map((m) => (m.dump ? { bytes: fs.readFileSync(m.dump), pages: m.size / 65536 } : null));
  return { globals, mems };
}

function importArgs(info, reg) {
  const args = [], bits = [];
  let unresolved = false;
  for (const g of info.globals.filter((x) => x.imported)) {
    const r = resolve(reg, g.module, g.name, 'global');
    if (!r || r.bad) { unresolved = true; bits.push(0n); args.push('-g', `${g.type}:${g.mut}:0`); continue; }
    const b = r.bits !== undefined ? r.bits : jsBits(r.type, r.value);
    bits.push(b);
    args.push('-g', `${r.type}:${r.mut}:@${b === null ? 0 : b}`);
  }
  for (const m of info.memories.filter((x) => x.imported)) {
    const r = resolve(reg, m.module, m.name, 'memory');
    if (!r || r.bad) { unresolved = true; args.push('-m', String(m.min)); continue; }
    args.push('-m', r.max >= 0 ? `${r.pages}:${r.max}` : String(r.pages));
  }
  return { args, unresolved, bits };
}

function v8Instantiate(bytes, reg) {
  let mod;
  try { mod = new WebAssembly.Module(bytes); } catch (e) { return { compileError: e }; }
  const imports = {};
  for (const imp of WebAssembly.Module.imports(mod)) {
    const r = reg[imp.module];
    const v = r && r.exports ? r.exports[imp.name] : undefined;
    if (v === undefined) continue;
    (imports[imp.module] = imports[imp.module] || {})[imp.name] = v;
  }
  try { return { instance: new WebAssembly.Instance(mod, imports) }; } catch (e) { return { error: e }; }
}

// Where wabt places a module's fault: the section id holding that offset.
function faultSection(file, wabtFlags, info) {
  const r = spawnSync('wasm-validate', wabtFlags.concat([file]), { encoding: 'utf8' });
  const m = /(?:^|:)([0-9a-f]{7,}): error/m.exec(r.stderr || '');
  if (!m || !info.sections) return null;
  const off = parseInt(m[1], 16);
  for (const [id, start, len] of info.sections)
    if (off >= start && off <= start + len) return id;
  return null;
}

function compareMemories(where, info, instance, dumpDir) {
  for (const [k, mem] of info.memories.entries()) {
    if (mem.imported || mem.exports.length === 0) continue;
    if (!mem.dump) { stats.memcmpSkipped++; skipped('memory too large to dump'); continue; }
    const got = fs.readFileSync(mem.dump);
    const v8mem = instance.exports[mem.exports[0]];
    const b = new Uint8Array(v8mem.buffer);
    let ok = b.length === mem.size;
    for (let i = 0; ok && i < got.length; i++) ok = got[i] === b[i];
    for (let i = got.length; ok && i < b.length; i++) ok = b[i] === 0;
    if (ok) { stats.memcmp++; pass(); }
    else fail(where, `memory ${k} ("${mem.exports[0]}") differs from V8's`);
  }
}

function jsArg(a) {
  const v = a.value;
  const dv = new DataView(new ArrayBuffer(8));
  switch (a.type) {
    case 'i32': return Number(BigInt.asIntN(32, BigInt(v)));
    case 'i64': return BigInt.asIntN(64, BigInt(v));
    case 'f32': dv.setUint32(0, Number(v) >>> 0); return dv.getFloat32(0);
    case 'f64': dv.setBigUint64(0, BigInt(v)); return dv.getFloat64(0);
    default: return null;
  }
}

function invoke(action, named, last) {
  const m = action.module ? named[action.module] : last;
  if (!m || !m.exports || typeof m.exports[action.field] !== 'function') return;
  try {
    m.exports[action.field](...(action.args || []).map((a) => (/^nan/.test(a.value) ? NaN : jsArg(a))));
  } catch (e) { /* traps are the test's business */ }
}

// Imported memories that V8 holds: their current bytes go to files that
// wasm_check's fallback starts from (-i); returns [[index, Memory]].
// The same memory imported twice is one memory: one file, which wasm_check
// then shares between the two.
function snapshotImports(info, reg, dumpDir, args) {
  fs.rmSync(dumpDir, { recursive: true, force: true });
  fs.mkdirSync(dumpDir);
  const shared = [], files = new Map();
  const give = (k, source, bytes) => {
    if (!files.has(source)) {
      files.set(source, path.join(dumpDir, `in${k}.bin`));
      fs.writeFileSync(files.get(source), bytes);
    }
    args.push('-i', `${k}:${files.get(source)}`);
  };
  info.memories.forEach((mm, k) => {
    if (!mm.imported) return;
    const r = reg[mm.module];
    const mem = r && r.exports ? r.exports[mm.name] : null;
    if (!(mem instanceof WebAssembly.Memory)) {
      // Held by cowmem only: the bytes it dumped (the oracle checks them).
      const c = resolve(reg, mm.module, mm.name, 'memory');
      if (c && c.bytes) give(k, c.bytes, c.bytes);
      return;
    }
    give(k, mem, new Uint8Array(mem.buffer));
    shared.push([k, mem]);
  });
  return shared;
}

// After V8 instantiated (or failed to), its imported memories against
// cowmem's fallback writes into the same starting bytes.
function compareImported(where, info, shared, counter) {
  for (const [k, mem] of shared) {
    const d = info.memories[k];
    if (!d.dump) { skipped('imported memory not dumped'); continue; }
    const got = fs.readFileSync(d.dump);
    const b = new Uint8Array(mem.buffer);
    let ok = Buffer.compare(got, Buffer.from(b.buffer, 0, got.length)) === 0;
    for (let i = got.length; ok && i < b.length; i++) ok = b[i] === 0;
    if (ok) { stats[counter]++; pass(); }
    else fail(where, `imported memory ${k} differs from V8's`);
  }
}

function runFile(suite, wast) {
  const base = path.basename(wast, '.wast');
  const out = path.join(tmpRoot, suite.dir, base);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const json = path.join(out, base + '.json');
  const conv = spawnSync('wast2json', suite.wabt.concat([wast, '-o', json]), { encoding: 'utf8' });
  if (conv.status !== 0) { skipped('wast2json cannot convert'); return; }
  const cmds = JSON.parse(fs.readFileSync(json, 'utf8')).commands;
  const reg = { spectest: { spectest: true, exports: spectest(), info: {} } };
  const named = {};
  const oracle = { suite, out, script: [], expect: new Map() };
  let last = null;
  for (const c of cmds) {
    const where = `${suite.dir}/${base}.wast:${c.line}`;
    const file = c.filename ? path.join(out, c.filename) : null;
    switch (c.type) {
      case 'module': {
        const bytes = fs.readFileSync(file);
        let info = check(file, suite.flags);
        if (info.parse !== 'OK') { fail(where, `valid module rejected: ${info.parse} "${info.reason}" @${info.offset}`); last = null; oracle.script.push(c); break; }
        readBack(oracle, info, reg);
        const { args, unresolved, bits } = importArgs(info, reg);
        const dumpDir = path.join(out, 'dump');
        const shared = snapshotImports(info, reg, dumpDir, args);
        info = check(file, suite.flags, args, dumpDir);
        const v8 = v8Instantiate(bytes, reg);
        const cow = info.inst === 'OK' ? cowState(info, bits) : null;
        if (v8.instance && !info.start && info.inst === 'OK')
          compareImported(where, info, shared, 'importWrites');
        if (unresolved) skipped('module import not resolvable here');
        else if (info.inst !== 'OK') fail(where, `instantiation refused: ${info.inst} ${info.inst_reason}`);
        else pass();
        if (v8.instance && !info.start) {
          if (info.inst === 'OK') compareMemories(where, info, v8.instance, dumpDir);
          oracle.script.push(c);
        } else if (cow && !unresolved && info.memories.length > 0) {
          addProbes(oracle, c, bytes, { where, info, cow });
        } else {
          if (v8.compileError || v8.error)
            skipped('V8 cannot instantiate it: ' + String(v8.compileError || v8.error).slice(0, 60));
          oracle.script.push(c);
        }
        last = { info, exports: v8.instance ? v8.instance.exports : null, cow, ref: c.name };
        if (c.name) named[c.name] = last;
        break;
      }
      case 'register': {
        const m = c.name ? named[c.name] : last;
        if (m) reg[c.as] = m;
        oracle.script.push(c);
        break;
      }
      case 'assert_malformed':
      case 'assert_invalid': {
        if (c.module_type !== 'binary') { stats.na++; break; }
        const want = c.type === 'assert_malformed' ? 'EMALFORMED' : 'EINVALID';
        const info = check(file, suite.flags);
        if (info.parse === want) {
          pass();
          stats.reasonTotal++;
          if (info.reason.startsWith(c.text)) stats.reasonMatch++;
          else if (process.env.CONFORMANCE_VERBOSE)
            console.log(`reason ${where}: spec "${c.text}", cowmem "${info.reason}"`);
        } else if (info.parse === 'OK') {
          const sec = faultSection(file, suite.wabt, info);
          if (sec === 10) limitation('function bodies are not validated');
          else if (sec === 9) {
            if (process.env.CONFORMANCE_VERBOSE) console.log(`elem ${where}: ${c.text}`);
            limitation('element segments are not validated');
          }
          else if (c.text === 'data count section required') limitation('data count required by function bodies');
          else fail(where, `${want} expected ("${c.text}"), cowmem accepted it (wabt: section ${sec})`);
        } else {
          fail(where, `${want} expected ("${c.text}"), got ${info.parse} "${info.reason}"`);
        }
        break;
      }
      case 'assert_unlinkable': {
        if (c.module_type && c.module_type !== 'binary') { stats.na++; break; }
        let info = check(file, suite.flags);
        if (info.parse !== 'OK') { fail(where, `unlinkable module rejected: ${info.parse} ${info.reason}`); break; }
        const { args, unresolved } = importArgs(info, reg);
        info = check(file, suite.flags, args);
        if (info.inst === 'EUNLINKABLE') pass();
        else if (unresolved) limitation('import resolution by name is the embedder\'s');
        else if (c.text === 'unknown import') limitation('import resolution by name is the embedder\'s');
        else {
          if (process.env.CONFORMANCE_VERBOSE) console.log(`unlinkable ${where}: cowmem ${info.inst}`);
          limitation('function/table import types are not checked');
        }
        break;
      }
      case 'assert_uninstantiable':
      case 'assert_trap': {
        if (!file) { stats.na++; break; }
        let info = check(file, suite.flags);
        if (info.parse !== 'OK') { fail(where, `module rejected: ${info.parse} ${info.reason}`); break; }
        const { args } = importArgs(info, reg);
        // Imported memories: cowmem's fallback writes into a copy of their
        // current bytes; after V8's failed instantiation the writes made
        // before the trap remain in them, and both must agree.
        const dumpDir = path.join(out, 'dump');
        const shared = snapshotImports(info, reg, dumpDir, args);
        info = check(file, suite.flags, args, dumpDir);
        if (c.text === 'out of bounds memory access') {
          if (info.inst === 'EOOB') pass();
          else fail(where, `expected EOOB, got ${info.inst}`);
        } else if (info.inst === 'OK') {
          limitation(`traps other than data segments (${c.text})`);
        } else fail(where, `expected "${c.text}", got ${info.inst}`);
        v8Instantiate(fs.readFileSync(file), reg);
        if (c.text === 'out of bounds memory access')
          compareImported(where, info, shared, 'trapWrites');
        oracle.script.push(c);
        break;
      }
      default:
        // Invocations are not about binaries, but run them in V8 so that
        // later modules see memories grown and globals set as the test means.
        if (c.action && c.action.type === 'invoke') {
          invoke(c.action, named, last);
          // Code only the interpreter runs may change what cowmem handed on.
          const m = c.action.module ? named[c.action.module] : last;
          if (m && !m.exports && m.cow) m.cow.dirty = true;
        }
        oracle.script.push(c);
        stats.na++;
    }
  }
  if (oracle.expect.size) runOracle(oracle);
}

// The second oracle runs the script as the walk goes, in wabt's interpreter:
// oracle.script holds the commands so far, each module whose memories V8
// cannot show replaced by its probe module (probe.js) and followed by
// assertions that its memories hold what cowmem dumped. A module with a
// start function is first instantiated once more without it (its state
// before code runs, which is what cowmem computes).
function addProbes(oracle, c, bytes, job) {
  const mem64 = job.info.memories.map((m) => m.mem64);
  const base = `probe${oracle.script.length}`;
  const probe = (dropStart, tag) => {
    fs.writeFileSync(path.join(oracle.out, base + tag), probeModule(bytes, mem64, dropStart));
    return base + tag;
  };
  if (job.info.start) oracle.script.push({ type: 'module', line: c.line, filename: probe(true, 'a.wasm') });
  else oracle.script.push({ ...c, filename: probe(false, '.wasm') });
  job.cow.mems.forEach((m, k) => {
    if (!m) { skipped('memory cowmem did not dump'); return; }
    const n = Math.min(m.pages * 65536, (m.bytes.length + 7) & ~7);
    const assert = (field, args, type, value) => {
      const line = 10000000 + oracle.expect.size;
      oracle.expect.set(line, { where: job.where, k, field });
      oracle.script.push({ type: 'assert_return', line, action: { type: 'invoke', field, args },
                           expected: [{ type, value: String(value) }] });
    };
    assert(`size_${k}`, [], 'i32', m.pages);
    assert(`hash_${k}`, [{ type: 'i32', value: String(n) }], 'i64', hashOf(m.bytes, n));
    assert(`zero_${k}`, [{ type: 'i32', value: String(n) }], 'i32', 1);
  });
  if (job.info.start) oracle.script.push({ ...c, filename: probe(false, 'b.wasm') });
}

function interp(oracle, commands) {
  const file = path.join(oracle.out, 'oracle.json');
  fs.writeFileSync(file, JSON.stringify({ source_filename: 'oracle', commands }));
  const r = spawnSync('spectest-interp', oracle.suite.wabt.concat([file]),
                      { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.error || r.signal) throw new Error(`spectest-interp did not run: ${r.error || r.signal}`);
  return `${r.stdout}\n${r.stderr}`.split('\n');
}

// A module about to import a memory that code run only by the interpreter
// may have changed (grown, written): read that memory back from the
// interpreter first, word by word, into what cowmem hands on.
function readBack(oracle, info, reg) {
  for (const mm of info.memories.filter((x) => x.imported)) {
    const r = reg[mm.module];
    if (!r || !r.cow || !r.cow.dirty || r.exports) continue;
    const e = (r.info.exports || []).find((x) => x.name === mm.name && x.kind === 2);
    if (!e || !r.cow.mems[e.index]) continue;
    const k = e.index;
    const act = (field, i) => ({ type: 'action', line: 0, action: { type: 'invoke', module: r.ref, field,
                                 args: i === undefined ? [] : [{ type: 'i32', value: String(i) }] },
                                 expected: [{ type: i === undefined ? 'i32' : 'i64' }] });
    const sz = interp(oracle, oracle.script.concat([act(`size_${k}`)]))
      .map((l) => new RegExp(`^size_${k}\\(\\) => i32:(\\d+)$`).exec(l)).filter(Boolean);
    if (sz.length !== 1) throw new Error(`cannot read memory ${k} of ${mm.module} back`);
    const pages = Number(sz[0][1]);
    const words = [];
    for (let i = 0; i < pages * 65536; i += 8) words.push(act(`load_${k}`, i));
    const bytes = Buffer.alloc(pages * 65536);
    for (const l of interp(oracle, oracle.script.concat(words))) {
      const m = new RegExp(`^load_${k}\\(i32:(\\d+)\\) => i64:(\\d+)$`).exec(l);
      if (m) bytes.writeBigUInt64LE(BigInt(m[2]), Number(m[1]));
    }
    r.cow.mems[k] = { bytes, pages };
  }
}

function runOracle(oracle) {
  const failed = new Map();
  for (const l of interp(oracle, oracle.script)) {
    const m = /^oracle:(\d+): (.*)$/.exec(l);
    if (m && oracle.expect.has(Number(m[1]))) failed.set(Number(m[1]), m[2]);
  }
  // A memory passes when its three assertions do.
  const bad = new Map();
  for (const [line, e] of oracle.expect) {
    const key = `${e.where}/${e.k}`;
    if (!bad.has(key)) bad.set(key, null);
    if (failed.has(line) && !bad.get(key)) bad.set(key, `memory ${e.k}: wabt's interpreter differs (${e.field}: ${failed.get(line)})`);
  }
  for (const [key, why] of bad) {
    if (why) fail(key.replace(/\/\d+$/, ''), why);
    else { stats.oracle++; pass(); }
  }
}

for (const suite of SUITES) {
  const dir = path.join(specDir, suite.dir);
  if (!fs.existsSync(dir)) { skipped(`${suite.dir}/ absent`); continue; }
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.wast')).sort())
    runFile(suite, path.join(dir, f));
}

for (const f of failures) console.log('FAIL ' + f);
console.log('known limitations (counted, not passed):');
for (const [k, v] of Object.entries(limits)) console.log(`  ${v}  ${k}`);
console.log('skipped:');
for (const [k, v] of Object.entries(skips)) console.log(`  ${v}  ${k}`);
console.log(`memories compared byte for byte with V8: ${stats.memcmp} (${stats.memcmpSkipped} not comparable)`);
console.log(`memories V8 cannot show, compared with wabt's interpreter (size, hash, zeros): ${stats.oracle}`);
console.log(`imported memories after instantiation, compared with V8: ${stats.importWrites}; after a trapping one: ${stats.trapWrites}`);
console.log(`error reasons matching the spec's text: ${stats.reasonMatch}/${stats.reasonTotal}`);
console.log(`not applicable (text format, invocations): ${stats.na}`);
// End of input: the checker exits; under ASan, after its leak check.
fs.closeSync(reqFd);
checkerExit.then((status) => {
  if (status !== 0) {
    stats.failed++;
    console.log(`FAIL wasm_check -b: exit ${status}: ${checkerTail()}`);
  }
  fs.closeSync(respFd);
  console.log(`conformance: ${stats.passed} passed, ${stats.failed} failed, ${stats.skipped} skipped, ${stats.limitation} known limitations`);
  process.exit(stats.failed ? 1 : 0);
});
