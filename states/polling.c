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
#include "../core/uptane.h"
#include "../core/utf8.h"
#include "events.h"
#include "installing.h"
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

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void next_step(device *d);

/* ---- the device's update state ---- */

static char *read_store(device *d, const char *name, size_t *len) {
  char *data = NULL;
  otad_errbuf eb = {{0}};
  if (store_read(d->o.st, name, &data, len, &eb) != 0) return NULL;
  return data;
}

/* Brings back the director metadata earlier runs (or cycles) verified; a stored document
 * that no longer verifies is dropped (and fetched again), never trusted. */
static void restore_director(device *d) {
  device_update *u = d->upd;
  uptane_err err;
  size_t len;
  u->director_parsed = true;
  char *js = read_store(d, STORE_DIRECTOR_ROOT, &len);
  if (js && uptane_director_root(&u->director, js, len, &err) != 0)
    device_log(d, LOG_WARN, "stored director root: %s", err.eb.msg);
  free(js);
  if (u->director.root.version && (js = read_store(d, STORE_DIRECTOR_TARGETS, &len)) &&
      uptane_director_restore(&u->director, js, len, &err) != 0)
    device_log(d, LOG_WARN, "stored director targets: %s", err.eb.msg);
  free(js);
}

/* The same for the image repository: only needed when the director assigns something. */
static void restore_image(device *d) {
  device_update *u = d->upd;
  uptane_err err;
  size_t len;
  u->image_parsed = true;
  char *js = read_store(d, STORE_IMAGE_ROOT, &len);
  if (js && uptane_image_root(&u->image, js, len, &err) != 0)
    device_log(d, LOG_WARN, "stored image root: %s", err.eb.msg);
  free(js);
  static const struct {
    const char *name;
    enum uptane_role role;
  } docs[] = {{STORE_IMAGE_TIMESTAMP, UPTANE_ROLE_TIMESTAMP},
              {STORE_IMAGE_SNAPSHOT, UPTANE_ROLE_SNAPSHOT},
              {STORE_IMAGE_TARGETS, UPTANE_ROLE_TARGETS}};
  for (size_t i = 0; u->image.root.version && i < 3; i++) {
    js = read_store(d, docs[i].name, &len);
    if (js && uptane_image_restore(&u->image, docs[i].role, NULL, js, len, &err) != 0)
      device_log(d, LOG_WARN, "stored image %s: %s", docs[i].name, err.eb.msg);
    free(js);
  }
}

/* Between two cycles the parsed image metadata (the repository's whole targets list, the
 * largest part of a device's update state) is dropped: the stored bytes stay the trusted
 * copy and are parsed again when the director next assigns something. */
static void forget_image(device *d) {
  device_update *u = d->upd;
  if (!u || !u->image_parsed) return;
  uptane_image_free(&u->image);
  uptane_image_init(&u->image);
  u->image_parsed = false;
}

/* A result a crash kept from being reported is reported now. */
static void restore_report(device *d) {
  update_result *r = &d->upd->result;
  char *js = store_read_string(d->o.st, STORE_INSTALL_REPORT);
  cJSON *o = js ? cJSON_Parse(js) : NULL;
  free(js);
  if (!o) return;
  const cJSON *v;
#define GET_STR(field, key)                                                   \
  if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, key)))           \
    snprintf(r->field, sizeof(r->field), "%s", v->valuestring);
  GET_STR(code, "code");
  GET_STR(description, "description");
  GET_STR(correlation_id, "correlation_id");
  GET_STR(target, "target");
#undef GET_STR
  r->success = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success"));
  r->pending = r->code[0] != 0;
  cJSON_Delete(o);
}

static int ensure_update_state(device *d) {
  if (d->upd) return 0;
  d->upd = calloc(1, sizeof(*d->upd));
  if (!d->upd) return OTAD_ENOMEM;
  d->upd->fd = -1;
  uptane_director_init(&d->upd->director);
  uptane_image_init(&d->upd->image);
  restore_director(d);
  restore_report(d);
  return 0;
}

/* The Uptane key, serial and hardware ID, from storage when this run did not make them. */
static int ensure_ecu_identity(device *d, otad_errbuf *eb) {
  if (!d->ecu_key.private_pem) {
    char *priv = store_read_string(d->o.st, STORE_ECU_KEY);
    if (!priv) return otad_fail(eb, OTAD_ENOENT, "no stored Uptane key (%s)", STORE_ECU_KEY);
    int rc = keys_load(priv, &d->ecu_key, eb);
    memset(priv, 0, strlen(priv));
    free(priv);
    if (rc) return rc;
  }
  if (!d->ecu_serial[0]) {
    char *s = store_read_string(d->o.st, STORE_ECU_SERIAL);
    snprintf(d->ecu_serial, sizeof(d->ecu_serial), "%s", s ? s : d->ecu_key.keyid);
    free(s);
  }
  if (!d->ecu_hwid[0]) {
    char *h = store_read_string(d->o.st, STORE_ECU_HWID);
    snprintf(d->ecu_hwid, sizeof(d->ecu_hwid), "%s", h ? h : "");
    free(h);
  }
  return 0;
}

void polling_free(device *d) {
  if (!d->upd) return;
  uptane_director_free(&d->upd->director);
  uptane_image_free(&d->upd->image);
  downloading_release(d);
  free(d->upd);
  d->upd = NULL;
}

/* ---- the manifest ---- */

/* {"signatures":[{"keyid","method","sig"}],"signed":signed} signed by the primary key;
 * takes ownership of signed. */
static cJSON *sign_document(device *d, cJSON *signed_part, otad_errbuf *eb) {
  char *canon = NULL, *sig = NULL;
  size_t len = 0;
  const char *method = NULL;
  utf8_repair_json(signed_part); /* cut or foreign strings: still valid JSON */
  if (canonical_json(signed_part, &canon, &len, eb) != 0 ||
      keys_sign(&d->ecu_key, (const uint8_t *)canon, len, &sig, &method, eb) != 0) {
    free(canon);
    cJSON_Delete(signed_part);
    return NULL;
  }
  free(canon);
  cJSON *doc = cJSON_CreateObject();
  cJSON *sigs = cJSON_AddArrayToObject(doc, "signatures");
  cJSON *s = cJSON_CreateObject();
  cJSON_AddStringToObject(s, "keyid", d->ecu_key.keyid);
  cJSON_AddStringToObject(s, "method", method);
  cJSON_AddStringToObject(s, "sig", sig);
  cJSON_AddItemToArray(sigs, s);
  cJSON_AddItemToObject(doc, "signed", signed_part);
  free(sig);
  return doc;
}

static cJSON *result_object(const update_result *r) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "success", r->success);
  cJSON_AddStringToObject(o, "code", r->code);
  cJSON_AddStringToObject(o, "description", r->description);
  return o;
}

char *polling_build_manifest(device *d, otad_errbuf *eb) {
  device_update *u = d->upd;
  char *js = store_read_string(d->o.st, STORE_INSTALLED_TARGET);
  cJSON *inst = js ? cJSON_Parse(js) : NULL;
  free(js);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(inst, "name"),
              *sha = cJSON_GetObjectItemCaseSensitive(inst, "sha256"),
              *length = cJSON_GetObjectItemCaseSensitive(inst, "length");
  cJSON *ecu = cJSON_CreateObject();
  cJSON_AddStringToObject(ecu, "attacks_detected", "");
  cJSON_AddStringToObject(ecu, "ecu_serial", d->ecu_serial);
  cJSON *image = cJSON_AddObjectToObject(ecu, "installed_image");
  cJSON_AddStringToObject(image, "filepath", cJSON_IsString(name) ? name->valuestring : "unknown");
  cJSON *fileinfo = cJSON_AddObjectToObject(image, "fileinfo");
  cJSON *hashes = cJSON_AddObjectToObject(fileinfo, "hashes");
  cJSON_AddStringToObject(hashes, "sha256", cJSON_IsString(sha) ? sha->valuestring : EMPTY_SHA256);
  cJSON_AddNumberToObject(fileinfo, "length", cJSON_IsNumber(length) ? length->valuedouble : 0);
  cJSON_AddStringToObject(ecu, "previous_timeserver_time", "1970-01-01T00:00:00Z");
  cJSON_AddStringToObject(ecu, "timeserver_time", "1970-01-01T00:00:00Z");
  char counter[24];
  snprintf(counter, sizeof(counter), "%d", u->report_counter++);
  cJSON_AddStringToObject(ecu, "report_counter", counter);
  cJSON_Delete(inst);
  cJSON *ecu_doc = sign_document(d, ecu, eb);
  if (!ecu_doc) return NULL;

  cJSON *top = cJSON_CreateObject();
  cJSON_AddStringToObject(top, "primary_ecu_serial", d->ecu_serial);
  cJSON *manifests = cJSON_AddObjectToObject(top, "ecu_version_manifests");
  cJSON_AddItemToObject(manifests, d->ecu_serial, ecu_doc);
  if (u->result.pending) {
    cJSON *ir = cJSON_AddObjectToObject(top, "installation_report");
    cJSON_AddStringToObject(ir, "content_type",
                            "application/vnd.com.here.otac.installationReport.v1");
    cJSON *report = cJSON_AddObjectToObject(ir, "report");
    cJSON_AddStringToObject(report, "correlation_id", u->result.correlation_id);
    cJSON_AddStringToObject(report, "raw_report", u->result.description);
    cJSON_AddItemToObject(report, "result", result_object(&u->result));
    cJSON *items = cJSON_AddArrayToObject(report, "items");
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "ecu", d->ecu_serial);
    cJSON_AddItemToObject(item, "result", result_object(&u->result));
    cJSON_AddItemToArray(items, item);
  }
  cJSON *doc = sign_document(d, top, eb);
  if (!doc) return NULL;
  char *text = cJSON_PrintUnformatted(doc);
  cJSON_Delete(doc);
  return text;
}

static char *director_url(device *d, const char *path) {
  const otad_config *c = d->o.cfg;
  if (c->director_server) return device_url(c->director_server, path);
  char *base = device_url(d->server_url, "director");
  char *u = base ? device_url(base, path) : NULL;
  free(base);
  return u;
}

static char *repo_url(device *d, const char *path) {
  const otad_config *c = d->o.cfg;
  if (c->repo_server) return device_url(c->repo_server, path);
  char *base = device_url(d->server_url, "repo");
  char *u = base ? device_url(base, path) : NULL;
  free(base);
  return u;
}

void polling_set_result(device *d, bool success, const char *code, const char *fmt, ...) {
  update_result *r = &d->upd->result;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->description, sizeof(r->description), fmt, ap);
  va_end(ap);
  r->pending = true;
  r->success = success;
  snprintf(r->code, sizeof(r->code), "%s", code);
  snprintf(r->correlation_id, sizeof(r->correlation_id), "%s", d->upd->target.correlation_id);
  snprintf(r->target, sizeof(r->target), "%s", d->upd->target.name);
  d->upd->cycle_failed = !success;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "success", success);
  cJSON_AddStringToObject(o, "code", r->code);
  cJSON_AddStringToObject(o, "description", r->description);
  cJSON_AddStringToObject(o, "correlation_id", r->correlation_id);
  cJSON_AddStringToObject(o, "target", r->target);
  char *js = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  otad_errbuf eb = {{0}};
  if (!js || store_write(d->o.st, STORE_INSTALL_REPORT, js, strlen(js), false, &eb) != 0)
    device_log(d, LOG_WARN, "could not store the installation report: %s", eb.msg);
  free(js);
}

static void clear_result(device *d) {
  otad_errbuf eb = {{0}};
  memset(&d->upd->result, 0, sizeof(d->upd->result));
  store_remove(d->o.st, STORE_INSTALL_REPORT, &eb);
}

/* ---- the walk ---- */

/* Any failure of the walk but a verification. Network trouble, 5xx, 408 and 429 are retried
 * with backoff; any other 4xx or an untrusted server is not (rejected: the next polling
 * cycle tries again; `once` ends). */
static void fetch_failed(device *d, http_request *r, const char *what) {
  registering_classify_failure(d, r, what);
}

static void verification_failed(device *d, const uptane_err *err) {
  device_log(d, LOG_ERROR, "Uptane verification failed (%s): %s; keeping the trusted metadata",
             uptane_fail_name(err->fail), err->eb.msg);
  polling_set_result(d, false, UPDATE_VERIFICATION_FAILED, "%s: %s",
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
  states_send(d, "GET", what, url, NULL, cap, &d->creds, on_fetched);
}

static const uptane_ecu *primary_ecu(device *d, uptane_ecu *e) {
  e->serial = d->ecu_serial;
  e->hwid = d->ecu_hwid;
  return e;
}

/* The director's target for the primary ECU, or NULL. */
static const cJSON *director_target_for_primary(device *d) {
  const cJSON *t, *list = uptane_director_target_list(&d->upd->director);
  cJSON_ArrayForEach(t, list) {
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(t, "custom"), "ecuIdentifiers");
    if (cJSON_GetObjectItemCaseSensitive(ids, d->ecu_serial)) return t;
  }
  return NULL;
}

static const char *hash_of(const cJSON *target, const char *alg) {
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(target, "hashes"), alg);
  return cJSON_IsString(h) ? h->valuestring : "";
}

/* True when the director's target is what is installed already. */
static bool already_installed(device *d, const cJSON *t) {
  char *js = store_read_string(d->o.st, STORE_INSTALLED_TARGET);
  cJSON *inst = js ? cJSON_Parse(js) : NULL;
  free(js);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(inst, "name"),
              *sha = cJSON_GetObjectItemCaseSensitive(inst, "sha256");
  bool same = cJSON_IsString(name) && cJSON_IsString(sha) &&
              strcmp(name->valuestring, t->string) == 0 &&
              strcmp(sha->valuestring, hash_of(t, "sha256")) == 0;
  cJSON_Delete(inst);
  return same;
}

/* True when the director's target was installed and waits for a reboot to complete. */
static bool waits_for_reboot(device *d, const cJSON *t) {
  char *js = store_read_string(d->o.st, STORE_PENDING_TARGET);
  cJSON *p = js ? cJSON_Parse(js) : NULL;
  free(js);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "name"),
              *sha = cJSON_GetObjectItemCaseSensitive(p, "sha256");
  bool same = cJSON_IsString(name) && cJSON_IsString(sha) &&
              strcmp(name->valuestring, t->string) == 0 &&
              strcmp(sha->valuestring, hash_of(t, "sha256")) == 0;
  cJSON_Delete(p);
  return same;
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
    fetch(d, repo_url(d, path), uptane_image_size_cap(&u->image, UPTANE_ROLE_TARGETS, u->need),
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
      fetch(d, director_url(d, path), UPTANE_MAX_ROOT_SIZE, "GET director root");
      return;
    case STEP_DIR_TARGETS:
      if (uptane_root_check_expiry(&u->director.root, time(NULL), &err)) {
        verification_failed(d, &err);
        return;
      }
      fetch(d, director_url(d, "targets.json"), UPTANE_MAX_DIRECTOR_TARGETS_SIZE,
            "GET director targets.json");
      return;
    case STEP_IMG_ROOT:
      snprintf(path, sizeof(path), "%lld.root.json", (long long)u->image.root.version + 1);
      fetch(d, repo_url(d, path), UPTANE_MAX_ROOT_SIZE, "GET image root");
      return;
    case STEP_IMG_TIMESTAMP:
      if (uptane_root_check_expiry(&u->image.root, time(NULL), &err)) {
        verification_failed(d, &err);
        return;
      }
      fetch(d, repo_url(d, "timestamp.json"), UPTANE_MAX_TIMESTAMP_SIZE,
            "GET image timestamp.json");
      return;
    case STEP_IMG_SNAPSHOT:
      if (!uptane_image_snapshot_needed(&u->image)) {
        u->step = STEP_IMG_TARGETS;
        next_step(d);
        return;
      }
      fetch(d, repo_url(d, "snapshot.json"),
            uptane_image_size_cap(&u->image, UPTANE_ROLE_SNAPSHOT, NULL), "GET image snapshot.json");
      return;
    case STEP_IMG_TARGETS:
      if (!uptane_image_targets_needed(&u->image)) {
        find_image_target(d);
        return;
      }
      fetch(d, repo_url(d, "targets.json"),
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
  if (already_installed(d, t)) {
    device_log(d, LOG_DEBUG, "%s is installed already", t->string);
    device_fire(d, EV_NO_UPDATE, "installed already");
    return;
  }
  if (waits_for_reboot(d, t)) {
    device_log(d, LOG_INFO, "%s is installed and waits for a reboot to complete", t->string);
    device_fire(d, EV_NO_UPDATE, "reboot pending");
    return;
  }
  if (!d->upd->image_parsed) restore_image(d);
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
    fetch_failed(d, r, r->url ? r->url : "metadata");
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
  int rc = ensure_ecu_identity(d, &eb);
  char *manifest = rc ? NULL : polling_build_manifest(d, &eb);
  if (!manifest) {
    device_fail_with(d, EV_CONFIG_ERROR, rc ? rc : OTAD_ECRYPTO, "cannot sign the manifest: %s",
                     eb.msg);
    return;
  }
  states_send(d, "PUT", "PUT /director/manifest", director_url(d, "manifest"), manifest, 0,
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
    fetch_failed(d, r, "PUT /director/manifest");
    http_request_reset(r);
    return;
  }
  http_request_reset(r);
  if (d->upd->result.pending) clear_result(d);
  events_flush(d, send_device_data);
}

void polling_poll(device *d) {
  d->eb.msg[0] = 0;
  if (ensure_update_state(d)) {
    device_fail_with(d, EV_CONFIG_ERROR, OTAD_ENOMEM, "out of memory");
    return;
  }
  device_update *u = d->upd;
  if (!u->boot_checked) { /* once per run: did a reboot complete an installation? */
    u->boot_checked = true;
    char name[256];
    if (!d->o.check_only && installing_reboot_completed(d, name, sizeof(name))) {
      otad_errbuf eb = {{0}};
      int rc = ensure_ecu_identity(d, &eb); /* its events name the ECU */
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
    fetch_failed(d, r, "PUT /director/manifest (installation report)");
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

static void on_poll_timer(uv_timer_t *t) {
  device *d = t->data;
  device_fire(d, EV_POLL, NULL);
}

void polling_idle(device *d) {
  if (d->upd && d->upd->reboot_requested) { /* reported: now the reboot that completes it */
    d->upd->reboot_requested = false;
    installing_reboot(d);
  }
  if (d->o.one_shot) {
    if (d->o.done) d->o.done(d);
    return;
  }
  forget_image(d);
  uv_timer_start(&d->timer, on_poll_timer, device_poll_delay_ms(d), 0);
}
