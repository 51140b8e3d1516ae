;; One page short of 4 GiB, with memory.grow (so WAMR keeps its 64 KiB
;; pages) and no __heap_base: an app heap of up to 64 KiB adds one page,
;; and WAMR asks the hook for 65536 pages, 4 GiB, which its unsigned int
;; size carries as 0. WAMR writes the heap's header into the last page
;; while it instantiates. No data: an image would not fit 0 bytes, which
;; the hook refuses whatever the heap.
(module
  (memory (export "memory") 65535 65536)
  (func (export "peek") (param i32) (result i32)
    local.get 0
    i32.load8_u)
  (func (export "poke") (param i32 i32)
    local.get 0
    local.get 1
    i32.store8)
  (func (export "grow") (param i32) (result i32)
    local.get 0
    memory.grow))
