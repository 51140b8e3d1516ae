;; An instantiation that fails after the memory is allocated: the second
;; segment ends past the memory, so cowmem builds no image (the segments
;; stay in the module) and WAMR refuses the instance.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "written first")
  (data (i32.const 65530) "past the end"))
