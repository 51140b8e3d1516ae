;; Instantiation traps: the second segment ends past the memory's initial
;; size. cowmem builds no image for the memory (NOIMAGE_OUT_OF_BOUNDS), strip
;; keeps its segments, and wasm2c's init_memories traps in LOAD_DATA, as the
;; spec says (the first segment's bytes remain written).
(module
  (memory (export "memory") 1 2)
  (data (i32.const 0) "written first")
  (data (i32.const 65530) "0123456789"))
