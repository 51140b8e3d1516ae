;; Refused: a mutable global of reference type.
(module
  (global $r (mut funcref) (ref.null func))
  (func (export "wizer-initialize")))
