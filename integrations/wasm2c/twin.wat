;; multi.wat's limits (1..2 and 2..4 pages) and other data: the sizes
;; wasm_rt_allocate_memory receives cannot tell its module set from
;; multi's; only the module's identity can.
(module
  (memory (export "mem0") 1 2)
  (memory (export "mem1") 2 4)
  (data (memory 0) (i32.const 16) "twin memory")
  (func (export "load0") (param i32) (result i32)
    (i32.load8_u 0 (local.get 0))))
