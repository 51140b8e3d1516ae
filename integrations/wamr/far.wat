;; Loads at the farthest addresses WAMR's interpreters form: a u32 address
;; plus a u32 static offset, up to base + 8 GiB - 2 (+ the access width).
;; One page (max 2) with data, so the memory has an image.
(module
  (memory (export "memory") 1 2)
  (data (i32.const 16) "far module data")
  (func (export "load_far") (param i32) (result i32)
    local.get 0
    i32.load offset=0xffffffff)
  (func (export "load64_far") (param i32) (result i32)
    local.get 0
    i64.load offset=0xfffffff8
    i32.wrap_i64)
  (func (export "peek") (param i32) (result i32)
    local.get 0
    i32.load8_u)
  (func (export "poke") (param i32 i32)
    local.get 0
    local.get 1
    i32.store8)
  (func (export "grow") (param i32) (result i32)
    local.get 0
    memory.grow))
