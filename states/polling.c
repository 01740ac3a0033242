/* polling.c - the update cycle: tell the director what is installed, learn what it wants.
 *
 * One cycle: PUT the signed manifest (carrying the installation report of the last
 * attempt, if one waits), then walk the metadata, one GET at a time: the director's root
 * chain (1.root.json on first use, then N+1 until 404) and targets.json; when the director
 * assigns the primary ECU something new, the image repository's root chain, timestamp,
 * snapshot and targets (each skipped when the parent says it is unchanged) and any
 * delegations the target needs. Every document is verified by core/uptane before it is
 * trusted and stored (atomically, so a restart keeps the trusted state); a document that
 * fails leaves the trusted state as it was and is reported as VERIFICATION_FAILED. The
 * walk's position is a small step counter in device_update: the journal records the
 * cycle's outcome (no_update, update_available, verification_failed), not every GET.
 *
 * After every manifest the server accepts, the queued events (events.c) and the device
 * data that changed (device_data.c: hardware, installed target, network, config) are sent
 * before the cycle goes on; neither can fail the cycle. The first poll of a run also
 * finishes an installation that waited for a reboot (rebooted -> installing.c's
 * complete), and every poll leaves a target that still waits for one alone. `otad check`
 * (device_opts.check_only) ends the run where the download would begin.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/canonical_json.h"
#include "../core/log.h"
#include "../uptane/uptane.h"
#include "../core/utf8.h"
#include "../device/device_data.h"
#include "../device/events.h"
#include "../device/manifest.h"
#include "../device/reboot.h"
#include "../device/request.h"
#include "states.h"

enum poll_step {
  STEP_MANIFEST,
  STEP_DIR_ROOT,
  STEP_DIR_TARGETS,
  STEP_IMG_ROOT,
  STEP_IMG_TIMESTAMP,
  STEP_IMG_SNAPSHOT,
  STEP_IMG_TARGETS,
  STEP_IMG_DELEGATION,
};


static void next_step(device *d);

/* ---- the walk ---- */

static void verification_failed(device *d, const uptane_err *err) {
  device_log(d, LOG_ERROR, "Uptane verification failed (%s): %s; keeping the trusted metadata",
             uptane_fail_name(err->fail), err->eb.msg);
  device_set_result(d, false, UPDATE_VERIFICATION_FAILED, "%s: %s",
                     uptane_fail_name(err->fail), err->eb.msg);
  device_fire(d, EV_VERIFICATION_FAILED, err->eb.msg);
}

static void store_doc(device *d, const char *name, const http_request *r) {
  otad_errbuf eb = {{0}};
  if (store_write(d->o.st, name, r->resp, r->resp_len, false, &eb) != 0)
    device_log(d, LOG_WARN, "could not store %s: %s", name, eb.msg);
}

static void on_fetched(http_request *r);

static void fetch(device *d, char *url, size_t cap, const char *what) {
  device_log(d, LOG_DEBUG, "GET %s", url ? url : "?");
  device_send(d, "GET", what, url, NULL, cap, &d->creds, on_fetched);
}

static const uptane_ecu *primary_ecu(device *d, uptane_ecu *e) {
  e->serial = d->ecu_serial;
  e->hwid = d->ecu_hwid;
  return e;
}

/* The director's target for the primary ECU, or NULL. */
static const cJSON *director_target_for_primary(device *d) {
  return device_target_for_ecu(uptane_director_target_list(&d->upd->director), d->ecu_serial);
}

static const char *hash_of(const cJSON *target, const char *alg) {
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(target, "hashes"), alg);
  return cJSON_IsString(h) ? h->valuestring : "";
}

/* Everything verified: copy the target out and go. */
static void update_found(device *d, const cJSON *dt) {
  device_update *u = d->upd;
  uptane_err err;
  uptane_ecu e;
  if (uptane_verify_update(&u->director, &u->image, primary_ecu(d, &e), 1, time(NULL), &err)) {
    verification_failed(d, &err);
    return;
  }
  const cJSON *it = NULL;
  char need[UPTANE_MAX_NAME + 1];
  uptane_image_find(&u->image, dt->string, &it, need, &err);
  update_target *t = &u->target;
  memset(t, 0, sizeof(*t));
  snprintf(t->name, sizeof(t->name), "%s", dt->string);
  snprintf(t->sha256, sizeof(t->sha256), "%s", hash_of(dt, "sha256"));
  snprintf(t->sha512, sizeof(t->sha512), "%s", hash_of(dt, "sha512"));
  const cJSON *len = cJSON_GetObjectItemCaseSensitive(dt, "length");
  t->length = cJSON_IsNumber(len) ? (uint64_t)len->valuedouble : 0;
  const cJSON *custom = cJSON_GetObjectItemCaseSensitive(it, "custom"), *v;
  if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(custom, "uri")))
    snprintf(t->uri, sizeof(t->uri), "%s", v->valuestring);
  if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(custom, "targetFormat")))
    snprintf(t->format, sizeof(t->format), "%s", v->valuestring);
  if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(custom, "version")))
    snprintf(t->version, sizeof(t->version), "%s", v->valuestring);
  const char *corr = uptane_director_correlation_id(&u->director);
  snprintf(t->correlation_id, sizeof(t->correlation_id), "%s", corr ? corr : "");
  device_log(d, LOG_INFO, "update available: %s (%llu bytes)%s%s", t->name,
             (unsigned long long)t->length, t->version[0] ? ", version " : "", t->version);
  u->ev_download_started = u->ev_download_done = false; /* a new attempt */
  if (d->o.check_only) { /* otad check: the answer is known; nothing is fetched */
    u->check_available = true;
    if (d->o.done) d->o.done(d);
    return;
  }
  device_fire(d, EV_UPDATE_AVAILABLE, t->name);
}

/* Looks the director's target up in the image repository, fetching delegations on demand. */
static void find_image_target(device *d) {
  device_update *u = d->upd;
  const cJSON *dt = director_target_for_primary(d), *it = NULL;
  uptane_err err;
  int rc = uptane_image_find(&u->image, dt->string, &it, u->need, &err);
  if (rc == UPTANE_NEED_DELEGATION) {
    u->step = STEP_IMG_DELEGATION;
    char path[UPTANE_MAX_NAME + 32];
    snprintf(path, sizeof(path), "delegations/%s.json", u->need);
    fetch(d, device_repo_url(d, path), uptane_image_size_cap(&u->image, UPTANE_ROLE_TARGETS, u->need),
          "GET image delegation");
    return;
  }
  if (rc) {
    verification_failed(d, &err);
    return;
  }
  update_found(d, dt);
}

/* Chooses and starts the next GET of the walk, or ends the cycle. */
static void next_step(device *d) {
  device_update *u = d->upd;
  uptane_err err;
  char path[48];
  switch (u->step) {
    case STEP_DIR_ROOT:
      snprintf(path, sizeof(path), "%lld.root.json", (long long)u->director.root.version + 1);
      fetch(d, device_director_url(d, path), UPTANE_MAX_ROOT_SIZE, "GET director root");
      return;
    case STEP_DIR_TARGETS:
      if (uptane_root_check_expiry(&u->director.root, time(NULL), &err)) {
        verification_failed(d, &err);
        return;
      }
      fetch(d, device_director_url(d, "targets.json"), UPTANE_MAX_DIRECTOR_TARGETS_SIZE,
            "GET director targets.json");
      return;
    case STEP_IMG_ROOT:
      snprintf(path, sizeof(path), "%lld.root.json", (long long)u->image.root.version + 1);
      fetch(d, device_repo_url(d, path), UPTANE_MAX_ROOT_SIZE, "GET image root");
      return;
    case STEP_IMG_TIMESTAMP:
      if (uptane_root_check_expiry(&u->image.root, time(NULL), &err)) {
        verification_failed(d, &err);
        return;
      }
      fetch(d, device_repo_url(d, "timestamp.json"), UPTANE_MAX_TIMESTAMP_SIZE,
            "GET image timestamp.json");
      return;
    case STEP_IMG_SNAPSHOT:
      if (!uptane_image_snapshot_needed(&u->image)) {
        u->step = STEP_IMG_TARGETS;
        next_step(d);
        return;
      }
      fetch(d, device_repo_url(d, "snapshot.json"),
            uptane_image_size_cap(&u->image, UPTANE_ROLE_SNAPSHOT, NULL), "GET image snapshot.json");
      return;
    case STEP_IMG_TARGETS:
      if (!uptane_image_targets_needed(&u->image)) {
        find_image_target(d);
        return;
      }
      fetch(d, device_repo_url(d, "targets.json"),
            uptane_image_size_cap(&u->image, UPTANE_ROLE_TARGETS, NULL), "GET image targets.json");
      return;
    default:
      return;
  }
}

/* After the director's targets: is there anything for the primary ECU? */
static void director_done(device *d) {
  const cJSON *t = director_target_for_primary(d);
  if (!t) {
    device_log(d, LOG_INFO, "no update assigned");
    device_fire(d, EV_NO_UPDATE, NULL);
    return;
  }
  if (device_stored_target_is(d->o.st, STORE_INSTALLED_TARGET, t->string, hash_of(t, "sha256"))) {
    device_log(d, LOG_DEBUG, "%s is installed already", t->string);
    device_fire(d, EV_NO_UPDATE, "installed already");
    return;
  }
  if (device_stored_target_is(d->o.st, STORE_PENDING_TARGET, t->string, hash_of(t, "sha256"))) {
    device_log(d, LOG_INFO, "%s is installed and waits for a reboot to complete", t->string);
    device_fire(d, EV_NO_UPDATE, "reboot pending");
    return;
  }
  if (!d->upd->image_parsed) device_update_restore_image(d);
  d->upd->step = STEP_IMG_ROOT;
  next_step(d);
}

static void on_fetched(http_request *r) {
  device *d = r->data;
  device_update *u = d->upd;
  if (r->err == OTAD_ECANCELED) return;
  const char *text = (const char *)r->resp;
  size_t len = r->resp_len;
  uptane_err err;
  uptane_ecu e;
  time_t now = time(NULL);
  bool root_step = u->step == STEP_DIR_ROOT || u->step == STEP_IMG_ROOT;
  /* The end of a root chain: the next version does not exist. */
  if (root_step && !r->err && r->status == 404 &&
      (u->step == STEP_DIR_ROOT ? u->director.root.version : u->image.root.version) > 0) {
    u->step = u->step == STEP_DIR_ROOT ? STEP_DIR_TARGETS : STEP_IMG_TIMESTAMP;
    http_request_reset(r);
    next_step(d);
    return;
  }
  if (r->err == OTAD_ETOOBIG) {
    /* Endless data: more than the parent metadata (or the cap) allows is an attack, not
     * a hiccup. */
    uptane_err big = {.fail = UPTANE_TOO_BIG};
    snprintf(big.eb.msg, sizeof(big.eb.msg), "%s: %s", r->url ? r->url : "metadata", r->errmsg);
    http_request_reset(r);
    verification_failed(d, &big);
    return;
  }
  if (r->err || r->status < 200 || r->status >= 300) {
    device_request_failed(d, r, r->url ? r->url : "metadata");
    http_request_reset(r);
    return;
  }
  int rc = 0;
  const char *store_as = NULL;
  switch (u->step) {
    case STEP_DIR_ROOT:
      rc = uptane_director_root(&u->director, text, len, &err);
      store_as = STORE_DIRECTOR_ROOT;
      break;
    case STEP_DIR_TARGETS:
      rc = uptane_director_targets(&u->director, text, len, now, primary_ecu(d, &e), 1, &err);
      store_as = STORE_DIRECTOR_TARGETS;
      break;
    case STEP_IMG_ROOT:
      rc = uptane_image_root(&u->image, text, len, &err);
      store_as = STORE_IMAGE_ROOT;
      break;
    case STEP_IMG_TIMESTAMP:
      rc = uptane_image_timestamp(&u->image, text, len, now, &err);
      store_as = STORE_IMAGE_TIMESTAMP;
      break;
    case STEP_IMG_SNAPSHOT:
      rc = uptane_image_snapshot(&u->image, text, len, now, &err);
      store_as = STORE_IMAGE_SNAPSHOT;
      break;
    case STEP_IMG_TARGETS:
      rc = uptane_image_targets(&u->image, text, len, now, &err);
      store_as = STORE_IMAGE_TARGETS;
      break;
    case STEP_IMG_DELEGATION:
      rc = uptane_image_delegation(&u->image, u->need, text, len, now, &err);
      break;
  }
  if (rc) {
    http_request_reset(r);
    verification_failed(d, &err);
    return;
  }
  if (store_as) store_doc(d, store_as, r);
  http_request_reset(r);
  switch (u->step) {
    case STEP_DIR_ROOT:
    case STEP_IMG_ROOT:
      next_step(d); /* the next version of the chain */
      return;
    case STEP_DIR_TARGETS:
      director_done(d);
      return;
    case STEP_IMG_TIMESTAMP:
      u->step = STEP_IMG_SNAPSHOT;
      next_step(d);
      return;
    case STEP_IMG_SNAPSHOT:
      u->step = STEP_IMG_TARGETS;
      next_step(d);
      return;
    case STEP_IMG_TARGETS:
    case STEP_IMG_DELEGATION:
      find_image_target(d);
      return;
  }
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

/* The manifest, the events and the device data are sent: walk the metadata. */
static void walk_metadata(device *d) {
  d->upd->step = STEP_DIR_ROOT;
  next_step(d);
}

static void send_device_data(device *d) { device_data_send(d, walk_metadata); }

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
  u->step = STEP_MANIFEST;
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
static void report_device_data(device *d) { device_data_send(d, report_done); }

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
  if (d->o.one_shot) {
    if (d->o.done) d->o.done(d);
    return;
  }
  device_update_forget_image(d);
  device_poll_in(d, device_poll_delay_ms(d));
}
