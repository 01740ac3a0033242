/* update.c - the update state of one device (device_update, update.h): made at the first
 * poll, restored from the store, freed with the device. The pieces every state of the
 * update cycle shares live here, so no state calls another: the installation report, the
 * ECU identity, "is this stored target that one?", the target the director assigns. */
#include "update.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "device.h"

static char *read_store(device *d, const char *name, size_t *len) {
  char *data = NULL;
  otad_errbuf eb = {{0}};
  if (store_read(d->o.st, name, &data, len, &eb) != 0) return NULL;
  return data;
}

/* Brings back the director metadata earlier runs (or cycles) verified; a stored document
 * that no longer verifies is dropped (and fetched again), never trusted. */
static void restore_director(device *d) {
  device_update *u = d->upd;
  uptane_err err;
  size_t len;
  u->director_parsed = true;
  char *js = read_store(d, STORE_DIRECTOR_ROOT, &len);
  if (js && uptane_director_root(&u->director, js, len, &err) != 0)
    device_log(d, LOG_WARN, "stored director root: %s", err.eb.msg);
  free(js);
  if (u->director.root.version && (js = read_store(d, STORE_DIRECTOR_TARGETS, &len)) &&
      uptane_director_restore(&u->director, js, len, &err) != 0)
    device_log(d, LOG_WARN, "stored director targets: %s", err.eb.msg);
  free(js);
}

void device_update_restore_image(device *d) {
  device_update *u = d->upd;
  uptane_err err;
  size_t len;
  u->image_parsed = true;
  char *js = read_store(d, STORE_IMAGE_ROOT, &len);
  if (js && uptane_image_root(&u->image, js, len, &err) != 0)
    device_log(d, LOG_WARN, "stored image root: %s", err.eb.msg);
  free(js);
  static const struct {
    const char *name;
    enum uptane_role role;
  } docs[] = {{STORE_IMAGE_TIMESTAMP, UPTANE_ROLE_TIMESTAMP},
              {STORE_IMAGE_SNAPSHOT, UPTANE_ROLE_SNAPSHOT},
              {STORE_IMAGE_TARGETS, UPTANE_ROLE_TARGETS}};
  for (size_t i = 0; u->image.root.version && i < 3; i++) {
    js = read_store(d, docs[i].name, &len);
    if (js && uptane_image_restore(&u->image, docs[i].role, NULL, js, len, &err) != 0)
      device_log(d, LOG_WARN, "stored image %s: %s", docs[i].name, err.eb.msg);
    free(js);
  }
}

/* Between two cycles the parsed image metadata (the repository's whole targets list, the
 * largest part of a device's update state) is dropped: the stored bytes stay the trusted
 * copy and are parsed again when the director next assigns something. */
void device_update_forget_image(device *d) {
  device_update *u = d->upd;
  if (!u || !u->image_parsed) return;
  uptane_image_free(&u->image);
  uptane_image_init(&u->image);
  u->image_parsed = false;
}

/* A result a crash kept from being reported is reported now. */
static void restore_report(device *d) {
  update_result *r = &d->upd->result;
  char *js = store_read_string(d->o.st, STORE_INSTALL_REPORT);
  cJSON *o = js ? cJSON_Parse(js) : NULL;
  free(js);
  if (!o) return;
  const cJSON *v;
#define GET_STR(field, key)                                                                        \
  if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, key)))                                \
    snprintf(r->field, sizeof(r->field), "%s", v->valuestring);
  GET_STR(code, "code");
  GET_STR(description, "description");
  GET_STR(correlation_id, "correlation_id");
  GET_STR(target, "target");
#undef GET_STR
  r->success = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success"));
  r->pending = r->code[0] != 0;
  cJSON_Delete(o);
}

int device_update_ensure(device *d) {
  if (d->upd) return 0;
  d->upd = calloc(1, sizeof(*d->upd));
  if (!d->upd) return OTAD_ENOMEM;
  uptane_director_init(&d->upd->director);
  uptane_image_init(&d->upd->image);
  restore_director(d);
  restore_report(d);
  return 0;
}

void device_update_free(device *d) {
  device_update *u = d->upd;
  if (!u) return;
  uptane_director_free(&u->director);
  uptane_image_free(&u->image);
  free(u->walk);
  if (u->download_release) u->download_release(u);
  free(u);
  d->upd = NULL;
}

int device_ecu_identity(device *d, otad_errbuf *eb) {
  if (!d->ecu_key.private_pem) {
    char *priv = store_read_string(d->o.st, STORE_ECU_KEY);
    if (!priv) return otad_fail(eb, OTAD_ENOENT, "no stored Uptane key (%s)", STORE_ECU_KEY);
    int rc = keys_load(priv, &d->ecu_key, eb);
    memset(priv, 0, strlen(priv));
    free(priv);
    if (rc) return rc;
  }
  if (!d->ecu_serial[0]) {
    char *s = store_read_string(d->o.st, STORE_ECU_SERIAL);
    snprintf(d->ecu_serial, sizeof(d->ecu_serial), "%s", s ? s : d->ecu_key.keyid);
    free(s);
  }
  if (!d->ecu_hwid[0]) {
    char *h = store_read_string(d->o.st, STORE_ECU_HWID);
    snprintf(d->ecu_hwid, sizeof(d->ecu_hwid), "%s", h ? h : "");
    free(h);
  }
  return 0;
}

void device_set_result(device *d, bool success, const char *code, const char *fmt, ...) {
  update_result *r = &d->upd->result;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->description, sizeof(r->description), fmt, ap);
  va_end(ap);
  r->pending = true;
  r->success = success;
  snprintf(r->code, sizeof(r->code), "%s", code);
  snprintf(r->correlation_id, sizeof(r->correlation_id), "%s", d->upd->target.correlation_id);
  snprintf(r->target, sizeof(r->target), "%s", d->upd->target.name);
  d->upd->cycle_failed = !success;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "success", success);
  cJSON_AddStringToObject(o, "code", r->code);
  cJSON_AddStringToObject(o, "description", r->description);
  cJSON_AddStringToObject(o, "correlation_id", r->correlation_id);
  cJSON_AddStringToObject(o, "target", r->target);
  char *js = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  otad_errbuf eb = {{0}};
  if (!js || store_write(d->o.st, STORE_INSTALL_REPORT, js, strlen(js), false, &eb) != 0)
    device_log(d, LOG_WARN, "could not store the installation report: %s", eb.msg);
  free(js);
}

void device_clear_result(device *d) {
  otad_errbuf eb = {{0}};
  memset(&d->upd->result, 0, sizeof(d->upd->result));
  store_remove(d->o.st, STORE_INSTALL_REPORT, &eb);
}

static const char *str_of(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool device_stored_target_is(store *st, const char *key, const char *name, const char *sha256) {
  char *js = store_read_string(st, key);
  cJSON *o = js ? cJSON_Parse(js) : NULL;
  free(js);
  const char *n = str_of(o, "name"), *h = str_of(o, "sha256");
  bool same = n && h && strcmp(n, name) == 0 && strcmp(h, sha256) == 0;
  cJSON_Delete(o);
  return same;
}
