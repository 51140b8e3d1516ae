// node_run.js: runs a WASI program under node:wasi with iwasm's options
// (--dir, --map-dir, --env, -f NAME; then the module and its arguments),
// the third oracle of compare.sh and workloads.sh. A command's exit code
// is the program's; with -f, a reactor is initialized and NAME called with
// the (integer) arguments, its i32 result printed as iwasm prints it.
'use strict';
const fs = require('node:fs');
const { WASI } = require('node:wasi');

const preopens = {};
const env = {};
let func = null;
let i = 2;
for (; i < process.argv.length && process.argv[i].startsWith('-'); i++) {
  const a = process.argv[i];
  if (a === '-f') {
    func = process.argv[++i];
    continue;
  }
  const v = a.slice(a.indexOf('=') + 1);
  if (a.startsWith('--dir=')) preopens[v] = v;
  else if (a.startsWith('--map-dir=')) {
    const [guest, host] = v.split('::');
    preopens[guest] = host;
  } else if (a.startsWith('--env=')) {
    const k = v.indexOf('=');
    env[v.slice(0, k)] = v.slice(k + 1);
  } else {
    console.error(`node_run.js: unsupported option ${a}`);
    process.exit(2);
  }
}
const args = process.argv.slice(i);
const wasi = new WASI({ version: 'preview1', args, env, preopens, returnOnExit: true });
const mod = new WebAssembly.Module(fs.readFileSync(args[0]));
const inst = new WebAssembly.Instance(mod, wasi.getImportObject());
if (func === null) {
  process.exitCode = wasi.start(inst);
} else {
  wasi.initialize(inst);
  const r = inst.exports[func](...args.slice(1).map(Number));
  if (typeof r === 'number') process.stdout.write(`0x${(r >>> 0).toString(16)}:i32\n`);
}
