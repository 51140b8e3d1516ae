;; Refused: table.grow (its effect is not in a snapshot of memories and globals).
(module
  (table 4 funcref)
  (memory 1)
  (elem $e func $f)
  (data $d "x")
  (func $f)
  (func (export "wizer-initialize") (drop (table.grow 0 (ref.null func) (i32.const 1)))))
