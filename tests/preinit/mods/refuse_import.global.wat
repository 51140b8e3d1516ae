;; Refused: an imported global.
(module
  (import "env" "g" (global i32))
  (func (export "wizer-initialize")))
