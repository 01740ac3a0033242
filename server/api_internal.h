/* api_internal.h - what api.c (authentication, routing, faults, sending) shares with the
 * handlers of the update API in api_uptane.c: the server state, a request, and the reply a
 * handler fills. Handlers never touch libmicrohttpd, so --faults can rewrite any reply.
 */
#ifndef OTA_SERVER_API_INTERNAL_H
#define OTA_SERVER_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "db.h"
#include "faults.h"
#include "identity.h"
#include "park.h"

struct api {
  char *dir; /* the fleet directory: the Uptane repositories live there */
  db *db;
  pki_cred device_ca;
  gnutls_datum_t server_ca_der; /* goes into every device archive */
  identity_anchors anchors;
  faults *faults;
  park *park; /* connections held by stall and trickle faults; NULL without such faults */
  enum pki_key_type device_key;
  enum p12_cert_cipher p12;
  bool quiet;
};

#define API_RANGE_MAX 96 /* longest Range header kept */

/* One HTTP request, from its first handler call to the completion callback. */
typedef struct request {
  uint64_t started_ms;
  identity who;
  char method[16];
  char device[IDENTITY_CN_MAX]; /* the uuid of the device it acts for, once routed */
  char *path;                   /* as libmicrohttpd gives it: %-escapes decoded */
  char range[API_RANGE_MAX];    /* the Range header, or "" */
  char *body;                   /* NUL-terminated (NULL when empty) */
  size_t len;
  bool too_large;
  bool stalled;    /* held by a stall fault: closed when resumed */
  int status;      /* what was answered; 0 = closed without an answer */
  char fault[160]; /* the --faults rule that answered it, or "" */
} request;

enum reply_send {
  SEND_WHOLE,
  SEND_CUT,
  SEND_NOTHING,
  /* faults only: */
  SEND_RESET,       /* TCP reset, no answer */
  SEND_STALL,       /* hold the connection hold_s without answering */
  SEND_TRICKLE,     /* the reply at bps bytes a second */
  SEND_HUGE,        /* huge_size bytes of JSON-looking text, with a Content-Length */
  SEND_HUGE_CHUNKED /* the same, chunked */
};

/* What a handler answers: body (malloc'd, or NULL when empty), or a file. */
typedef struct reply {
  int status;
  const char *content_type;
  char *body;
  size_t len;
  enum reply_send send;
  bool has_file; /* send file_len bytes of fd from file_offset instead of body */
  int fd;        /* owned by the reply */
  uint64_t file_offset, file_len;
  bool accept_ranges;     /* Accept-Ranges: bytes */
  char content_range[96]; /* Content-Range value, or "" */
  unsigned retry_after_s; /* Retry-After header (faults), 0 = none */
  unsigned bps;           /* SEND_TRICKLE */
  unsigned hold_s;        /* SEND_STALL */
  uint64_t huge_size;     /* SEND_HUGE, SEND_HUGE_CHUNKED */
} reply;

extern const char API_CT_JSON[];

/* Replaces out with a JSON error {"code","description"}. */
void reply_error(reply *out, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Replaces out with a copy of data (len 0: no body). */
void reply_body(reply *out, int status, const char *content_type, const void *data, size_t len);

/* Takes data (malloc'd) as the body of out. */
void reply_take(reply *out, int status, const char *content_type, char *data, size_t len);

/* Frees what out holds and empties it. */
void reply_clear(reply *out);

/* Handlers of the update API (api_uptane.c); r->device is set. */
void api_get_director(api *a, request *r, reply *out);
void api_get_repo(api *a, request *r, reply *out);
void api_get_target(api *a, request *r, reply *out);
void api_put_manifest(api *a, request *r, reply *out);
void api_post_events(api *a, request *r, reply *out);
void api_put_installed(api *a, request *r, reply *out);
void api_put_system_info(api *a, request *r, reply *out);
void api_put_network(api *a, request *r, reply *out);
void api_post_config(api *a, request *r, reply *out);

#endif
