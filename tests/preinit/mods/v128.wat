;; A v128 global (WAMR's interpreter is built without SIMD here).
(module
  (memory 1)
  (global $v (mut v128) (v128.const i32x4 0 0 0 0))
  (func (export "wizer-initialize")
    (global.set $v (v128.const i32x4 1 2 3 4))))
