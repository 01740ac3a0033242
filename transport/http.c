/* http.c - libcurl multi socket interface driven by a libuv loop (see http.h).
 *
 * curl calls sock_cb to say which events it wants on a socket; we keep one uv_poll_t per
 * socket (allocated here, freed on CURL_POLL_REMOVE, memory owned by the client's list).
 * curl calls timer_cb with its next timeout; one uv_timer_t serves it. When the loop sees
 * socket activity or the timer fires we hand it back to curl_multi_socket_action() and then
 * collect finished transfers in collect_done().
 *
 * A streamed request (sink set) decides at its first body byte where the body goes: the
 * status is known by then, and header_cb has seen Content-Range. The Range header is sent
 * with CURLOPT_RANGE rather than CURLOPT_RESUME_FROM_LARGE: curl's resume fails a 200 reply
 * outright (CURLE_RANGE_ERROR), while a server that ignores Range is legal and its full
 * body is just as good - the sink restarts from offset 0 on the same connection.
 */
#include "http.h"

#include <curl/curl.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../crypto/p11.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

typedef struct sock_ctx {
  uv_poll_t poll;
  curl_socket_t fd;
  http_client *client;
  struct sock_ctx *next, *prev;
} sock_ctx;

struct http_client {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  sock_ctx *socks;
  size_t active;
  int closing;
  http_observer_fn observer;
  void *observer_ctx;
  unsigned per_shard; /* 0 = no sharded TLS session caches */
  bool shard_pools;   /* each shard also holds its own connection pool */
  CURLSH **shards;    /* created on first use; NULL entries not yet */
  size_t nshards;
};

void http_global_init(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_global_cleanup(void) {
  curl_global_cleanup();
}

static void sock_list_remove(http_client *c, sock_ctx *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    c->socks = s->next;
  if (s->next) s->next->prev = s->prev;
}

static void free_handle_cb(uv_handle_t *h) {
  free(h->data);
}

static void collect_done(http_client *c);

static void poll_cb(uv_poll_t *h, int status, int events) {
  sock_ctx *s = h->data;
  int flags = 0, running;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  http_client *c = s->client;
  curl_multi_socket_action(c->multi, s->fd, flags, &running);
  collect_done(c);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  http_client *c = userp;
  sock_ctx *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(c->multi, fd, NULL);
      sock_list_remove(c, s);
      uv_poll_stop(&s->poll);
      uv_close((uv_handle_t *)&s->poll, free_handle_cb);
    }
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof(*s));
    if (!s) return -1;
    if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    s->fd = fd;
    s->client = c;
    s->next = c->socks;
    if (c->socks) c->socks->prev = s;
    c->socks = s;
    curl_multi_assign(c->multi, fd, s);
  }
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  uv_poll_start(&s->poll, ev, poll_cb);
  return 0;
}

static void on_timeout(uv_timer_t *t) {
  http_client *c = t->data;
  int running;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  collect_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  http_client *c = userp;
  if (timeout_ms < 0)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

http_client *http_client_new(uv_loop_t *loop) {
  http_client *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->loop = loop;
  c->multi = curl_multi_init();
  if (!c->multi) {
    free(c);
    return NULL;
  }
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  /* Bounded pool: idle connections are cheap but not free on a small board. */
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 64L);
  return c;
}

enum { STREAM_UNDECIDED = 0, STREAM_SINK, STREAM_BUFFER };

#ifndef CURL_WRITEFUNC_ERROR /* before curl 7.87: any count but the one given is an error */
#define CURL_WRITEFUNC_ERROR 0xFFFFFFFF
#endif

/* Appends to resp; 0 when out of memory. */
static int buffer_append(http_request *r, const char *ptr, size_t n) {
  if (r->resp_len + n + 1 > r->resp_cap) {
    size_t cap = r->resp_cap ? r->resp_cap : 4096;
    while (cap < r->resp_len + n + 1)
      cap *= 2;
    uint8_t *p = realloc(r->resp, cap);
    if (!p) return 0;
    r->resp = p;
    r->resp_cap = cap;
  }
  memcpy(r->resp + r->resp_len, ptr, n);
  r->resp_len += n;
  r->resp[r->resp_len] = 0;
  return 1;
}

/* Ends a streamed transfer from write_cb with err and a detail for errmsg. */
static size_t stream_abort(http_request *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t stream_abort(http_request *r, int err, const char *fmt, ...) {
  r->abort_err = err;
  free(r->detail);
  r->detail = NULL;
  if (fmt) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->detail = strdup(msg);
  }
  return CURL_WRITEFUNC_ERROR;
}

/* The first body byte of a streamed request: where the body goes, and from which offset. */
static size_t stream_begin(http_request *r) {
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
  if (r->status < 200 || r->status >= 300) {
    r->stream = STREAM_BUFFER;
    return 0;
  }
  r->offset = 0;
  if (r->status == 206) {
    if (r->range_start < 0)
      return stream_abort(r, OTAD_EPROTO, "HTTP 206 without a usable Content-Range");
    if ((uint64_t)r->range_start != r->resume_from)
      return stream_abort(r, OTAD_EPROTO, "HTTP 206 starts at byte %" PRId64 ", not at %" PRIu64,
                          r->range_start, r->resume_from);
    r->offset = r->resume_from;
  }
  curl_off_t cl = -1;
  curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
  if (r->max_total && cl >= 0 && r->offset + (uint64_t)cl > r->max_total)
    return stream_abort(r, OTAD_ETOOBIG,
                        "the body (%" PRIu64 " bytes from offset %" PRIu64 ") exceeds %" PRIu64
                        " bytes",
                        (uint64_t)cl, r->offset, r->max_total);
  r->stream = STREAM_SINK;
  return 0;
}

static size_t write_stream(http_request *r, char *ptr, size_t n) {
  if (r->stream == STREAM_UNDECIDED) {
    size_t rc = stream_begin(r);
    if (rc) return rc;
  }
  if (r->stream == STREAM_BUFFER) { /* an error reply: keep its start, drop the rest */
    size_t max = r->max_response ? r->max_response : HTTP_DEFAULT_MAX_RESPONSE;
    size_t keep = r->resp_len >= max ? 0 : max - r->resp_len < n ? max - r->resp_len : n;
    if (keep && !buffer_append(r, ptr, keep)) return stream_abort(r, OTAD_ENOMEM, NULL);
    return n;
  }
  if (r->max_total && r->offset + r->received + n > r->max_total)
    return stream_abort(r, OTAD_ETOOBIG, "the body exceeds %" PRIu64 " bytes", r->max_total);
  int rc = r->sink(r, (const uint8_t *)ptr, n);
  if (rc) return stream_abort(r, rc, NULL);
  r->received += n;
  return n;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
  http_request *r = userdata;
  size_t n = size * nmemb, max = r->max_response ? r->max_response : HTTP_DEFAULT_MAX_RESPONSE;
  if (r->sink) return write_stream(r, ptr, n);
  if (r->resp_len + n > max) {
    r->overflow = 1;
    return 0; /* curl aborts with CURLE_WRITE_ERROR */
  }
  if (!buffer_append(r, ptr, n)) return 0;
  return n;
}

/* Whether the connection's TLS session was resumed: asked at the first header line, while
 * the transfer still holds its connection (at the end curl has handed it back). */
static void note_tls_resumption(http_request *r) {
  struct curl_tlssessioninfo *info = NULL; /* libcurl on another TLS library: never set */
  if (curl_easy_getinfo(r->easy, CURLINFO_TLS_SSL_PTR, &info) == CURLE_OK && info &&
      info->backend == CURLSSLBACKEND_WOLFSSL && info->internals)
    r->resumed = wolfSSL_session_reused((WOLFSSL *)info->internals) == 1;
}

/* Copies a header's value (after "name:"), trimmed, into out. */
static void header_value(const char *buf, size_t n, size_t name_len, char *out, size_t cap) {
  const char *v = buf + name_len, *e = buf + n;
  while (v < e && (*v == ' ' || *v == '\t'))
    v++;
  while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
    e--;
  size_t l = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
  memcpy(out, v, l);
  out[l] = 0;
}

/* Every reply's headers: the X-Client-Identity the server saw, TLS resumption at the first
 * line, and for streamed requests the Content-Range start of the current reply. */
static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata) {
  http_request *r = userdata;
  size_t n = size * nitems;
  static const char cr[] = "content-range:", ci[] = "x-client-identity:";
  if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    if (!r->seen_header) note_tls_resumption(r);
    r->seen_header = 1;
    r->range_start = -1; /* a new reply (after a 100 Continue, say) */
    r->identity[0] = 0;
  } else if (n > sizeof(ci) - 1 && strncasecmp(buf, ci, sizeof(ci) - 1) == 0) {
    header_value(buf, n, sizeof(ci) - 1, r->identity, sizeof(r->identity));
  } else if (r->sink && n > sizeof(cr) - 1 && strncasecmp(buf, cr, sizeof(cr) - 1) == 0) {
    char line[128];
    header_value(buf, n, sizeof(cr) - 1, line, sizeof(line));
    unsigned long long start, end;
    if (sscanf(line, "bytes %llu-%llu", &start, &end) == 2 && start <= end && start <= INT64_MAX)
      r->range_start = (int64_t)start;
  }
  return n;
}

static int map_curl_error(CURLcode rc, int overflow) {
  switch (rc) {
  case CURLE_OK: return 0;
  case CURLE_WRITE_ERROR: return overflow ? OTAD_ETOOBIG : OTAD_ENOMEM;
  case CURLE_OPERATION_TIMEDOUT: return OTAD_ETIMEDOUT;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH: return OTAD_EPEER;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_CLIENTCERT: return OTAD_ETLS;
  default: return OTAD_ENET;
  }
}

/* What a finished transfer cost: read before the easy handle goes. */
static void read_timings(http_request *r) {
  curl_off_t total = 0, appconnect = 0;
  long connects = 0;
  if (curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &total) == CURLE_OK && total > 0)
    r->elapsed_us = (uint64_t)total;
  if (curl_easy_getinfo(r->easy, CURLINFO_APPCONNECT_TIME_T, &appconnect) == CURLE_OK)
    r->handshake = appconnect > 0; /* 0 on a reused connection */
  if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
    r->new_connection = connects > 0 || r->handshake;
  if (!r->handshake) r->resumed = 0;
}

static void prune_one_done(http_request *r);

static void finish(http_request *r, int err) {
  http_client *c = r->client;
  read_timings(r);
  curl_multi_remove_handle(c->multi, r->easy);
  curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  r->easy = NULL;
  r->headers = NULL;
  r->client = NULL;
  c->active--;
  free(r->detail); /* already in errmsg (collect_done) */
  r->detail = NULL;
  r->err = err;
  if (c->observer && r->done != prune_one_done) c->observer(c->observer_ctx, r);
  if (r->done) r->done(r);
}

static void collect_done(http_client *c) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    http_request *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    CURLcode rc = m->data.result;
    curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &r->status);
    curl_off_t retry_after = 0;
    if (curl_easy_getinfo(m->easy_handle, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
        retry_after > 0)
      r->retry_after_s = retry_after > 86400 ? 86400 : (uint32_t)retry_after;
    int err = r->abort_err ? r->abort_err : map_curl_error(rc, r->overflow);
    if (!err && r->status < 100) { /* curl took a status line such as "HTTP/1.1 000" */
      err = OTAD_EPROTO;
      snprintf(r->errmsg, sizeof(r->errmsg), "the reply has no valid HTTP status (%ld)", r->status);
    }
    if (r->abort_err && !r->detail)
      snprintf(r->errmsg, sizeof(r->errmsg), "the receiver stopped the transfer: %s",
               otad_strerror(r->abort_err));
    if (err && r->detail) snprintf(r->errmsg, sizeof(r->errmsg), "%s", r->detail);
    if (err && !r->errmsg[0]) snprintf(r->errmsg, sizeof(r->errmsg), "%s", curl_easy_strerror(rc));
    if (err == OTAD_ETOOBIG && !r->abort_err)
      snprintf(r->errmsg, sizeof(r->errmsg), "response larger than %zu bytes",
               r->max_response ? r->max_response : (size_t)HTTP_DEFAULT_MAX_RESPONSE);
    finish(r, err);
  }
}

/* CURLOPT_SSL_CTX_FUNCTION for a key in a PKCS#11 token (see http.h). */
static CURLcode ssl_ctx_p11(CURL *curl, void *ssl_ctx, void *userp) {
  http_request *r = userp;
  otad_errbuf eb = {{0}};
  if (p11_tls_configure(ssl_ctx, r->cert_pem, r->key_pem, &eb) == 0) return CURLE_OK;
  free(r->detail);
  r->detail = strdup(eb.msg); /* curl's own words ("error signaled by ssl ctx callback")
                                  would take the error buffer */
  return CURLE_SSL_CERTPROBLEM;
}

static void set_blob(CURL *e, CURLoption opt, const char *pem) {
  struct curl_blob b = {.data = (void *)pem, .len = strlen(pem), .flags = CURL_BLOB_COPY};
  curl_easy_setopt(e, opt, &b);
}

void http_request_reset(http_request *r) {
  free(r->resp);
  r->resp = NULL;
  r->resp_len = r->resp_cap = 0;
  r->overflow = 0;
  free(r->detail);
  r->detail = NULL;
  r->err = 0;
  r->status = 0;
  r->errmsg[0] = 0;
  r->offset = r->received = 0;
  r->retry_after_s = 0;
  r->elapsed_us = 0;
  r->new_connection = r->handshake = r->resumed = 0;
  r->identity[0] = 0;
  r->seen_header = 0;
  r->abort_err = 0;
  r->stream = STREAM_UNDECIDED;
  r->range_start = -1;
}

/* The TLS session cache of slot (> 0), made on first use; NULL = use the common one. */
static CURLSH *session_shard(http_client *c, uint32_t slot) {
  if (!c->per_shard) return NULL;
  size_t i = (slot - 1) / c->per_shard;
  if (i >= c->nshards) {
    size_t n = c->nshards ? c->nshards : 16;
    while (n <= i)
      n *= 2;
    CURLSH **p = realloc(c->shards, n * sizeof(*p));
    if (!p) return NULL;
    memset(p + c->nshards, 0, (n - c->nshards) * sizeof(*p));
    c->shards = p;
    c->nshards = n;
  }
  if (!c->shards[i]) {
    CURLSH *sh = curl_share_init();
    if (!sh) return NULL;
    if (curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
      curl_share_cleanup(sh);
      return NULL;
    }
    /* The shard's own connection pool: libcurl looks for a connection to reuse by walking
     * every pooled connection to the same host and port, so one pool of 10,000 device
     * connections costs a 10,000-step walk per request (a keep-alive fleet spent 55 % of
     * its CPU there and fell behind). Without it the shard shares sessions only. */
    if (c->shard_pools) curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    c->shards[i] = sh;
  }
  return c->shards[i];
}

int http_client_session_shards(http_client *c, unsigned per_shard, bool pools) {
  CURLSH *probe = curl_share_init();
  int ok =
      probe && curl_share_setopt(probe, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) == CURLSHE_OK;
  if (probe) curl_share_cleanup(probe);
  if (!ok) return OTAD_EINVAL;
  c->per_shard = per_shard == 0 || per_shard > 24 ? 24 : per_shard;
  c->shard_pools = pools;
  return 0;
}

size_t http_client_session_shard_count(const http_client *c) {
  size_t n = 0;
  for (size_t i = 0; i < c->nshards; i++)
    n += c->shards[i] != NULL;
  return n;
}

void http_client_set_observer(http_client *c, http_observer_fn fn, void *ctx) {
  c->observer = fn;
  c->observer_ctx = ctx;
}

void http_client_set_max_connects(http_client *c, long n) {
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, n > 0 ? n : 1L);
}

/* TLS: the peer and its name are verified against the pinned CA only (TLS 1.2 at least);
 * the client identity as blobs, or from a PKCS#11 token through the SSL_CTX callback (then
 * never pooled nor cached, see the file comment). Returns 0 or OTAD_EINVAL. */
static int set_tls(http_client *c, http_request *r, CURL *e) {
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
  curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
  if (r->ca_pem) set_blob(e, CURLOPT_CAINFO_BLOB, r->ca_pem);
  if (r->cert_pem && p11_is_uri(r->key_pem)) {
    if (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_p11) != CURLE_OK)
      return OTAD_EINVAL; /* a TLS backend without SSL_CTX access */
    curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, r);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    return 0;
  }
  if (r->cert_pem && r->key_pem) {
    set_blob(e, CURLOPT_SSLCERT_BLOB, r->cert_pem);
    curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    set_blob(e, CURLOPT_SSLKEY_BLOB, r->key_pem);
    curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
  }
  if (r->fresh_connect) curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  r->fresh_connect = 0;
  if (r->forbid_reuse) curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  if (r->no_tls_session) curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
  if (r->max_idle_s > 0) curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, r->max_idle_s);
  CURLSH *sh = r->tls_cache ? session_shard(c, r->tls_cache) : NULL;
  if (sh) curl_easy_setopt(e, CURLOPT_SHARE, sh);
  return 0;
}

/* Method, headers and body. */
static void set_request(http_request *r, CURL *e) {
  if (r->sink && r->resume_from && strcmp(r->method, "GET") == 0) {
    char range[32];
    snprintf(range, sizeof(range), "%" PRIu64 "-", r->resume_from);
    curl_easy_setopt(e, CURLOPT_RANGE, range); /* curl copies it */
  }
  if (r->content_type) {
    char h[128];
    snprintf(h, sizeof(h), "Content-Type: %s", r->content_type);
    r->headers = curl_slist_append(r->headers, h);
  }
  r->headers = curl_slist_append(r->headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  if (strcmp(r->method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
  }
}

int http_start(http_client *c, http_request *r) {
  if (!r->url || !r->method || r->easy) return OTAD_EINVAL;
  http_request_reset(r);
  CURL *e = curl_easy_init();
  if (!e) return OTAD_ENOMEM;
  r->easy = e;
  r->client = c;
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errmsg);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                   r->timeout_ms < 0 ? 0L
                   : r->timeout_ms   ? r->timeout_ms
                                     : 60000L);
  if (r->low_speed_limit > 0 && r->low_speed_time > 0) {
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, r->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, r->low_speed_time);
  }
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   r->connect_timeout_ms ? r->connect_timeout_ms : 60000L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "otad/" OTAD_VERSION);
  int rc = set_tls(c, r, e);
  if (rc) {
    curl_easy_cleanup(e);
    r->easy = NULL;
    return rc;
  }
  set_request(r, e);
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    r->easy = NULL;
    return OTAD_ENOMEM;
  }
  c->active++;
  return 0;
}

void http_cancel(http_request *r) {
  if (!r->easy) return;
  snprintf(r->errmsg, sizeof(r->errmsg), "cancelled");
  finish(r, OTAD_ECANCELED);
}

size_t http_client_active(const http_client *c) {
  return c->active;
}

typedef struct prune_run {
  http_request *reqs;
  size_t n, left;
  void (*done)(void *);
  void *data;
} prune_run;

static void prune_one_done(http_request *r) {
  prune_run *p = r->data;
  if (--p->left > 0) return;
  for (size_t i = 0; i < p->n; i++)
    http_request_reset(&p->reqs[i]);
  void (*done)(void *) = p->done;
  void *data = p->data;
  free(p->reqs);
  free(p);
  done(data);
}

/* A throwaway request in the pool of tls_cache slot `slot`: refused at once (a closed
 * loopback port), after libcurl pruned that pool. */
static void prune_request(prune_run *p, http_request *r, uint32_t slot) {
  r->method = "GET";
  r->url = "https://127.0.0.1:1/";
  r->tls_cache = slot;
  r->max_idle_s = 1;
  r->forbid_reuse = 1;
  r->no_tls_session = 1;
  r->connect_timeout_ms = 2000;
  r->timeout_ms = 3000;
  r->done = prune_one_done;
  r->data = p;
}

int http_client_prune_idle(http_client *c, void (*done)(void *), void *data) {
  prune_run *p = calloc(1, sizeof(*p));
  size_t n = 1;
  for (size_t i = 0; c->shard_pools && i < c->nshards; i++)
    n += c->shards[i] != NULL;
  if (!p || !(p->reqs = calloc(n, sizeof(*p->reqs)))) {
    free(p);
    return OTAD_ENOMEM;
  }
  p->done = done;
  p->data = data;
  size_t k = 0;
  prune_request(p, &p->reqs[k++], 0); /* the multi handle's own pool */
  for (size_t i = 0; c->shard_pools && i < c->nshards; i++)
    if (c->shards[i]) prune_request(p, &p->reqs[k++], (uint32_t)(i * c->per_shard + 1));
  p->n = p->left = n;
  for (size_t j = 0; j < n; j++)
    if (http_start(c, &p->reqs[j]) != 0) prune_one_done(&p->reqs[j]);
  return 0;
}

static void free_client_cb(uv_handle_t *h) {
  http_client *c = h->data;
  for (size_t i = 0; i < c->nshards; i++)
    if (c->shards[i]) curl_share_cleanup(c->shards[i]);
  free(c->shards);
  free(c);
}

void http_client_close(http_client *c) {
  if (!c) return;
  c->closing = 1;
  /* Cancel what is still running: each request's done() sees OTAD_ECANCELED. */
  CURL **easies = curl_multi_get_handles(c->multi);
  for (size_t i = 0; easies && easies[i]; i++) {
    http_request *r = NULL;
    curl_easy_getinfo(easies[i], CURLINFO_PRIVATE, (char **)&r);
    if (r) http_cancel(r);
  }
  curl_free(easies);
  curl_multi_cleanup(c->multi);
  while (c->socks) {
    sock_ctx *s = c->socks;
    sock_list_remove(c, s);
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, free_handle_cb);
  }
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, free_client_cb);
}
