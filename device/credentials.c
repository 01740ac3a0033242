/* credentials.c - storing a device's TLS identity as one unit, whichever way it came
 * (issued by the server, or imported from [import] files).
 *
 * Three files must agree: pkey.pem, client.pem, root.crt (and gateway.url with them). They
 * are written as one unit: first creds.pending (one atomic file holding all of them), then
 * each file atomically, then creds.pending is removed. A crash at any point leaves either
 * the old set, or creds.pending, which credentials_finish_pending() completes at the next
 * start: never a key from one set beside a certificate from another.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../storage/credzip.h"
#include "credentials.h"

#include <unistd.h>

/* Writes the four files of a set; the pending record must already be stored. */
static int write_set(device *d, const char *key, const char *chain, const char *ca,
                     const char *url) {
  store *st = d->o.st;
  int rc = store_write(st, STORE_PKEY_PEM, key, strlen(key), true, &d->eb);
  if (!rc) rc = store_write(st, STORE_CLIENT_PEM, chain, strlen(chain), false, &d->eb);
  if (!rc) rc = store_write(st, STORE_ROOT_CRT, ca, strlen(ca), false, &d->eb);
  if (!rc) rc = store_write(st, STORE_SERVER_URL, url, strlen(url), false, &d->eb);
  if (!rc) rc = store_remove(st, STORE_CREDS_PENDING, &d->eb);
  return rc;
}

int credentials_store(device *d, const char *key, const char *chain, const char *ca,
                      const char *url) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "key", key);
  cJSON_AddStringToObject(o, "cert", chain);
  cJSON_AddStringToObject(o, "ca", ca);
  cJSON_AddStringToObject(o, "url", url);
  char *js = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!js) return otad_fail(&d->eb, OTAD_ENOMEM, "out of memory");
  int rc = store_write(d->o.st, STORE_CREDS_PENDING, js, strlen(js), true, &d->eb);
  memset(js, 0, strlen(js));
  free(js);
  return rc ? rc : write_set(d, key, chain, ca, url);
}

int credentials_finish_pending(device *d) {
  char *js = NULL;
  size_t len = 0;
  otad_errbuf eb = {{0}};
  int rc = store_read(d->o.st, STORE_CREDS_PENDING, &js, &len, &eb);
  if (rc == OTAD_ENOENT) return 0;
  if (rc) return otad_fail(&d->eb, rc, "%s", eb.msg);
  cJSON *o = cJSON_Parse(js);
  memset(js, 0, len);
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
    return store_remove(d->o.st, STORE_CREDS_PENDING, &d->eb);
  }
  device_log(d, LOG_INFO, "completing the credential write interrupted by a restart");
  rc = write_set(d, key->valuestring, cert->valuestring, ca->valuestring, url->valuestring);
  cJSON_Delete(o);
  return rc;
}

bool credentials_load_stored(device *d) {
  char *key = store_read_string(d->o.st, STORE_PKEY_PEM);
  char *cert = store_read_string(d->o.st, STORE_CLIENT_PEM);
  char *ca = store_read_string(d->o.st, STORE_ROOT_CRT);
  if (!key || !cert || !ca) {
    if (key || cert || ca)
      device_log(d, LOG_WARN, "stored credentials are incomplete (%s%s%s missing)",
                 key ? "" : "pkey.pem ", cert ? "" : "client.pem ", ca ? "" : "root.crt");
    if (key) memset(key, 0, strlen(key));
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
  if (tls_cert_info_pem(cert, &ci, &eb) == 0)
    snprintf(d->uuid, sizeof(d->uuid), "%s", ci.cn);
  else
    device_log(d, LOG_WARN, "stored client.pem: %s", eb.msg);
  return true;
}

/* The fleet key must not outlive provisioning on the device, also when a crash came
 * between storing the credentials and stripping the zip (a no-op once it is gone). */
void credentials_strip_fleet_key(device *d) {
  const otad_config *cfg = d->o.cfg;
  otad_errbuf eb = {{0}};
  if (d->o.shared_prov || !cfg->provision_path || config_mode(cfg) == PROVISION_SHARED_CRED_REUSE)
    return;
  if (access(cfg->provision_path, F_OK) != 0) return;
  if (credzip_strip_fleet_key(cfg->provision_path, &eb))
    device_log(d, LOG_WARN, "could not remove the fleet key from %s: %s", cfg->provision_path,
               eb.msg);
}
