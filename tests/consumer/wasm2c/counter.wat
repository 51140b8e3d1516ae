;; A module with data in its memory, a store, and the farthest load a
;; wasm32 access can form (address 0xffffffff + offset 0xffffffff).
(module
  (memory 1 16)
  (data (i32.const 16) "counter")
  (func (export "peek") (param i32) (result i32)
    local.get 0
    i32.load8_u)
  (func (export "bump") (param i32) (result i32)
    local.get 0
    local.get 0
    i32.load8_u
    i32.const 1
    i32.add
    i32.store8
    local.get 0
    i32.load8_u)
  (func (export "farthest") (result i32)
    i32.const 0xffffffff
    i32.load8_u offset=0xffffffff))
