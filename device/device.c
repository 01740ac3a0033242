/* device.c - the runtime of one device (see device.h).
 *
 * device_fire() is the one place a device changes state: it looks the event up in the
 * table, journals the transition, logs it, and runs the action. An action may raise the
 * next event at once (storage answered synchronously); such events wait in a small queue
 * until the current action returns, so actions never nest.
 */
#include "device.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static uint64_t now_ms(const device *d) {
  return uv_now(d->o.loop);
}

void device_log(const device *d, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_msgv(level, d->label, d->o.quiet, fmt, ap);
  va_end(ap);
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
  uv_timer_init(o->loop, &d->retry_timer);
  uv_timer_init(o->loop, &d->poll_timer);
  d->retry_timer.data = d->poll_timer.data = d;
  d->handles_open = 2;
  d->req.data = d;
  d->req.max_idle_s = o->http_max_idle_s;
  d->req.tls_cache = o->tls_cache;
}

uint64_t device_polling_period_ms(const device *d) {
  return (uint64_t)(d->o.cfg->polling_sec > 0 ? d->o.cfg->polling_sec : 10) * 1000;
}

/* One polling interval, +- 10 %. */
static uint64_t cycle_delay_ms(device *d) {
  uint64_t period = device_polling_period_ms(d);
  return period - period / 10 + rng_below(&d->rng, period / 5 + 1);
}

uint64_t device_poll_delay_ms(device *d) {
  if (d->o.poll_ms) {
    double j = d->o.poll_jitter > 0 && d->o.poll_jitter < 1 ? d->o.poll_jitter : 0;
    uint64_t spread = (uint64_t)(d->o.poll_ms * j);
    return d->o.poll_ms - spread + rng_below(&d->rng, 2 * spread + 1);
  }
  return cycle_delay_ms(d);
}

void device_start(device *d) {
  d->t_start_ms = now_ms(d);
  device_fire(d, EV_START, NULL);
}

/* ---- the timers, one per purpose ---- */

static void on_retry_timer(uv_timer_t *t) {
  device *d = t->data;
  device_fire(d, EV_RETRY, NULL);
}

static void on_poll_timer(uv_timer_t *t) {
  device *d = t->data;
  device_fire(d, EV_POLL, NULL);
}

static void on_watch_timer(uv_timer_t *t) {
  device *d = t->data;
  if (d->watch_cb) d->watch_cb(d);
}

void device_poll_in(device *d, uint64_t delay_ms) {
  uv_timer_start(&d->poll_timer, on_poll_timer, delay_ms, 0);
}

int device_watch_start(device *d, uint64_t period_ms, void (*cb)(device *d)) {
  if (!d->watch_timer) {
    d->watch_timer = malloc(sizeof(*d->watch_timer));
    if (!d->watch_timer) return OTAD_ENOMEM;
    uv_timer_init(d->o.loop, d->watch_timer);
    d->watch_timer->data = d;
    d->handles_open++;
  }
  d->watch_cb = cb;
  uv_timer_start(d->watch_timer, on_watch_timer, period_ms, period_ms);
  return 0;
}

void device_watch_stop(device *d) {
  if (d->watch_timer) uv_timer_stop(d->watch_timer);
}

void device_backoff(device *d) {
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
  uv_update_time(d->o.loop);
  uv_timer_start(&d->retry_timer, on_retry_timer, delay, 0);
}

void device_wait_cycle(device *d) {
  if (d->o.one_shot) {
    device_fire(d, EV_GIVE_UP, d->eb.msg);
    return;
  }
  uint64_t delay = cycle_delay_ms(d);
  device_log(d, LOG_WARN, "%s; trying again in %.0f s",
             d->eb.msg[0] ? d->eb.msg : otad_strerror(d->last_err), delay / 1000.0);
  uv_timer_start(&d->retry_timer, on_retry_timer, delay, 0);
}

static void apply(device *d, enum dev_event ev, const char *detail) {
  transition t;
  if (!machine_step(d->state, ev, &t)) {
    device_log(d, LOG_ERROR, "bug: event '%s' is not handled in state '%s'", machine_event_name(ev),
               machine_state_name(d->state));
    return;
  }
  if (d->o.jr) journal_record(d->o.jr, d->label, d->id, &t, detail);
  if (t.from != t.to)
    device_log(d, LOG_DEBUG, "%s --%s--> %s", machine_state_name(t.from), machine_event_name(ev),
               machine_state_name(t.to));
  d->state = t.to;
  /* a verified document is progress within a cycle, not the cycle's end: retries of a
   * cycle that keeps failing later on must still add up to max_retries */
  if (ev != EV_TRANSIENT_ERROR && ev != EV_RETRY && ev != EV_START && ev != EV_KEY_READY &&
      ev != EV_METADATA) {
    d->failures = 0;
    backoff_reset(&d->bo);
  }
  if (d->o.on_step) d->o.on_step(d, &t);
  if (d->closing) return;
  device_action_fn fn = (unsigned)t.action < ACT__COUNT ? d->o.actions->run[t.action] : NULL;
  if (fn) fn(d);
}

void device_fire(device *d, enum dev_event ev, const char *detail) {
  if (d->dispatching) {
    /* An action raises at most one event before it returns; a second is a bug. */
    if (d->pending >= 0) {
      device_log(d, LOG_ERROR, "bug: '%s' raised while '%s' waits; dropped", machine_event_name(ev),
                 machine_event_name(d->pending));
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
  while (bl > 0 && base[bl - 1] == '/')
    bl--;
  while (*path == '/')
    path++;
  char *u = malloc(bl + strlen(path) + 2);
  if (u) sprintf(u, "%.*s/%s", (int)bl, base, path);
  return u;
}

/* configured ? configured/path : {server}/dir/path */
static char *service_url(const device *d, const char *configured, const char *dir,
                         const char *path) {
  if (configured) return device_url(configured, path);
  if (!d->server_url) return NULL;
  char *base = device_url(d->server_url, dir);
  char *u = base ? device_url(base, path) : NULL;
  free(base);
  return u;
}

char *device_director_url(const device *d, const char *path) {
  return service_url(d, d->o.cfg->director_server, "director", path);
}

char *device_repo_url(const device *d, const char *path) {
  return service_url(d, d->o.cfg->repo_server, "repo", path);
}

/* ---- shutdown ---- */

static void maybe_closed(device *d) {
  if (!d->closing || d->work_busy || d->handles_open || !d->close_cb) return;
  void (*cb)(device *) = d->close_cb;
  d->close_cb = NULL;
  cb(d);
}

static void on_timer_closed(uv_handle_t *h) {
  device *d = h->data;
  d->handles_open--;
  maybe_closed(d);
}

void device_work_finished(device *d) {
  d->work_busy = false;
  maybe_closed(d);
}

static void work_free(device_work *w) {
  free(w->in);
  tls_creds_free(&w->creds);
  free(w);
}

static void work_run(uv_work_t *req) {
  device_work *w = container_of(req, device_work, req);
  w->work(w);
}

static void work_after(uv_work_t *req, int status) {
  device_work *w = container_of(req, device_work, req);
  device *d = w->d;
  if (d->closing || status == UV_ECANCELED) {
    work_free(w);
    device_work_finished(d);
    return;
  }
  d->work_busy = false;
  w->done(d, w); /* may queue the next job */
  work_free(w);
}

int device_queue_work(device *d, void (*work)(device_work *w),
                      void (*done)(device *d, device_work *w), uint8_t *in, size_t in_len) {
  device_work *w = calloc(1, sizeof(*w));
  if (!w) {
    free(in);
    return OTAD_ENOMEM;
  }
  w->d = d;
  w->work = work;
  w->done = done;
  w->in = in;
  w->in_len = in_len;
  d->work_busy = true;
  if (uv_queue_work(d->o.loop, &w->req, work_run, work_after) != 0) {
    d->work_busy = false;
    work_free(w);
    return OTAD_ENOMEM;
  }
  return 0;
}

void device_close(device *d, void (*cb)(device *d)) {
  d->closing = true;
  d->close_cb = cb;
  if (d->req.easy) http_cancel(&d->req);
  uv_close((uv_handle_t *)&d->retry_timer, on_timer_closed);
  uv_close((uv_handle_t *)&d->poll_timer, on_timer_closed);
  if (d->watch_timer) uv_close((uv_handle_t *)d->watch_timer, on_timer_closed);
}

void device_free(device *d) {
  http_request_reset(&d->req);
  free(d->req_body);
  free(d->req_url);
  free(d->server_url);
  tls_creds_free(&d->own_prov);
  tls_creds_free(&d->creds);
  keys_free(&d->ecu_key);
  free(d->watch_timer);
  d->watch_timer = NULL;
  device_update_free(d);
  store_close(d->o.st);
  d->o.st = NULL;
}
