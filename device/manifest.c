/* manifest.c - the device's signed manifest (manifest.h): what is installed on the primary
 * ECU, signed with its Uptane key, and the installation report when one waits. */
#include "manifest.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/canonical_json.h"
#include "../core/utf8.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* {"signatures":[{"keyid","method","sig"}],"signed":signed} signed by the primary key;
 * takes ownership of signed. */
static cJSON *sign_document(device *d, cJSON *signed_part, otad_errbuf *eb) {
  char *canon = NULL, *sig = NULL;
  size_t len = 0;
  const char *method = NULL;
  utf8_repair_json(signed_part); /* cut or foreign strings: still valid JSON */
  if (canonical_json(signed_part, &canon, &len, eb) != 0 ||
      keys_sign(&d->ecu_key, (const uint8_t *)canon, len, &sig, &method, eb) != 0) {
    free(canon);
    cJSON_Delete(signed_part);
    return NULL;
  }
  free(canon);
  cJSON *doc = cJSON_CreateObject();
  cJSON *sigs = cJSON_AddArrayToObject(doc, "signatures");
  cJSON *s = cJSON_CreateObject();
  cJSON_AddStringToObject(s, "keyid", d->ecu_key.keyid);
  cJSON_AddStringToObject(s, "method", method);
  cJSON_AddStringToObject(s, "sig", sig);
  cJSON_AddItemToArray(sigs, s);
  cJSON_AddItemToObject(doc, "signed", signed_part);
  free(sig);
  return doc;
}

static cJSON *result_object(const update_result *r) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "success", r->success);
  cJSON_AddStringToObject(o, "code", r->code);
  cJSON_AddStringToObject(o, "description", r->description);
  return o;
}

char *device_manifest(device *d, otad_errbuf *eb) {
  device_update *u = d->upd;
  char *js = store_read_string(d->o.st, STORE_INSTALLED_TARGET);
  cJSON *inst = js ? cJSON_Parse(js) : NULL;
  free(js);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(inst, "name"),
              *sha = cJSON_GetObjectItemCaseSensitive(inst, "sha256"),
              *length = cJSON_GetObjectItemCaseSensitive(inst, "length");
  cJSON *ecu = cJSON_CreateObject();
  cJSON_AddStringToObject(ecu, "attacks_detected", "");
  cJSON_AddStringToObject(ecu, "ecu_serial", d->ecu_serial);
  cJSON *image = cJSON_AddObjectToObject(ecu, "installed_image");
  cJSON_AddStringToObject(image, "filepath", cJSON_IsString(name) ? name->valuestring : "unknown");
  cJSON *fileinfo = cJSON_AddObjectToObject(image, "fileinfo");
  cJSON *hashes = cJSON_AddObjectToObject(fileinfo, "hashes");
  cJSON_AddStringToObject(hashes, "sha256", cJSON_IsString(sha) ? sha->valuestring : EMPTY_SHA256);
  cJSON_AddNumberToObject(fileinfo, "length", cJSON_IsNumber(length) ? length->valuedouble : 0);
  cJSON_AddStringToObject(ecu, "previous_timeserver_time", "1970-01-01T00:00:00Z");
  cJSON_AddStringToObject(ecu, "timeserver_time", "1970-01-01T00:00:00Z");
  char counter[24];
  snprintf(counter, sizeof(counter), "%d", u->report_counter++);
  cJSON_AddStringToObject(ecu, "report_counter", counter);
  cJSON_Delete(inst);
  cJSON *ecu_doc = sign_document(d, ecu, eb);
  if (!ecu_doc) return NULL;

  cJSON *top = cJSON_CreateObject();
  cJSON_AddStringToObject(top, "primary_ecu_serial", d->ecu_serial);
  cJSON *manifests = cJSON_AddObjectToObject(top, "ecu_version_manifests");
  cJSON_AddItemToObject(manifests, d->ecu_serial, ecu_doc);
  if (u->result.pending) {
    cJSON *ir = cJSON_AddObjectToObject(top, "installation_report");
    cJSON_AddStringToObject(ir, "content_type",
                            "application/vnd.com.here.otac.installationReport.v1");
    cJSON *report = cJSON_AddObjectToObject(ir, "report");
    cJSON_AddStringToObject(report, "correlation_id", u->result.correlation_id);
    cJSON_AddStringToObject(report, "raw_report", u->result.description);
    cJSON_AddItemToObject(report, "result", result_object(&u->result));
    cJSON *items = cJSON_AddArrayToObject(report, "items");
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "ecu", d->ecu_serial);
    cJSON_AddItemToObject(item, "result", result_object(&u->result));
    cJSON_AddItemToArray(items, item);
  }
  cJSON *doc = sign_document(d, top, eb);
  if (!doc) return NULL;
  char *text = cJSON_PrintUnformatted(doc);
  cJSON_Delete(doc);
  return text;
}
