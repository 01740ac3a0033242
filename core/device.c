/* device.c - the runtime of one device (see device.h).
 *
 * device_fire() is the one place a device changes state: it looks the event up in the
 * table, journals the transition, logs it, and runs the action. An action may raise the
 * next event at once (storage answered synchronously); such events wait in a small queue
 * until the current action returns, so actions never nest.
 */
#include "device.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../states/installing.h"
#include "../states/states.h"
#include "log.h"

static uint64_t now_ms(const device *d) { return uv_now(d->o.loop); }

void device_log(const device *d, int level, const char *fmt, ...) {
  if (level < log_get_level()) return;
  if (d->o.quiet && level < LOG_WARN) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  log_msg(level, d->label, "%s", msg);
}

void device_init(device *d, const device_opts *o) {
  memset(d, 0, sizeof(*d));
  d->o = *o;
  snprintf(d->label, sizeof(d->label), "%s", o->label ? o->label : "device");
  d->state = ST_UNPROVISIONED;
  d->pending = -1;
  rng_seed(&d->rng, o->seed);
  backoff_init(&d->bo, o->retry_base_ms ? o->retry_base_ms : 1000,
               o->retry_cap_ms ? o->retry_cap_ms : 60000);
  uv_timer_init(o->loop, &d->timer);
  d->timer.data = d;
  d->req.data = d;
  d->req.max_idle_s = o->http_max_idle_s;
  d->req.tls_cache = o->tls_cache;
}

uint64_t device_poll_delay_ms(device *d) {
  if (d->o.poll_ms) {
    double j = d->o.poll_jitter > 0 && d->o.poll_jitter < 1 ? d->o.poll_jitter : 0;
    uint64_t spread = (uint64_t)(d->o.poll_ms * j);
    return d->o.poll_ms - spread + rng_below(&d->rng, 2 * spread + 1);
  }
  uint64_t period = (uint64_t)(d->o.cfg->polling_sec > 0 ? d->o.cfg->polling_sec : 10) * 1000;
  return period - period / 10 + rng_below(&d->rng, period / 5 + 1); /* +-10 % */
}

void device_start(device *d) {
  d->t_start_ms = now_ms(d);
  device_fire(d, EV_START, NULL);
}

static void on_retry_timer(uv_timer_t *t) {
  device *d = t->data;
  device_fire(d, EV_RETRY, NULL);
}

static void action_backoff(device *d) {
  d->failures++;
  if (d->o.max_retries >= 0 && d->failures > d->o.max_retries) {
    char why[600];
    snprintf(why, sizeof(why), "gave up after %d failed attempts: %s", d->failures,
             d->eb.msg[0] ? d->eb.msg : otad_strerror(d->last_err));
    snprintf(d->eb.msg, sizeof(d->eb.msg), "%s", why);
    device_fire(d, EV_GIVE_UP, d->eb.msg);
    return;
  }
  uint32_t delay = backoff_next(&d->bo, &d->rng);
  /* A server that says when to come back (503/429 + Retry-After) is believed, up to an
   * hour, with up to 10 % added so a fleet told the same instant does not return in step. */
  const char *why = "";
  uint32_t ra = d->req.status ? d->req.retry_after_s : 0;
  if (ra) {
    uint64_t ra_ms = (uint64_t)(ra > 3600 ? 3600 : ra) * 1000;
    ra_ms += rng_below(&d->rng, ra_ms / 10 + 1);
    if (ra_ms > delay) {
      delay = (uint32_t)ra_ms;
      why = " as the server asked (Retry-After)";
    }
  }
  device_log(d, LOG_WARN, "%s; retrying in %.1f s%s (attempt %d)",
             d->eb.msg[0] ? d->eb.msg : otad_strerror(d->last_err), delay / 1000.0, why,
             d->failures + 1);
  /* The loop's clock is from before this reply was handled: a delay armed on it would end
   * early by however long that took (0.4 s seen under valgrind), before a Retry-After. */
  uv_update_time(d->timer.loop);
  uv_timer_start(&d->timer, on_retry_timer, delay, 0);
}

/* A failure that no quick retry can mend (missing files): try again next polling cycle. */
static void action_wait_cycle(device *d) {
  if (d->o.one_shot) {
    device_fire(d, EV_GIVE_UP, d->eb.msg);
    return;
  }
  uint64_t period = (uint64_t)(d->o.cfg->polling_sec > 0 ? d->o.cfg->polling_sec : 10) * 1000;
  uint64_t delay = period - period / 10 + rng_below(&d->rng, period / 5 + 1); /* +-10 % */
  device_log(d, LOG_WARN, "%s; trying again in %.0f s",
             d->eb.msg[0] ? d->eb.msg : otad_strerror(d->last_err), delay / 1000.0);
  uv_timer_start(&d->timer, on_retry_timer, delay, 0);
}

static void run_action(device *d, enum dev_action a) {
  switch (a) {
    case ACT_NONE:
      break;
    case ACT_INSPECT:
      unprovisioned_inspect(d);
      break;
    case ACT_REGISTER:
      registering_register(d);
      break;
    case ACT_NEW_ID:
      registering_new_id(d);
      break;
    case ACT_BACKOFF:
      action_backoff(d);
      break;
    case ACT_WAIT_CYCLE:
      action_wait_cycle(d);
      break;
    case ACT_PREPARE_KEY:
      ecu_registering_prepare_key(d);
      break;
    case ACT_REGISTER_ECUS:
      ecu_registering_register(d);
      break;
    case ACT_FINISH:
      d->t_done_ms = now_ms(d);
      provisioned_finish(d);
      break;
    case ACT_POLL:
      polling_poll(d);
      break;
    case ACT_IDLE:
      polling_idle(d);
      break;
    case ACT_REPORT:
      polling_report(d);
      break;
    case ACT_DOWNLOAD:
      downloading_start(d);
      break;
    case ACT_INSTALL:
      installing_start(d);
      break;
    case ACT_COMPLETE:
      installing_complete(d);
      break;
    case ACT_FAIL:
      d->t_done_ms = now_ms(d);
      failed_finish(d);
      break;
    case ACT__COUNT:
      break;
  }
}

static void apply(device *d, enum dev_event ev, const char *detail) {
  transition t;
  if (!machine_step(d->state, ev, &t)) {
    device_log(d, LOG_ERROR, "bug: event '%s' is not handled in state '%s'",
               machine_event_name(ev), machine_state_name(d->state));
    return;
  }
  if (d->o.jr) journal_record(d->o.jr, d->label, d->id, &t, detail);
  if (t.from != t.to)
    device_log(d, LOG_DEBUG, "%s --%s--> %s", machine_state_name(t.from),
               machine_event_name(ev), machine_state_name(t.to));
  d->state = t.to;
  if (ev != EV_TRANSIENT_ERROR && ev != EV_RETRY && ev != EV_START && ev != EV_KEY_READY) {
    d->failures = 0;
    backoff_reset(&d->bo);
  }
  if (t.action == ACT_IDLE && !d->req.easy) {
    /* between polls a device holds no request: the last URL and body go */
    free(d->req_body);
    free(d->req_url);
    d->req_body = d->req_url = NULL;
    d->req.url = NULL;
    d->req.body = NULL;
  }
  if (t.action == ACT_POLL && d->o.connect_per_poll) d->req.fresh_connect = 1;
  if (d->o.on_step) d->o.on_step(d, &t);
  if (d->closing) return;
  run_action(d, t.action);
}

void device_fire(device *d, enum dev_event ev, const char *detail) {
  if (d->dispatching) {
    /* An action raises at most one event before it returns; a second is a bug. */
    if (d->pending >= 0) {
      device_log(d, LOG_ERROR, "bug: '%s' raised while '%s' waits; dropped",
                 machine_event_name(ev), machine_event_name(d->pending));
      return;
    }
    d->pending = ev;
    d->pending_is_error = detail == d->eb.msg;
    snprintf(d->pending_detail, sizeof(d->pending_detail), "%s",
             detail && !d->pending_is_error ? detail : "");
    return;
  }
  d->dispatching = true;
  apply(d, ev, detail);
  while (d->pending >= 0) {
    enum dev_event next = (enum dev_event)d->pending;
    d->pending = -1;
    char detail_copy[sizeof(d->pending_detail)];
    memcpy(detail_copy, d->pending_detail, sizeof(detail_copy));
    apply(d, next, d->pending_is_error ? d->eb.msg : detail_copy);
  }
  d->dispatching = false;
}

void device_fail_with(device *d, enum dev_event ev, int err, const char *fmt, ...) {
  char msg[sizeof(d->eb.msg)]; /* the arguments may point into d->eb.msg itself */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  memcpy(d->eb.msg, msg, sizeof(msg));
  d->last_err = err;
  device_fire(d, ev, d->eb.msg);
}

char *device_url(const char *base, const char *path) {
  size_t bl = strlen(base);
  while (bl > 0 && base[bl - 1] == '/') bl--;
  while (*path == '/') path++;
  char *u = malloc(bl + strlen(path) + 2);
  if (u) sprintf(u, "%.*s/%s", (int)bl, base, path);
  return u;
}

/* ---- shutdown ---- */

static void maybe_closed(device *d) {
  if (!d->closing || d->work_busy || !d->timer_closed || !d->close_cb) return;
  void (*cb)(device *) = d->close_cb;
  d->close_cb = NULL;
  cb(d);
}

static void on_timer_closed(uv_handle_t *h) {
  device *d = h->data;
  d->timer_closed = true;
  maybe_closed(d);
}

void device_work_finished(device *d) {
  d->work_busy = false;
  maybe_closed(d);
}

void device_close(device *d, void (*cb)(device *d)) {
  d->closing = true;
  d->close_cb = cb;
  if (d->req.easy) http_cancel(&d->req);
  uv_timer_stop(&d->timer);
  uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

void device_free(device *d) {
  http_request_reset(&d->req);
  free(d->req_body);
  free(d->req_url);
  free(d->server_url);
  tls_creds_free(&d->own_prov);
  tls_creds_free(&d->creds);
  tls_creds_free(&d->work_creds);
  free(d->work_in);
  keys_free(&d->ecu_key);
  polling_free(d);
  store_close(d->o.st);
  d->o.st = NULL;
}
