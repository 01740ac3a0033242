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

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "p11.h"

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
};

void http_global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static void sock_list_remove(http_client *c, sock_ctx *s) {
  if (s->prev) s->prev->next = s->next;
  else c->socks = s->next;
  if (s->next) s->next->prev = s->prev;
}

static void free_handle_cb(uv_handle_t *h) { free(h->data); }

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
  if (timeout_ms < 0) uv_timer_stop(&c->timer);
  else uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
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
    while (cap < r->resp_len + n + 1) cap *= 2;
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
    return stream_abort(r, OTAD_ETOOBIG, "the body (%" PRIu64 " bytes from offset %" PRIu64
                        ") exceeds %" PRIu64 " bytes", (uint64_t)cl, r->offset, r->max_total);
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

/* Streamed requests: remembers the Content-Range start of the current reply. */
static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata) {
  http_request *r = userdata;
  size_t n = size * nitems;
  static const char cr[] = "content-range:";
  if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    r->range_start = -1; /* a new reply (after a 100 Continue, say) */
  } else if (n > sizeof(cr) - 1 && strncasecmp(buf, cr, sizeof(cr) - 1) == 0) {
    char line[128];
    size_t l = n - (sizeof(cr) - 1) < sizeof(line) - 1 ? n - (sizeof(cr) - 1) : sizeof(line) - 1;
    memcpy(line, buf + sizeof(cr) - 1, l);
    line[l] = 0;
    unsigned long long start, end;
    if (sscanf(line, " bytes %llu-%llu", &start, &end) == 2 && start <= end &&
        start <= INT64_MAX)
      r->range_start = (int64_t)start;
  }
  return n;
}

static int map_curl_error(CURLcode rc, int overflow) {
  switch (rc) {
    case CURLE_OK:
      return 0;
    case CURLE_WRITE_ERROR:
      return overflow ? OTAD_ETOOBIG : OTAD_ENOMEM;
    case CURLE_OPERATION_TIMEDOUT:
      return OTAD_ETIMEDOUT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      return OTAD_EPEER;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CLIENTCERT:
      return OTAD_ETLS;
    default:
      return OTAD_ENET;
  }
}

static void finish(http_request *r, int err) {
  http_client *c = r->client;
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
  r->abort_err = 0;
  r->stream = STREAM_UNDECIDED;
  r->range_start = -1;
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
                   r->timeout_ms < 0 ? 0L : r->timeout_ms ? r->timeout_ms : 60000L);
  if (r->low_speed_limit > 0 && r->low_speed_time > 0) {
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, r->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, r->low_speed_time);
  }
  if (r->sink) {
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    if (r->resume_from && strcmp(r->method, "GET") == 0) {
      char range[32];
      snprintf(range, sizeof(range), "%" PRIu64 "-", r->resume_from);
      curl_easy_setopt(e, CURLOPT_RANGE, range); /* curl copies it */
    }
  }
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   r->connect_timeout_ms ? r->connect_timeout_ms : 60000L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "otad/" OTAD_VERSION);
  /* TLS: verify peer and host against the pinned CA only; TLS 1.2 at least. */
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
  curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
  if (r->ca_pem) set_blob(e, CURLOPT_CAINFO_BLOB, r->ca_pem);
  if (r->cert_pem && p11_is_uri(r->key_pem)) {
    if (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_p11) != CURLE_OK) {
      curl_easy_cleanup(e);
      r->easy = NULL;
      return OTAD_EINVAL; /* a TLS backend without SSL_CTX access */
    }
    curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, r);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
  } else if (r->cert_pem && r->key_pem) {
    set_blob(e, CURLOPT_SSLCERT_BLOB, r->cert_pem);
    curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    set_blob(e, CURLOPT_SSLKEY_BLOB, r->key_pem);
    curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
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

size_t http_client_active(const http_client *c) { return c->active; }

static void free_client_cb(uv_handle_t *h) {
  http_client *c = h->data;
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
