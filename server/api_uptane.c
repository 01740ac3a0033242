/* api_uptane.c - the update API: what a device fetches and reports once it is provisioned.
 *
 * Metadata comes from the files of uptane_repo.c as they are on disk (tests make expired or
 * tampered metadata by changing those files); a device's director targets.json is its own,
 * signed empty on its first request. Targets are streamed from DIR/targets with Range
 * support. Manifests are stored raw and parsed (primary ECU, its installed image, the
 * installation report; the signature checked against the primary ECU's registered key but
 * never refused: a test reads the verdict from `devices --json`), and a report that
 * finishes the device's assignment empties its director targets, as a real director does.
 * Events and device data are stored as sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api_internal.h"
#include "canonical.h"
#include "tuf_key.h"
#include "uptane_repo.h"
#include "utctime.h"

static const char CT_OCTETS[] = "application/octet-stream";

#define EVENTS_MAX 1000 /* events in one POST */

/* Answers a metadata file read into data (rc from repo_read()/repo_director_targets()). */
static void answer_file(request *r, reply *out, int rc, char *data, size_t len) {
  if (rc == 0)
    reply_take(out, 200, API_CT_JSON, data, len);
  else if (rc == -ENOENT)
    reply_error(out, 404, "not_found", "no metadata %.200s", r->path);
  else
    reply_error(out, 500, "internal_error", "cannot read %.200s: %s", r->path, strerror(-rc));
}

void api_get_director(api *a, request *r, reply *out) {
  const char *file = r->path + strlen("/director/");
  const char *p = file;
  while (*p >= '0' && *p <= '9')
    p++;
  bool targets =
      strcmp(file, "targets.json") == 0 || (p != file && strcmp(p, ".targets.json") == 0);
  char *data = NULL;
  size_t len = 0;
  int rc;
  if (targets) /* each device has its own */
    rc = repo_director_targets(a->dir, r->device, file, &data, &len);
  else
    rc = repo_read(a->dir, REPO_DIRECTOR, file, &data, &len);
  answer_file(r, out, rc, data, len);
}

void api_get_repo(api *a, request *r, reply *out) {
  char *data = NULL;
  size_t len = 0;
  int rc = repo_read(a->dir, REPO_IMAGE, r->path + strlen("/repo/"), &data, &len);
  answer_file(r, out, rc, data, len);
}

/* Parses a Range header against a file of size bytes: "bytes=N-", "bytes=N-M" or
 * "bytes=-N". 1 with [first, last], 0 to answer the whole file (no header, or one this
 * server does not serve, such as several ranges: RFC 9110 lets it ignore them), -1 when
 * unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last) {
  if (!*h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',')) return 0;
  const char *p = h + 6;
  char *end = NULL;
  if (*p == '-') { /* the last N bytes */
    errno = 0;
    unsigned long long n = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1 || *end) return 0;
    if (n == 0 || size == 0) return -1;
    *first = n >= size ? 0 : size - n;
    *last = size - 1;
    return 1;
  }
  errno = 0;
  unsigned long long from = strtoull(p, &end, 10);
  if (errno || end == p || *end != '-' || *p == '+' || *p == ' ') return 0;
  p = end + 1;
  unsigned long long to = UINT64_MAX;
  if (*p) {
    to = strtoull(p, &end, 10);
    if (errno || end == p || *end || to < from) return 0;
  }
  if (from >= size) return -1;
  *first = from;
  *last = to >= size ? size - 1 : to;
  return 1;
}

void api_get_target(api *a, request *r, reply *out) {
  const char *name = r->path + strlen("/repo/targets/");
  int fd = -1;
  unsigned long long size = 0;
  int rc = repo_target_open(a->dir, name, &fd, &size);
  if (rc == -ENOENT) {
    reply_error(out, 404, "not_found", "no target %.200s", name);
    return;
  }
  if (rc < 0) {
    reply_error(out, 500, "internal_error", "cannot open target %.200s: %s", name, strerror(-rc));
    return;
  }
  uint64_t first = 0, last = 0;
  int range = parse_range(r->range, size, &first, &last);
  reply_clear(out);
  if (range < 0) {
    close(fd);
    reply_error(out, 416, "range_not_satisfiable", "the target has %llu bytes; asked for %.60s",
                size, r->range);
    snprintf(out->content_range, sizeof out->content_range, "bytes */%llu", size);
    return;
  }
  *out = (reply){.status = range ? 206 : 200,
                 .content_type = CT_OCTETS,
                 .has_file = true,
                 .fd = fd,
                 .file_offset = range ? first : 0,
                 .file_len = range ? last - first + 1 : size,
                 .accept_ranges = true};
  if (range)
    snprintf(out->content_range, sizeof out->content_range, "bytes %" PRIu64 "-%" PRIu64 "/%llu",
             first, last, size);
}

/* ---- PUT /director/manifest ---- */

static const cJSON *get(const cJSON *obj, const char *name) {
  return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* The signed ECU report of serial in signed.ecu_version_manifests (an object by serial, or an
 * older array of reports), or NULL. */
static const cJSON *ecu_report(const cJSON *sig, const char *serial) {
  const cJSON *evm = get(sig, "ecu_version_manifests");
  if (cJSON_IsObject(evm)) return get(get(evm, serial), "signed");
  const cJSON *e;
  cJSON_ArrayForEach(e, evm) {
    const char *s = cJSON_GetStringValue(get(get(e, "signed"), "ecu_serial"));
    if (s && strcmp(s, serial) == 0) return get(e, "signed");
  }
  return NULL;
}

/* valid, invalid, unsigned, unknown_ecu or unsupported: the manifest's signatures against
 * the key the device registered for its primary ECU. */
static const char *manifest_signature(api *a, request *r, const cJSON *doc, const char *primary) {
  const cJSON *sigs = get(doc, "signatures");
  if (cJSON_GetArraySize(sigs) == 0) return "unsigned";
  char *key_type = NULL, *public_key = NULL;
  int found = primary ? db_ecu_key(a->db, r->device, primary, &key_type, &public_key) : 0;
  if (found <= 0) return found < 0 ? "unsupported" : "unknown_ecu";
  size_t len = 0;
  char *msg = canonical_json(get(doc, "signed"), &len);
  const char *verdict = "unsupported";
  const cJSON *s;
  cJSON_ArrayForEach(s, sigs) {
    if (!msg) break;
    enum tuf_verdict v = tuf_verify(key_type, public_key, cJSON_GetStringValue(get(s, "method")),
                                    cJSON_GetStringValue(get(s, "sig")), msg, len);
    if (v == TUF_VALID) {
      verdict = "valid";
      break;
    }
    if (v == TUF_INVALID) verdict = "invalid";
  }
  free(msg);
  free(key_type);
  free(public_key);
  return verdict;
}

/* Stores signed.installation_report and finishes the assignment it reports on. */
static int store_report(api *a, request *r, const cJSON *ir, const char *received) {
  const cJSON *report = get(ir, "report"), *result = get(report, "result");
  const cJSON *success = get(result, "success");
  char *raw = cJSON_PrintUnformatted(ir);
  db_report rep = {.received = received,
                   .correlation_id = cJSON_GetStringValue(get(report, "correlation_id")),
                   .success = cJSON_IsBool(success) ? cJSON_IsTrue(success) : -1,
                   .code = cJSON_GetStringValue(get(result, "code")),
                   .description = cJSON_GetStringValue(get(result, "description")),
                   .raw = raw ? raw : "{}"};
  int rc = db_report_set(a->db, r->device, &rep);
  free(raw);
  if (rc != 0 || !rep.correlation_id) return rc;
  if (rep.code && strcmp(rep.code, "NEED_COMPLETION") == 0) return 0; /* not finished yet */
  int done = repo_director_complete(a->dir, r->device, rep.correlation_id);
  if (done == 1 && !a->quiet)
    fprintf(stderr,
            "ota-server: device %s finished assignment %s (%s): its director targets are "
            "empty again\n",
            r->device, rep.correlation_id, rep.code ? rep.code : "no result code");
  return done < 0 ? -1 : 0;
}

void api_put_manifest(api *a, request *r, reply *out) {
  cJSON *doc = cJSON_ParseWithLength(r->body ? r->body : "", r->len);
  const cJSON *sig = get(doc, "signed");
  if (!cJSON_IsObject(sig) || !cJSON_IsArray(get(doc, "signatures"))) {
    reply_error(out, 400, "invalid_request",
                "a manifest is a JSON object with \"signatures\" and \"signed\"");
    cJSON_Delete(doc);
    return;
  }
  char received[UTC_ISO_LEN];
  utc_now_iso_ms(received);
  const char *primary = cJSON_GetStringValue(get(sig, "primary_ecu_serial"));
  const cJSON *image = get(ecu_report(sig, primary ? primary : ""), "installed_image");
  db_manifest m = {.received = received,
                   .primary_ecu = primary,
                   .signature = manifest_signature(a, r, doc, primary),
                   .installed_target = cJSON_GetStringValue(get(image, "filepath")),
                   .raw = r->body};
  const cJSON *ir = get(sig, "installation_report");
  if (db_manifest_set(a->db, r->device, &m) != 0 ||
      (cJSON_IsObject(ir) && store_report(a, r, ir, received) != 0))
    reply_error(out, 500, "internal_error", "cannot store the manifest");
  else
    reply_body(out, 200, NULL, NULL, 0);
  cJSON_Delete(doc);
}

/* ---- POST /events ---- */

void api_post_events(api *a, request *r, reply *out) {
  cJSON *doc = cJSON_ParseWithLength(r->body ? r->body : "", r->len);
  int n = cJSON_GetArraySize(doc);
  db_event *events = NULL;
  char **raws = NULL;
  char received[UTC_ISO_LEN];
  utc_now_iso_ms(received);
  if (!cJSON_IsArray(doc)) {
    reply_error(out, 400, "invalid_request", "events are a JSON array");
    goto out;
  }
  if (n > EVENTS_MAX) {
    reply_error(out, 413, "request_too_large", "more than %d events", EVENTS_MAX);
    goto out;
  }
  events = calloc((size_t)n + 1, sizeof *events);
  raws = calloc((size_t)n + 1, sizeof *raws);
  if (!events || !raws) {
    reply_error(out, 500, "internal_error", "out of memory");
    goto out;
  }
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, doc) {
    const char *id = cJSON_GetStringValue(get(e, "id"));
    if (!cJSON_IsObject(e) || !id || !*id) {
      reply_error(out, 400, "invalid_request", "event %d has no \"id\"", i);
      goto out;
    }
    const cJSON *ev = get(e, "event"), *success = get(ev, "success");
    raws[i] = cJSON_PrintUnformatted(e);
    events[i] = (db_event){
        .event_id = id,
        .type = cJSON_GetStringValue(get(get(e, "eventType"), "id")),
        .device_time = cJSON_GetStringValue(get(e, "deviceTime")),
        .received = received,
        .ecu = cJSON_GetStringValue(get(ev, "ecu")),
        .correlation_id = cJSON_GetStringValue(get(ev, "correlationId")),
        .success = cJSON_IsBool(success) ? cJSON_IsTrue(success) : -1,
        .raw = raws[i] ? raws[i] : "{}",
    };
    i++;
  }
  if (db_events_add(a->db, r->device, events, (size_t)n) < 0)
    reply_error(out, 500, "internal_error", "cannot store the events");
  else
    reply_body(out, 204, NULL, NULL, 0);
out:
  for (int j = 0; raws && j < n; j++)
    free(raws[j]);
  free(raws);
  free(events);
  cJSON_Delete(doc);
}

/* ---- device data ---- */

/* Stores the body as the device's data of kind; JSON kinds must parse. */
static void store_data(api *a, request *r, reply *out, const char *kind, bool json) {
  const char *body = r->body ? r->body : "";
  if (json) {
    cJSON *doc = cJSON_ParseWithLength(body, r->len);
    bool ok = doc != NULL;
    cJSON_Delete(doc);
    if (!ok) {
      reply_error(out, 400, "invalid_request", "the body of %s must be JSON", r->path);
      return;
    }
  }
  char now[UTC_ISO_LEN];
  utc_now_iso_ms(now);
  if (db_data_set(a->db, r->device, kind, now, body) != 0)
    reply_error(out, 500, "internal_error", "cannot store %s", kind);
  else
    reply_body(out, 200, NULL, NULL, 0);
}

void api_put_installed(api *a, request *r, reply *out) {
  store_data(a, r, out, "installed", true);
}

void api_put_system_info(api *a, request *r, reply *out) {
  store_data(a, r, out, "system_info", true);
}

void api_put_network(api *a, request *r, reply *out) {
  store_data(a, r, out, "network", true);
}

void api_post_config(api *a, request *r, reply *out) {
  store_data(a, r, out, "config", false);
}
