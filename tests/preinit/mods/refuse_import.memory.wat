;; Refused without --fresh-imports: an imported memory.
(module
  (import "env" "memory" (memory 1))
  (func (export "wizer-initialize") (i32.store (i32.const 0) (i32.const 1))))
