;; Two active data segments: wasm2c copies both in init_memories.
(module
  (memory (export "memory") 1 4)
  (data (i32.const 16) "hello, world")
  (data (i32.const 4096) "\01\02\03\04")
  (func (export "get") (param i32) (result i32)
    (i32.load8_u (local.get 0))))
