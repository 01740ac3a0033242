/* provisioned.c - the end of provisioning, good or bad: say so, then tell the owner.
 *
 * Later issues continue from here into polling; for now provisioned and failed are where a
 * run of `otad once` ends. A daemon with DeviceCred stays and watches its [import] files.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"
#include "states.h"

/* DeviceCred in a daemon: checks the [import] files every polling interval and starts
 * over when they hold a different identity (a renewed or replaced certificate). */
static void on_watch_timer(uv_timer_t *t) {
  device *d = t->data;
  tls_creds imp;
  char *url = NULL;
  otad_errbuf eb = {{0}};
  if (import_device_credentials(d, &imp, &url, &eb) != 0) {
    device_log(d, LOG_DEBUG, "[import] check: %s", eb.msg);
    return;
  }
  bool changed = strcmp(imp.key_pem, d->creds.key_pem) != 0 ||
                 strcmp(imp.cert_pem, d->creds.cert_pem) != 0 ||
                 strcmp(imp.ca_pem, d->creds.ca_pem) != 0 ||
                 (d->server_url && strcmp(url, d->server_url) != 0);
  tls_creds_free(&imp);
  free(url);
  if (!changed) return;
  uv_timer_stop(&d->timer);
  device_log(d, LOG_INFO, "the [import] credentials changed; importing them");
  device_fire(d, EV_CREDENTIALS_CHANGED, "[import] files changed");
}

void provisioned_finish(device *d) {
  tls_cert_info ci = {0};
  otad_errbuf eb = {{0}};
  char until[32] = "unknown";
  if (d->creds.cert_pem && tls_cert_info_pem(d->creds.cert_pem, &ci, &eb) == 0) {
    struct tm tm;
    gmtime_r(&ci.not_after, &tm);
    strftime(until, sizeof(until), "%Y-%m-%d", &tm);
  }
  device_log(d, LOG_INFO, "provisioned: device ID %s, certificate CN=%s (valid until %s), "
             "primary ECU %s", d->id[0] ? d->id : "-", d->uuid[0] ? d->uuid : ci.cn, until,
             d->ecu_serial[0] ? d->ecu_serial : "(registered earlier)");
  if (d->o.updates) {
    device_fire(d, EV_POLL, NULL); /* the update cycle begins */
    return;
  }
  if (d->o.watch_import && config_mode(d->o.cfg) == PROVISION_DEVICE_CRED) {
    uint64_t period = (uint64_t)(d->o.cfg->polling_sec > 0 ? d->o.cfg->polling_sec : 10) * 1000;
    uv_timer_start(&d->timer, on_watch_timer, period, period);
  }
  if (d->o.done) d->o.done(d);
}

void failed_finish(device *d) {
  device_log(d, LOG_ERROR, "%s failed: %s", d->upd ? "update cycle" : "provisioning",
             d->eb.msg[0] ? d->eb.msg : otad_strerror(d->last_err));
  if (d->o.done) d->o.done(d);
}
