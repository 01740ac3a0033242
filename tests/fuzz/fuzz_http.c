/* fuzz_http.c - libFuzzer target: HTTP replies through transport/http.c (curl multi on a
 * libuv loop), buffered and streamed, then through what the agent does with a reply.
 *
 * A server thread in this process listens on 127.0.0.1 and answers every request with the
 * input's bytes as the raw reply (status line, headers, body) and closes the connection.
 * The loop, the client and the listening socket live for the whole run; each input makes
 * two requests on them:
 *   - buffered (a metadata GET): resp is capped at max_response; a 2xx body goes to
 *     uptane_director_root() as polling.c hands it over, any other to the JSON parse of an
 *     error reply ({"code","description"}, as registering.c reads it);
 *   - streamed (a download): body to a sink, with resume_from (a Range request) and
 *     max_total; the sink may refuse part-way.
 * Input: 4 bytes of parameters, then the reply:
 *   [0] flags: 1 buffered request is a PUT with a body; 2 the sink refuses after
 *       (flags >> 4) * 16 bytes
 *   [1] max_response = [1] * 16 (0: the default, 64 KiB)
 *   [2] max_total = [2] * 64 (0: none)
 *   [3] resume_from = [3] (0: no Range)
 * Checked (abort when broken): never more than max_response bytes kept, resp NUL-terminated;
 * the sink sees only a 2xx body, from offset resume_from for a 206, never past max_total,
 * and received counts exactly what it took; an error has a message; the status is 0..999;
 * Retry-After at most a day. FUZZ_HTTP_VERBOSE=1 prints each outcome (to check the seeds).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "transport/http.h"
#include "uptane/uptane.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_http: invariant broken: %s (line %d)\n", #cond, __LINE__);             \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* ---- the server thread ---- */

static pthread_mutex_t reply_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *reply; /* the current input's reply (a copy: the input dies with the call) */
static size_t reply_len;
static int listen_fd;
static char url[64];

static void send_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return; /* the client gave up: fine */
    p += k;
    n -= (size_t)k;
  }
}

static void *serve(void *arg) {
  (void)arg;
  for (;;) {
    int c = accept(listen_fd, NULL, NULL);
    if (c < 0) continue;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    /* read the request head (and a small body, which the PUT sends at once) */
    char req[8192];
    size_t len = 0;
    while (len < sizeof(req) - 1) {
      ssize_t k = recv(c, req + len, sizeof(req) - 1 - len, 0);
      if (k <= 0) break;
      len += (size_t)k;
      req[len] = 0;
      char *end = strstr(req, "\r\n\r\n");
      if (end && (strncmp(req, "GET ", 4) == 0 || strstr(end, "body-end"))) break;
    }
    pthread_mutex_lock(&reply_mu);
    send_all(c, reply, reply_len);
    pthread_mutex_unlock(&reply_mu);
    close(c);
  }
  return NULL;
}

/* ---- the client side ---- */

static uv_loop_t loop;
static int verbose;
static http_client *client;

typedef struct run {
  http_request r;
  int done;
  /* streamed */
  uint64_t took;   /* bytes the sink accepted */
  uint64_t refuse; /* refuse once took would pass this (0: never) */
  int refused;
  long first_status;
} run;

static void on_done(http_request *r) {
  ((run *)r->data)->done = 1;
}

static int sink(http_request *r, const uint8_t *data, size_t len) {
  run *x = r->data;
  CHECK(len > 0 && data != NULL);
  CHECK(r->status >= 200 && r->status < 300);
  if (x->first_status == 0) x->first_status = r->status;
  if (r->status == 206)
    CHECK(r->offset == r->resume_from);
  else
    CHECK(r->offset == 0);
  CHECK(r->received == x->took);
  if (r->max_total) CHECK(r->offset + r->received + len <= r->max_total);
  if (x->refuse && x->took + len > x->refuse) {
    x->refused = 1;
    return OTAD_EIO;
  }
  x->took += len;
  return 0;
}

static void wait_done(run *x) {
  while (!x->done)
    uv_run(&loop, UV_RUN_ONCE);
}

/* What every finished request must look like. */
static void check_common(const http_request *r) {
  CHECK(r->status >= 0 && r->status <= 999);
  CHECK(r->retry_after_s <= 86400);
  CHECK(strnlen(r->errmsg, sizeof(r->errmsg)) < sizeof(r->errmsg));
  if (r->err) CHECK(r->errmsg[0] != 0);
  if (r->resp)
    CHECK(r->resp[r->resp_len] == 0);
  else
    CHECK(r->resp_len == 0);
}

/* The agent's reading of a reply: metadata when 2xx, an error object otherwise. */
static void agent_reads(const http_request *r) {
  if (r->err || !r->resp) return;
  if (r->status >= 200 && r->status < 300) {
    uptane_director d;
    uptane_err err;
    uptane_director_init(&d);
    if (uptane_director_root(&d, (const char *)r->resp, r->resp_len, &err) != 0)
      CHECK(err.fail != UPTANE_OK && err.eb.msg[0]);
    uptane_director_free(&d);
  } else {
    cJSON *o = cJSON_ParseWithLength((const char *)r->resp, r->resp_len);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "code"),
                *s = cJSON_GetObjectItemCaseSensitive(o, "description");
    char code[64], desc[256];
    if (cJSON_IsString(c)) snprintf(code, sizeof(code), "%s", c->valuestring);
    if (cJSON_IsString(s)) snprintf(desc, sizeof(desc), "%s", s->valuestring);
    cJSON_Delete(o);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  http_global_init();
  verbose = getenv("FUZZ_HTTP_VERBOSE") != NULL;
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  CHECK(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
  CHECK(listen(listen_fd, 64) == 0 && getsockname(listen_fd, (struct sockaddr *)&a, &al) == 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/fuzz", ntohs(a.sin_port));
  pthread_t t;
  CHECK(pthread_create(&t, NULL, serve, NULL) == 0);
  pthread_detach(t);
  CHECK(uv_loop_init(&loop) == 0);
  client = http_client_new(&loop);
  CHECK(client != NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  unsigned flags = data[0];
  size_t max_response = (size_t)data[1] * 16;
  uint64_t max_total = (uint64_t)data[2] * 64, resume_from = data[3];
  pthread_mutex_lock(&reply_mu);
  free(reply);
  reply_len = size - 4;
  reply = malloc(reply_len ? reply_len : 1);
  CHECK(reply != NULL);
  memcpy(reply, data + 4, reply_len);
  pthread_mutex_unlock(&reply_mu);

  /* buffered */
  run b;
  memset(&b, 0, sizeof(b));
  b.r.method = flags & 1 ? "PUT" : "GET";
  b.r.url = url;
  if (flags & 1) {
    b.r.content_type = "application/json";
    b.r.body = "{\"x\":\"body-end\"}";
    b.r.body_len = strlen(b.r.body);
  }
  b.r.max_response = max_response;
  b.r.timeout_ms = 5000;
  b.r.connect_timeout_ms = 2000;
  b.r.done = on_done;
  b.r.data = &b;
  CHECK(http_start(client, &b.r) == 0);
  wait_done(&b);
  check_common(&b.r);
  CHECK(b.r.resp_len <= (max_response ? max_response : HTTP_DEFAULT_MAX_RESPONSE));
  if (b.r.err == 0) CHECK(b.r.status > 0);
  agent_reads(&b.r);
  if (verbose)
    fprintf(stderr, "buffered: err %d status %ld kept %zu retry-after %u (%s)\n", b.r.err,
            b.r.status, b.r.resp_len, b.r.retry_after_s, b.r.errmsg);
  http_request_reset(&b.r);

  /* streamed */
  run s;
  memset(&s, 0, sizeof(s));
  s.r.method = "GET";
  s.r.url = url;
  s.r.max_response = max_response;
  s.r.timeout_ms = 5000;
  s.r.connect_timeout_ms = 2000;
  s.r.sink = sink;
  s.r.resume_from = resume_from;
  s.r.max_total = max_total;
  s.refuse = flags & 2 ? (uint64_t)(flags >> 4) * 16 + 1 : 0;
  s.r.done = on_done;
  s.r.data = &s;
  CHECK(http_start(client, &s.r) == 0);
  wait_done(&s);
  check_common(&s.r);
  CHECK(s.r.received == s.took);
  if (max_total) CHECK(s.r.offset + s.r.received <= max_total);
  if (s.refused) CHECK(s.r.err == OTAD_EIO);
  if (s.took && s.r.err == 0) CHECK(s.r.status >= 200 && s.r.status < 300);
  /* an error reply's body is kept (its start) for the caller, never sunk */
  CHECK(s.r.resp_len <= (max_response ? max_response : HTTP_DEFAULT_MAX_RESPONSE));
  if (verbose)
    fprintf(stderr, "streamed: err %d status %ld offset %llu sunk %llu kept %zu (%s)\n", s.r.err,
            s.r.status, (unsigned long long)s.r.offset, (unsigned long long)s.took, s.r.resp_len,
            s.r.errmsg);
  if (s.r.resp_len && s.r.err == 0) CHECK(s.r.status < 200 || s.r.status >= 300);
  http_request_reset(&s.r);
  return 0;
}
