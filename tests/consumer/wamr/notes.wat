;; A module that keeps a note in its memory: read and write a word, and
;; the farthest load a wasm32 access can form.
(module
  (memory 1 4)
  (data (i32.const 32) "WAMR")
  (func (export "get") (param i32) (result i32)
    local.get 0
    i32.load)
  (func (export "set") (param i32 i32)
    local.get 0
    local.get 1
    i32.store)
  (func (export "farthest") (result i32)
    i32.const 0xffffffff
    i32.load offset=0xffffffff))
