/* test_http_stream.c - http.c's streaming mode against a tiny HTTP/1.1 server.
 *
 * The server runs on a thread of this process on 127.0.0.1 (plain HTTP, one connection at a
 * time, every reply with Connection: close) and serves a fixed pattern of bytes; the path
 * picks its behaviour: honour Range, ignore it, answer a wrong Content-Range, send more
 * than declared, crawl, stop half-way, or fail with 404/503. The client side is the real
 * http_client on a libuv loop with a sink that checks every byte against the pattern at
 * its offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loopback_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/http.h"

#define PAYLOAD 300000 /* bytes of the resource */

static uint8_t pattern(uint64_t i) {
  return (uint8_t)(i * 7 + i / 251);
}

/* ---- the server -------------------------------------------------------------------------- */

typedef struct server {
  loopback_server lb;
  int requests;
  char last_range[64]; /* the Range header of the last request, "" none */
} server;

static void send_pattern(int fd, uint64_t from, uint64_t to, size_t chunk, useconds_t pause) {
  uint8_t buf[16384];
  for (uint64_t off = from; off < to;) {
    size_t n = to - off < chunk ? (size_t)(to - off) : chunk;
    if (n > sizeof(buf)) n = sizeof(buf);
    for (size_t i = 0; i < n; i++)
      buf[i] = pattern(off + i);
    if (loopback_send_all(fd, buf, n) != 0) return;
    off += n;
    if (pause) usleep(pause);
  }
}

static void reply_head(int fd, int status, const char *extra, long long length) {
  char h[512];
  int n = snprintf(h, sizeof(h), "HTTP/1.1 %d X\r\nConnection: close\r\n%s", status, extra);
  if (length >= 0) n += snprintf(h + n, sizeof(h) - n, "Content-Length: %lld\r\n", length);
  n += snprintf(h + n, sizeof(h) - n, "\r\n");
  loopback_send_all(fd, h, (size_t)n);
}

static void serve_one(server *s, int c) {
  char req[4096];
  size_t len = 0;
  while (len < sizeof(req) - 1) {
    ssize_t k = recv(c, req + len, sizeof(req) - 1 - len, 0);
    if (k <= 0) return;
    len += (size_t)k;
    req[len] = 0;
    if (strstr(req, "\r\n\r\n")) break;
  }
  char path[256] = "";
  sscanf(req, "GET %255s", path);
  unsigned long long from = 0;
  s->last_range[0] = 0;
  const char *r = strcasestr(req, "\r\nRange: ");
  if (r) {
    sscanf(r + 9, "%63[^\r]", s->last_range);
    sscanf(s->last_range, "bytes=%llu-", &from);
  }
  s->requests++;
  char extra[256];
  if (!strcmp(path, "/full") || !strcmp(path, "/norange")) {
    if (from && from < PAYLOAD && !strcmp(path, "/full")) {
      snprintf(extra, sizeof(extra), "Content-Range: bytes %llu-%d/%d\r\n", from, PAYLOAD - 1,
               PAYLOAD);
      reply_head(c, 206, extra, PAYLOAD - (long long)from);
      send_pattern(c, from, PAYLOAD, 16384, 0);
    } else if (from >= PAYLOAD && !strcmp(path, "/full")) {
      snprintf(extra, sizeof(extra), "Content-Range: bytes */%d\r\n", PAYLOAD);
      reply_head(c, 416, extra, 0);
    } else {
      reply_head(c, 200, "", PAYLOAD);
      send_pattern(c, 0, PAYLOAD, 16384, 0);
    }
  } else if (!strcmp(path, "/badrange")) {
    snprintf(extra, sizeof(extra), "Content-Range: bytes %llu-%d/%d\r\n", from + 10, PAYLOAD - 1,
             PAYLOAD);
    reply_head(c, 206, extra, PAYLOAD - (long long)from - 10);
    send_pattern(c, from + 10, PAYLOAD, 16384, 0);
  } else if (!strcmp(path, "/long")) { /* declares more than the cap */
    reply_head(c, 200, "", PAYLOAD * 2);
    send_pattern(c, 0, PAYLOAD * 2, 16384, 0);
  } else if (!strcmp(path, "/unsized")) { /* no length: ends when the connection closes */
    reply_head(c, 200, "", -1);
    send_pattern(c, 0, PAYLOAD * 2, 16384, 0);
  } else if (!strcmp(path, "/cut")) { /* promises everything, sends half */
    reply_head(c, 200, "", PAYLOAD);
    send_pattern(c, 0, PAYLOAD / 2, 16384, 0);
  } else if (!strcmp(path, "/slow")) { /* 50 bytes every 100 ms = 500 B/s */
    reply_head(c, 200, "", PAYLOAD);
    send_pattern(c, 0, 2000, 50, 100000);
  } else if (!strcmp(path, "/unavailable")) {
    reply_head(c, 503, "Content-Type: text/plain\r\n", 11);
    loopback_send_all(c, "come back\r\n", 11);
  } else {
    static char big[100000];
    memset(big, 'n', sizeof(big));
    reply_head(c, 404, "Content-Type: text/plain\r\n", sizeof(big));
    loopback_send_all(c, big, sizeof(big));
  }
}

static void serve_cb(void *ctx, int c) {
  serve_one(ctx, c);
}

static int setup(void **state) {
  server *s = calloc(1, sizeof(*s));
  loopback_start(&s->lb, serve_cb, s);
  *state = s;
  return 0;
}

static int teardown(void **state) {
  server *s = *state;
  loopback_stop(&s->lb);
  free(s);
  return 0;
}

/* ---- the client ------------------------------------------------------------------------- */

typedef struct client {
  uv_loop_t loop;
  http_client *http;
  http_request req;
  char url[128];
  int done;
  int sink_calls;
  uint64_t got;          /* bytes the sink saw */
  uint64_t first_offset; /* req.offset at the first sink call */
  long status_at_sink;
  int bad_bytes;
  uint64_t stop_after; /* > 0: the sink fails with OTAD_ENOSPC past this many bytes */
} client;

static int sink(http_request *r, const uint8_t *data, size_t len) {
  client *c = r->data;
  if (c->sink_calls++ == 0) {
    c->first_offset = r->offset;
    c->status_at_sink = r->status;
  }
  uint64_t at = r->offset + r->received;
  for (size_t i = 0; i < len; i++)
    if (data[i] != pattern(at + i)) c->bad_bytes++;
  c->got += len;
  if (c->stop_after && c->got > c->stop_after) return OTAD_ENOSPC;
  return 0;
}

static void on_done(http_request *r) {
  client *c = r->data;
  c->done = 1;
}

static void client_init(client *c, server *s, const char *path) {
  memset(c, 0, sizeof(*c));
  uv_loop_init(&c->loop);
  c->http = http_client_new(&c->loop);
  assert_non_null(c->http);
  snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d%s", s->lb.port, path);
  c->req.method = "GET";
  c->req.url = c->url;
  c->req.sink = sink;
  c->req.done = on_done;
  c->req.data = c;
  c->req.timeout_ms = -1;
}

static void client_run(client *c) {
  assert_int_equal(http_start(c->http, &c->req), 0);
  while (!c->done)
    uv_run(&c->loop, UV_RUN_ONCE);
}

static void client_free(client *c) {
  http_request_reset(&c->req);
  http_client_close(c->http);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&c->loop), 0);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_whole_body_to_sink(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/full");
  c.req.max_total = PAYLOAD;
  client_run(&c);
  assert_int_equal(c.req.err, 0);
  assert_int_equal(c.req.status, 200);
  assert_int_equal(c.got, PAYLOAD);
  assert_int_equal(c.req.received, PAYLOAD);
  assert_int_equal(c.bad_bytes, 0);
  assert_int_equal(c.first_offset, 0);
  assert_int_equal(c.status_at_sink, 200);
  assert_null(c.req.resp); /* nothing buffered */
  assert_string_equal(s->last_range, "");
  client_free(&c);
}

static void test_resume_with_range(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/full");
  c.req.resume_from = 123456;
  c.req.max_total = PAYLOAD;
  client_run(&c);
  assert_int_equal(c.req.err, 0);
  assert_int_equal(c.req.status, 206);
  assert_string_equal(s->last_range, "bytes=123456-");
  assert_int_equal(c.first_offset, 123456);
  assert_int_equal(c.req.offset, 123456);
  assert_int_equal(c.got, PAYLOAD - 123456);
  assert_int_equal(c.bad_bytes, 0);
  client_free(&c);
}

/* A server that ignores Range sends the whole resource: offset 0, nothing lost. */
static void test_range_ignored(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/norange");
  c.req.resume_from = 5000;
  client_run(&c);
  assert_int_equal(c.req.err, 0);
  assert_int_equal(c.req.status, 200);
  assert_string_equal(s->last_range, "bytes=5000-");
  assert_int_equal(c.first_offset, 0);
  assert_int_equal(c.got, PAYLOAD);
  assert_int_equal(c.bad_bytes, 0);
  client_free(&c);
}

static void test_wrong_content_range(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/badrange");
  c.req.resume_from = 1000;
  client_run(&c);
  assert_int_equal(c.req.err, OTAD_EPROTO);
  assert_int_equal(c.sink_calls, 0);
  assert_non_null(strstr(c.req.errmsg, "1010"));
  client_free(&c);
}

static void test_416(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/full");
  c.req.resume_from = PAYLOAD;
  client_run(&c);
  assert_int_equal(c.req.err, 0);
  assert_int_equal(c.req.status, 416);
  assert_int_equal(c.sink_calls, 0);
  client_free(&c);
}

/* Content-Length beyond the cap: refused before a byte reaches the sink. */
static void test_cap_by_content_length(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/long");
  c.req.max_total = PAYLOAD;
  client_run(&c);
  assert_int_equal(c.req.err, OTAD_ETOOBIG);
  assert_int_equal(c.sink_calls, 0);
  assert_non_null(strstr(c.req.errmsg, "300000"));
  client_free(&c);
}

/* No length given: the transfer ends at the first byte past the cap, which never arrives. */
static void test_cap_while_streaming(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/unsized");
  c.req.max_total = PAYLOAD;
  client_run(&c);
  assert_int_equal(c.req.err, OTAD_ETOOBIG);
  assert_true(c.got <= PAYLOAD);
  assert_true(c.got > 0);
  assert_int_equal(c.bad_bytes, 0);
  /* the same cap counts from the resume offset */
  client c2;
  client_init(&c2, s, "/full");
  c2.req.resume_from = 1000;
  c2.req.max_total = PAYLOAD - 1;
  client_run(&c2);
  assert_int_equal(c2.req.err, OTAD_ETOOBIG);
  client_free(&c2);
  client_free(&c);
}

static void test_cut_short(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/cut");
  client_run(&c);
  assert_int_equal(c.req.err, OTAD_ENET);
  assert_int_equal(c.got, PAYLOAD / 2);
  assert_int_equal(c.bad_bytes, 0);
  client_free(&c);
}

static void test_low_speed_floor(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/slow");
  c.req.low_speed_limit = 1000; /* the server sends 500 B/s */
  c.req.low_speed_time = 1;
  uint64_t t0 = uv_hrtime();
  client_run(&c);
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  assert_int_equal(c.req.err, OTAD_ETIMEDOUT);
  assert_true(secs < 4.0);
  assert_true(c.got < 2000);
  client_free(&c);
}

static void test_sink_stops_transfer(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/full");
  c.stop_after = 50000;
  client_run(&c);
  assert_int_equal(c.req.err, OTAD_ENOSPC);
  assert_true(c.got < PAYLOAD);
  assert_non_null(strstr(c.req.errmsg, "no space"));
  client_free(&c);
}

/* Error replies go to resp, capped quietly (the status is what matters). */
static void test_error_body_buffered(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/unavailable");
  client_run(&c);
  assert_int_equal(c.req.err, 0);
  assert_int_equal(c.req.status, 503);
  assert_int_equal(c.sink_calls, 0);
  assert_non_null(c.req.resp);
  assert_string_equal((char *)c.req.resp, "come back\r\n");
  client_free(&c);
  client_init(&c, s, "/missing");
  c.req.max_response = 1000;
  client_run(&c);
  assert_int_equal(c.req.err, 0);
  assert_int_equal(c.req.status, 404);
  assert_int_equal(c.req.resp_len, 1000);
  client_free(&c);
}

/* Without a sink nothing changed: the body is buffered and capped by max_response. */
static void test_buffered_mode_unchanged(void **state) {
  server *s = *state;
  client c;
  client_init(&c, s, "/full");
  c.req.sink = NULL;
  c.req.timeout_ms = 0;
  c.req.max_response = PAYLOAD;
  client_run(&c);
  assert_int_equal(c.req.err, 0);
  assert_int_equal(c.req.resp_len, PAYLOAD);
  for (uint64_t i = 0; i < PAYLOAD; i++)
    if (c.req.resp[i] != pattern(i)) fail_msg("byte %llu differs", (unsigned long long)i);
  assert_string_equal(s->last_range, "");
  client_free(&c);
  client_init(&c, s, "/full");
  c.req.sink = NULL;
  c.req.max_response = 1000;
  c.req.resume_from = 10; /* ignored without a sink */
  client_run(&c);
  assert_int_equal(c.req.err, OTAD_ETOOBIG);
  assert_string_equal(s->last_range, "");
  client_free(&c);
}

int main(void) {
  http_global_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_whole_body_to_sink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resume_with_range, setup, teardown),
      cmocka_unit_test_setup_teardown(test_range_ignored, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_content_range, setup, teardown),
      cmocka_unit_test_setup_teardown(test_416, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cap_by_content_length, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cap_while_streaming, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cut_short, setup, teardown),
      cmocka_unit_test_setup_teardown(test_low_speed_floor, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sink_stops_transfer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_body_buffered, setup, teardown),
      cmocka_unit_test_setup_teardown(test_buffered_mode_unchanged, setup, teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  http_global_cleanup();
  return rc;
}
