;; For the instance tests (test_wamr_instance.c): a call as deep as asked
;; (its frames fill the operand stack of the execution environment), a
;; trap, and bytes to read and write. One page with data, so the memory
;; has an image.
(module
  (memory (export "memory") 1 1)
  (data (i32.const 16) "deep module data")
  (func $depth (export "depth") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (i32.add (call $depth (i32.sub (local.get 0) (i32.const 1)))
                     (i32.const 1)))))
  (func (export "trap") (result i32)
    unreachable)
  (func (export "peek") (param i32) (result i32)
    (i32.load8_u (local.get 0)))
  (func (export "poke") (param i32 i32)
    (i32.store8 (local.get 0) (local.get 1))))
