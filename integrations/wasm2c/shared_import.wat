;; A module that imports a shared memory, as emscripten's pthread builds do
;; (their segments are passive there, applied once by the main thread; an
;; active one, as here, is what the threads proposal allows too).
(module
  (import "penv" "memory" (memory 1 2 shared))
  (data (i32.const 32) "shared import")
  (func (export "load") (param i32) (result i32) (i32.atomic.load8_u (local.get 0)))
  (func (export "add") (param i32 i32) (result i32) (i32.atomic.rmw.add (local.get 0) (local.get 1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
