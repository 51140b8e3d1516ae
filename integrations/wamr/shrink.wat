;; A module WAMR rewrites at load: no memory.grow, and the linker's
;; __data_end / __heap_base exported, so WAMR "shrinks" its 4 pages to one
;; page of __heap_base bytes (73728, 18 host pages).
(module
  (memory (export "memory") 4 8)
  (global $sp (mut i32) (i32.const 0x10000))
  (global (export "__data_end") i32 (i32.const 0x9000))
  (global (export "__heap_base") i32 (i32.const 0x12000))
  (data (i32.const 0x1000) "shrunk module data")
  (func (export "peek") (param i32) (result i32)
    local.get 0
    i32.load8_u)
  (func (export "poke") (param i32 i32)
    local.get 0
    local.get 1
    i32.store8)
  (func (export "sp") (result i32)
    global.get $sp))
