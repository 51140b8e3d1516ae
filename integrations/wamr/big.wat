;; Memories at the hook's limit: 65536 pages (4 GiB) arrive in WAMR's
;; callbacks as size 0. This one starts one page short and grows to it.
(module
  (memory (export "memory") 65535 65536)
  (data (i32.const 16) "big module data")
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
