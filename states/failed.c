/* failed.c - the state a device ends in when it needs a person (bad configuration, a
 * rejection, retries spent in a one-shot run): say why, then tell the owner. */
#include "../core/log.h"
#include "states.h"

void failed_finish(device *d) {
  d->t_done_ms = uv_now(d->o.loop);
  device_log(d, LOG_ERROR, "%s failed: %s", d->upd ? "update cycle" : "provisioning",
             d->eb.msg[0] ? d->eb.msg : otad_strerror(d->last_err));
  if (d->o.done) d->o.done(d);
}
