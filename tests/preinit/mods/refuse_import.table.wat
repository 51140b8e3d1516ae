;; Refused: an imported table.
(module
  (import "env" "t" (table 1 funcref))
  (func (export "wizer-initialize")))
