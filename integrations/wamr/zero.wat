;; A module WAMR shrinks to nothing: one page declared (maximum one, no
;; memory.grow), and the linker's __data_end = __heap_base = 0 exported,
;; so WAMR rewrites its memory to one "page" of 0 bytes at load. Every
;; access traps in stock WAMR.
(module
  (memory (export "memory") 1 1)
  (global $sp (mut i32) (i32.const 0))
  (global (export "__data_end") i32 (i32.const 0))
  (global (export "__heap_base") i32 (i32.const 0))
  (func (export "peek") (param i32) (result i32)
    local.get 0
    i32.load8_u)
  (func (export "poke") (param i32 i32)
    local.get 0
    local.get 1
    i32.store8)
  (func (export "sp") (result i32)
    global.get $sp))
