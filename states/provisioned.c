/* provisioned.c - the end of provisioning, good or bad: say so, then tell the owner.
 *
 * Later issues continue from here into polling; for now provisioned and failed are where a
 * run ends.
 */
#include <time.h>

#include "../core/log.h"
#include "states.h"

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
  if (d->o.done) d->o.done(d);
}

void failed_finish(device *d) {
  device_log(d, LOG_ERROR, "provisioning failed: %s",
             d->eb.msg[0] ? d->eb.msg : otad_strerror(d->last_err));
  if (d->o.done) d->o.done(d);
}
