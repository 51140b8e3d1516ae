;; A module that imports its only memory, as emscripten's -sIMPORTED_MEMORY
;; output does: the host creates the memory, the module's active segments
;; initialize it at instantiation.
(module
  (import "env" "memory" (memory 2 4))
  (data (i32.const 16) "imported memory")
  (data (i32.const 70000) "second page")
  (data (i32.const 24) "MEMORY") ;; over the first: later segments win
  (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "store") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size)))
