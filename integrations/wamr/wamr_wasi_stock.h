/* wamr_wasi_stock.h: cowmem_wamr_wasi.c's runtime-facing functions for the
 * stock runtime (cowmem_wamr_runtime(... STOCK WASI), whose symbols carry
 * the prefix cowmem_stock_), for programs that run one WASI program
 * through both runtimes in one process (cowmem-iwasm --stock, the tests).
 *
 * cowmem_wamr_wasi.c compiled with WAMR_API_STOCK includes it first: it
 * then renames WAMR's declarations and the file's own alike. A program
 * includes it after cowmem_wamr_wasi.h and gets the prefixed functions,
 * with the contracts of their plain namesakes. */
#ifndef COWMEM_WAMR_WASI_STOCK_H
#define COWMEM_WAMR_WASI_STOCK_H

#ifdef WAMR_API_STOCK
#define wasm_runtime_set_wasi_args_ex cowmem_stock_wasm_runtime_set_wasi_args_ex
#define wasm_runtime_get_exception cowmem_stock_wasm_runtime_get_exception
#define wasm_runtime_get_wasi_exit_code cowmem_stock_wasm_runtime_get_wasi_exit_code
#define wasm_application_execute_main cowmem_stock_wasm_application_execute_main
#define wasm_application_execute_func cowmem_stock_wasm_application_execute_func
#define cowmem_wamr_wasi_set cowmem_stock_wamr_wasi_set
#define cowmem_wamr_wasi_clear cowmem_stock_wamr_wasi_clear
#define cowmem_wamr_wasi_run_main cowmem_stock_wamr_wasi_run_main
#define cowmem_wamr_wasi_call cowmem_stock_wamr_wasi_call
#else
#include "cowmem_wamr_wasi.h"
int cowmem_stock_wamr_wasi_set(wasm_module_t module, const cowmem_wamr_wasi_t* w,
                               cowmem_diag_t* diag);
void cowmem_stock_wamr_wasi_clear(wasm_module_t module);
int cowmem_stock_wamr_wasi_run_main(wasm_module_inst_t inst, int* exit_code,
                                    cowmem_diag_t* diag);
int cowmem_stock_wamr_wasi_call(wasm_module_inst_t inst, const char* name, int argc,
                                char* argv[], int* exit_code, cowmem_diag_t* diag);
#endif

#endif
