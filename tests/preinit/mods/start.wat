;; A start function and an init function: both ran, neither runs again.
(module
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (func $start (global.set $n (i32.const 5)) (i32.store (i32.const 8) (i32.const 11)))
  (start $start)
  (func (export "wizer-initialize")
    (global.set $n (i32.mul (global.get $n) (i32.const 3)))
    (i32.store (i32.const 12) (global.get $n)))
  (func (export "run") (result i32)
    (i32.add (global.get $n) (i32.load (i32.const 8)))))
