/* unprovisioned.c - the first state of every run: what does this device already have?
 *
 * In order: finish a credential write that a crash interrupted. SharedCred: a complete
 * stored identity means provisioning is done or half done (ECUs not yet registered);
 * otherwise read the fleet key from credentials.zip and choose the device ID (stored,
 * configured, or a new readable name, stored before any request so a crash cannot lose
 * it). DeviceCred: import the [import] files when they are new or changed (import.c).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/idgen.h"
#include "../core/log.h"
#include "../device/credentials.h"
#include "../device/request.h"
#include "../storage/credzip.h"
#include "states.h"

/* Replaces *dst with a copy of src. */
static void set_str(char **dst, const char *src) {
  free(*dst);
  *dst = src ? strdup(src) : NULL;
}

/* The server URL: configuration first, then what an earlier run learned. */
static void load_server_url(device *d) {
  const otad_config *c = d->o.cfg;
  if (c->tls_server)
    set_str(&d->server_url, c->tls_server);
  else if (c->provision_server)
    set_str(&d->server_url, c->provision_server);
  else {
    char *u = store_read_string(d->o.st, STORE_SERVER_URL);
    free(d->server_url);
    d->server_url = u;
  }
}

/* Chooses the device ID per docs/protocol.md (section 2) and stores it before any request. */
static int choose_device_id(device *d) {
  char *stored = store_read_string(d->o.st, STORE_DEVICE_ID);
  if (stored && idgen_valid(stored)) {
    snprintf(d->id, sizeof(d->id), "%s", stored);
    free(stored);
    return 0;
  }
  free(stored);
  if (d->o.cfg->device_id)
    snprintf(d->id, sizeof(d->id), "%s", d->o.cfg->device_id);
  else
    idgen_readable(&d->rng, d->id, sizeof(d->id));
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
  tls_creds_free(&d->own_prov); /* a retry after a failed attempt reads it again */
  rc =
      tls_p12_parse(z.p12, z.p12_len, c->p12_password ? c->p12_password : "", &d->own_prov, &d->eb);
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

/* True when the stored identity is exactly the imported one. */
static bool same_identity(const tls_creds *a, const tls_creds *b) {
  return a->key_pem && b->key_pem && strcmp(a->key_pem, b->key_pem) == 0 &&
         strcmp(a->cert_pem, b->cert_pem) == 0 && strcmp(a->ca_pem, b->ca_pem) == 0;
}

/* A different certificate CN is a different device: its ECU registration starts over. */
static void forget_ecu_registration(device *d) {
  otad_errbuf eb = {{0}};
  store_remove(d->o.st, STORE_ECU_REGISTERED, &eb);
  store_remove(d->o.st, STORE_ECU_KEY, &eb);
  store_remove(d->o.st, STORE_ECU_PUB, &eb);
  store_remove(d->o.st, STORE_ECU_SERIAL, &eb);
  keys_free(&d->ecu_key);
  d->ecu_serial[0] = 0;
}

static void fire_stored(device *d, const char *why) {
  char *reg = store_read_string(d->o.st, STORE_ECU_REGISTERED);
  bool done = reg != NULL;
  free(reg);
  device_fire(d, done ? EV_STORED_PROVISIONED : EV_STORED_CREDENTIALS, why);
}

/* DeviceCred: the [import] files are the source of truth; stored copies are what the
 * device used last. */
static void inspect_device_cred(device *d) {
  const otad_config *c = d->o.cfg;
  bool have_stored = credentials_load_stored(d);
  char stored_cn[sizeof(d->uuid)];
  snprintf(stored_cn, sizeof(stored_cn), "%s", have_stored ? d->uuid : "");
  tls_creds imp;
  char *url = NULL;
  otad_errbuf eb = {{0}};
  int rc = device_import_credentials(d, &imp, &url, &eb);
  if (rc) {
    if (have_stored && d->server_url) {
      device_log(d, LOG_WARN, "%s; continuing with the stored credentials", eb.msg);
      fire_stored(d, "stored credentials (import failed)");
    } else if (rc == OTAD_ECONFIG) {
      device_fail_with(d, EV_CONFIG_ERROR, rc, "%s", eb.msg);
    } else {
      device_fail_with(d, EV_IMPORT_FAILED, rc, "%s; nothing stored", eb.msg);
    }
    return;
  }
  free(d->server_url);
  d->server_url = url;
  if (have_stored && same_identity(&imp, &d->creds)) {
    tls_creds_free(&imp);
    fire_stored(d, "stored credentials match [import]");
    return;
  }
  tls_cert_info ci;
  tls_cert_info_pem(imp.cert_pem, &ci, &eb);
  bool cn_changed = have_stored && strcmp(stored_cn, ci.cn) != 0;
  if (cn_changed) {
    device_log(d, LOG_WARN,
               "the imported certificate is for CN=%s, not CN=%s: registering as a "
               "new device",
               ci.cn, stored_cn);
    forget_ecu_registration(d);
  }
  rc = credentials_store(d, imp.key_pem, imp.cert_pem, imp.ca_pem, d->server_url);
  if (rc) {
    tls_creds_free(&imp);
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "storing the imported credentials failed: %s",
                     d->eb.msg);
    return;
  }
  tls_creds_free(&d->creds);
  d->creds = imp;
  snprintf(d->uuid, sizeof(d->uuid), "%s", ci.cn);
  snprintf(d->id, sizeof(d->id), "%s", c->device_id ? c->device_id : ci.cn);
  store_write(d->o.st, STORE_DEVICE_ID, d->id, strlen(d->id), false, &eb);
  device_log(d, LOG_INFO, "imported device credentials: certificate CN=%s from %s", ci.cn,
             c->import_base_path);
  if (have_stored && !cn_changed)
    fire_stored(d, "certificate renewed from [import]");
  else
    device_fire(d, EV_CREDENTIALS_IMPORTED, ci.cn);
}

void unprovisioned_inspect(device *d) {
  d->eb.msg[0] = 0;
  char *stored_id = store_read_string(d->o.st, STORE_DEVICE_ID);
  if (stored_id) snprintf(d->id, sizeof(d->id), "%s", stored_id);
  free(stored_id);

  int rc = credentials_finish_pending(d);
  if (rc) {
    device_fail_with(d, EV_TRANSIENT_ERROR, rc, "cannot complete stored credentials: %s",
                     d->eb.msg[0] ? d->eb.msg : otad_strerror(rc));
    return;
  }
  load_server_url(d);
  if (config_mode(d->o.cfg) == PROVISION_DEVICE_CRED) {
    inspect_device_cred(d);
    return;
  }
  if (credentials_load_stored(d)) {
    if (!d->server_url) {
      device_fail_with(d, EV_CONFIG_ERROR, OTAD_ECONFIG,
                       "credentials are stored but no server URL is known "
                       "(set [tls] server)");
      return;
    }
    credentials_strip_fleet_key(d);
    fire_stored(d, "stored credentials");
    return;
  }
  rc = load_fleet_key(d);
  if (rc) {
    device_fail_with(d, EV_CONFIG_ERROR, rc, "%s", d->eb.msg[0] ? d->eb.msg : otad_strerror(rc));
    return;
  }
  if (!d->server_url) {
    device_fail_with(d, EV_CONFIG_ERROR, OTAD_ECONFIG,
                     "no server URL: credentials.zip has no "
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
