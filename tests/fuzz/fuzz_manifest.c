/* fuzz_manifest.c - libFuzzer target: the JSON the agent builds from strings it did not
 * choose: the signed manifest with its installation report (device_manifest(),
 * device_set_result()) and the queued events (events_queue()).
 *
 * Input: one flags byte, then NUL-separated fields (a C string ends at its NUL, as every
 * one of these does in the agent): ECU serial, hardware ID, target name, sha256,
 * correlation ID, error description, result code. They go where the agent puts what the
 * director's metadata, the store and the installer told it: into the fixed-size fields of
 * device/update_target/update_result (cut as snprintf cuts them), into the installed-target
 * record in the store, into device_set_result()'s description.
 *
 * Checked (abort when broken): the manifest and the event queue are valid UTF-8 JSON that
 * parses; every string comes back as the agent held it (or, where it was not valid UTF-8,
 * with only its bad bytes replaced); both signatures of the manifest verify over the
 * parsed document, as the server would check them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "device/device.h"
#include "device/events.h"
#include "device/manifest.h"
#include "states/states.h"
#include "uptane/keys.h"
#include "uptane/uptane.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_manifest: invariant broken: %s (line %d)\n", #cond, __LINE__);         \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static device D;
static uptane_keyring RING;
static size_t RING_IDX = 0;
static const uptane_role_keys ROLE = {&RING_IDX, 1, 1};

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. */
static int utf8_ok(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t k;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      k = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      k = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      k = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return 0;
    }
    if (i + k >= n) return 0; /* cut short */
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t j = 2; j <= k; j++)
      if (s[i + j] < 0x80 || s[i + j] > 0xBF) return 0;
    i += k + 1;
  }
  return 1;
}

/* got is what the JSON carried for held (what the agent held): the same string, or
 * (held not being UTF-8) as long with only bytes replaced. */
static void check_string(const cJSON *got, const char *held, const char *what) {
  if (!cJSON_IsString(got)) {
    fprintf(stderr, "fuzz_manifest: %s missing\n", what);
    abort();
  }
  const char *g = got->valuestring;
  if (utf8_ok((const unsigned char *)held, strlen(held))) {
    if (strcmp(g, held) != 0) {
      fprintf(stderr, "fuzz_manifest: %s changed\n", what);
      abort();
    }
  } else {
    CHECK(utf8_ok((const unsigned char *)g, strlen(g)));
    CHECK(strlen(g) == strlen(held));
    for (size_t i = 0; g[i]; i++)
      CHECK(g[i] == held[i] || g[i] == '?');
  }
}

static const cJSON *get(const cJSON *o, const char *path) {
  char key[64];
  while (o && *path) {
    size_t n = strcspn(path, ".");
    snprintf(key, sizeof(key), "%.*s", (int)n, path);
    o = cJSON_IsArray(o) ? cJSON_GetArrayItem(o, atoi(key))
                         : cJSON_GetObjectItemCaseSensitive(o, key);
    path += n + (path[n] == '.');
  }
  return o;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  log_set_level(LOG_ERROR + 1); /* quiet: warnings about the store are expected */
  memset(&D, 0, sizeof(D));
  snprintf(D.label, sizeof(D.label), "fuzz");
  otad_errbuf eb = {{0}};
  if (keys_generate(KEY_ED25519, &D.ecu_key, &eb) != 0) {
    fprintf(stderr, "fuzz_manifest: key: %s\n", eb.msg);
    abort();
  }
  cJSON *keys = cJSON_CreateObject(), *k = cJSON_AddObjectToObject(keys, D.ecu_key.keyid);
  cJSON_AddStringToObject(k, "keytype", "ED25519");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(k, "keyval"), "public", D.ecu_key.public_text);
  uptane_err err;
  CHECK(uptane_keyring_parse(keys, &RING, "fuzz key", &err) == 0 && RING.n == 1);
  cJSON_Delete(keys);
  return 0;
}

/* The manifest's signatures, over the parsed document (as the server sees it). */
static void check_signed(const cJSON *doc, const char *what) {
  uptane_err err;
  memset(&err, 0, sizeof(err));
  if (uptane_verify_signatures(doc, &RING, &ROLE, what, &err) != 0) {
    fprintf(stderr, "fuzz_manifest: %s signature: %s\n", what, err.eb.msg);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned flags = data[0];
  /* the fields, each cut at its NUL */
  char *copy = malloc(size + 1);
  if (!copy) return 0;
  memcpy(copy, data + 1, size - 1);
  copy[size - 1] = 0;
  const char *f[7];
  const char *p = copy, *end = copy + size - 1;
  for (int i = 0; i < 7; i++) {
    f[i] = p < end ? p : "";
    if (p < end) p += strlen(p) + 1;
  }
  const char *serial = f[0], *hwid = f[1], *name = f[2], *sha = f[3], *corr = f[4], *desc = f[5],
             *code = f[6];

  D.o.st = store_mem_open();
  D.upd = calloc(1, sizeof(*D.upd));
  CHECK(D.o.st && D.upd);
  device_update *u = D.upd;
  u->report_counter = (int)(flags >> 4);
  snprintf(D.ecu_serial, sizeof(D.ecu_serial), "%s", serial);
  snprintf(D.ecu_hwid, sizeof(D.ecu_hwid), "%s", hwid);
  /* what update_found() copies out of the director's target */
  snprintf(u->target.name, sizeof(u->target.name), "%s", name);
  snprintf(u->target.sha256, sizeof(u->target.sha256), "%s", sha);
  snprintf(u->target.correlation_id, sizeof(u->target.correlation_id), "%s", corr);

  /* the installed-target record (installing.c writes it from the target) */
  if (flags & 4) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", u->target.name);
    cJSON_AddStringToObject(t, "sha256", u->target.sha256);
    cJSON_AddNumberToObject(t, "length", (double)(flags & 8 ? 1u << 31 : 7));
    char *js = cJSON_PrintUnformatted(t);
    cJSON_Delete(t);
    otad_errbuf eb = {{0}};
    CHECK(js && store_write(D.o.st, STORE_INSTALLED_TARGET, js, strlen(js), false, &eb) == 0);
    free(js);
  }
  if (flags & 1) /* a result waits to be reported */
    device_set_result(&D, flags & 2, code, "%s", desc);

  otad_errbuf eb = {{0}};
  char *text = device_manifest(&D, &eb);
  if (!text) {
    fprintf(stderr, "fuzz_manifest: no manifest: %s\n", eb.msg);
    abort();
  }
  CHECK(utf8_ok((const unsigned char *)text, strlen(text)));
  cJSON *m = cJSON_Parse(text);
  CHECK(m != NULL);
  check_string(get(m, "signed.primary_ecu_serial"), D.ecu_serial, "primary_ecu_serial");
  const cJSON *mans = get(m, "signed.ecu_version_manifests");
  CHECK(cJSON_GetArraySize(mans) == 1);
  const cJSON *ecu = mans->child;
  check_string(get(ecu, "signed.ecu_serial"), D.ecu_serial, "ecu_serial");
  CHECK(ecu->string && utf8_ok((const unsigned char *)ecu->string, strlen(ecu->string)));
  CHECK(strcmp(ecu->string, get(ecu, "signed.ecu_serial")->valuestring) == 0);
  if (flags & 4) {
    check_string(get(ecu, "signed.installed_image.filepath"), u->target.name, "filepath");
    check_string(get(ecu, "signed.installed_image.fileinfo.hashes.sha256"), u->target.sha256,
                 "sha256");
  }
  check_signed(ecu, "ecu manifest");
  check_signed(m, "manifest");
  const cJSON *rep = get(m, "signed.installation_report.report");
  if (flags & 1) {
    CHECK(rep != NULL);
    check_string(get(rep, "correlation_id"), u->result.correlation_id, "correlation_id");
    check_string(get(rep, "raw_report"), u->result.description, "raw_report");
    check_string(get(rep, "result.code"), u->result.code, "result.code");
    check_string(get(rep, "result.description"), u->result.description, "result.description");
    check_string(get(rep, "items.0.ecu"), D.ecu_serial, "items.0.ecu");
    CHECK(cJSON_IsBool(get(rep, "result.success")));
    CHECK(cJSON_IsTrue(get(rep, "result.success")) == !!(flags & 2));
    /* the stored copy of the report (restored after a crash) */
    char *js = store_read_string(D.o.st, STORE_INSTALL_REPORT);
    cJSON *o = js ? cJSON_Parse(js) : NULL;
    CHECK(o != NULL);
    const cJSON *st = get(o, "target"); /* local: kept byte for byte */
    CHECK(cJSON_IsString(st) && strcmp(st->valuestring, u->result.target) == 0);
    cJSON_Delete(o);
    free(js);
  } else {
    CHECK(rep == NULL);
  }
  cJSON_Delete(m);
  free(text);

  /* an event, with the correlation ID as the director sent it and as the agent holds it */
  events_queue(&D, EVENT_DOWNLOAD_STARTED, corr, EVENT_NO_SUCCESS);
  events_queue(&D, EVENT_INSTALLATION_COMPLETED, u->target.correlation_id,
               flags & 2 ? EVENT_SUCCEEDED : EVENT_FAILED);
  char *q = store_read_string(D.o.st, STORE_EVENTS);
  CHECK(q != NULL);
  CHECK(utf8_ok((const unsigned char *)q, strlen(q)));
  cJSON *ev = cJSON_Parse(q);
  CHECK(cJSON_GetArraySize(ev) == 2);
  check_string(get(ev, "0.event.ecu"), D.ecu_serial, "event ecu");
  check_string(get(ev, "0.event.correlationId"), corr, "event correlationId");
  check_string(get(ev, "1.event.correlationId"), u->target.correlation_id, "event correlationId");
  CHECK(cJSON_IsTrue(get(ev, "1.event.success")) == !!(flags & 2));
  CHECK(get(ev, "0.event.success") == NULL);
  cJSON_Delete(ev);
  free(q);

  store_close(D.o.st);
  free(D.upd);
  D.upd = NULL;
  free(copy);
  return 0;
}
