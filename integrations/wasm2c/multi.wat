;; Two memories, each with data: the k-th wasm_rt_allocate_memory of an
;; instantiation gets defined memory k's image. load_far and load64_far add
;; the largest static offset to an address: up to data + 8 GiB - 2 (+ 7
;; bytes for the i64), the farthest generated code can reach.
(module
  (memory $a (export "mem0") 1 2)
  (memory $b (export "mem1") 2 4)
  (data (memory $a) (i32.const 16) "first memory")
  (data (memory $b) (i32.const 70000) "second memory")
  (func (export "load0") (param i32) (result i32)
    (i32.load8_u $a (local.get 0)))
  (func (export "load1") (param i32) (result i32)
    (i32.load8_u $b (local.get 0)))
  (func (export "store1") (param i32 i32)
    (i32.store8 $b (local.get 0) (local.get 1)))
  (func (export "grow1") (param i32) (result i32)
    (memory.grow $b (local.get 0)))
  (func (export "load_far") (param i32) (result i32)
    (i32.load8_u $a offset=4294967295 (local.get 0)))
  (func (export "load64_far") (param i32) (result i64)
    (i64.load $a offset=4294967295 (local.get 0))))
