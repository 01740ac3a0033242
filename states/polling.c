/* polling.c - the update cycle: tell the director what is installed, learn what it wants.
 *
 * One cycle: PUT the signed manifest (carrying the installation report of the last
 * attempt, if one waits), then walk the metadata, one GET at a time: the director's root
 * chain (1.root.json on first use, then N+1 until 404) and targets.json; when the director
 * assigns the primary ECU something new, the image repository's root chain, timestamp,
 * snapshot and targets (each skipped when the parent says it is unchanged) and any
 * delegations the target needs. Which document comes next is decided by the walk
 * (uptane/walk.h, no I/O of its own); this file fetches, stores and journals. Every
 * document is verified before it is trusted and stored (atomically, so a restart keeps
 * the trusted state); a document that fails leaves the trusted state as it was and is
 * reported as VERIFICATION_FAILED. Each document verified (or root chain ended) is a
 * journal row of its own (metadata -> walk), so a replay shows where a cycle stopped.
 *
 * After every manifest the server accepts, the queued events (events.c) and the device
 * data that changed (device_data.c: hardware, installed target, network, config) are sent
 * before the cycle goes on; neither can fail the cycle. The first poll of a run also
 * finishes an installation that waited for a reboot (rebooted -> installing.c's
 * complete), and every poll leaves a target that still waits for one alone. `otad check`
 * (device_opts.check_only) ends the run where the download would begin, and `otad once`
 * after the report: both through run_over -> end.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"
#include "../device/device_data.h"
#include "../device/events.h"
#include "../device/manifest.h"
#include "../device/reboot.h"
#include "../device/request.h"
#include "../uptane/uptane.h"
#include "../uptane/walk.h"
#include "states.h"

/* ---- the walk (uptane/walk.h): one GET per document, one journal row per document ---- */

static void verification_failed(device *d, const uptane_err *err) {
  device_log(d, LOG_ERROR, "Uptane verification failed (%s): %s; keeping the trusted metadata",
             uptane_fail_name(err->fail), err->eb.msg);
  device_set_result(d, false, UPDATE_VERIFICATION_FAILED, "%s: %s", uptane_fail_name(err->fail),
                    err->eb.msg);
  device_fire(d, EV_VERIFICATION_FAILED, err->eb.msg);
}

/* Where each verified document is kept (delegations are fetched again when needed). */
static const char *store_name(enum uptane_walk_doc doc) {
  switch (doc) {
  case UPTANE_DOC_DIRECTOR_ROOT: return STORE_DIRECTOR_ROOT;
  case UPTANE_DOC_DIRECTOR_TARGETS: return STORE_DIRECTOR_TARGETS;
  case UPTANE_DOC_IMAGE_ROOT: return STORE_IMAGE_ROOT;
  case UPTANE_DOC_IMAGE_TIMESTAMP: return STORE_IMAGE_TIMESTAMP;
  case UPTANE_DOC_IMAGE_SNAPSHOT: return STORE_IMAGE_SNAPSHOT;
  case UPTANE_DOC_IMAGE_TARGETS: return STORE_IMAGE_TARGETS;
  default: return NULL;
  }
}

/* "director 2.root.json", "image delegations/x.json": what a journal row names. */
static void doc_label(const uptane_walk *w, char *out, size_t n) {
  snprintf(out, n, "%s %s", w->repo == UPTANE_REPO_DIRECTOR ? "director" : "image", w->path);
}

static void on_fetched(http_request *r);

/* The walk's state lives only while a cycle walks: it goes as soon as a verdict ends the
 * walk (before the event that says so, whose action may start the next step at once). */
static void drop_walk(device *d) {
  free(d->upd->walk);
  d->upd->walk = NULL;
}

/* Ends the walk with a verification failure (err is copied first: it lives in the walk). */
static void walk_failed(device *d, const uptane_err *err) {
  uptane_err copy = *err;
  drop_walk(d);
  verification_failed(d, &copy);
}

/* The director assigns a target: the walk goes into the image repository unless the
 * target is installed already or waits for a reboot. False when the cycle ended here. */
static bool assigned_is_new(device *d, uptane_walk *w) {
  if (device_stored_target_is(d->o.st, STORE_INSTALLED_TARGET, w->assigned, w->assigned_sha256)) {
    device_log(d, LOG_DEBUG, "%s is installed already", w->assigned);
    drop_walk(d);
    device_fire(d, EV_NO_UPDATE, "installed already");
    return false;
  }
  if (device_stored_target_is(d->o.st, STORE_PENDING_TARGET, w->assigned, w->assigned_sha256)) {
    device_log(d, LOG_INFO, "%s is installed and waits for a reboot to complete", w->assigned);
    drop_walk(d);
    device_fire(d, EV_NO_UPDATE, "reboot pending");
    return false;
  }
  if (!d->upd->image_parsed) device_update_restore_image(d);
  uptane_walk_into_image(w);
  return true;
}

/* Everything verified: the target is in d->upd->target. */
static void update_found(device *d) {
  device_update *u = d->upd;
  const update_target *t = &u->target;
  device_log(d, LOG_INFO, "update available: %s (%llu bytes)%s%s", t->name,
             (unsigned long long)t->length, t->version[0] ? ", version " : "", t->version);
  u->ev_download_started = u->ev_download_done = false; /* a new attempt */
  if (d->o.check_only) { /* otad check: the answer is known; nothing is fetched */
    u->check_available = true;
    device_fire(d, EV_RUN_OVER, t->name);
    return;
  }
  device_fire(d, EV_UPDATE_AVAILABLE, t->name);
}

/* The action walk: asks the walk what comes next and does it. */
void polling_walk(device *d) {
  uptane_walk *w = d->upd->walk;
  for (;;) {
    switch (uptane_walk_next(w, time(NULL))) {
    case UPTANE_WALK_FETCH: {
      char what[64];
      snprintf(what, sizeof(what), "GET %s", uptane_walk_doc_name(w->doc));
      char *url = w->repo == UPTANE_REPO_DIRECTOR ? device_director_url(d, w->path)
                                                  : device_repo_url(d, w->path);
      device_log(d, LOG_DEBUG, "GET %s", url ? url : "?");
      device_send(d, "GET", what, url, NULL, w->cap, &d->creds, on_fetched);
      return;
    }
    case UPTANE_WALK_ASSIGNED:
      if (!assigned_is_new(d, w)) return;
      continue;
    case UPTANE_WALK_NO_UPDATE:
      device_log(d, LOG_INFO, "no update assigned");
      drop_walk(d);
      device_fire(d, EV_NO_UPDATE, NULL);
      return;
    case UPTANE_WALK_UPDATE: /* the target is in d->upd->target already */
      drop_walk(d);
      update_found(d);
      return;
    case UPTANE_WALK_FAILED: walk_failed(d, &w->err); return;
    }
  }
}

/* A document arrived (or did not): feed it to the walk, keep it, journal it. */
static void on_fetched(http_request *r) {
  device *d = r->data;
  uptane_walk *w = d->upd->walk;
  if (r->err == OTAD_ECANCELED) return;
  char label[UPTANE_MAX_NAME + 48];
  doc_label(w, label, sizeof(label));
  if (!r->err && r->status == 404 && uptane_walk_absent(w)) { /* the end of a root chain */
    http_request_reset(r);
    strncat(label, ": none, the chain ends", sizeof(label) - strlen(label) - 1);
    device_fire(d, EV_METADATA, label);
    return;
  }
  if (r->err == OTAD_ETOOBIG) {
    /* Endless data: more than the parent metadata (or the cap) allows is an attack, not
     * a hiccup. */
    char what[sizeof(w->err.eb.msg)];
    snprintf(what, sizeof(what), "%s: %s", r->url ? r->url : "metadata", r->errmsg);
    uptane_walk_too_big(w, what);
    http_request_reset(r);
    walk_failed(d, &w->err);
    return;
  }
  if (r->err || r->status < 200 || r->status >= 300) {
    device_request_failed(d, r, r->url ? r->url : "metadata");
    http_request_reset(r);
    return;
  }
  if (uptane_walk_feed(w, (const char *)r->resp, r->resp_len, time(NULL)) != 0) {
    http_request_reset(r);
    walk_failed(d, &w->err);
    return;
  }
  const char *name = store_name(w->doc);
  otad_errbuf eb = {{0}};
  if (name && store_write(d->o.st, name, r->resp, r->resp_len, false, &eb) != 0)
    device_log(d, LOG_WARN, "could not store %s: %s", name, eb.msg);
  http_request_reset(r);
  device_fire(d, EV_METADATA, label);
}

/* ---- the three actions ---- */

static void send_manifest(device *d, http_done_fn done) {
  otad_errbuf eb = {{0}};
  int rc = device_ecu_identity(d, &eb);
  char *manifest = rc ? NULL : device_manifest(d, &eb);
  if (!manifest) {
    device_fail_with(d, EV_CONFIG_ERROR, rc ? rc : OTAD_ECRYPTO, "cannot sign the manifest: %s",
                     eb.msg);
    return;
  }
  device_send(d, "PUT", "PUT /director/manifest", device_director_url(d, "manifest"), manifest, 0,
              &d->creds, done);
}

/* The manifest, the events and the device data are sent: walk the metadata. The walk's
 * state lives only while a cycle runs (an idle device does not hold it). */
static void walk_metadata(device *d) {
  device_update *u = d->upd;
  if (!u->walk && !(u->walk = malloc(sizeof(*u->walk)))) {
    device_fail_with(d, EV_TRANSIENT_ERROR, OTAD_ENOMEM, "out of memory");
    return;
  }
  u->primary.serial = d->ecu_serial;
  u->primary.hwid = d->ecu_hwid;
  uptane_walk_begin(u->walk, &u->director, &u->image, &u->primary, 1, &u->target);
  polling_walk(d);
}

static void send_device_data(device *d) {
  device_data_send(d, walk_metadata);
}

static void on_manifest_for_poll(http_request *r) {
  device *d = r->data;
  if (r->err == OTAD_ECANCELED) return;
  if (r->err || r->status < 200 || r->status >= 300) {
    device_request_failed(d, r, "PUT /director/manifest");
    http_request_reset(r);
    return;
  }
  http_request_reset(r);
  if (d->upd->result.pending) device_clear_result(d);
  events_flush(d, send_device_data);
}

void polling_poll(device *d) {
  d->eb.msg[0] = 0;
  if (d->o.connect_per_poll) d->req.fresh_connect = 1;
  if (device_update_ensure(d)) {
    device_fail_with(d, EV_CONFIG_ERROR, OTAD_ENOMEM, "out of memory");
    return;
  }
  device_update *u = d->upd;
  if (!u->boot_checked) { /* once per run: did a reboot complete an installation? */
    u->boot_checked = true;
    char name[256];
    if (!d->o.check_only && device_reboot_completed(d, name, sizeof(name))) {
      otad_errbuf eb = {{0}};
      int rc = device_ecu_identity(d, &eb); /* its events name the ECU */
      if (rc) {
        device_fail_with(d, EV_CONFIG_ERROR, rc, "cannot load the ECU identity: %s", eb.msg);
        return;
      }
      device_fire(d, EV_REBOOTED, name);
      return;
    }
  }
  u->cycle_failed = false;
  /* a new cycle: an earlier cycle's target must not name this cycle's failures */
  memset(&u->target, 0, sizeof(u->target));
  send_manifest(d, on_manifest_for_poll);
}

/* The report and the events are sent: the attempt is over. */
static void report_done(device *d) {
  char what[300];
  snprintf(what, sizeof(what), "%s: %s", d->upd->result.code, d->upd->result.target);
  memset(&d->upd->result, 0, sizeof(d->upd->result));
  device_fire(d, EV_REPORTED, what);
}

/* After a report the installed target may have changed: tell the server now. */
static void report_device_data(device *d) {
  device_data_send(d, report_done);
}

static void on_manifest_report(http_request *r) {
  device *d = r->data;
  if (r->err == OTAD_ECANCELED) return;
  if (r->err || r->status < 200 || r->status >= 300) {
    device_request_failed(d, r, "PUT /director/manifest (installation report)");
    http_request_reset(r);
    return;
  }
  http_request_reset(r);
  update_result *res = &d->upd->result;
  device_log(d, LOG_INFO, "reported %s: %s", res->code,
             res->target[0] ? res->target : res->description);
  otad_errbuf eb = {{0}};
  store_remove(d->o.st, STORE_INSTALL_REPORT, &eb); /* accepted: no manifest carries it again */
  res->pending = false;
  events_flush(d, report_device_data);
}

void polling_report(device *d) {
  d->eb.msg[0] = 0;
  device_update *u = d->upd;
  if (u && u->ev_download_started && !u->ev_download_done) { /* the download gave up */
    events_queue(d, EVENT_DOWNLOAD_COMPLETED, u->target.correlation_id, EVENT_FAILED);
    u->ev_download_done = true;
  }
  send_manifest(d, on_manifest_report);
}

void polling_idle(device *d) {
  if (!d->req.easy) { /* between polls a device holds no request: the last URL and body go */
    free(d->req_body);
    free(d->req_url);
    d->req_body = d->req_url = NULL;
    d->req.url = NULL;
    d->req.body = NULL;
  }
  if (d->upd && d->upd->reboot_requested) { /* reported: now the reboot that completes it */
    d->upd->reboot_requested = false;
    device_reboot(d);
  }
  if (d->upd) drop_walk(d); /* a cycle that ended in a failed request leaves it */
  if (d->o.one_shot) {
    device_fire(d, EV_RUN_OVER, NULL);
    return;
  }
  device_update_forget_image(d);
  device_poll_in(d, device_poll_delay_ms(d));
}

/* The action end: `otad once` or `otad check` has what it came for. */
void polling_end(device *d) {
  if (d->o.done) d->o.done(d);
}
