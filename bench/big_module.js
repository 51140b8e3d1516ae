// node bench/big_module.js OUT.wasm [--mib M] [--segments N] [--seed S]
//
// Writes a module shaped like a big emscripten build, for `cowmem bench`
// on large images: one memory of M MiB (default 30) whose first 7/8 is
// covered by N active data segments (default 10000) of varied lengths
// (a few bytes to tens of KiB, like string tables, vtables and static
// arrays; about 0.7 of the span is data), with gaps of zeros between them, pseudo-random non-zero bytes
// from a fixed seed (the same file every time), and one exported function
// so the module is a plausible program. No code runs: `cowmem bench`
// measures the memory's instantiate and reset.
'use strict';
const fs = require('fs');

const args = process.argv.slice(2);
if (args.length < 1 || args[0].startsWith('-')) {
  console.error('usage: node bench/big_module.js OUT.wasm [--mib M] [--segments N] [--seed S]');
  process.exit(2);
}
const out = args[0];
const opt = { mib: 30, segments: 10000, seed: 1 };
for (let i = 1; i < args.length; i += 2) {
  const k = args[i].replace(/^--/, '');
  const v = Number(args[i + 1]);
  if (!(k in opt) || !Number.isInteger(v) || v < 1) {
    console.error(`big_module.js: bad option ${args[i]} ${args[i + 1]}`);
    process.exit(2);
  }
  opt[k] = v;
}

let x = opt.seed >>> 0 || 1;
const rnd = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };

const uleb = (n) => {
  const b = [];
  do { let c = n & 0x7f; n = Math.floor(n / 128); if (n) c |= 0x80; b.push(c); } while (n);
  return b;
};
const sleb = (n) => {
  const b = [];
  for (;;) {
    const c = n & 0x7f; n >>= 7;
    if ((n === 0 && !(c & 0x40)) || (n === -1 && (c & 0x40))) { b.push(c); return b; }
    b.push(c | 0x80);
  }
};
const section = (id, body) => Buffer.concat([Buffer.from([id, ...uleb(body.length)]), body]);

const memBytes = opt.mib * 1024 * 1024;
const span = Math.floor(memBytes / 8 * 7);
const avg = Math.floor(span / opt.segments);
const segs = [];
let at = 1024;
for (let i = 0; i < opt.segments && at < span; i++) {
  // lengths from 1 byte to about 3x the average, most of them short
  const r = rnd() % 100;
  const len = Math.max(1, rnd() % Math.max(2, r < 50 ? avg / 2 : r < 90 ? avg * 2 : avg * 4));
  const gap = rnd() % Math.max(1, Math.floor(avg / 4));
  if (at + len > span) break;
  const data = Buffer.alloc(len);
  for (let j = 0; j < len; j++) data[j] = (rnd() & 0xff) | 1;
  segs.push({ at, data });
  at += len + gap;
}

const pages = Math.ceil(memBytes / 65536);
const type = section(1, Buffer.from([1, 0x60, 0, 1, 0x7f]));          // () -> i32
const func = section(3, Buffer.from([1, 0]));
const memory = section(5, Buffer.from([1, 0, ...uleb(pages)]));       // min only
const exp = section(7, Buffer.from([2, 3, ...Buffer.from('run'), 0, 0,
                                    6, ...Buffer.from('memory'), 2, 0]));
const code = section(10, Buffer.from([1, 4, 0, 0x41, 0, 0x0b]));      // i32.const 0
const parts = [Buffer.from(uleb(segs.length))];
for (const s of segs)
  parts.push(Buffer.from([0, 0x41, ...sleb(s.at), 0x0b, ...uleb(s.data.length)]), s.data);
const data = section(11, Buffer.concat(parts));
fs.writeFileSync(out, Buffer.concat([Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]),
                                     type, func, memory, exp, code, data]));
console.log(`${out}: ${opt.mib} MiB memory, ${segs.length} segments over ${(at / 1048576).toFixed(1)} MiB`);
