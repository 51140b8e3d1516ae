;; A custom page size (custom-page-sizes proposal): 1-byte pages. cowmem's
;; front end reads 64 KiB pages only, so the integration refuses the module
;; when it is loaded, with the reason.
(module
  (memory (export "mem") 3 100 (pagesize 1))
  (data (i32.const 1) "ab"))
