;; active.wat after a "strip": the same segment count, each segment passive
;; and empty. wasm2c's init_memories then only allocates the memory.
(module
  (memory (export "memory") 1 4)
  (data "")
  (data "")
  (func (export "get") (param i32) (result i32)
    (i32.load8_u (local.get 0))))
