;; A shared memory (threads proposal; wabt >= 1.0.37 allocates it with
;; wasm_rt_allocate_memory_shared): its image, atomics from two threads on
;; one instance, grow while another thread reads, guard pages past its end.
(module
  (memory (export "mem") 1 4 shared)
  (data (i32.const 16) "shared data")
  (func (export "load") (param i32) (result i32)
    (i32.load8_u (local.get 0)))
  (func (export "load_far") (param i32) (result i32)
    (i32.load8_u offset=0xffffffff (local.get 0)))
  (func (export "add") (param i32 i32) (result i32)
    (i32.atomic.rmw.add (local.get 0) (local.get 1)))
  (func (export "grow") (param i32) (result i32)
    (memory.grow (local.get 0))))
