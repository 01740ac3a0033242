/* error.c - names and words for otad's error codes (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

const char *otad_strerror(int err) {
  switch (err) {
#define OTAD_ERR_TEXT(name, val, text)                                                             \
  case val: return text;
    OTAD_ERRORS(OTAD_ERR_TEXT)
#undef OTAD_ERR_TEXT
  }
  return "unknown error";
}

const char *otad_errname(int err) {
  switch (err) {
#define OTAD_ERR_NAME(name, val, text)                                                             \
  case val: return #name;
    OTAD_ERRORS(OTAD_ERR_NAME)
#undef OTAD_ERR_NAME
  }
  return "OTAD_EUNKNOWN";
}

int otad_fail(otad_errbuf *eb, int err, const char *fmt, ...) {
  if (eb) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
    va_end(ap);
  }
  return err;
}
