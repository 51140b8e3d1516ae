;; A module that imports its memory. Without multi-module WAMR creates the
;; imported memory itself, fresh and zeroed for every instance, so its data
;; can come from an image (COWMEM_MODULE_FRESH_IMPORTS).
(module
  (import "env" "memory" (memory 1 2))
  (data (i32.const 16) "imported memory data")
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
