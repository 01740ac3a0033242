/* installing.c - the installing state: hands the verified image to the install backend
 * [pacman] type names (pacman/: none, archive, command), records the outcome and reports.
 *
 * A success is recorded in the store (installed_target, or pending_target when a reboot
 * must complete it), so the next manifest names the image; d->upd->result carries the
 * report either way. Events: EcuInstallationStarted, then EcuInstallationCompleted (with
 * success), or EcuInstallationApplied when a reboot completes it: then need_reboot is
 * raised, [bootloader] reboot_command runs after the report, and the first poll of the
 * next run (after the reboot) records the target as installed and reports OK
 * (installing_complete, the action "complete").
 *
 * A device closed while its backend works waits for it (work_busy); an install that
 * succeeded then is recorded as pending_target, so the next run records and reports it.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../device/events.h"
#include "../device/reboot.h"
#include "../pacman/pacman.h"
#include "states.h"

static void install_failed(device *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void install_failed(device *d, const char *fmt, ...) {
  char desc[sizeof(d->eb.msg)];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(desc, sizeof(desc), fmt, ap);
  va_end(ap);
  if (d->upd) {
    device_set_result(d, false, UPDATE_INSTALL_FAILED, "%s", desc);
    events_queue(d, EVENT_INSTALLATION_COMPLETED, d->upd->target.correlation_id, EVENT_FAILED);
  }
  device_log(d, LOG_ERROR, "%s", desc);
  device_fail_with(d, EV_INSTALL_FAILED, OTAD_EIO, "%s", desc);
}

/* The target as JSON for the store (the form of STORE_INSTALLED_TARGET). done: the backend
 * finished (no reboot needed), only recording and reporting it remain - a pending_target
 * so marked is completed by the next run whatever the reboot sentinel says. */
static char *target_json(const update_target *t, bool done) {
  cJSON *o = cJSON_CreateObject();
  if (done) cJSON_AddBoolToObject(o, "installed", true);
  cJSON_AddStringToObject(o, "name", t->name);
  cJSON_AddStringToObject(o, "sha256", t->sha256);
  cJSON_AddStringToObject(o, "sha512", t->sha512);
  cJSON_AddNumberToObject(o, "length", (double)t->length);
  cJSON_AddStringToObject(o, "version", t->version);
  cJSON_AddStringToObject(o, "correlation_id", t->correlation_id);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

/* The backend succeeded (code OK or NEED_COMPLETION): record, report, go on.
 * OK is recorded as pending_target marked installed, then installed_target, then the
 * report, then pending_target goes: a crash anywhere in between leaves the pending
 * record, which the next run completes and reports (installing_complete). Without it a
 * crash after installed_target would lose the report: the next run finds the target
 * installed and the server never hears of it. */
static void install_succeeded(device *d, const char *code, const char *desc) {
  device_update *u = d->upd;
  bool complete = strcmp(code, UPDATE_OK) == 0;
  char *json = target_json(&u->target, complete);
  otad_errbuf eb = {{0}};
  int rc = json ? store_write(d->o.st, STORE_PENDING_TARGET, json, strlen(json), false, &eb)
                : otad_fail(&eb, OTAD_ENOMEM, "out of memory");
  if (!rc && complete)
    rc = store_write(d->o.st, STORE_INSTALLED_TARGET, json, strlen(json), false, &eb);
  free(json);
  if (rc) {
    char desc2[sizeof(d->eb.msg)];
    snprintf(desc2, sizeof(desc2), "%s, but recording it failed: %s", desc, eb.msg);
    device_set_result(d, false, UPDATE_INTERNAL_ERROR, "%s", desc2);
    events_queue(d, EVENT_INSTALLATION_COMPLETED, u->target.correlation_id, EVENT_FAILED);
    device_log(d, LOG_ERROR, "%s", desc2);
    device_fail_with(d, EV_INSTALL_FAILED, rc, "%s", desc2);
    return;
  }
  /* as aktualizr: only OK counts as success; NEED_COMPLETION waits for the reboot, but
   * is no failure of this cycle */
  device_set_result(d, complete, code, "%s", desc);
  device_log(d, LOG_INFO, "%s", desc);
  if (complete && store_remove(d->o.st, STORE_PENDING_TARGET, &eb) != 0)
    device_log(d, LOG_WARN, "%s", eb.msg); /* the next run completes it again: harmless */
  if (complete) {
    events_queue(d, EVENT_INSTALLATION_COMPLETED, u->target.correlation_id, EVENT_SUCCEEDED);
    device_fire(d, EV_INSTALLED, u->target.name);
    return;
  }
  device_reboot_sentinel_write(d);
  u->cycle_failed = false;
  u->reboot_requested = true;
  events_queue(d, EVENT_INSTALLATION_APPLIED, u->target.correlation_id, EVENT_NO_SUCCESS);
  device_fire(d, EV_NEED_REBOOT, u->target.name);
}

/* -- the installation a reboot completes -- */

static void copy_str(const cJSON *o, const char *key, char *out, size_t n) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  snprintf(out, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

/* After a reboot: does the backend find t running? Backends that cannot tell (none,
 * archive, command) take the reboot as the completion. */
static bool booted_as_installed(device *d, const update_target *t, otad_errbuf *eb) {
  const pacman_backend *b = pacman_find(d->o.cfg->pacman_type);
  return !b || !b->complete || b->complete(d->o.cfg, t, eb) == 0;
}

void installing_complete(device *d) {
  d->eb.msg[0] = 0;
  device_update *u = d->upd;
  char *js = store_read_string(d->o.st, STORE_PENDING_TARGET);
  cJSON *o = js ? cJSON_Parse(js) : NULL;
  if (!o) {
    free(js);
    install_failed(d, "bug: no pending installation to complete");
    return;
  }
  update_target *t = &u->target; /* the report and the events name it */
  memset(t, 0, sizeof(*t));
  copy_str(o, "name", t->name, sizeof(t->name));
  copy_str(o, "sha256", t->sha256, sizeof(t->sha256));
  copy_str(o, "sha512", t->sha512, sizeof(t->sha512));
  copy_str(o, "version", t->version, sizeof(t->version));
  copy_str(o, "correlation_id", t->correlation_id, sizeof(t->correlation_id));
  const cJSON *len = cJSON_GetObjectItemCaseSensitive(o, "length");
  t->length = cJSON_IsNumber(len) ? (uint64_t)len->valuedouble : 0;
  bool done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "installed"));
  cJSON_Delete(o);
  otad_errbuf eb = {{0}};
  if (!done && !booted_as_installed(d, t, &eb)) { /* the backend says another version runs */
    free(js);
    store_remove(d->o.st, STORE_PENDING_TARGET, &eb);
    install_failed(d, "installing %s: %s", t->name, eb.msg);
    return;
  }
  /* the report first: until pending_target is gone, a crash only means completing again */
  device_set_result(d, true, UPDATE_OK, "installed %s: %s", t->name,
                    done ? "recorded after a restart" : "completed by a reboot");
  int rc = store_write(d->o.st, STORE_INSTALLED_TARGET, js, strlen(js), false, &eb);
  free(js);
  if (!rc) rc = store_remove(d->o.st, STORE_PENDING_TARGET, &eb);
  if (rc) {
    install_failed(d, "completing %s after the reboot: %s", t->name, eb.msg);
    return;
  }
  events_queue(d, EVENT_INSTALLATION_COMPLETED, t->correlation_id, EVENT_SUCCEEDED);
  device_log(d, LOG_INFO, "installed %s: %s", t->name,
             done ? "recorded and reported after a restart"
                  : "the reboot completed the installation");
  device_fire(d, EV_INSTALLED, t->name);
}

/* -- the backend -- */

static void install_done(pacman_job *job, enum pacman_outcome outcome, const char *desc) {
  device *d = job->data;
  free(job);
  if (d->closing) {
    if (outcome == PACMAN_INSTALLED) { /* done on disk: the next run records and reports it */
      char *json = target_json(&d->upd->target, true);
      otad_errbuf eb = {{0}};
      if (json) store_write(d->o.st, STORE_PENDING_TARGET, json, strlen(json), false, &eb);
      free(json);
    }
    device_work_finished(d);
    return;
  }
  d->work_busy = false;
  switch (outcome) {
  case PACMAN_INSTALLED: install_succeeded(d, UPDATE_OK, desc); break;
  case PACMAN_NEED_REBOOT: install_succeeded(d, UPDATE_NEED_COMPLETION, desc); break;
  case PACMAN_FAILED: install_failed(d, "%s", desc); break;
  }
}

void installing_start(device *d) {
  d->eb.msg[0] = 0;
  device_update *u = d->upd;
  if (!u || !u->image_path) {
    install_failed(d, "bug: no downloaded image to install");
    return;
  }
  events_queue(d, EVENT_INSTALLATION_STARTED, u->target.correlation_id, EVENT_NO_SUCCESS);
  const char *type = d->o.cfg->pacman_type;
  const pacman_backend *b = pacman_find(type);
  if (!b) {
    install_failed(d, "installing %s: [pacman] type \"%s\" is not supported here (%s)",
                   u->target.name, type, pacman_names());
    return;
  }
  pacman_job *job = calloc(1, sizeof(*job));
  if (!job) {
    install_failed(d, "installing %s: out of memory", u->target.name);
    return;
  }
  job->loop = d->o.loop;
  job->cfg = d->o.cfg;
  job->target = &u->target;
  job->image_path = u->image_path;
  job->label = d->label;
  job->quiet = d->o.quiet;
  job->done = install_done;
  job->data = d;
  d->work_busy = true; /* a closing device waits for the backend */
  otad_errbuf eb = {{0}};
  int rc = pacman_start(b, job, &eb);
  if (rc) {
    d->work_busy = false;
    free(job);
    install_failed(d, "installing %s: %s", u->target.name, eb.msg);
  }
}
