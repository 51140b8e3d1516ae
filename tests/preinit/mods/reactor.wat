;; A reactor: _initialize runs first, then the init function, here under
;; Wizer's older name.
(module
  (memory (export "memory") 2)
  (global $sp (mut i32) (i32.const 1024))
  (global $order (mut i32) (i32.const 0))
  (func (export "_initialize")
    (global.set $order (i32.const 1))
    (global.set $sp (i32.const 65536)))
  (func (export "wizer.initialize")
    (global.set $order (i32.add (i32.mul (global.get $order) (i32.const 10)) (i32.const 2)))
    (memory.fill (i32.const 70000) (i32.const 0x5a) (i32.const 5000)))
  (func (export "run") (result i32)
    (i32.add (global.get $order) (i32.load8_u (i32.const 74999)))))
