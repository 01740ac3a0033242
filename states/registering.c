/* registering.c - automatic (shared-credential) provisioning: POST /devices.
 *
 * The device presents the fleet's provisioning certificate, verifies the server against
 * the CA certificates of the same PKCS#12, and asks for its own credentials. The reply is
 * a PKCS#12 (empty password) with the device key, certificate and the CA bundle that is
 * pinned from then on, stored as one unit by credentials_store().
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/idgen.h"
#include "../core/log.h"
#include "../device/credentials.h"
#include "../device/request.h"
#include "states.h"

static void on_register_done(http_request *req);

/* An earlier attempt of this run got credentials and stored creds.pending, but not the
 * files (a full disk): they are this device's identity, so the retry completes them as a
 * restart would, and does not register again. True when it took over. */
static bool finish_stored_credentials(device *d) {
  char *pending = store_read_string(d->o.st, STORE_CREDS_PENDING);
  if (!pending) return false;
  memset(pending, 0, strlen(pending));
  free(pending);
  int rc = credentials_finish_pending(d);
  if (rc) {
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "storing the device credentials failed: %s",
                     d->eb.msg);
    return true;
  }
  if (!credentials_load_stored(d)) {
    device_fail_with(d, EV_TRANSIENT_ERROR, OTAD_EIO, "the stored credentials are incomplete");
    return true;
  }
  credentials_strip_fleet_key(d);
  device_log(d, LOG_INFO, "registered: stored the certificate CN=%s the server issued earlier",
             d->uuid);
  device_fire(d, EV_REGISTERED, d->uuid);
  return true;
}

void registering_register(device *d) {
  d->eb.msg[0] = 0;
  if (finish_stored_credentials(d)) return;
  char ttl[24];
  snprintf(ttl, sizeof(ttl), "%d", d->o.cfg->expiry_days > 0 ? d->o.cfg->expiry_days : 36000);
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "deviceId", d->id);
  cJSON_AddStringToObject(body, "ttl", ttl);
  device_log(d, LOG_INFO, "registering as '%s' with %s", d->id, d->server_url);
  /* The fleet-key connection is used once: not pooled, its TLS session not cached (a
   * fleet device would otherwise hold both until they age out). */
  d->req.forbid_reuse = 1;
  d->req.no_tls_session = 1;
  device_post_json(d, "POST /devices", device_url(d->server_url, "/devices"), body, d->prov,
                   on_register_done);
}

void registering_new_id(device *d) {
  char old[sizeof(d->id)];
  snprintf(old, sizeof(old), "%s", d->id);
  idgen_readable(&d->rng, d->id, sizeof(d->id));
  device_log(d, LOG_WARN, "device ID '%s' is already registered; trying '%s'", old, d->id);
  int rc = store_write(d->o.st, STORE_DEVICE_ID, d->id, strlen(d->id), false, &d->eb);
  if (rc) {
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "cannot store the device ID: %s", d->eb.msg);
    return;
  }
  registering_register(d);
}

/* 2xx, on the thread pool: the body is the device's PKCS#12; its PBKDF2 rounds must not
 * stall the other devices of the loop. */
static void parse_work(device_work *w) {
  w->rc = tls_p12_parse(w->in, w->in_len, "", &w->creds, &w->eb);
}

static void parse_done(device *d, device_work *w) {
  size_t len = w->in_len;
  tls_creds c = w->creds;
  memset(&w->creds, 0, sizeof(w->creds)); /* taken */
  otad_errbuf eb = {{0}};
  int rc = w->rc;
  if (rc) {
    device_fail_with(d, EV_TRANSIENT_ERROR, rc,
                     "POST /devices: the server's PKCS#12 reply (%zu bytes) is unusable: %s; "
                     "nothing stored",
                     len, w->eb.msg);
    return;
  }
  if (!c.ca_pem || !c.ca_pem[0]) {
    tls_creds_free(&c);
    device_fail_with(d, EV_TRANSIENT_ERROR, OTAD_EP12,
                     "POST /devices: the server's PKCS#12 holds no CA certificate to pin; "
                     "nothing stored");
    return;
  }
  size_t n = strlen(c.cert_pem) + strlen(c.ca_pem) + 2;
  char *chain = malloc(n);
  if (!chain) {
    tls_creds_free(&c);
    device_fail_with(d, EV_TRANSIENT_ERROR, OTAD_ENOMEM, "out of memory");
    return;
  }
  snprintf(chain, n, "%s%s%s", c.cert_pem, c.cert_pem[strlen(c.cert_pem) - 1] == '\n' ? "" : "\n",
           c.ca_pem);
  rc = credentials_store(d, c.key_pem, chain, c.ca_pem, d->server_url);
  if (rc) {
    free(chain);
    tls_creds_free(&c);
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "storing the device credentials failed: %s",
                     d->eb.msg);
    return;
  }
  tls_cert_info ci;
  if (tls_cert_info_pem(c.cert_pem, &ci, &eb) == 0) snprintf(d->uuid, sizeof(d->uuid), "%s", ci.cn);
  tls_creds_free(&d->creds);
  d->creds.key_pem = c.key_pem;
  d->creds.cert_pem = chain;
  d->creds.ca_pem = c.ca_pem;
  free(c.cert_pem);

  credentials_strip_fleet_key(d); /* the fleet key must not linger on the device */
  device_log(d, LOG_INFO, "registered: the server issued certificate CN=%s", d->uuid);
  device_fire(d, EV_REGISTERED, d->uuid);
}

static void on_register_done(http_request *r) {
  device *d = r->data;
  r->forbid_reuse = 0;
  r->no_tls_session = 0;
  if (r->err == OTAD_ECANCELED) return;
  if (!r->err && r->status >= 200 && r->status < 300) {
    /* the reply moves to the thread pool for parsing */
    uint8_t *body = r->resp;
    r->resp = NULL;
    int rc = device_queue_work(d, parse_work, parse_done, body, r->resp_len);
    if (rc)
      device_fail_with(d, EV_TRANSIENT_ERROR, rc, "cannot queue the PKCS#12 parse: %s",
                       otad_strerror(rc));
  } else {
    char code[64], desc[256];
    device_error_reply(r, code, sizeof(code), desc, sizeof(desc));
    if (!r->err && strcmp(code, "device_already_registered") == 0)
      device_fire(d, EV_ID_TAKEN, d->id);
    else
      device_request_failed(d, r, "POST /devices");
  }
  http_request_reset(r);
}
