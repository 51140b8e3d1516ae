;; far.wat's limits (one page, maximum two) and other data: its module set
;; and far's cannot be told apart by the sizes WAMR allocates.
(module
  (memory (export "memory") 1 2)
  (data (i32.const 16) "twin module data")
  (func (export "peek") (param i32) (result i32)
    local.get 0
    i32.load8_u))
