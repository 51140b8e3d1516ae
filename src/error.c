/* Error names and messages, generated from the one table in cowmem.h. */
#include <string.h>

#include "internal.h"

const char* cowmem_strerror(int err) {
  switch (err) {
    case 0: return "success";
#define COWMEM__ERR_MSG(name, value, msg) case COWMEM_##name: return msg;
    COWMEM_ERRORS(COWMEM__ERR_MSG)
#undef COWMEM__ERR_MSG
    default: break;
  }
  /* Any other negated errno: the system knows its message. */
  if (err < 0 && err > -4000) return strerror(-err);
  return "unknown error";
}

const char* cowmem_err_name(int err) {
  switch (err) {
    case 0: return "OK";
#define COWMEM__ERR_NAME(name, value, msg) case COWMEM_##name: return #name;
    COWMEM_ERRORS(COWMEM__ERR_NAME)
#undef COWMEM__ERR_NAME
    default: return "UNKNOWN";
  }
}
