/* events.c - the durable event queue and its flush (see events.h).
 *
 * The queue is one JSON array in the store, rewritten atomically on every change, so a
 * crash keeps either the old or the new queue, never half of one. It is small (at most
 * EVENTS_MAX_QUEUED events of a few hundred bytes), so it is read whole whenever it is
 * used instead of being held in memory: a device that is not updating pays nothing.
 *
 * polling.c flushes after every manifest the server accepted: the server is reachable
 * then, so a server that is down costs one failed request per cycle (the manifest's),
 * not two. Only the oldest events_in_flight events are removed after a 2xx, and only when
 * the queue still starts with the event that was sent first; the server stores an event
 * ID once, so an event sent twice (a crash between the answer and the removal) is
 * harmless.
 */
#include "events.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../core/log.h"
#include "../core/utf8.h"
#include "request.h"

void events_uuid4(device *d, char out[37]) {
  uint8_t b[16];
  if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
    /* no kernel entropy yet (early boot): an ID needs uniqueness, not secrecy */
    for (size_t i = 0; i < sizeof(b); i++)
      b[i] = (uint8_t)rng_next(&d->rng);
  }
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10 */
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

/* The queue, or an empty array when there is none (or it is unreadable: it is dropped). */
static cJSON *load_queue(device *d) {
  char *js = store_read_string(d->o.st, STORE_EVENTS);
  cJSON *q = js ? cJSON_Parse(js) : NULL;
  if (js && !cJSON_IsArray(q))
    device_log(d, LOG_WARN, "the stored event queue (%s) is not a JSON array; dropped",
               STORE_EVENTS);
  free(js);
  if (!cJSON_IsArray(q)) {
    cJSON_Delete(q);
    q = cJSON_CreateArray();
  }
  return q;
}

/* Stores q (removes the file when it is empty). Returns 0 or an error (logged). */
static int save_queue(device *d, const cJSON *q) {
  otad_errbuf eb = {{0}};
  int rc;
  if (cJSON_GetArraySize(q) == 0) {
    rc = store_remove(d->o.st, STORE_EVENTS, &eb);
  } else {
    char *js = cJSON_PrintUnformatted(q);
    rc = js ? store_write(d->o.st, STORE_EVENTS, js, strlen(js), false, &eb)
            : otad_fail(&eb, OTAD_ENOMEM, "out of memory");
    free(js);
  }
  if (rc) device_log(d, LOG_WARN, "could not store the event queue: %s", eb.msg);
  return rc;
}

void events_queue(device *d, const char *type, const char *correlation_id,
                  enum event_success success) {
  char id[37], when[32];
  events_uuid4(d, id);
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);

  cJSON *ev = cJSON_CreateObject();
  cJSON_AddStringToObject(ev, "id", id);
  cJSON_AddStringToObject(ev, "deviceTime", when);
  cJSON *et = cJSON_AddObjectToObject(ev, "eventType");
  cJSON_AddStringToObject(et, "id", type);
  cJSON_AddNumberToObject(et, "version", 0);
  cJSON *body = cJSON_AddObjectToObject(ev, "event");
  cJSON_AddStringToObject(body, "ecu", d->ecu_serial);
  cJSON_AddStringToObject(body, "correlationId", correlation_id ? correlation_id : "");
  if (success != EVENT_NO_SUCCESS) cJSON_AddBoolToObject(body, "success", success);
  utf8_repair_json(ev); /* a correlation ID cut mid-character stays valid JSON */

  cJSON *q = load_queue(d);
  int dropped = 0;
  while (cJSON_GetArraySize(q) >= EVENTS_MAX_QUEUED) {
    cJSON_DeleteItemFromArray(q, 0);
    dropped++;
  }
  if (dropped)
    device_log(d, LOG_WARN, "event queue full (%d events): dropped the oldest %d",
               EVENTS_MAX_QUEUED, dropped);
  cJSON_AddItemToArray(q, ev);
  if (save_queue(d, q) == 0)
    device_log(d, LOG_DEBUG, "queued event %s%s (%d waiting)", type,
               success == EVENT_NO_SUCCESS ? ""
               : success                   ? " success"
                                           : " failure",
               cJSON_GetArraySize(q));
  cJSON_Delete(q);
}

/* ---- the flush ---- */

static void flush_next(device *d);

static void flush_end(device *d) {
  void (*then)(device *) = d->upd->events_then;
  d->upd->events_then = NULL;
  d->upd->events_in_flight = 0;
  if (then) then(d);
}

/* Removes the n oldest events, if the queue still starts with the first one sent; n = -1
 * removes every event. Returns 0 when the queue was changed and stored. */
static int drop_oldest(device *d, int n) {
  cJSON *q = load_queue(d);
  const cJSON *first = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(q, 0), "id");
  int rc = -1;
  if (n >= 0 &&
      (!cJSON_IsString(first) || strcmp(first->valuestring, d->upd->events_first_id) != 0)) {
    device_log(d, LOG_WARN, "the event queue changed while it was sent; kept as it is");
  } else {
    if (n < 0 || n > cJSON_GetArraySize(q)) n = cJSON_GetArraySize(q);
    for (int i = 0; i < n; i++)
      cJSON_DeleteItemFromArray(q, 0);
    rc = save_queue(d, q);
  }
  cJSON_Delete(q);
  return rc;
}

static void on_events_sent(http_request *r) {
  device *d = r->data;
  if (r->err == OTAD_ECANCELED) return;
  device_update *u = d->upd;
  int err = r->err, n = u->events_in_flight;
  long status = r->status;
  char why[300];
  snprintf(why, sizeof(why), "%s", err ? r->errmsg : "");
  http_request_reset(r);
  if (!err && status >= 200 && status < 300) {
    device_log(d, LOG_INFO, "sent %d event%s to the server", n, n == 1 ? "" : "s");
    if (drop_oldest(d, n) == 0) {
      flush_next(d);
      return;
    }
  } else if (!err && status == 404) {
    device_log(d, LOG_WARN,
               "the server has no events endpoint (HTTP 404): the event queue "
               "is dropped");
    drop_oldest(d, -1);
  } else if (!err && status == 413) {
    if (n > 1) {
      u->events_batch = n / 2;
      device_log(d, LOG_INFO, "the server refused %d events at once (HTTP 413); sending %d", n,
                 u->events_batch);
      flush_next(d);
      return;
    }
    device_log(d, LOG_WARN, "the server refused an event on its own (HTTP 413); dropped");
    if (drop_oldest(d, 1) == 0) {
      flush_next(d);
      return;
    }
  } else if (err) {
    device_log(d, LOG_WARN, "events not sent (%s: %s); kept for the next cycle", otad_strerror(err),
               why);
  } else {
    device_log(d, LOG_WARN, "events not sent (HTTP %ld); kept for the next cycle", status);
  }
  flush_end(d);
}

/* Sends the oldest events_batch events, or ends the flush. */
static void flush_next(device *d) {
  device_update *u = d->upd;
  if (!d->server_url) { /* nowhere to send them yet */
    flush_end(d);
    return;
  }
  cJSON *q = load_queue(d);
  int n = cJSON_GetArraySize(q);
  if (n == 0) {
    cJSON_Delete(q);
    flush_end(d);
    return;
  }
  if (n > u->events_batch) n = u->events_batch;
  cJSON *batch = cJSON_CreateArray();
  const cJSON *ev = q->child;
  for (int i = 0; i < n && ev; i++, ev = ev->next)
    cJSON_AddItemToArray(batch, cJSON_Duplicate(ev, true));
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(q->child, "id");
  snprintf(u->events_first_id, sizeof(u->events_first_id), "%s",
           cJSON_IsString(id) ? id->valuestring : "");
  cJSON_Delete(q);
  char *body = cJSON_PrintUnformatted(batch);
  cJSON_Delete(batch);
  char *url = device_url(d->server_url, "events");
  if (!body || !url) {
    free(body);
    free(url);
    device_log(d, LOG_WARN, "events not sent: out of memory");
    flush_end(d);
    return;
  }
  u->events_in_flight = n;
  int rc = device_request(d, "POST", url, body, "application/json", 0, &d->creds, on_events_sent);
  if (rc) {
    device_log(d, LOG_WARN, "events not sent: %s", otad_strerror(rc));
    flush_end(d);
  }
}

void events_flush(device *d, void (*then)(device *d)) {
  d->upd->events_then = then;
  d->upd->events_batch = EVENTS_MAX_QUEUED;
  flush_next(d);
}
