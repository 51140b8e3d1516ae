/* Helpers shared by the cowmem command's subcommands. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools.h"

const char* tool_cmd = "cowmem";

int tool_fail(const char* file, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: %s: ", tool_cmd, file);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return EXIT_RUNTIME;
}

int tool_usage(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", tool_cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry '%s --help'.\n", tool_cmd);
  va_end(ap);
  return EXIT_USAGE;
}

uint8_t* tool_read_file(const char* path, size_t* len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  uint8_t* p = NULL;
  if (fstat(fd, &st) != 0) goto out;
  if (!S_ISREG(st.st_mode)) {
    errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    goto out;
  }
  if (st.st_size > (off_t)1 << 30) {
    errno = EFBIG;
    goto out;
  }
  size_t n = (size_t)st.st_size;
  p = malloc(n ? n : 1);
  if (!p) goto out;
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = EIO;
      free(p);
      p = NULL;
      goto out;
    }
    got += (size_t)r;
  }
  *len = n;
out:;
  int e = errno;
  close(fd);
  errno = e;
  return p;
}

tool_kind_t tool_file_kind(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FILE_OTHER;
  uint8_t b[8] = {0};
  ssize_t n = read(fd, b, sizeof b);
  int e = n < 0 ? errno : 0; /* EISDIR for a folder: say so */
  close(fd);
  errno = 0;
  if (n >= 4 && memcmp(b, "\0asm", 4) == 0) return FILE_WASM;
  if (n >= 4 && memcmp(b,
                       "\x89"
                       "CWI",
                       4) == 0)
    return FILE_CWIMG;
  errno = e;
  return FILE_OTHER;
}

cowmem_module_t* tool_load_module(const char* path, unsigned flags) {
  size_t len = 0;
  uint8_t* bytes = tool_read_file(path, &len);
  if (!bytes) {
    tool_fail(path, "%s", strerror(errno));
    return NULL;
  }
  cowmem_module_t* m = NULL;
  cowmem_diag_t d;
  int r = cowmem_module_parse(bytes, len, flags, &m, &d);
  free(bytes);
  if (r != 0) {
    tool_fail(path, "%s at byte %llu: %s", cowmem_strerror(r),
              (unsigned long long)d.offset, d.reason);
    return NULL;
  }
  return m;
}

cowmem_imgfile_t* tool_open_imgfile(const char* path, const cowmem_module_t* module) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    tool_fail(path, "%s", strerror(errno));
    return NULL;
  }
  cowmem_imgfile_t* f = NULL;
  cowmem_diag_t d;
  uint8_t mh[32];
  if (module != NULL) cowmem_module_hash(module, mh);
  int r = cowmem_imgfile_open(fd, module != NULL ? mh : NULL, 0, &f, &d);
  close(fd);
  if (r == 0 && module != NULL && (r = cowmem_imgfile_check_module(f, module, &d)) != 0) {
    cowmem_imgfile_free(f);
    f = NULL;
  }
  if (r != 0) {
    tool_fail(path, "%s (%s, at byte %llu)", d.reason, cowmem_err_name(r),
              (unsigned long long)d.offset);
    return NULL;
  }
  return f;
}

int tool_tmp_beside(const char* path, char* tmp, size_t n) {
  int k = snprintf(tmp, n, "%s.tmpXXXXXX", path);
  if (k < 0 || (size_t)k >= n) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int fd = mkstemp(tmp);
  if (fd >= 0) fchmod(fd, 0644);
  return fd;
}

int tool_write_atomic(const char* path, const void* data, size_t len) {
  char tmp[PATH_MAX];
  int fd = tool_tmp_beside(path, tmp, sizeof tmp);
  if (fd < 0) return -1;
  const uint8_t* p = data;
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, p + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) break;
    done += (size_t)w;
  }
  int e = done == len ? 0 : errno;
  if (close(fd) != 0 && e == 0) e = errno;
  if (e == 0 && rename(tmp, path) != 0) e = errno;
  if (e != 0) {
    unlink(tmp);
    errno = e;
    return -1;
  }
  return 0;
}

static bool readable(const char* p) {
  return p && access(p, R_OK) == 0;
}

const char* tool_default_module(void) {
#ifdef COWMEM_DEFAULT_MODULE
  if (readable(COWMEM_DEFAULT_MODULE)) return COWMEM_DEFAULT_MODULE;
#endif
  static char buf[PATH_MAX + 32];
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return NULL;
  exe[n] = 0;
  char* slash = strrchr(exe, '/');
  if (!slash) return NULL;
  *slash = 0;
  snprintf(buf, sizeof buf, "%s/demo.wasm", exe);
  if (readable(buf)) return buf;
  snprintf(buf, sizeof buf, "%s/../share/cowmem/demo.wasm", exe);
  if (readable(buf)) return buf;
  return NULL;
}

bool tool_opt_value(int argc, char** argv, int* i, const char* name, const char** value) {
  const char* a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return false;
  if (a[n] == '=') {
    *value = a + n + 1;
    return true;
  }
  if (a[n] != 0) return false;
  if (*i + 1 >= argc) {
    *value = NULL; /* missing: the caller reports a usage error */
    return true;
  }
  *value = argv[++*i];
  return true;
}

bool tool_parse_u64(const char* s, uint64_t* out) {
  if (!s || !*s || *s == '-') return false;
  char* end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno != 0 || *end != 0) return false;
  *out = v;
  return true;
}

void tool_hex(const uint8_t* h, size_t n, char* out) {
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* The length of the well-formed UTF-8 sequence at s[0, n) (shortest form,
 * no surrogates, at most U+10FFFF) and its code point; 0 if there is none. */
static size_t utf8_next(const unsigned char* s, size_t n, uint32_t* cp) {
  size_t need = s[0] < 0x80 ? 0 : (s[0] & 0xe0) == 0xc0 ? 1 : (s[0] & 0xf0) == 0xe0 ? 2
                              : (s[0] & 0xf8) == 0xf0                ? 3
                                                                     : 4;
  static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
  if (need == 4 || need >= n) return 0;
  uint32_t c = need == 0 ? s[0] : s[0] & (0x3f >> need);
  for (size_t k = 1; k <= need; k++) {
    if ((s[k] & 0xc0) != 0x80) return 0;
    c = c << 6 | (s[k] & 0x3f);
  }
  if (c < min[need] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
  *cp = c;
  return need + 1;
}

/* A code point a terminal acts on rather than shows: C0 and C1 controls
 * and DEL (ESC and CSI start escape sequences). */
static bool is_control(uint32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

/* s quoted for JSON (controls as \\uXXXX, a stray byte as U+FFFD: JSON
 * text is UTF-8) or for a terminal (controls and stray bytes as \\xNN). */
static void quoted(FILE* f, const char* s, size_t n, bool json) {
  const unsigned char* u = (const unsigned char*)s;
  fputc('"', f);
  for (size_t i = 0; i < n;) {
    uint32_t c = 0;
    size_t k = utf8_next(u + i, n - i, &c);
    if (k == 0 && json) {
      fputs("\\ufffd", f), k = 1;
    } else if (k == 0 || is_control(c)) {
      if (json) {
        fprintf(f, "\\u%04x", (unsigned)c);
      } else {
        k = k ? k : 1; /* every byte of a control, or the one stray byte */
        for (size_t j = 0; j < k; j++)
          fprintf(f, "\\x%02x", u[i + j]);
      }
    } else if (c == '"' || c == '\\') {
      fprintf(f, "\\%c", (char)c);
    } else {
      fwrite(u + i, 1, k, f);
    }
    i += k;
  }
  fputc('"', f);
}

void tool_json_str(FILE* f, const char* s, size_t n) {
  quoted(f, s, n, true);
}

void tool_text_str(FILE* f, const char* s, size_t n) {
  quoted(f, s, n, false);
}

int tool_args_in_out(int argc, char** argv, void (*help)(FILE*), const char** in,
                     const char** out, unsigned* flags) {
  return tool_args_in_out_more(argc, argv, help, in, out, flags, NULL, NULL);
}

int tool_args_in_out_more(int argc, char** argv, void (*help)(FILE*), const char** in,
                          const char** out, unsigned* flags, tool_more_opt_fn more,
                          void* ctx) {
  *in = *out = NULL;
  *flags = 0;
  for (int i = 1; i < argc; i++) {
    const char* v;
    int r = more ? more(ctx, argc, argv, &i) : 0;
    if (r > 0) continue;
    if (r < 0) return -r - 1;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help(stdout);
      return EXIT_OK;
    } else if (tool_opt_value(argc, argv, &i, "-o", &v) ||
               tool_opt_value(argc, argv, &i, "--output", &v)) {
      if (!v) return tool_usage("-o needs a file name");
      *out = v;
    } else if (strcmp(argv[i], TOOL_FRESH_OPT) == 0) {
      *flags |= COWMEM_MODULE_FRESH_IMPORTS;
    } else if (argv[i][0] == '-' && argv[i][1] != 0) {
      return tool_usage("unknown option '%s'", argv[i]);
    } else if (*in) {
      return tool_usage("more than one input file");
    } else {
      *in = argv[i];
    }
  }
  if (!*in) return tool_usage("no input module");
  if (!*out) return tool_usage("no output file (-o)");
  return -1;
}

/* tool_image_extents over an image with a file, moving the fd's offset. */
static int file_extents(const cowmem_image_info_t* ii,
                        int (*fn)(void* arg, uint64_t off, uint64_t len), void* arg) {
  uint64_t page = cowmem_page_size();
  uint64_t at = 0; /* image-relative */
  while (at < ii->len) {
    off_t d = lseek(ii->fd, (off_t)(ii->source_offset + at), SEEK_DATA);
    if (d < 0) return errno == ENXIO ? 0 : -errno; /* only holes after at */
    if ((uint64_t)d - ii->source_offset >= ii->len) return 0;
    off_t h = lseek(ii->fd, d, SEEK_HOLE);
    if (h < 0) return -errno;
    uint64_t a = ((uint64_t)d - ii->source_offset) / page * page;
    uint64_t b = (uint64_t)h - ii->source_offset;
    b = b >= ii->len ? ii->len : (b + page - 1) / page * page;
    if (b > ii->len) b = ii->len;
    int r = fn(arg, ii->mem_offset + a, b - a);
    if (r != 0) return r;
    at = b;
  }
  return 0;
}

int tool_image_extents(const cowmem_image_t* img,
                       int (*fn)(void* arg, uint64_t off, uint64_t len), void* arg) {
  cowmem_image_info_t ii;
  if (!img) return 0;
  int r = cowmem_image_info(img, &ii);
  if (r != 0 || ii.len == 0) return r;
  if (ii.fd < 0) return fn(arg, ii.mem_offset, ii.len);
  /* The image's fd is a dup of the one it was made from: they share the
   * file offset, which its owner may be reading from. Put it back. */
  off_t cur = lseek(ii.fd, 0, SEEK_CUR);
  if (cur < 0) return -errno;
  r = file_extents(&ii, fn, arg);
  if (lseek(ii.fd, cur, SEEK_SET) < 0 && r == 0) r = -errno;
  return r;
}
