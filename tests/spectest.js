// The `spectest` module the spec tests import from (see ../shared/wasm-spec's
// README), as V8 objects: a fresh set of globals, memory and table per call.
'use strict';
module.exports = function spectest() {
  return {
    global_i32: new WebAssembly.Global({ value: 'i32' }, 666),
    global_i64: new WebAssembly.Global({ value: 'i64' }, 666n),
    global_f32: new WebAssembly.Global({ value: 'f32' }, 666.6),
    global_f64: new WebAssembly.Global({ value: 'f64' }, 666.6),
    memory: new WebAssembly.Memory({ initial: 1, maximum: 2 }),
    table: new WebAssembly.Table({ initial: 10, maximum: 20, element: 'anyfunc' }),
    print: () => {}, print_i32: () => {}, print_i64: () => {}, print_f32: () => {},
    print_f64: () => {}, print_i32_f32: () => {}, print_f64_f64: () => {},
  };
};
