/* error.h - otad's error codes.
 *
 * Errors travel as values: functions return 0 or a negative OTAD_E* code, and
 * otad_strerror() turns a code into words a person understands. Detail that only the
 * failing call knows (a file name, a line, a server's reply) goes into an otad_errbuf
 * the caller passes in, so no error state lives in a global.
 */
#ifndef OTAD_ERROR_H
#define OTAD_ERROR_H

#include <stddef.h>

#define OTAD_ERRORS(X)                                                                             \
  X(OTAD_OK, 0, "success")                                                                         \
  X(OTAD_ENOMEM, -1, "out of memory")                                                              \
  X(OTAD_EINVAL, -2, "invalid argument")                                                           \
  X(OTAD_ECONFIG, -3, "invalid configuration")                                                     \
  X(OTAD_EIO, -4, "input/output error")                                                            \
  X(OTAD_ENOENT, -5, "file not found")                                                             \
  X(OTAD_ENOSPC, -6, "no space left on device")                                                    \
  X(OTAD_EZIP, -7, "credentials archive is corrupt or incomplete")                                 \
  X(OTAD_EP12, -8, "PKCS#12 archive could not be read")                                            \
  X(OTAD_EP12PASS, -9, "PKCS#12 password is wrong or the archive is damaged")                      \
  X(OTAD_ECERT, -10, "certificate is invalid")                                                     \
  X(OTAD_ENET, -11, "could not reach the server")                                                  \
  X(OTAD_ETLS, -12, "TLS handshake failed")                                                        \
  X(OTAD_EPEER, -13, "server certificate is not trusted")                                          \
  X(OTAD_EHTTP4XX, -14, "server rejected the request")                                             \
  X(OTAD_EHTTP5XX, -15, "server error")                                                            \
  X(OTAD_ETOOBIG, -16, "response larger than allowed")                                             \
  X(OTAD_EPROTO, -17, "unexpected response from the server")                                       \
  X(OTAD_ECRYPTO, -18, "cryptographic operation failed")                                           \
  X(OTAD_ETIMEDOUT, -19, "operation timed out")                                                    \
  X(OTAD_ECANCELED, -20, "operation cancelled")                                                    \
  X(OTAD_EJOURNAL, -21, "journal is malformed")                                                    \
  X(OTAD_EIDTAKEN, -22, "device ID already registered")

enum otad_err {
#define OTAD_ERR_ENUM(name, val, text) name = val,
  OTAD_ERRORS(OTAD_ERR_ENUM)
#undef OTAD_ERR_ENUM
};

/* Room for the detail of one error: "file:line: what" or a server's description. */
typedef struct otad_errbuf {
  char msg[512];
} otad_errbuf;

/* Words for an error code; never NULL. */
const char *otad_strerror(int err);

/* Short symbolic name of an error code ("OTAD_ENET"), for journals and JSON. */
const char *otad_errname(int err);

/* Formats detail into eb (if eb is not NULL) and returns err, so callers can
 * `return otad_fail(eb, OTAD_EIO, "cannot open %s", path);`. */
int otad_fail(otad_errbuf *eb, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
