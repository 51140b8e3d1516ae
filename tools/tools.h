/* Shared by the cowmem command's subcommands (tools/cowmem.c dispatches).
 * Exit codes of every subcommand: 0 ok, 1 runtime error (named file and
 * reason on stderr), 2 usage. */
#ifndef COWMEM_TOOLS_H
#define COWMEM_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cowmem.h>

#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cmd_inspect(int argc, char** argv);
int cmd_compile(int argc, char** argv);
int cmd_strip(int argc, char** argv);
int cmd_dump(int argc, char** argv);
int cmd_bench(int argc, char** argv);
/* Built when a WAMR tree is configured (COWMEM_TOOL_PREINIT). */
int cmd_preinit(int argc, char** argv);

/* "cowmem <sub>" for messages. */
extern const char* tool_cmd;

/* Print "cowmem <sub>: <file>: <reason>" on stderr; returns EXIT_RUNTIME. */
int tool_fail(const char* file, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Print "cowmem <sub>: <reason>" and "try --help" on stderr; returns
 * EXIT_USAGE. */
int tool_usage(const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Read a whole file (at most 1 GiB). NULL with errno set on failure. */
uint8_t* tool_read_file(const char* path, size_t* len);

typedef enum { FILE_WASM, FILE_CWIMG, FILE_OTHER } tool_kind_t;
/* By the first bytes; FILE_OTHER with errno set if unreadable. */
tool_kind_t tool_file_kind(const char* path);

/* Parse a module file with cowmem_module_parse flags (0, or
 * COWMEM_MODULE_FRESH_IMPORTS for --fresh-imports); on failure prints the
 * reason and returns NULL. */
cowmem_module_t* tool_load_module(const char* path, unsigned flags);

/* The option every subcommand that reads a module takes, and its help. */
#define TOOL_FRESH_OPT "--fresh-imports"
#define TOOL_FRESH_HELP                                                                  \
  "  --fresh-imports  the host gives each instance a fresh zeroed memory of\n"           \
  "                   the declared minimum for every imported memory\n"                  \
  "                   (emscripten's -sIMPORTED_MEMORY): imported memories\n"             \
  "                   get images like defined ones\n"
/* Open an image file (module: check it belongs to it, every descriptor field
 * (cowmem_imgfile_check_module)); prints on failure. */
cowmem_imgfile_t* tool_open_imgfile(const char* path, const cowmem_module_t* module);

/* Write len bytes to path atomically (a temporary beside it, renamed). */
int tool_write_atomic(const char* path, const void* data, size_t len);
/* Create a temporary file beside path for writing: returns the fd and the
 * temporary's name in tmp (size n), or -1 with errno. */
int tool_tmp_beside(const char* path, char* tmp, size_t n);

/* The default module of `cowmem bench` when none is given: the bundled
 * demo.wasm (path baked in at build time, else beside the executable, else
 * ../share/cowmem/). NULL if none is found. */
const char* tool_default_module(void);

/* Option parsing: is argv[*i] the option `name` (with its value in the
 * next argument or after '=')? Sets *value and advances *i. */
bool tool_opt_value(int argc, char** argv, int* i, const char* name, const char** value);
bool tool_parse_u64(const char* s, uint64_t* out);
/* The arguments of a subcommand of the form `SUB INPUT -o OUTPUT` (compile,
 * strip): -1 when *in and *out are set, else the exit code to return (after
 * --help, or a usage error already printed). *flags gets the module parse
 * flags the options ask for (--fresh-imports). */
int tool_args_in_out(int argc, char** argv, void (*help)(FILE*), const char** in,
                     const char** out, unsigned* flags);
/* The same with a subcommand's own options: more(ctx, argc, argv, &i) sees
 * each argument first and returns 1 when it took it (advancing *i past a
 * value), 0 when it is not its own, or -(exit code + 1) to stop (a usage
 * error it printed). */
typedef int (*tool_more_opt_fn)(void* ctx, int argc, char** argv, int* i);
int tool_args_in_out_more(int argc, char** argv, void (*help)(FILE*), const char** in,
                          const char** out, unsigned* flags, tool_more_opt_fn more,
                          void* ctx);

/* Call fn(arg, off, len) for each stretch of the image that may hold data,
 * in order, in page-aligned memory offsets: for an image with a file (memfd
 * or image file) the file's data extents (SEEK_DATA/SEEK_HOLE), so a sparse
 * file costs what it holds, not what it claims; a copy is one stretch.
 * Everything else is zeros. Stops at fn's first non-zero return. The
 * file offset of the image's fd (shared with the fd it was made from) is
 * kept. */
int tool_image_extents(const cowmem_image_t* img,
                       int (*fn)(void* arg, uint64_t off, uint64_t len), void* arg);

void tool_hex(const uint8_t* h, size_t n, char* out);
/* A JSON string literal of s (n bytes): controls as \uXXXX, bytes that are
 * not UTF-8 as U+FFFD. */
void tool_json_str(FILE* f, const char* s, size_t n);
/* s (n bytes) quoted for a terminal: controls (C0, DEL, C1) and bytes that
 * are not UTF-8 as \xNN, '"' and '\' escaped; other UTF-8 as it is. */
void tool_text_str(FILE* f, const char* s, size_t n);

#endif
