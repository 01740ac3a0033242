/* listing.c - prints the database as text columns or as a JSON array on stdout.
 *
 * It opens the database read-only, so it can run while `serve` is writing (WAL mode). The
 * JSON forms are what tests read: devices as
 * [{"uuid","device_id","created","cert_expiry","primary_ecu","provisioning","fleet_ca",
 * "ecus":[{"serial","hardware_id","key_type","primary"}], "last_manifest" (time or null),
 * "manifest_signature", "installed_target", "installation_report":{"correlation_id",
 * "success","code","description","received"} or null, "assignment":{"version",
 * "correlation_id","targets":[names]} or null (the director targets it is served now),
 * "events":[{"id","type","device_time","received","ecu","correlation_id","success"}] (the
 * last few, oldest first), "events_total", "device_data":{KIND:{"updated","value"}}}],
 * requests as
 * [{"ts","cn","method","path","status"}], fleet CAs as
 * [{"name","subject","sha256","not_after","added","file"}]. New fields are only ever added.
 */
#include "listing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "files.h"
#include "fleet.h"
#include "fleet_cas.h"
#include "uptane_repo.h"

static db *open_fleet_db(const char *dir) {
  char *path = path_join(dir, FLEET_DB);
  db *d = NULL;
  if (!path) return NULL;
  if (access(path, F_OK) != 0)
    fprintf(stderr, "ota-server: %s: no database (is %s a fleet directory?)\n", path, dir);
  else if (db_open(path, true, &d) != 0)
    d = NULL;
  free(path);
  return d;
}

static const char *or_dash(const char *s) {
  return s && *s ? s : "-";
}

static bool implicit(const db_device *dev) {
  return dev->provisioning && strcmp(dev->provisioning, "implicit") == 0;
}

/* What the device callbacks get. */
typedef struct device_listing {
  const char *dir;
  cJSON *list; /* JSON only */
} device_listing;

static const char *tristate_text(int v) {
  return v < 0 ? "-" : v ? "true" : "false";
}

static void assignment_text(const char *dir, const db_device *dev) {
  cJSON *s = repo_director_signed(dir, dev->uuid);
  const cJSON *targets = cJSON_GetObjectItemCaseSensitive(s, "targets");
  if (cJSON_GetArraySize(targets) > 0) {
    const char *cid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(s, "custom"), "correlationId"));
    printf("    assigned");
    const cJSON *t;
    cJSON_ArrayForEach(t, targets) printf(" %s", t->string);
    printf("  correlation %s  director targets version %lld\n", or_dash(cid),
           (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "version")));
  }
  cJSON_Delete(s);
}

static int device_text(const db_device *dev, void *arg) {
  const device_listing *ctx = arg;
  printf("%s  %s  created %s  expires %s", dev->uuid, dev->device_id, dev->created,
         dev->cert_expiry);
  if (implicit(dev)) printf("  implicit (fleet CA %s)", or_dash(dev->fleet_ca));
  putchar('\n');
  for (size_t i = 0; i < dev->necus; i++) {
    const db_ecu *e = &dev->ecus[i];
    bool primary = dev->primary_ecu && strcmp(dev->primary_ecu, e->serial) == 0;
    printf("    ecu %s  hardware %s  key %s%s\n", e->serial, e->hardware_id, e->key_type,
           primary ? "  (primary)" : "");
  }
  assignment_text(ctx->dir, dev);
  if (dev->manifest)
    printf("    manifest %s  installed %s  signature %s\n", dev->manifest->received,
           or_dash(dev->manifest->installed_target), dev->manifest->signature);
  if (dev->report)
    printf("    report %s  success %s  code %s  correlation %s\n", dev->report->received,
           tristate_text(dev->report->success), or_dash(dev->report->code),
           or_dash(dev->report->correlation_id));
  for (size_t i = 0; i < dev->nevents; i++)
    printf("    event %s  %s%s%s\n", or_dash(dev->events[i].device_time),
           or_dash(dev->events[i].type), dev->events[i].success < 0 ? "" : "  success ",
           dev->events[i].success < 0 ? "" : tristate_text(dev->events[i].success));
  if (dev->events_total > dev->nevents) printf("    (%zu events in all)\n", dev->events_total);
  return 0;
}

static void add_string_or_null(cJSON *obj, const char *name, const char *value) {
  if (value)
    cJSON_AddStringToObject(obj, name, value);
  else
    cJSON_AddNullToObject(obj, name);
}

static void add_tristate(cJSON *obj, const char *name, int value) {
  if (value < 0)
    cJSON_AddNullToObject(obj, name);
  else
    cJSON_AddBoolToObject(obj, name, value);
}

/* The fields about updates of one device's JSON object. */
static void device_json_updates(const device_listing *ctx, const db_device *dev, cJSON *obj) {
  const db_manifest *m = dev->manifest;
  add_string_or_null(obj, "last_manifest", m ? m->received : NULL);
  add_string_or_null(obj, "manifest_signature", m ? m->signature : NULL);
  add_string_or_null(obj, "installed_target", m ? m->installed_target : NULL);
  if (dev->report) {
    cJSON *r = cJSON_AddObjectToObject(obj, "installation_report");
    add_string_or_null(r, "correlation_id", dev->report->correlation_id);
    add_tristate(r, "success", dev->report->success);
    add_string_or_null(r, "code", dev->report->code);
    add_string_or_null(r, "description", dev->report->description);
    add_string_or_null(r, "received", dev->report->received);
  } else {
    cJSON_AddNullToObject(obj, "installation_report");
  }
  cJSON *s = repo_director_signed(ctx->dir, dev->uuid);
  const cJSON *targets = cJSON_GetObjectItemCaseSensitive(s, "targets");
  if (cJSON_GetArraySize(targets) > 0) {
    cJSON *as = cJSON_AddObjectToObject(obj, "assignment"), *names = cJSON_CreateArray();
    cJSON_AddNumberToObject(as, "version",
                            cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "version")));
    add_string_or_null(as, "correlation_id",
                       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                           cJSON_GetObjectItemCaseSensitive(s, "custom"), "correlationId")));
    const cJSON *t;
    cJSON_ArrayForEach(t, targets) cJSON_AddItemToArray(names, cJSON_CreateString(t->string));
    cJSON_AddItemToObject(as, "targets", names);
  } else {
    cJSON_AddNullToObject(obj, "assignment");
  }
  cJSON_Delete(s);
  cJSON *events = cJSON_AddArrayToObject(obj, "events");
  for (size_t i = 0; i < dev->nevents; i++) {
    const db_event *e = &dev->events[i];
    cJSON *ev = cJSON_CreateObject();
    if (!ev) break;
    cJSON_AddItemToArray(events, ev);
    add_string_or_null(ev, "id", e->event_id);
    add_string_or_null(ev, "type", e->type);
    add_string_or_null(ev, "device_time", e->device_time);
    add_string_or_null(ev, "received", e->received);
    add_string_or_null(ev, "ecu", e->ecu);
    add_string_or_null(ev, "correlation_id", e->correlation_id);
    add_tristate(ev, "success", e->success);
  }
  cJSON_AddNumberToObject(obj, "events_total", (double)dev->events_total);
  cJSON *data = cJSON_AddObjectToObject(obj, "device_data");
  for (size_t i = 0; i < dev->ndata; i++) {
    const db_data *d = &dev->data[i];
    cJSON *entry = cJSON_CreateObject();
    if (!entry || !d->kind) {
      cJSON_Delete(entry);
      break;
    }
    cJSON_AddItemToObject(data, d->kind, entry);
    add_string_or_null(entry, "updated", d->updated);
    cJSON *value = strcmp(d->kind, "config") == 0 ? NULL : cJSON_Parse(d->body ? d->body : "");
    cJSON_AddItemToObject(entry, "value", value ? value : cJSON_CreateString(or_dash(d->body)));
  }
}

static int device_json(const db_device *dev, void *arg) {
  const device_listing *ctx = arg;
  cJSON *list = ctx->list, *obj = cJSON_CreateObject(), *ecus = cJSON_CreateArray();
  if (!obj || !ecus) {
    cJSON_Delete(obj);
    cJSON_Delete(ecus);
    return 1;
  }
  cJSON_AddItemToArray(list, obj);
  cJSON_AddStringToObject(obj, "uuid", dev->uuid);
  cJSON_AddStringToObject(obj, "device_id", dev->device_id);
  cJSON_AddStringToObject(obj, "created", dev->created);
  cJSON_AddStringToObject(obj, "cert_expiry", dev->cert_expiry);
  if (dev->primary_ecu)
    cJSON_AddStringToObject(obj, "primary_ecu", dev->primary_ecu);
  else
    cJSON_AddNullToObject(obj, "primary_ecu");
  cJSON_AddStringToObject(obj, "provisioning", implicit(dev) ? "implicit" : "shared");
  if (implicit(dev) && dev->fleet_ca)
    cJSON_AddStringToObject(obj, "fleet_ca", dev->fleet_ca);
  else
    cJSON_AddNullToObject(obj, "fleet_ca");
  cJSON_AddItemToObject(obj, "ecus", ecus);
  for (size_t i = 0; i < dev->necus; i++) {
    const db_ecu *e = &dev->ecus[i];
    cJSON *ecu = cJSON_CreateObject();
    if (!ecu) return 1;
    cJSON_AddItemToArray(ecus, ecu);
    cJSON_AddStringToObject(ecu, "serial", e->serial);
    cJSON_AddStringToObject(ecu, "hardware_id", e->hardware_id);
    cJSON_AddStringToObject(ecu, "key_type", e->key_type);
    cJSON_AddBoolToObject(ecu, "primary",
                          dev->primary_ecu && strcmp(dev->primary_ecu, e->serial) == 0);
  }
  device_json_updates(ctx, dev, obj);
  return 0;
}

static int request_text(const db_request *r, void *arg) {
  char status[16];
  snprintf(status, sizeof status, r->status ? "%d" : "closed", r->status);
  printf("%s  %-36s  %-6s %-24s %s\n", or_dash(r->ts), or_dash(r->cn), or_dash(r->method),
         or_dash(r->path), status);
  return 0;
}

static int request_json(const db_request *r, void *arg) {
  cJSON *obj = cJSON_CreateObject();
  if (!obj) return 1;
  cJSON_AddItemToArray(arg, obj);
  cJSON_AddStringToObject(obj, "ts", or_dash(r->ts));
  cJSON_AddStringToObject(obj, "cn", or_dash(r->cn));
  cJSON_AddStringToObject(obj, "method", or_dash(r->method));
  cJSON_AddStringToObject(obj, "path", or_dash(r->path));
  cJSON_AddNumberToObject(obj, "status", r->status);
  return 0;
}

static int fleet_ca_text(const db_fleet_ca *ca, void *arg) {
  printf("%s  expires %s  sha256 %s  %s\n", ca->name, ca->not_after, ca->sha256, ca->subject);
  return 0;
}

static int fleet_ca_json(const db_fleet_ca *ca, void *arg) {
  cJSON *obj = cJSON_CreateObject();
  char file[FLEET_CA_NAME_MAX + sizeof FLEET_CAS_DIR + sizeof ".pem"];
  if (!obj) return 1;
  cJSON_AddItemToArray(arg, obj);
  snprintf(file, sizeof file, "%s/%s.pem", FLEET_CAS_DIR, ca->name);
  cJSON_AddStringToObject(obj, "name", ca->name);
  cJSON_AddStringToObject(obj, "subject", ca->subject);
  cJSON_AddStringToObject(obj, "sha256", ca->sha256);
  cJSON_AddStringToObject(obj, "not_after", ca->not_after);
  cJSON_AddStringToObject(obj, "added", ca->added);
  cJSON_AddStringToObject(obj, "file", file);
  return 0;
}

/* Closes the database and prints the JSON array, if any. Returns the exit code. */
static int finish(db *d, cJSON *arr, int rc) {
  db_close(d);
  if (rc == 0 && arr) {
    char *text = cJSON_Print(arr);
    if (text)
      printf("%s\n", text);
    else
      rc = -1;
    free(text);
  }
  cJSON_Delete(arr);
  if (fflush(stdout) != 0) rc = -1;
  return rc == 0 ? 0 : 1;
}

int list_devices(const char *dir, bool json) {
  db *d = open_fleet_db(dir);
  if (!d) return 1;
  cJSON *arr = json ? cJSON_CreateArray() : NULL;
  if (json && !arr) return finish(d, NULL, -1);
  device_listing ctx = {dir, arr};
  return finish(d, arr, db_devices_foreach(d, json ? device_json : device_text, &ctx));
}

int list_requests(const char *dir, bool json) {
  db *d = open_fleet_db(dir);
  if (!d) return 1;
  cJSON *arr = json ? cJSON_CreateArray() : NULL;
  if (json && !arr) return finish(d, NULL, -1);
  return finish(d, arr, db_requests_foreach(d, json ? request_json : request_text, arr));
}

int list_fleet_cas(const char *dir, bool json) {
  db *d = open_fleet_db(dir);
  if (!d) return 1;
  cJSON *arr = json ? cJSON_CreateArray() : NULL;
  if (json && !arr) return finish(d, NULL, -1);
  return finish(d, arr, db_fleet_cas_foreach(d, json ? fleet_ca_json : fleet_ca_text, arr));
}
