/* test_events.c - the durable event queue and its flush (states/events.c).
 *
 * A device with an in-memory store queues events; the flush runs against a tiny HTTP
 * server on a thread of this process (plain HTTP on 127.0.0.1) that answers as the test
 * says: 204, a fixed status, or 413 for a batch above a size. Checked: the events' form,
 * the bound on the queue, and what each answer does to the queue.
 */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loopback_server.h"
/* clang-format on */

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "device/device.h"
#include "device/events.h"
#include "states/states.h"

/* ---- the server ------------------------------------------------------------------------ */

#define MAX_POSTS 32

typedef struct server {
  loopback_server lb;
  pthread_mutex_t mu;
  int status;    /* > 0: answer every POST with this status */
  int max_batch; /* > 0: 413 for a POST of more events */
  int posts;     /* what it saw: the number of events in each POST */
  int sizes[MAX_POSTS];
  char path[128];
} server;

static void serve_one(server *s, int c) {
  static char req[1 << 20];
  size_t len = 0, want = 0;
  char *body = NULL;
  while (len < sizeof(req) - 1) {
    ssize_t k = recv(c, req + len, sizeof(req) - 1 - len, 0);
    if (k <= 0) return;
    len += (size_t)k;
    req[len] = 0;
    if (!body && (body = strstr(req, "\r\n\r\n"))) {
      body += 4;
      const char *cl = strcasestr(req, "\r\nContent-Length: ");
      want = cl ? strtoul(cl + 18, NULL, 10) : 0;
    }
    if (body && (size_t)(req + len - body) >= want) break;
  }
  if (!body) return;
  cJSON *a = cJSON_ParseWithLength(body, want);
  int n = cJSON_GetArraySize(a);
  cJSON_Delete(a);
  pthread_mutex_lock(&s->mu);
  sscanf(req, "POST %127s", s->path);
  if (s->posts < MAX_POSTS) s->sizes[s->posts] = n;
  s->posts++;
  int status = s->status ? s->status : s->max_batch && n > s->max_batch ? 413 : 204;
  pthread_mutex_unlock(&s->mu);
  char h[256];
  int hl = status == 204
               ? snprintf(h, sizeof(h), "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
               : snprintf(h, sizeof(h),
                          "HTTP/1.1 %d X\r\nConnection: close\r\n"
                          "Content-Length: 2\r\n\r\n{}",
                          status);
  send(c, h, (size_t)hl, MSG_NOSIGNAL);
}

static void serve_cb(void *ctx, int c) {
  serve_one(ctx, c);
}

static void server_start(server *s) {
  pthread_mutex_init(&s->mu, NULL);
  loopback_start(&s->lb, serve_cb, s);
}

static void server_stop(server *s) {
  loopback_stop(&s->lb);
  pthread_mutex_destroy(&s->mu);
}

/* ---- the device --------------------------------------------------------------------------- */

typedef struct fixture {
  server srv;
  uv_loop_t loop;
  http_client *http;
  otad_config cfg;
  device d;
  int flushed; /* then() was called */
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  server_start(&f->srv);
  uv_loop_init(&f->loop);
  f->http = http_client_new(&f->loop);
  config_init(&f->cfg);
  device_opts o = {.actions = &states_actions,
                   .label = "test",
                   .cfg = &f->cfg,
                   .loop = &f->loop,
                   .http = f->http,
                   .st = store_mem_open(),
                   .seed = 1,
                   .quiet = !getenv("OTAD_TEST_VERBOSE"),
                   .data = f};
  device_init(&f->d, &o);
  snprintf(f->d.ecu_serial, sizeof(f->d.ecu_serial), "ecu-1");
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->srv.lb.port);
  f->d.server_url = strdup(url);
  f->d.upd = calloc(1, sizeof(device_update));
  *state = f;
  return 0;
}

static void device_closed(device *d) {}

static int teardown(void **state) {
  fixture *f = *state;
  device_close(&f->d, device_closed);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  free(f->d.upd);
  f->d.upd = NULL;
  device_free(&f->d);
  http_client_close(f->http);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  config_free(&f->cfg);
  server_stop(&f->srv);
  free(f);
  return 0;
}

static void on_flushed(device *d) {
  fixture *f = d->o.data;
  f->flushed++;
}

static void flush(fixture *f) {
  f->flushed = 0;
  events_flush(&f->d, on_flushed);
  uint64_t t0 = uv_hrtime();
  while (!f->flushed && uv_hrtime() - t0 < 30ull * 1000000000ull)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->flushed, 1);
}

/* The queue as stored (an empty array when there is none). */
static cJSON *queue(fixture *f) {
  char *js = store_read_string(f->d.o.st, STORE_EVENTS);
  cJSON *q = js ? cJSON_Parse(js) : cJSON_CreateArray();
  free(js);
  assert_true(cJSON_IsArray(q));
  return q;
}

static int queued(fixture *f) {
  cJSON *q = queue(f);
  int n = cJSON_GetArraySize(q);
  cJSON_Delete(q);
  return n;
}

static void queue_n(fixture *f, int n) {
  for (int i = 0; i < n; i++) {
    char corr[32];
    snprintf(corr, sizeof(corr), "corr-%d", i);
    events_queue(&f->d, EVENT_DOWNLOAD_STARTED, corr, EVENT_NO_SUCCESS);
  }
}

static const char *str_at(const cJSON *o, const char *a, const char *b) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
  if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_event_form(void **state) {
  fixture *f = *state;
  events_queue(&f->d, EVENT_DOWNLOAD_STARTED, "urn:corr", EVENT_NO_SUCCESS);
  events_queue(&f->d, EVENT_DOWNLOAD_COMPLETED, "urn:corr", EVENT_SUCCEEDED);
  events_queue(&f->d, EVENT_INSTALLATION_COMPLETED, "urn:corr", EVENT_FAILED);
  cJSON *q = queue(f);
  assert_int_equal(cJSON_GetArraySize(q), 3);
  regex_t uuid, when;
  assert_int_equal(regcomp(&uuid,
                           "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                           "[0-9a-f]{12}$",
                           REG_EXTENDED | REG_NOSUB),
                   0);
  assert_int_equal(regcomp(&when, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
                           REG_EXTENDED | REG_NOSUB),
                   0);
  const char *types[] = {"EcuDownloadStarted", "EcuDownloadCompleted", "EcuInstallationCompleted"};
  for (int i = 0; i < 3; i++) {
    const cJSON *e = cJSON_GetArrayItem(q, i);
    assert_int_equal(regexec(&uuid, str_at(e, "id", NULL), 0, NULL, 0), 0);
    assert_int_equal(regexec(&when, str_at(e, "deviceTime", NULL), 0, NULL, 0), 0);
    assert_string_equal(str_at(e, "eventType", "id"), types[i]);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(e, "eventType"), "version");
    assert_true(cJSON_IsNumber(v) && v->valueint == 0);
    assert_string_equal(str_at(e, "event", "ecu"), "ecu-1");
    assert_string_equal(str_at(e, "event", "correlationId"), "urn:corr");
    const cJSON *ok =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "event"), "success");
    if (i == 0)
      assert_null(ok);
    else
      assert_int_equal(cJSON_IsTrue(ok), i == 1);
  }
  assert_string_not_equal(str_at(cJSON_GetArrayItem(q, 0), "id", NULL),
                          str_at(cJSON_GetArrayItem(q, 1), "id", NULL));
  regfree(&uuid);
  regfree(&when);
  cJSON_Delete(q);
}

/* At most EVENTS_MAX_QUEUED: the oldest go first. */
static void test_queue_bounded(void **state) {
  fixture *f = *state;
  queue_n(f, EVENTS_MAX_QUEUED + 5);
  cJSON *q = queue(f);
  assert_int_equal(cJSON_GetArraySize(q), EVENTS_MAX_QUEUED);
  assert_string_equal(str_at(cJSON_GetArrayItem(q, 0), "event", "correlationId"), "corr-5");
  cJSON_Delete(q);
}

static void test_flush_sends_and_empties(void **state) {
  fixture *f = *state;
  flush(f); /* nothing queued: no request */
  assert_int_equal(f->srv.posts, 0);
  queue_n(f, 3);
  flush(f);
  assert_int_equal(f->srv.posts, 1);
  assert_int_equal(f->srv.sizes[0], 3);
  assert_string_equal(f->srv.path, "/events");
  assert_null(store_read_string(f->d.o.st, STORE_EVENTS));
}

/* 413: the batch is halved until the server takes it; then everything goes. */
static void test_flush_413_halves(void **state) {
  fixture *f = *state;
  f->srv.max_batch = 30;
  queue_n(f, EVENTS_MAX_QUEUED);
  flush(f);
  int want[] = {100, 50, 25, 25, 25, 25};
  assert_int_equal(f->srv.posts, 6);
  for (int i = 0; i < 6; i++)
    assert_int_equal(f->srv.sizes[i], want[i]);
  assert_int_equal(queued(f), 0);
}

/* 413 for a single event: it can never be sent, so it is dropped (not the rest). */
static void test_flush_413_single_dropped(void **state) {
  fixture *f = *state;
  f->srv.status = 413;
  queue_n(f, 2);
  flush(f);
  assert_int_equal(f->srv.posts, 3); /* 2, 1 (dropped), 1 (dropped) */
  assert_int_equal(queued(f), 0);
}

static void test_flush_404_drops_queue(void **state) {
  fixture *f = *state;
  f->srv.status = 404;
  queue_n(f, 5);
  flush(f);
  assert_int_equal(f->srv.posts, 1);
  assert_int_equal(queued(f), 0);
}

/* Anything else: kept for the next flush, which sends them. */
static void test_flush_error_keeps(void **state) {
  fixture *f = *state;
  f->srv.status = 503;
  queue_n(f, 5);
  flush(f);
  assert_int_equal(f->srv.posts, 1);
  assert_int_equal(queued(f), 5);
  f->srv.status = 0;
  flush(f);
  assert_int_equal(f->srv.posts, 2);
  assert_int_equal(f->srv.sizes[1], 5);
  assert_int_equal(queued(f), 0);
}

/* No server reachable, or none known yet: kept, and the caller goes on. */
static void test_flush_unreachable_keeps(void **state) {
  fixture *f = *state;
  queue_n(f, 2);
  free(f->d.server_url);
  f->d.server_url = NULL;
  flush(f);
  assert_int_equal(queued(f), 2);
  f->d.server_url = strdup("http://127.0.0.1:1/");
  flush(f);
  assert_int_equal(queued(f), 2);
  assert_int_equal(f->srv.posts, 0);
}

int main(void) {
  http_global_init();
  log_set_level(getenv("OTAD_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERROR + 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_event_form, setup, teardown),
      cmocka_unit_test_setup_teardown(test_queue_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_sends_and_empties, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_413_halves, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_413_single_dropped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_404_drops_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_error_keeps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_unreachable_keeps, setup, teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  http_global_cleanup();
  return rc;
}
