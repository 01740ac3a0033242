/* unprovisioned.c - the first state of every run: what does this device already have?
 *
 * In order: finish a credential write that a crash interrupted; a complete stored identity
 * means provisioning is done or half done (ECUs not yet registered); otherwise read the
 * fleet key from credentials.zip and choose the device ID (stored, configured, or a new
 * readable name, stored before any request so a crash cannot lose it).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/idgen.h"
#include "../core/log.h"
#include "../storage/credzip.h"
#include "states.h"

/* Replaces *dst with a copy of src. */
static void set_str(char **dst, const char *src) {
  free(*dst);
  *dst = src ? strdup(src) : NULL;
}

/* A crash between writing creds.pending and removing it: write the files it holds. */
static int finish_pending_credentials(device *d) {
  char *js = NULL;
  size_t len = 0;
  otad_errbuf eb = {{0}};
  int rc = store_read(d->o.st, STORE_CREDS_PENDING, &js, &len, &eb);
  if (rc == OTAD_ENOENT) return 0;
  if (rc) return rc;
  cJSON *o = cJSON_Parse(js);
  free(js);
  const cJSON *ca = cJSON_GetObjectItemCaseSensitive(o, "ca"),
              *cert = cJSON_GetObjectItemCaseSensitive(o, "cert"),
              *key = cJSON_GetObjectItemCaseSensitive(o, "key"),
              *url = cJSON_GetObjectItemCaseSensitive(o, "url");
  if (!cJSON_IsString(ca) || !cJSON_IsString(cert) || !cJSON_IsString(key) ||
      !cJSON_IsString(url)) {
    /* creds.pending is itself written atomically, so this means outside damage */
    cJSON_Delete(o);
    device_log(d, LOG_WARN, "ignoring unreadable %s", STORE_CREDS_PENDING);
    return store_remove(d->o.st, STORE_CREDS_PENDING, &eb);
  }
  device_log(d, LOG_INFO, "completing the credential write interrupted by a restart");
  rc = store_write(d->o.st, STORE_PKEY_PEM, key->valuestring, strlen(key->valuestring), true,
                   &d->eb);
  if (!rc)
    rc = store_write(d->o.st, STORE_CLIENT_PEM, cert->valuestring, strlen(cert->valuestring),
                     false, &d->eb);
  if (!rc)
    rc = store_write(d->o.st, STORE_ROOT_CRT, ca->valuestring, strlen(ca->valuestring), false,
                     &d->eb);
  if (!rc)
    rc = store_write(d->o.st, STORE_SERVER_URL, url->valuestring, strlen(url->valuestring),
                     false, &d->eb);
  cJSON_Delete(o);
  if (!rc) rc = store_remove(d->o.st, STORE_CREDS_PENDING, &d->eb);
  return rc;
}

bool unprovisioned_load_stored(device *d) {
  char *key = store_read_string(d->o.st, STORE_PKEY_PEM);
  char *cert = store_read_string(d->o.st, STORE_CLIENT_PEM);
  char *ca = store_read_string(d->o.st, STORE_ROOT_CRT);
  if (!key || !cert || !ca) {
    if (key || cert || ca)
      device_log(d, LOG_WARN, "stored credentials are incomplete (%s%s%s missing)",
                 key ? "" : "pkey.pem ", cert ? "" : "client.pem ", ca ? "" : "root.crt");
    free(key);
    free(cert);
    free(ca);
    return false;
  }
  tls_creds_free(&d->creds);
  d->creds.key_pem = key;
  d->creds.cert_pem = cert;
  d->creds.ca_pem = ca;
  tls_cert_info ci;
  otad_errbuf eb = {{0}};
  if (tls_cert_info_pem(cert, &ci, &eb) == 0) snprintf(d->uuid, sizeof(d->uuid), "%s", ci.cn);
  else device_log(d, LOG_WARN, "stored client.pem: %s", eb.msg);
  return true;
}

/* The fleet key must not outlive provisioning on the device, also when a crash came
 * between storing the credentials and stripping the zip (a no-op once it is gone). */
void unprovisioned_strip_fleet_key(device *d) {
  const otad_config *cfg = d->o.cfg;
  otad_errbuf eb = {{0}};
  if (d->o.shared_prov || !cfg->provision_path || config_mode(cfg) == PROVISION_SHARED_CRED_REUSE)
    return;
  if (access(cfg->provision_path, F_OK) != 0) return;
  if (credzip_strip_fleet_key(cfg->provision_path, &eb))
    device_log(d, LOG_WARN, "could not remove the fleet key from %s: %s", cfg->provision_path,
               eb.msg);
}

/* The server URL: configuration first, then what an earlier run learned. */
static void load_server_url(device *d) {
  const otad_config *c = d->o.cfg;
  if (c->tls_server) set_str(&d->server_url, c->tls_server);
  else if (c->provision_server) set_str(&d->server_url, c->provision_server);
  else {
    char *u = store_read_string(d->o.st, STORE_SERVER_URL);
    free(d->server_url);
    d->server_url = u;
  }
}

/* Chooses the device ID per PROTOCOL.md and stores it before any request. */
static int choose_device_id(device *d) {
  char *stored = store_read_string(d->o.st, STORE_DEVICE_ID);
  if (stored && idgen_valid(stored)) {
    snprintf(d->id, sizeof(d->id), "%s", stored);
    free(stored);
    return 0;
  }
  free(stored);
  if (d->o.cfg->device_id) snprintf(d->id, sizeof(d->id), "%s", d->o.cfg->device_id);
  else idgen_readable(&d->rng, d->id, sizeof(d->id));
  return store_write(d->o.st, STORE_DEVICE_ID, d->id, strlen(d->id), false, &d->eb);
}

/* Reads credentials.zip and its PKCS#12 into d->own_prov. Returns 0 or an error (eb). */
static int load_fleet_key(device *d) {
  const otad_config *c = d->o.cfg;
  if (d->o.shared_prov) {
    d->prov = d->o.shared_prov;
    if (!d->server_url && d->o.shared_url) set_str(&d->server_url, d->o.shared_url);
    return 0;
  }
  if (!c->provision_path)
    return otad_fail(&d->eb, OTAD_ECONFIG,
                     "no stored credentials and no [provision] provision_path to get them");
  credzip z = {0};
  int rc = credzip_read(c->provision_path, &z, &d->eb);
  if (rc) return rc;
  rc = tls_p12_parse(z.p12, z.p12_len, c->p12_password ? c->p12_password : "", &d->own_prov,
                     &d->eb);
  if (rc) {
    char m[sizeof(d->eb.msg)];
    snprintf(m, sizeof(m), "%s: autoprov_credentials.p12: %s", c->provision_path, d->eb.msg);
    snprintf(d->eb.msg, sizeof(d->eb.msg), "%s", m);
  } else if (!d->server_url) {
    d->server_url = z.url;
    z.url = NULL;
  }
  credzip_free(&z);
  d->prov = &d->own_prov;
  return rc;
}

void unprovisioned_inspect(device *d) {
  d->eb.msg[0] = 0;
  char *stored_id = store_read_string(d->o.st, STORE_DEVICE_ID);
  if (stored_id) snprintf(d->id, sizeof(d->id), "%s", stored_id);
  free(stored_id);

  int rc = finish_pending_credentials(d);
  if (rc) {
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "cannot complete stored credentials: %s",
                     d->eb.msg[0] ? d->eb.msg : otad_strerror(rc));
    return;
  }
  load_server_url(d);
  if (unprovisioned_load_stored(d)) {
    if (!d->server_url) {
      device_fail_with(d, EV_CONFIG_ERROR, OTAD_ECONFIG,
                       "credentials are stored but no server URL is known "
                       "(set [tls] server)");
      return;
    }
    unprovisioned_strip_fleet_key(d);
    char *reg = store_read_string(d->o.st, STORE_ECU_REGISTERED);
    bool done = reg != NULL;
    free(reg);
    device_fire(d, done ? EV_STORED_PROVISIONED : EV_STORED_CREDENTIALS,
                done ? "device certificate and ECUs stored" : "device certificate stored");
    return;
  }
  if (config_mode(d->o.cfg) == PROVISION_DEVICE_CRED) {
    device_fail_with(d, EV_CONFIG_ERROR, OTAD_ECONFIG,
                     "DeviceCred provisioning (device certificates under [import]) is not "
                     "supported by this version; set [provision] provision_path for "
                     "SharedCred");
    return;
  }
  rc = load_fleet_key(d);
  if (rc) {
    device_fail_with(d, EV_CONFIG_ERROR, rc, "%s", d->eb.msg[0] ? d->eb.msg : otad_strerror(rc));
    return;
  }
  if (!d->server_url) {
    device_fail_with(d, EV_CONFIG_ERROR, OTAD_ECONFIG, "no server URL: credentials.zip has no "
                     "autoprov.url and [provision] server is not set");
    return;
  }
  rc = choose_device_id(d);
  if (rc) {
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "cannot store the device ID: %s", d->eb.msg);
    return;
  }
  device_fire(d, EV_ZIP_LOADED, d->server_url);
}
