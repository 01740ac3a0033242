/* provisioned.c - the end of provisioning: say so, then start polling or tell the owner.
 *
 * Without updates (provisioning only) this is where a run ends; a daemon with DeviceCred
 * then stays and watches its [import] files.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"
#include "../device/credentials.h"
#include "states.h"

/* DeviceCred in a daemon: checks the [import] files every polling interval and starts
 * over when they hold a different identity (a renewed or replaced certificate). */
static void check_import(device *d) {
  tls_creds imp;
  char *url = NULL;
  otad_errbuf eb = {{0}};
  if (device_import_credentials(d, &imp, &url, &eb) != 0) {
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
  device_watch_stop(d);
  device_log(d, LOG_INFO, "the [import] credentials changed; importing them");
  device_fire(d, EV_CREDENTIALS_CHANGED, "[import] files changed");
}

void provisioned_finish(device *d) {
  d->t_done_ms = uv_now(d->o.loop);
  tls_cert_info ci = {0};
  otad_errbuf eb = {{0}};
  char until[32] = "unknown";
  if (d->creds.cert_pem && tls_cert_info_pem(d->creds.cert_pem, &ci, &eb) == 0) {
    struct tm tm;
    gmtime_r(&ci.not_after, &tm);
    strftime(until, sizeof(until), "%Y-%m-%d", &tm);
  }
  device_log(d, LOG_INFO,
             "provisioned: device ID %s, certificate CN=%s (valid until %s), "
             "primary ECU %s",
             d->id[0] ? d->id : "-", d->uuid[0] ? d->uuid : ci.cn, until,
             d->ecu_serial[0] ? d->ecu_serial : "(registered earlier)");
  if (d->o.updates) {
    device_fire(d, EV_POLL, NULL); /* the update cycle begins */
    return;
  }
  if (d->o.watch_import && config_mode(d->o.cfg) == PROVISION_DEVICE_CRED) {
    if (device_watch_start(d, device_polling_period_ms(d), check_import) != 0)
      device_log(d, LOG_WARN, "cannot watch the [import] files: out of memory");
  }
  if (d->o.done) d->o.done(d);
}
