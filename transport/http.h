/* http.h - non-blocking HTTP(S) on a libuv loop, through libcurl's multi socket interface.
 *
 * One http_client per loop owns the curl multi handle: curl tells us which sockets to
 * watch (-> uv_poll_t) and when to wake it (-> uv_timer_t); nothing blocks the loop. Each
 * http_request is owned by its caller (a device embeds one) and carries its own TLS
 * identity as PEM blobs. libcurl compares those blobs before it reuses a pooled connection
 * or a cached TLS session, so devices sharing the multi handle never borrow each other's
 * authenticated connection.
 *
 * A key in a PKCS#11 token (key_pem is then a "pkcs11:" URI, see p11.h) cannot be a blob:
 * libcurl would try to parse it, and given a certificate without a key it reads the key
 * from the certificate blob and fails. Such a request leaves the client certificate out
 * of curl's options and installs both itself, certificate chain first, in
 * CURLOPT_SSL_CTX_FUNCTION (curl calls it per connection, after its own certificate and
 * CA set-up and before the handshake), so the handshake signs inside the token. The
 * trade-off: libcurl no longer sees that identity, so it cannot keep such connections
 * apart from others by comparing blobs. Isolation is kept by never sharing them instead:
 * a token request always opens a fresh connection, closes it afterwards and neither uses
 * nor feeds the TLS session cache, at the cost of a full handshake (one token signature)
 * per request. That suits the HSM case, one device per process polling now and then; the
 * fleet's many devices keep the blob path, with connection reuse.
 *
 * Streaming (downloads): with a sink, the body of a 2xx response goes to the sink as it
 * arrives and is never held whole; resume_from asks for the rest of a resource with
 * `Range: bytes=N-` (the reply says where its body starts: a 206 at N, or a 200 with the
 * whole resource, which the sink must take from offset 0); max_total ends a transfer whose
 * resource grows past a declared size, before a byte past it reaches the sink; a low-speed
 * floor ends one that crawls. The body of any other status is kept in resp as usual, so
 * the caller can read the server's error.
 *
 * Connections and TLS sessions (for the fleet simulator, which runs thousands of identities
 * on one client): fresh_connect / forbid_reuse / max_idle_s say whether a request may use a
 * pooled connection and whether its own connection stays pooled; every request reports its
 * time, whether it opened a connection and made a TLS handshake, and whether that handshake
 * resumed a session. libcurl keys its TLS session cache by host, port, TLS options and a
 * hash of the client-certificate and CA blobs, so a session is only ever offered back to
 * the identity that made it; but a multi handle's cache holds 25 peers (a build-time
 * constant, scanned linearly), too few for a fleet. http_client_session_shards() gives
 * requests with a tls_cache slot their own small caches instead (curl shares holding TLS
 * sessions only, one per group of slots), so each identity keeps its session.
 */
#ifndef OTAD_HTTP_H
#define OTAD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../core/error.h"

struct curl_slist;

#define HTTP_DEFAULT_MAX_RESPONSE (64 * 1024)

typedef struct http_client http_client;
typedef struct http_request http_request;

/* Called once when a request ends, successfully or not; req may be restarted from it. */
typedef void (*http_done_fn)(http_request *req);

/* Receives the next len body bytes of a streamed 2xx response; req->status and
 * req->offset are set before the first call. Returns 0 to go on, or an OTAD_E* code that
 * ends the transfer (done() then sees it in err). */
typedef int (*http_sink_fn)(http_request *req, const uint8_t *data, size_t len);

struct http_request {
  /* Inputs, set before http_start(); the memory they point to must outlive the request. */
  const char *method; /* "GET", "POST", "PUT" */
  const char *url;
  const char *content_type; /* for a body; NULL = none */
  const void *body;
  size_t body_len;
  const char *cert_pem;    /* client certificate (+ chain); NULL = no client auth */
  const char *key_pem;     /* its private key: PEM, or a PKCS#11 URI of a key in an open
                              token (see above) */
  const char *ca_pem;      /* the pinned CA bundle; the only roots trusted */
  size_t max_response;     /* body cap in bytes; 0 = HTTP_DEFAULT_MAX_RESPONSE (with a sink:
                              of an error reply, whose excess is dropped, not an error) */
  long timeout_ms;         /* whole request; 0 = 60 s, < 0 = no limit (a download: use the
                              low-speed floor instead) */
  long connect_timeout_ms; /* 0 = 60 s */
  http_done_fn done;
  void *data; /* the caller's */

  /* Streaming inputs (all optional; zero = off, as before). */
  http_sink_fn sink;    /* 2xx body to sink instead of resp (see above) */
  uint64_t resume_from; /* GET: > 0 sends Range: bytes=N-; a 206 must start at N
                           (Content-Range), else OTAD_EPROTO */
  uint64_t max_total;   /* > 0: the resource may not reach past this many bytes: a body
                           whose offset + length would (Content-Length says so, or the
                           bytes arrive) ends with OTAD_ETOOBIG before the sink sees it */
  long low_speed_limit; /* bytes/s ... */
  long low_speed_time;  /* ... for this many seconds: slower ends with OTAD_ETIMEDOUT;
                           either 0 = no floor */

  /* Connection inputs (all optional; zero = curl's defaults: reuse a pooled connection to
   * the same host with the same TLS identity, keep it pooled afterwards). */
  int fresh_connect;  /* the next start opens a new connection rather than use a pooled
                         one (http_start() clears it: once per setting) */
  int forbid_reuse;   /* close this request's connection when it ends */
  int no_tls_session; /* neither resume a cached TLS session nor cache this one's (a
                         connection made once, e.g. registering with the fleet key) */
  long max_idle_s;    /* a pooled connection idle longer than this is not used (and is
                         closed by the next pool sweep); 0 = curl's 118 s */
  uint32_t tls_cache; /* 0 = the client's common TLS session cache; n > 0 = slot n of
                         the sharded caches (http_client_session_shards), one slot per
                         identity */

  /* Outputs, valid in done(). */
  int err;       /* 0 when a response arrived (any status), else OTAD_ENET, OTAD_ETLS,
                    OTAD_EPEER, OTAD_ETIMEDOUT, OTAD_ETOOBIG, OTAD_ECANCELED, OTAD_EPROTO
                    (a status below 100, e.g. "000"); streamed also OTAD_EPROTO (a 206
                    not starting at resume_from) or the code the sink returned */
  long status;   /* HTTP status, 0 without a response */
  uint8_t *resp; /* body (NUL-terminated, heap, owned by the request) */
  size_t resp_len;
  char errmsg[256];       /* curl's words for err */
  uint64_t offset;        /* sink: where the body starts in the resource (resume_from for a
                             206, 0 for a 200) */
  uint64_t received;      /* sink: body bytes it accepted */
  uint32_t retry_after_s; /* the reply's Retry-After in seconds (delta or HTTP date, as
                             curl reads it; capped at one day), 0 = none */
  uint64_t elapsed_us;    /* start to end of the transfer (curl's total time) */
  int new_connection;     /* the request opened a connection (else it used a pooled one) */
  int handshake;          /* ... and made a TLS handshake on it */
  int resumed;            /* ... which resumed an earlier TLS session (wolfSSL only) */
  char identity[72];      /* the reply's X-Client-Identity header (the certificate CN the
                             server saw; ota-server), "" when absent */

  /* Private. */
  void *easy; /* the CURL easy handle: curl stays out of this header */
  http_client *client;
  struct curl_slist *headers;
  size_t resp_cap;
  int overflow;
  char *detail;        /* why err, when curl's words would mislead (heap), or NULL: the token
                          identity could not be set up, or a streamed reply was refused */
  int abort_err;       /* the error that ended a streamed transfer from write_cb */
  int stream;          /* 0 before the first body byte, then STREAM_SINK or STREAM_BUFFER */
  int64_t range_start; /* Content-Range start of the current reply, -1 none */
  int seen_header;     /* a status line arrived (TLS resumption is read at the first) */
};

/* Creates the client for loop. Returns NULL on failure (curl could not initialise). */
http_client *http_client_new(uv_loop_t *loop);

/* Starts req. Returns 0 or OTAD_ENOMEM/OTAD_EINVAL (done() is then not called). */
int http_start(http_client *c, http_request *req);

/* Aborts a running req; done() is called with OTAD_ECANCELED before this returns. */
void http_cancel(http_request *req);

/* Frees the response buffer and resets the outputs (inputs stay). */
void http_request_reset(http_request *req);

/* Told about every request as it ends, before its done() (cancelled ones included). */
typedef void (*http_observer_fn)(void *ctx, const http_request *req);

/* Sets (fn NULL: removes) the client's observer. */
void http_client_set_observer(http_client *c, http_observer_fn fn, void *ctx);

/* How many idle connections the client keeps (CURLMOPT_MAXCONNECTS; default 64). A fleet
 * that keeps every device's connection between polls needs one per device. */
void http_client_set_max_connects(http_client *c, long n);

/* Turns on sharded TLS session caches: requests with tls_cache slot n > 0 use cache
 * (n - 1) / per_shard, each created on first use and holding up to 25 identities
 * (per_shard 0 or > 24 = 24); with `pools`, each with its own connection pool too (for
 * connections held between requests: libcurl walks a whole pool per request, but prunes
 * a pool's dead connections only when one of its requests starts). Returns 0, or OTAD_EINVAL when
 * curl cannot share TLS sessions. */
int http_client_session_shards(http_client *c, unsigned per_shard, bool pools);

/* The sharded caches made so far. */
size_t http_client_session_shard_count(const http_client *c);

/* Number of requests in flight. */
size_t http_client_active(const http_client *c);

/* Closes the pooled connections idle for 2 s or more (libcurl closes them only when a
 * transfer looks for a connection: this starts a throwaway one per pool, to a closed
 * loopback port) and then calls done(data). 0, or OTAD_ENOMEM (done is not called). */
int http_client_prune_idle(http_client *c, void (*done)(void *), void *data);

/* Closes the client: every running request ends with OTAD_ECANCELED, handles are closed
 * on the loop (run it once more to let them finish) and the client is freed. */
void http_client_close(http_client *c);

/* Global libcurl initialisation; call once at program start. */
void http_global_init(void);

/* Global libcurl clean-up; call once at program end, after every client is closed. */
void http_global_cleanup(void);

#endif
