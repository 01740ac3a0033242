/* ecu_registering.c - the primary ECU: its Uptane key and POST /director/ecus.
 *
 * The key is generated once (on the libuv thread pool: RSA takes tens of milliseconds and
 * must not stall the other devices of a fleet), stored, and reused on every later attempt,
 * so a retry registers the same ECU. Serial = [provision] primary_ecu_serial, else the
 * KeyId; hardware ID = primary_ecu_hardware_id, else the host name.
 *
 * With [uptane] key_source = "pkcs11" the key is never generated: it is the RSA key with
 * ID [p11] uptane_key_id in the token, read afresh on every run (its public half is all
 * that leaves the token); what is stored is only its URI and public value.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"
#include "../device/credentials.h"
#include "../device/request.h"
#include "states.h"

/* Serial and hardware ID: configured, else stored, else derived; then stored. */
static int settle_ecu_identity(device *d) {
  const otad_config *c = d->o.cfg;
  char *s = store_read_string(d->o.st, STORE_ECU_SERIAL);
  const char *serial = c->primary_ecu_serial ? c->primary_ecu_serial : s ? s : d->ecu_key.keyid;
  snprintf(d->ecu_serial, sizeof(d->ecu_serial), "%s", serial);
  free(s);
  char *h = store_read_string(d->o.st, STORE_ECU_HWID);
  char host[72] = "";
  if (!c->primary_ecu_hardware_id && !h) {
    gethostname(host, sizeof(host) - 1);
    if (!host[0]) snprintf(host, sizeof(host), "otad-device");
  }
  snprintf(d->ecu_hwid, sizeof(d->ecu_hwid), "%s",
           c->primary_ecu_hardware_id ? c->primary_ecu_hardware_id
           : h                        ? h
                                      : host);
  free(h);
  int rc =
      store_write(d->o.st, STORE_ECU_SERIAL, d->ecu_serial, strlen(d->ecu_serial), false, &d->eb);
  if (!rc)
    rc = store_write(d->o.st, STORE_ECU_HWID, d->ecu_hwid, strlen(d->ecu_hwid), false, &d->eb);
  return rc;
}

static void key_ready(device *d) {
  int rc = settle_ecu_identity(d);
  if (rc) {
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "storing the ECU identity failed: %s", d->eb.msg);
    return;
  }
  device_fire(d, EV_KEY_READY, d->ecu_key.keyid);
}

static void generate_work(device_work *w) {
  device *d = w->d;
  w->rc = keys_generate(d->o.cfg->key_type, &d->ecu_key, &w->eb);
}

static void generate_done(device *d, device_work *w) {
  if (w->rc) {
    device_fail_with(d, EV_CONFIG_ERROR, w->rc, "generating the %s Uptane key failed: %s",
                     config_key_type_name(d->o.cfg->key_type), w->eb.msg);
    return;
  }
  char *priv = d->ecu_key.private_pem;
  int rc = store_write(d->o.st, STORE_ECU_KEY, priv, strlen(priv), true, &d->eb);
  if (!rc)
    rc = store_write(d->o.st, STORE_ECU_PUB, d->ecu_key.public_text, strlen(d->ecu_key.public_text),
                     false, &d->eb);
  if (rc) {
    keys_free(&d->ecu_key);
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "storing the Uptane key failed: %s", d->eb.msg);
    return;
  }
  device_log(d, LOG_DEBUG, "generated %s Uptane key %s", config_key_type_name(d->o.cfg->key_type),
             d->ecu_key.keyid);
  key_ready(d);
}

/* The Uptane key in a PKCS#11 token: loaded, never generated. */
static void prepare_token_key(device *d) {
  const otad_config *c = d->o.cfg;
  otad_errbuf eb = {{0}};
  int rc = keys_load_pkcs11(c->p11_module, c->p11_pass, c->p11_uptane_key_id, &d->ecu_key, &eb);
  if (rc) {
    device_fail_with(d, EV_CONFIG_ERROR, rc, "the Uptane key: %s", eb.msg);
    return;
  }
  const char *uri = d->ecu_key.private_pem;
  rc = store_write(d->o.st, STORE_ECU_KEY, uri, strlen(uri), true, &d->eb);
  if (!rc)
    rc = store_write(d->o.st, STORE_ECU_PUB, d->ecu_key.public_text, strlen(d->ecu_key.public_text),
                     false, &d->eb);
  if (rc) {
    keys_free(&d->ecu_key);
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "storing the Uptane key's reference failed: %s",
                     d->eb.msg);
    return;
  }
  device_log(d, LOG_DEBUG, "Uptane key %s is %s key %s in the PKCS#11 token", d->ecu_key.keyid,
             config_key_type_name(d->ecu_key.type), c->p11_uptane_key_id);
  key_ready(d);
}

void ecu_registering_prepare_key(device *d) {
  d->eb.msg[0] = 0;
  if (d->ecu_key.private_pem) {
    key_ready(d);
    return;
  }
  const char *source = d->o.cfg->key_source;
  if (source && strcmp(source, "pkcs11") == 0) {
    prepare_token_key(d);
    return;
  }
  char *priv = store_read_string(d->o.st, STORE_ECU_KEY);
  if (priv) {
    otad_errbuf eb = {{0}};
    int rc = keys_load(priv, &d->ecu_key, &eb);
    memset(priv, 0, strlen(priv));
    free(priv);
    if (rc == 0) {
      key_ready(d);
      return;
    }
    device_log(d, LOG_WARN, "stored Uptane key is unreadable (%s); generating a new one", eb.msg);
  }
  int rc = device_queue_work(d, generate_work, generate_done, NULL, 0);
  if (rc)
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "cannot queue key generation: %s",
                     otad_strerror(rc));
}

static void on_ecus_done(http_request *r);

void ecu_registering_register(device *d) {
  d->eb.msg[0] = 0;
  const otad_config *c = d->o.cfg;
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "primary_ecu_serial", d->ecu_serial);
  cJSON *ecus = cJSON_AddArrayToObject(body, "ecus");
  cJSON *ecu = cJSON_CreateObject();
  cJSON_AddStringToObject(ecu, "ecu_serial", d->ecu_serial);
  cJSON_AddStringToObject(ecu, "hardware_identifier", d->ecu_hwid);
  cJSON *ck = cJSON_AddObjectToObject(ecu, "clientKey");
  cJSON_AddStringToObject(ck, "keytype", keys_director_type(d->ecu_key.type));
  cJSON *kv = cJSON_AddObjectToObject(ck, "keyval");
  cJSON_AddStringToObject(kv, "public", d->ecu_key.public_text);
  cJSON_AddItemToArray(ecus, ecu);
  char *url;
  if (c->ecu_registration_endpoint)
    url = strdup(c->ecu_registration_endpoint);
  else if (c->director_server)
    url = device_url(c->director_server, "/ecus");
  else
    url = device_url(d->server_url, "/director/ecus");
  device_log(d, LOG_INFO, "registering primary ECU %s (hardware ID %s)", d->ecu_serial,
             d->ecu_hwid);
  device_post_json(d, "POST /director/ecus", url, body, &d->creds, on_ecus_done);
}

static void on_ecus_done(http_request *r) {
  device *d = r->data;
  if (r->err == OTAD_ECANCELED) return;
  if (!r->err && r->status >= 200 && r->status < 300) {
    int rc = store_write(d->o.st, STORE_ECU_REGISTERED, "1\n", 2, false, &d->eb);
    if (rc)
      device_fail_with(d, EV_TRANSIENT_ERROR, rc, "storing the registration failed: %s", d->eb.msg);
    else
      device_fire(d, EV_ECUS_REGISTERED, d->ecu_serial);
  } else {
    device_request_failed(d, r, "POST /director/ecus");
  }
  http_request_reset(r);
}
