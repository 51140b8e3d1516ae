;; Refused: table.copy (its effect is not in a snapshot of memories and globals).
(module
  (table 4 funcref)
  (memory 1)
  (elem $e func $f)
  (data $d "x")
  (func $f)
  (func (export "wizer-initialize") (table.copy (i32.const 0) (i32.const 1) (i32.const 1))))
