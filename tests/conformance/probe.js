'use strict';
// A second oracle for memories V8 cannot hold (multi-memory in Node 20) or
// compare (a start function runs before V8 shows them): wabt's spectest
// interpreter. It cannot hand bytes back, so each module under test gets
// four exported functions per memory, appended after everything it defines
// (no index the module uses moves):
//
//   size_k()      -> i32   memory.size of memory k
//   hash_k(n)     -> i64   FNV-1a over memory k's first n bytes, 8 at a time
//   zero_k(from)  -> i32   1 when every byte from `from` to the end is zero
//   load_k(i)     -> i64   the 8 bytes at i (to read a memory back)
//
// and, when asked, no start section: cowmem's front end does not run code,
// so the state compared is the one after the data segments. The driver asks
// the interpreter for those values with assert_return commands whose
// expected results are cowmem's (hashOf below on cowmem's dump).

const BASIS = 0xcbf29ce484222325n;
const PRIME = 0x100000001b3n;
const M64 = (1n << 64n) - 1n;

// FNV-1a over little-endian 64-bit words of bytes padded with zeros to n.
function hashOf(bytes, n) {
  const buf = Buffer.alloc(n);
  bytes.copy(buf, 0, 0, Math.min(bytes.length, n));
  let h = BASIS;
  for (let i = 0; i < n; i += 8) h = ((h ^ buf.readBigUInt64LE(i)) * PRIME) & M64;
  return h;
}

function uleb(n) {
  let v = BigInt(n);
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}

function sleb(n) {
  let v = BigInt.asIntN(64, BigInt(n));
  const out = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && !(b & 0x40)) || (v === -1n && (b & 0x40))) { out.push(b); return out; }
    out.push(b | 0x80);
  }
}

function reader(buf, pos, end) {
  const r = {
    pos,
    u() {
      let v = 0n, shift = 0n;
      for (;;) {
        if (r.pos >= end) throw new Error('truncated LEB');
        const b = buf[r.pos++];
        v |= BigInt(b & 0x7f) << shift;
        shift += 7n;
        if (!(b & 0x80)) return v;
      }
    },
    byte() { if (r.pos >= end) throw new Error('truncated'); return buf[r.pos++]; },
    skip(n) { r.pos += n; if (r.pos > end) throw new Error('truncated'); },
    limits() { const f = r.byte(); r.u(); if (f & 1) r.u(); },
  };
  return r;
}

function sections(bytes) {
  const out = [];
  const r = reader(bytes, 8, bytes.length);
  while (r.pos < bytes.length) {
    const id = r.byte();
    const len = Number(r.u());
    out.push({ id, start: r.pos, len });
    r.skip(len);
  }
  return out;
}

// Payload of a vector section with `extra` entries appended.
function appended(bytes, sec, extra) {
  let count = 0n, rest = [];
  if (sec) {
    const r = reader(bytes, sec.start, sec.start + sec.len);
    count = r.u();
    rest = bytes.subarray(r.pos, sec.start + sec.len);
  }
  return Buffer.concat([Buffer.from(uleb(count + BigInt(extra.length))), Buffer.from(rest),
                        ...extra.map((e) => Buffer.from(e))]);
}

function importedFuncs(bytes, sec) {
  if (!sec) return 0;
  const r = reader(bytes, sec.start, sec.start + sec.len);
  let n = Number(r.u()), funcs = 0;
  while (n--) {
    r.skip(Number(r.u()));
    r.skip(Number(r.u()));
    const kind = r.byte();
    if (kind === 0) { r.u(); funcs++; }
    else if (kind === 1) { r.byte(); r.limits(); }
    else if (kind === 2) r.limits();
    else if (kind === 3) { r.byte(); r.byte(); }
    else if (kind === 4) { r.byte(); r.u(); }
    else throw new Error(`import kind ${kind}`);
  }
  return funcs;
}

function definedFuncs(bytes, sec) {
  return sec ? Number(reader(bytes, sec.start, sec.start + sec.len).u()) : 0;
}

function memarg(k, align) {
  return k === 0 ? [align, 0] : [align | 0x40, ...uleb(k), 0];
}

function name(s) { const b = Buffer.from(s); return [...uleb(b.length), ...b]; }

// The three bodies for memory k; m64 when its index type is i64.
function bodies(k, m64) {
  const addr = m64 ? [0xad] : [];        // i64.extend_i32_u
  const pages = m64 ? [0xa7] : [];       // i32.wrap_i64
  const size = [0x00, 0x3f, ...uleb(k), ...pages, 0x0b];
  const hash = [0x02, 0x01, 0x7f, 0x01, 0x7e,
    0x42, ...sleb(BASIS), 0x21, 2,
    0x02, 0x40, 0x03, 0x40,
    0x20, 1, 0x20, 0, 0x4f, 0x0d, 1,
    0x20, 2, 0x20, 1, ...addr, 0x29, ...memarg(k, 3), 0x85,
    0x42, ...sleb(PRIME), 0x7e, 0x21, 2,
    0x20, 1, 0x41, 8, 0x6a, 0x21, 1, 0x0c, 0,
    0x0b, 0x0b, 0x20, 2, 0x0b];
  const zero = [0x01, 0x01, 0x7f,
    0x3f, ...uleb(k), ...pages, 0x41, 16, 0x74, 0x21, 1,
    0x02, 0x40, 0x03, 0x40,
    0x20, 0, 0x20, 1, 0x4f, 0x0d, 1,
    0x20, 0, ...addr, 0x29, ...memarg(k, 3), 0x42, 0, 0x52,
    0x04, 0x40, 0x41, 0, 0x0f, 0x0b,
    0x20, 0, 0x41, 8, 0x6a, 0x21, 0, 0x0c, 0,
    0x0b, 0x0b, 0x41, 1, 0x0b];
  const load = [0x00, 0x20, 0, ...addr, 0x29, ...memarg(k, 3), 0x0b];
  return [size, hash, zero, load].map((b) => [...uleb(b.length), ...b]);
}

// Where a section of each id goes (the binary format's order).
const ORDER = { 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13 };

// The module with the probe functions for its memories (mem64[k] tells
// memory k's index type), without its start section when dropStart.
function probeModule(bytes, mem64, dropStart) {
  const secs = sections(bytes);
  const find = (id) => secs.find((s) => s.id === id);
  const types = find(1) ? Number(reader(bytes, find(1).start, find(1).start + find(1).len).u()) : 0;
  const first = importedFuncs(bytes, find(2)) + definedFuncs(bytes, find(3));
  const newTypes = [[0x60, 0, 1, 0x7f], [0x60, 1, 0x7f, 1, 0x7e], [0x60, 1, 0x7f, 1, 0x7f]];
  const sigs = [0, 1, 2, 1]; // size, hash, zero, load
  const funcs = [], exps = [], code = [];
  mem64.forEach((m64, k) => {
    bodies(k, m64).forEach((body, j) => {
      funcs.push(uleb(types + sigs[j]));
      exps.push([...name(`${['size', 'hash', 'zero', 'load'][j]}_${k}`), 0, ...uleb(first + 4 * k + j)]);
      code.push(body);
    });
  });
  const replace = { 1: appended(bytes, find(1), newTypes), 3: appended(bytes, find(3), funcs),
                    7: appended(bytes, find(7), exps), 10: appended(bytes, find(10), code) };
  const out = [bytes.subarray(0, 8)];
  const emit = (id, payload) => out.push(Buffer.from([id, ...uleb(payload.length)]), payload);
  const pending = new Set(Object.keys(replace).map(Number));
  const flush = (rank) => {
    for (const id of [...pending].sort((a, b) => ORDER[a] - ORDER[b]))
      if (ORDER[id] < rank) { emit(id, replace[id]); pending.delete(id); }
  };
  for (const s of secs) {
    if (s.id !== 0) flush(ORDER[s.id]);
    if (s.id === 8 && dropStart) continue;
    if (pending.has(s.id)) { emit(s.id, replace[s.id]); pending.delete(s.id); continue; }
    out.push(Buffer.from([s.id, ...uleb(s.len)]), bytes.subarray(s.start, s.start + s.len));
  }
  flush(Infinity);
  return Buffer.concat(out);
}

module.exports = { probeModule, hashOf };
