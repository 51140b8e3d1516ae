;; memory64 (wabt >= 1.0.37): the generated code bounds-checks every access
;; against `size`. $m has data on two pages and a maximum; $big has none,
;; so it grows up to its 4 GiB slot and no further.
(module
  (memory $m (export "mem") i64 2 10)
  (memory $big (export "big") i64 1)
  (data (memory $m) (i64.const 100) "hello memory64")
  (data (memory $m) (i64.const 70000) "second page")
  (func (export "load") (param i64) (result i32)
    (i32.load8_u $m (local.get 0)))
  (func (export "load64") (param i64) (result i64)
    (i64.load $m (local.get 0)))
  (func (export "load_far") (param i64) (result i32)
    (i32.load8_u $m offset=0xffffffff (local.get 0)))
  (func (export "store") (param i64 i32)
    (i32.store8 $m (local.get 0) (local.get 1)))
  (func (export "grow") (param i64) (result i64)
    (memory.grow $m (local.get 0)))
  (func (export "load_big") (param i64) (result i32)
    (i32.load8_u $big (local.get 0)))
  (func (export "grow_big") (param i64) (result i64)
    (memory.grow $big (local.get 0))))
