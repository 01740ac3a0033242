/* api.c - request handling: body collection, authentication, routing, faults, answers; and
 * the provisioning API (POST /devices, POST /director/ecus). The update API's handlers are in
 * api_uptane.c.
 *
 * A request passes through three stages. The first call of the access handler creates its
 * `request` (start time, client identity, 413 on an oversized Content-Length); the middle
 * calls collect the body; the last call routes. Routing checks the client certificate
 * against the resource, then lets --faults take over, then runs the handler, which fills a
 * `reply`. Handlers never touch libmicrohttpd, so faults can rewrite any reply (cut it, halve
 * it) before it is sent. The completion callback logs every request once.
 *
 * Devices come in two kinds. A shared-credential device got its certificate from POST
 * /devices: its CN is its uuid. An implicit device brings a certificate from an uploaded fleet
 * CA: its CN is its device ID, and the first request it makes to a device resource creates
 * it. Every later certificate with that CN from the same fleet CA is the same device.
 */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <gnutls/crypto.h>

#include "api_internal.h"
#include "fault_bodies.h"
#include "files.h"
#include "fleet.h"
#include "utctime.h"

#define DEVICE_ID_MAX 200
#define DEVICE_DAYS_DEFAULT 365
#define DEVICE_DAYS_MAX 36500 /* aktualizr asks for 36000 by default */
#define ECUS_MAX 128
#define GARBAGE_BYTES 512

static const char CT_PKCS12[] = "application/x-pkcs12";
const char API_CT_JSON[] = "application/json";

/* ---- replies ---- */

void reply_clear(reply *out) {
  free(out->body);
  if (out->has_file) close(out->fd);
  *out = (reply){0};
}

void reply_error(reply *out, int status, const char *code, const char *fmt, ...) {
  char description[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(description, sizeof description, fmt, ap);
  va_end(ap);
  reply_clear(out);
  *out = (reply){.status = status, .content_type = API_CT_JSON};
  cJSON *obj = cJSON_CreateObject();
  if (obj && cJSON_AddStringToObject(obj, "code", code) &&
      cJSON_AddStringToObject(obj, "description", description))
    out->body = cJSON_PrintUnformatted(obj);
  cJSON_Delete(obj);
  if (out->body) {
    out->len = strlen(out->body);
  } else { /* out of memory: still answer, with a fixed body */
    out->status = 500;
  }
}

void reply_body(reply *out, int status, const char *content_type, const void *data, size_t len) {
  reply_clear(out);
  *out = (reply){.status = status, .content_type = content_type};
  if (len == 0) return;
  out->body = malloc(len);
  if (!out->body) {
    reply_error(out, 500, "internal_error", "out of memory");
    return;
  }
  memcpy(out->body, data, len);
  out->len = len;
}

void reply_take(reply *out, int status, const char *content_type, char *data, size_t len) {
  reply_clear(out);
  *out = (reply){.status = status, .content_type = content_type, .body = data, .len = len};
}

/* ---- POST /devices ---- */

/* ttl: days, a JSON string of digits (aktualizr) or an integer (other tools). */
static int parse_ttl(const cJSON *ttl, long *days) {
  if (!ttl) {
    *days = DEVICE_DAYS_DEFAULT;
    return 0;
  }
  if (cJSON_IsNumber(ttl)) {
    double v = cJSON_GetNumberValue(ttl);
    if (v < 1 || v > 1e9 || v != (double)(long)v) return -1;
    *days = (long)v;
    return 0;
  }
  const char *s = cJSON_GetStringValue(ttl);
  if (!s || !*s || strlen(s) > 9) return -1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  *days = strtol(s, NULL, 10);
  return *days >= 1 ? 0 : -1;
}

static int valid_device_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > DEVICE_ID_MAX) return 0;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return 0;
  return 1;
}

/* Makes the device's key, certificate and archive; on success *p12 is the DER archive. */
static int issue_device_credentials(api *a, const char *uuid, long days, gnutls_datum_t *p12,
                                    time_t *expires) {
  pki_cert_spec spec = {
      .cn = uuid, .days = (unsigned)days, .usage = PKI_USAGE_CLIENT, .key_type = a->device_key};
  pki_cred cred = {0};
  gnutls_datum_t crt_der = {0}, key_der = {0};
  int rc = pki_cred_create(&spec, &a->device_ca, &cred);
  if (rc < 0) return rc;
  if ((rc = pki_crt_der(cred.crt, &crt_der)) < 0 ||
      (rc = pki_key_pkcs8_der(cred.key, &key_der)) < 0)
    goto done;
  gnutls_datum_t certs[2] = {crt_der, a->server_ca_der};
  rc = pkcs12_build(&key_der, certs, 2, "", a->p12, P12_ITERATIONS, p12);
  *expires = gnutls_x509_crt_get_expiration_time(cred.crt);
done:
  if (key_der.data) {
    memset(key_der.data, 0, key_der.size);
    gnutls_free(key_der.data);
  }
  gnutls_free(crt_der.data);
  pki_cred_free(&cred);
  return rc;
}

static void register_device(api *a, request *r, reply *out) {
  cJSON *root = cJSON_ParseWithLength(r->body ? r->body : "", r->len);
  const char *device_id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "deviceId"));
  long days = 0;
  if (!cJSON_IsObject(root)) {
    reply_error(out, 400, "invalid_request", "the body must be a JSON object");
  } else if (!device_id || !valid_device_id(device_id)) {
    reply_error(out, 400, "invalid_request",
                "deviceId must be a string of 1 to %d printable characters", DEVICE_ID_MAX);
  } else if (parse_ttl(cJSON_GetObjectItemCaseSensitive(root, "ttl"), &days) != 0) {
    reply_error(out, 400, "invalid_request", "ttl must be a positive number of days");
  } else {
    if (days > DEVICE_DAYS_MAX) days = DEVICE_DAYS_MAX;
    int taken = db_device_id_taken(a->db, device_id);
    char uuid[37];
    gnutls_datum_t p12 = {0};
    time_t expires = 0;
    int rc;
    if (taken < 0) {
      reply_error(out, 500, "internal_error", "database error");
    } else if (taken) {
      reply_error(out, 409, "device_already_registered", "device ID '%s' is already registered",
                  device_id);
    } else if ((rc = pki_uuid4(uuid)) < 0 ||
               (rc = issue_device_credentials(a, uuid, days, &p12, &expires)) < 0) {
      fprintf(stderr, "ota-server: issuing credentials: %s\n", gnutls_strerror(rc));
      reply_error(out, 500, "internal_error", "cannot issue credentials");
    } else {
      char created[UTC_ISO_LEN], expiry[UTC_ISO_LEN];
      utc_iso(time(NULL), created);
      utc_iso(expires, expiry);
      rc = db_device_add(a->db, uuid, device_id, created, expiry);
      if (rc == DB_CONFLICT) /* registered by a concurrent request since the check */
        reply_error(out, 409, "device_already_registered", "device ID '%s' is already registered",
                    device_id);
      else if (rc < 0)
        reply_error(out, 500, "internal_error", "database error");
      else
        reply_body(out, 200, CT_PKCS12, p12.data, p12.size);
    }
    if (p12.data) {
      memset(p12.data, 0, p12.size);
      gnutls_free(p12.data);
    }
  }
  cJSON_Delete(root);
}

/* ---- POST /director/ecus ---- */

static const char *json_string(const cJSON *obj, const char *name) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));
  return s && *s ? s : NULL;
}

/* Fills ecus from the body; on a problem writes a description and returns -1. */
static int parse_ecus(const cJSON *root, const char **primary, db_ecu *ecus, size_t *n, char *why,
                      size_t whylen) {
  if (!cJSON_IsObject(root)) {
    snprintf(why, whylen, "the body must be a JSON object");
    return -1;
  }
  *primary = json_string(root, "primary_ecu_serial");
  if (!*primary) {
    snprintf(why, whylen, "primary_ecu_serial is missing or not a non-empty string");
    return -1;
  }
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "ecus");
  int count = cJSON_GetArraySize(list);
  if (!cJSON_IsArray(list) || count == 0) {
    snprintf(why, whylen, "ecus must be a non-empty array");
    return -1;
  }
  if (count > ECUS_MAX) {
    snprintf(why, whylen, "more than %d ECUs", ECUS_MAX);
    return -1;
  }
  size_t i = 0;
  bool has_primary = false;
  const cJSON *item;
  cJSON_ArrayForEach(item, list) {
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(item, "clientKey");
    const cJSON *keyval = cJSON_GetObjectItemCaseSensitive(key, "keyval");
    db_ecu e = {json_string(item, "ecu_serial"), json_string(item, "hardware_identifier"),
                json_string(key, "keytype"), json_string(keyval, "public")};
    if (!e.serial || !e.hardware_id) {
      snprintf(why, whylen, "ecus[%zu]: ecu_serial and hardware_identifier are required", i);
      return -1;
    }
    if (!e.key_type || !e.public_key) {
      snprintf(why, whylen, "ecus[%zu]: clientKey.keytype and clientKey.keyval.public are required",
               i);
      return -1;
    }
    if (strcasecmp(e.key_type, "RSA") != 0 && strcasecmp(e.key_type, "ED25519") != 0) {
      snprintf(why, whylen, "ecus[%zu]: keytype '%.40s' is not RSA or ED25519", i, e.key_type);
      return -1;
    }
    for (size_t j = 0; j < i; j++)
      if (strcmp(ecus[j].serial, e.serial) == 0) {
        snprintf(why, whylen, "ECU serial '%.100s' appears twice", e.serial);
        return -1;
      }
    has_primary |= strcmp(e.serial, *primary) == 0;
    ecus[i++] = e;
  }
  if (!has_primary) {
    snprintf(why, whylen, "primary_ecu_serial '%.100s' is not among the ecus", *primary);
    return -1;
  }
  *n = i;
  return 0;
}

static void register_ecus(api *a, request *r, reply *out) {
  cJSON *root = cJSON_ParseWithLength(r->body ? r->body : "", r->len);
  db_ecu ecus[ECUS_MAX];
  size_t n = 0;
  const char *primary = NULL;
  char why[256], taken[256];
  if (parse_ecus(root, &primary, ecus, &n, why, sizeof why) != 0) {
    reply_error(out, 400, "invalid_request", "%s", why);
    cJSON_Delete(root);
    return;
  }
  switch (db_ecus_register(a->db, r->device, primary, ecus, n, taken, sizeof taken)) {
  case 0:
  case DB_ECUS_SAME: reply_body(out, 200, API_CT_JSON, "{}", 2); break;
  case DB_ECU_TAKEN:
    reply_error(out, 409, "ecu_already_registered", "ECU '%.200s' is registered to another device",
                taken);
    break;
  case DB_ECUS_DIFFERENT:
    reply_error(out, 409, "device_already_registered",
                "device %s already registered a different set of ECUs", r->who.cn);
    break;
  default: reply_error(out, 500, "internal_error", "database error");
  }
  cJSON_Delete(root);
}

/* ---- routing ---- */

typedef void (*handler_fn)(api *a, request *r, reply *out);

static void not_found(api *a, request *r, reply *out) {
  reply_error(out, 404, "not_found", "no resource %s %.200s", r->method, r->path);
}

static const char *or_none(const char *dn) {
  return *dn ? dn : "no subject";
}

/* Answers a request without a usable client certificate: 401, or 403 with the reason. */
static void refuse(const identity *who, reply *out) {
  char when[UTC_ISO_LEN];
  const char *subject = or_none(who->subject);
  if (who->role == ROLE_NONE) {
    reply_error(out, 401, "unauthorized", "a client certificate is required");
    return;
  }
  switch (who->refusal) {
  case REFUSED_UNKNOWN_CA:
    reply_error(out, 403, "unknown_client_certificate",
                "the client certificate (%.120s, issued by %.120s) chains to no CA this server "
                "trusts: neither the fleet's provisioning or device CA nor an uploaded fleet CA",
                subject, or_none(who->issuer));
    return;
  case REFUSED_EXPIRED:
    if (who->not_after < time(NULL)) {
      utc_iso(who->not_after, when);
      reply_error(out, 403, "certificate_expired", "the client certificate (%.120s) expired on %s",
                  subject, when);
    } else {
      reply_error(out, 403, "certificate_expired",
                  "the client certificate (%.120s) is in date, but the CA it chains to%s%s%s "
                  "has expired",
                  subject, who->fleet_ca ? " (fleet CA '" : "", who->fleet_ca ? who->fleet_ca : "",
                  who->fleet_ca ? "')" : "");
    }
    return;
  case REFUSED_NOT_YET_VALID:
    utc_iso(who->not_before, when);
    reply_error(out, 403, "certificate_not_yet_valid",
                "the client certificate (%.120s) is not valid before %s: is a clock wrong?",
                subject, when);
    return;
  case REFUSED_WRONG_PURPOSE:
    reply_error(out, 403, "invalid_client_certificate",
                "the client certificate (%.120s) of fleet CA '%s' is not for TLS clients: its "
                "extendedKeyUsage lacks clientAuth",
                subject, who->fleet_ca ? who->fleet_ca : "-");
    return;
  case REFUSED_BAD_CN:
    reply_error(out, 403, "invalid_client_certificate",
                "the client certificate (%.120s) has no common name (CN) of 1 to %d printable "
                "characters to identify the device",
                subject, IDENTITY_CN_MAX - 1);
    return;
  case REFUSED_BAD_CHAIN:
    reply_error(out, 403, "invalid_client_certificate",
                "the client sent more than %d certificates, or one that does not parse",
                IDENTITY_CHAIN_MAX);
    return;
  }
  reply_error(out, 403, "forbidden", "the client certificate is not valid for this server");
}

/* Finds the device r acts for and puts its uuid into r->device, creating an implicit device
 * on first contact; or answers out and returns -1. */
static int device_of(api *a, request *r, reply *out) {
  if (r->who.role == ROLE_DEVICE) {
    int known = db_device_known(a->db, r->who.cn);
    if (known < 0) {
      reply_error(out, 500, "internal_error", "database error");
      return -1;
    }
    if (!known) {
      reply_error(out, 403, "forbidden", "device %s is not registered", r->who.cn);
      return -1;
    }
    snprintf(r->device, sizeof r->device, "%s", r->who.cn);
    return 0;
  }
  char uuid[37], created[UTC_ISO_LEN], expiry[UTC_ISO_LEN], owner[128];
  if (pki_uuid4(uuid) < 0) {
    reply_error(out, 500, "internal_error", "no random numbers");
    return -1;
  }
  utc_iso(time(NULL), created);
  utc_iso(r->who.not_after, expiry);
  int rc = db_implicit_device(a->db, r->who.cn, r->who.fleet_ca, uuid, created, expiry, r->device,
                              owner, sizeof owner);
  if (rc == DB_CONFLICT && !*owner) {
    reply_error(out, 403, "device_id_conflict",
                "device ID '%s' belongs to a device registered with the shared provisioning "
                "credential, not to a device of fleet CA '%s'",
                r->who.cn, r->who.fleet_ca);
    return -1;
  }
  if (rc == DB_CONFLICT) {
    reply_error(out, 403, "device_id_conflict",
                "device ID '%s' belongs to a device of fleet CA '%s', not of fleet CA '%s'",
                r->who.cn, owner, r->who.fleet_ca);
    return -1;
  }
  if (rc < 0) {
    reply_error(out, 500, "internal_error", "database error");
    return -1;
  }
  if (rc == DB_CREATED && !a->quiet)
    fprintf(stderr, "ota-server: device '%s' created on first contact (fleet CA '%s', uuid %s)\n",
            r->who.cn, r->who.fleet_ca, r->device);
  return 0;
}

/* The resources of a device: a path (or a prefix, ending in '/'), its method, its handler.
 * The first entry whose path matches decides: another method is answered 405. */
typedef struct route_entry {
  const char *path;
  bool prefix;
  const char *method;
  handler_fn fn;
} route_entry;

static const route_entry DEVICE_ROUTES[] = {
    {"/director/ecus", false, "POST", register_ecus},
    {"/director/manifest", false, "PUT", api_put_manifest},
    {"/director/", true, "GET", api_get_director},
    {"/repo/targets/", true, "GET", api_get_target},
    {"/repo/", true, "GET", api_get_repo},
    {"/events", false, "POST", api_post_events},
    {"/core/installed", false, "PUT", api_put_installed},
    {"/system_info/network", false, "PUT", api_put_network},
    {"/system_info/config", false, "POST", api_post_config},
    {"/system_info", false, "PUT", api_put_system_info},
};

/* The handler of a device resource, or NULL after answering 404 or 405. */
static handler_fn device_route(request *r, reply *out) {
  for (size_t i = 0; i < sizeof DEVICE_ROUTES / sizeof DEVICE_ROUTES[0]; i++) {
    const route_entry *e = &DEVICE_ROUTES[i];
    bool match = e->prefix ? strncmp(r->path, e->path, strlen(e->path)) == 0 &&
                                 r->path[strlen(e->path)] != '\0'
                           : strcmp(r->path, e->path) == 0;
    if (!match) continue;
    bool get = strcmp(e->method, "GET") == 0;
    if (strcmp(r->method, e->method) == 0 || (get && strcmp(r->method, "HEAD") == 0)) return e->fn;
    reply_error(out, 405, "method_not_allowed", "%s is answered to %s only", r->path, e->method);
    return NULL;
  }
  return not_found;
}

/* Picks the handler for r, or answers out itself (auth failures) and returns NULL. */
static handler_fn route(api *a, request *r, reply *out) {
  bool devices = strcmp(r->path, "/devices") == 0;
  bool post = strcmp(r->method, "POST") == 0;
  switch (r->who.role) {
  case ROLE_NONE:
  case ROLE_UNTRUSTED: refuse(&r->who, out); return NULL;
  case ROLE_PROVISIONING:
    if (!devices) {
      reply_error(out, 403, "forbidden", "the provisioning certificate may only register devices");
      return NULL;
    }
    if (!post) {
      reply_error(out, 405, "method_not_allowed", "%s is answered to POST only", r->path);
      return NULL;
    }
    return register_device;
  case ROLE_DEVICE:
  case ROLE_FLEET_DEVICE: break;
  }
  if (devices && r->who.role == ROLE_FLEET_DEVICE) {
    reply_error(out, 403, "forbidden",
                "registering a device needs the provisioning certificate; this certificate of "
                "fleet CA '%s' identifies device '%s' already, which needs no registration",
                r->who.fleet_ca, r->who.cn);
    return NULL;
  }
  if (devices) {
    reply_error(out, 403, "forbidden", "registering a device needs the provisioning certificate");
    return NULL;
  }
  if (device_of(a, r, out) != 0) return NULL;
  return device_route(r, out);
}

/* The error code a status fault answers with: the one clients act on where there is one. */
static const char *fault_code(int status, const char *path) {
  switch (status) {
  case 400: return "invalid_request";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not_found";
  case 409:
    return strcmp(path, "/director/ecus") == 0 ? "ecu_already_registered"
                                               : "device_already_registered";
  case 413: return "request_too_large";
  case 503: return "service_unavailable";
  default: return status >= 500 ? "internal_error" : "injected_fault";
  }
}

static void answer(api *a, request *r, reply *out) {
  handler_fn handler = route(a, r, out);
  if (!handler) return;
  fault f;
  faults_take(a->faults, r->path, utc_monotonic_ms(), &f);
  if (f.action != FAULT_NONE) snprintf(r->fault, sizeof r->fault, "%s", f.rule);
  switch (f.action) {
  case FAULT_NONE: handler(a, r, out); break;
  case FAULT_STATUS:
    reply_error(out, f.status, fault_code(f.status, r->path), "injected fault %s", f.rule);
    out->retry_after_s = f.retry_after_s;
    break;
  case FAULT_TRUNCATE:
    handler(a, r, out);
    out->len /= 2;
    out->file_len /= 2;
    break;
  case FAULT_CUT:
    handler(a, r, out);
    out->send = SEND_CUT;
    break;
  case FAULT_GARBAGE: {
    unsigned char junk[GARBAGE_BYTES];
    if (gnutls_rnd(GNUTLS_RND_NONCE, junk, sizeof junk) < 0) memset(junk, 0xa5, sizeof junk);
    reply_body(out, 200, strcmp(r->path, "/devices") == 0 ? CT_PKCS12 : API_CT_JSON, junk,
               sizeof junk);
    break;
  }
  case FAULT_CLOSE: out->send = SEND_NOTHING; break;
  case FAULT_RESET: out->send = SEND_RESET; break;
  case FAULT_STALL:
    out->send = SEND_STALL;
    out->hold_s = f.hold_s;
    break;
  case FAULT_TRICKLE:
    handler(a, r, out);
    out->send = SEND_TRICKLE;
    out->bps = f.bps;
    break;
  case FAULT_HUGE:
  case FAULT_HUGE_CHUNKED:
    reply_clear(out);
    *out = (reply){.status = 200,
                   .content_type = API_CT_JSON,
                   .send = f.action == FAULT_HUGE ? SEND_HUGE : SEND_HUGE_CHUNKED,
                   .huge_size = f.size};
    break;
  case FAULT_BADJSON:
    reply_body(out, 200, API_CT_JSON, FAULT_BAD_JSON, strlen(FAULT_BAD_JSON));
    break;
  case FAULT_BADMAC:
    handler(a, r, out);
    if (out->status == 200 &&
        (!out->body || faults_break_p12_mac((unsigned char *)out->body, out->len) != 0))
      reply_error(out, 500, "internal_error", "injected fault %s: the reply is not a PKCS#12",
                  f.rule);
    break;
  }
}

/* ---- sending ---- */

/* A body that stops halfway: headers promised the whole reply. From memory (data) or from a
 * file (fd, starting at offset). */
typedef struct cut_body {
  char *data;
  int fd;
  uint64_t offset;
  size_t half;
} cut_body;

static ssize_t cut_read(void *cls, uint64_t pos, char *buf, size_t max) {
  cut_body *c = cls;
  if (pos >= c->half) return MHD_CONTENT_READER_END_WITH_ERROR;
  size_t n = c->half - (size_t)pos;
  if (n > max) n = max;
  if (c->data) {
    memcpy(buf, c->data + pos, n);
    return (ssize_t)n;
  }
  ssize_t got = pread(c->fd, buf, n, (off_t)(c->offset + pos));
  return got > 0 ? got : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void cut_free(void *cls) {
  cut_body *c = cls;
  free(c->data);
  if (!c->data) close(c->fd);
  free(c);
}

/* The response for rep, taking what it holds; NULL when out of memory. A trickle holds
 * connection in the park between sends. */
static struct MHD_Response *make_response(api *a, struct MHD_Connection *connection, reply *rep) {
  struct MHD_Response *resp = NULL;
  uint64_t total = rep->has_file ? rep->file_len : rep->len;
  if (rep->send == SEND_HUGE || rep->send == SEND_HUGE_CHUNKED) {
    resp = fault_huge_response(rep->huge_size, rep->send == SEND_HUGE_CHUNKED);
  } else if (rep->send == SEND_TRICKLE && total > 0 && a->park) {
    resp = fault_trickle_response(a->park, connection, rep->has_file ? NULL : rep->body, rep->fd,
                                  rep->file_offset, total, rep->bps);
    if (resp) { /* owned by the callback now */
      rep->body = NULL;
      rep->has_file = false;
    }
  } else if (rep->send == SEND_CUT && total >= 2) {
    cut_body *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = (cut_body){rep->body, rep->fd, rep->file_offset, (size_t)(total / 2)};
    resp = MHD_create_response_from_callback(total, 4096, cut_read, c, cut_free);
    if (!resp) {
      free(c);
      return NULL;
    }
    rep->body = NULL; /* owned by the callback now */
    rep->has_file = false;
  } else if (rep->has_file) {
    resp = MHD_create_response_from_fd_at_offset64(rep->file_len, rep->fd, rep->file_offset);
    if (resp) rep->has_file = false; /* libmicrohttpd closes the file */
  } else if (rep->body) {
    resp = MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
    if (resp) rep->body = NULL;
  } else {
    resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  }
  return resp;
}

/* Resets the connection now (RST): libmicrohttpd would end it with a FIN (shutdown before
 * close), which a client reads as an empty reply, not as a reset. On Linux, connect() with
 * AF_UNSPEC aborts an established TCP connection with a reset; MHD's close then finds the
 * socket already disconnected. */
static void reset_now(struct MHD_Connection *connection) {
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!info) return;
  struct linger now = {.l_onoff = 1, .l_linger = 0};
  setsockopt(info->connect_fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
  struct sockaddr unspec = {.sa_family = AF_UNSPEC};
  connect(info->connect_fd, &unspec, sizeof unspec);
}

static enum MHD_Result send_reply(api *a, request *r, struct MHD_Connection *connection,
                                  reply *rep) {
  if (rep->send == SEND_NOTHING || rep->send == SEND_RESET || rep->send == SEND_STALL) {
    if (rep->send == SEND_RESET) reset_now(connection);
    bool hold =
        rep->send == SEND_STALL && a->park &&
        park_hold(a->park, connection, utc_monotonic_ms() + (uint64_t)rep->hold_s * 1000) == 0;
    reply_clear(rep);
    r->status = 0;
    r->stalled = hold; /* resumed when due, and then closed */
    return hold ? MHD_YES : MHD_NO;
  }
  bool has_body =
      rep->has_file || rep->len > 0 || rep->send == SEND_HUGE || rep->send == SEND_HUGE_CHUNKED;
  char retry_after[16];
  snprintf(retry_after, sizeof retry_after, "%u", rep->retry_after_s);
  struct MHD_Response *resp = make_response(a, connection, rep);
  if (!resp) {
    reply_clear(rep);
    return MHD_NO;
  }
  if ((rep->content_type && has_body &&
       MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type) != MHD_YES) ||
      (rep->accept_ranges &&
       MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes") != MHD_YES) ||
      (rep->content_range[0] && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE,
                                                        rep->content_range) != MHD_YES) ||
      (rep->retry_after_s &&
       MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after) != MHD_YES) ||
      /* the certificate CN the server saw behind this request: lets a load generator count
       * requests that arrived under another device's identity (see README) */
      (r->who.cn[0] && strcmp(r->who.cn, "-") != 0 &&
       MHD_add_response_header(resp, "X-Client-Identity", r->who.cn) != MHD_YES)) {
    MHD_destroy_response(resp);
    reply_clear(rep);
    return MHD_NO;
  }
  int status = rep->status;
  reply_clear(rep);
  enum MHD_Result ok = MHD_queue_response(connection, (unsigned)status, resp);
  MHD_destroy_response(resp);
  r->status = ok == MHD_YES ? status : 0;
  return ok;
}

/* ---- libmicrohttpd callbacks ---- */

static request *request_start(api *a, struct MHD_Connection *connection, const char *url,
                              const char *method) {
  request *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->started_ms = utc_monotonic_ms();
  snprintf(r->method, sizeof r->method, "%s", method);
  r->path = strdup(url);
  if (!r->path) {
    free(r);
    return NULL;
  }
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  identity_of(&a->anchors, info ? (gnutls_session_t)info->tls_session : NULL, &r->who);
  const char *range =
      MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
  if (range && strlen(range) < sizeof r->range) snprintf(r->range, sizeof r->range, "%s", range);
  return r;
}

enum MHD_Result api_handle(void *cls, struct MHD_Connection *connection, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **req_cls) {
  api *a = cls;
  request *r = *req_cls;
  if (r && r->stalled) /* a stall fault's hold is over */
    return MHD_NO;
  if (!r) {
    if (!(r = request_start(a, connection, url, method))) return MHD_NO;
    *req_cls = r;
    const char *cl =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > API_MAX_BODY) { /* refuse before reading it */
      reply rep = {0};
      r->too_large = true; /* whatever body still arrives is discarded */
      reply_error(&rep, 413, "request_too_large", "request bodies are limited to %d bytes",
                  API_MAX_BODY);
      return send_reply(a, r, connection, &rep);
    }
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    if (!r->too_large && r->len + *upload_data_size > API_MAX_BODY) {
      r->too_large = true; /* chunked: keep reading, answer at the end */
      free(r->body);
      r->body = NULL;
      r->len = 0;
    }
    if (!r->too_large) {
      char *grown = realloc(r->body, r->len + *upload_data_size + 1);
      if (!grown) return MHD_NO;
      memcpy(grown + r->len, upload_data, *upload_data_size);
      r->body = grown;
      r->len += *upload_data_size;
      r->body[r->len] = '\0';
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (r->status != 0) /* answered already (413 on Content-Length) */
    return MHD_YES;
  reply rep = {0};
  if (r->too_large)
    reply_error(&rep, 413, "request_too_large", "request bodies are limited to %d bytes",
                API_MAX_BODY);
  else
    answer(a, r, &rep);
  return send_reply(a, r, connection, &rep);
}

void api_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                   enum MHD_RequestTerminationCode toe) {
  api *a = cls;
  request *r = *req_cls;
  if (!r) return;
  *req_cls = NULL;
  char ts[UTC_ISO_LEN];
  utc_now_iso_ms(ts);
  db_request_add(a->db, ts, r->who.cn, r->method, r->path, r->status);
  if (!a->quiet) {
    char status[16];
    if (r->status)
      snprintf(status, sizeof status, "%d", r->status);
    else
      snprintf(status, sizeof status, "closed");
    fprintf(stderr, "%s %s %s %s %s %llums%s%s\n", ts, r->method, r->path, status, r->who.cn,
            (unsigned long long)(utc_monotonic_ms() - r->started_ms), r->fault[0] ? " fault " : "",
            r->fault);
  }
  free(r->path);
  free(r->body);
  free(r);
}

/* ---- setup ---- */

static int load_crt(const char *dir, const char *name, gnutls_x509_crt_t *out) {
  char *path = path_join(dir, name);
  gnutls_datum_t pem = {0};
  int rc = path ? gnutls_load_file(path, &pem) : GNUTLS_E_MEMORY_ERROR;
  if (rc >= 0 && (rc = gnutls_x509_crt_init(out)) >= 0 &&
      (rc = gnutls_x509_crt_import(*out, &pem, GNUTLS_X509_FMT_PEM)) < 0) {
    gnutls_x509_crt_deinit(*out);
    *out = NULL;
  }
  if (rc < 0) fprintf(stderr, "ota-server: %s: %s\n", path ? path : name, gnutls_strerror(rc));
  gnutls_free(pem.data);
  free(path);
  return rc < 0 ? -1 : 0;
}

int api_create(const char *dir, const api_options *opts, api **out) {
  api *a = calloc(1, sizeof *a);
  if (!a) return -1;
  if (!(a->dir = strdup(dir))) {
    free(a);
    return -1;
  }
  a->device_key = opts->device_key;
  a->p12 = opts->p12;
  a->quiet = opts->quiet;
  char err[256];
  if (faults_parse(opts->faults, opts->faults_seed, &a->faults, err, sizeof err) != 0) {
    fprintf(stderr, "ota-server: --faults: %s\n", err);
    api_free(a);
    return -1;
  }
  if (faults_hold_connections(a->faults) && park_create(&a->park) != 0) {
    fprintf(stderr, "ota-server: --faults: cannot start the thread that resumes held "
                    "connections\n");
    api_free(a);
    return -1;
  }
  char *key = path_join(dir, FLEET_DEVICE_CA_KEY), *crt = path_join(dir, FLEET_DEVICE_CA_CRT);
  int rc = key && crt ? pki_cred_load(&a->device_ca, key, crt) : GNUTLS_E_MEMORY_ERROR;
  if (rc < 0)
    fprintf(stderr, "ota-server: %s: %s\n", key ? key : FLEET_DEVICE_CA_KEY, gnutls_strerror(rc));
  free(key);
  free(crt);
  gnutls_x509_crt_t server_ca = NULL, prov_ca = NULL;
  if (rc < 0 || load_crt(dir, FLEET_SERVER_CA_CRT, &server_ca) != 0 ||
      load_crt(dir, FLEET_PROV_CA_CRT, &prov_ca) != 0) {
    rc = -1;
  } else if ((rc = pki_crt_der(server_ca, &a->server_ca_der)) < 0 ||
             (rc = identity_anchors_init(&a->anchors, prov_ca, a->device_ca.crt)) < 0) {
    fprintf(stderr, "ota-server: loading the fleet's CAs: %s\n", gnutls_strerror(rc));
  }
  for (size_t i = 0; rc >= 0 && opts->fleet_cas && i < opts->fleet_cas->n; i++) {
    const fleet_ca *ca = &opts->fleet_cas->cas[i];
    if ((rc = identity_anchors_add_fleet(&a->anchors, ca->name, ca->crt)) < 0)
      fprintf(stderr, "ota-server: fleet CA '%s': %s\n", ca->name, gnutls_strerror(rc));
  }
  if (server_ca) gnutls_x509_crt_deinit(server_ca);
  if (prov_ca) gnutls_x509_crt_deinit(prov_ca);
  char *db_path = rc < 0 ? NULL : path_join(dir, FLEET_DB);
  if (rc < 0 || !db_path || db_open(db_path, false, &a->db) != 0) {
    free(db_path);
    api_free(a);
    return -1;
  }
  free(db_path);
  *out = a;
  return 0;
}

bool api_holds_connections(const api *a) {
  return a->park != NULL;
}

void api_release_connections(api *a) {
  if (a) park_close(a->park);
}

void api_free(api *a) {
  if (!a) return;
  park_close(a->park); /* in case the daemon never started */
  park_free(a->park);
  db_close(a->db);
  pki_cred_free(&a->device_ca);
  gnutls_free(a->server_ca_der.data);
  identity_anchors_free(&a->anchors);
  faults_free(a->faults);
  free(a->dir);
  free(a);
}
