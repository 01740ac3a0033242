/* test_uptane.c - Uptane verification (core/uptane*.c).
 *
 * Metadata is built and signed in memory (cJSON + keys_sign() from transport/keys.h), one
 * rule broken per case, so each test fails when the rule it names is taken out. The
 * fixtures under tests/data/uptane/ were signed by python's cryptography (see
 * make_fixtures.py): they check our canonical JSON and wolfSSL verification against an
 * independent implementation.
 */
/* cmocka needs these in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "core/canonical_json.h"
#include "uptane/keys.h"
#include "uptane/uptane.h"

/* ---- keys ---- */

enum {
  D_ROOT,    /* director root (ED25519, tests/data/uptane-ed25519.key) */
  D_TARGETS, /* director targets (RSA 2048, tests/data/uptane-rsa.key) */
  I_ROOT,    /* image repository roles */
  I_TARGETS,
  I_SNAPSHOT,
  I_TIMESTAMP,
  I_DELEG, /* signs delegations/team.json */
  X1,
  X2,
  X3, /* rotation and spare keys */
  NKEYS
};
static uptane_key K[NKEYS];

/* 2026-01-01T00:00:00Z: "now" in every test. */
static const time_t NOW = 1767225600;
#define FUTURE "2030-01-01T00:00:00Z"
#define PAST "2025-06-01T00:00:00Z"

static char *read_fixture(const char *name, size_t *len) {
  const char *dir = getenv("OTAD_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/data", name);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open fixture %s (is OTAD_TEST_DATA set?)", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  buf[n] = '\0';
  if (len) *len = (size_t)n;
  return buf;
}

static int group_setup(void **state) {
  (void)state;
  otad_errbuf eb;
  char *ed = read_fixture("uptane-ed25519.key", NULL), *rsa = read_fixture("uptane-rsa.key", NULL);
  int ret = keys_load(ed, &K[D_ROOT], &eb);
  if (ret == 0) ret = keys_load(rsa, &K[D_TARGETS], &eb);
  free(ed);
  free(rsa);
  for (int i = I_ROOT; ret == 0 && i < NKEYS; i++)
    ret = keys_generate(KEY_ED25519, &K[i], &eb);
  if (ret) fprintf(stderr, "key setup: %s\n", eb.msg);
  return ret;
}

static int group_teardown(void **state) {
  (void)state;
  for (int i = 0; i < NKEYS; i++)
    keys_free(&K[i]);
  return 0;
}

/* ---- strings made during one test, freed after it ---- */

static char *made[256];
static size_t nmade;

static char *keep(char *s) {
  assert_true(nmade < sizeof(made) / sizeof(made[0]));
  return made[nmade++] = s;
}

static int test_teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < nmade; i++)
    free(made[i]);
  nmade = 0;
  return 0;
}

/* ---- building metadata ---- */

static cJSON *key_obj(int k) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "keytype", keys_director_type(K[k].type)); /* "ED25519", "RSA" */
  cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "keyval"), "public", K[k].public_text);
  return o;
}

typedef struct role_spec {
  int keys[4];
  int n;
  int threshold;
} role_spec;
#define ROLE(t, ...) ((role_spec){{__VA_ARGS__}, sizeof((int[]){__VA_ARGS__}) / sizeof(int), t})

static void add_role(cJSON *keys, cJSON *roles, const char *name, role_spec r) {
  cJSON *role = cJSON_AddObjectToObject(roles, name);
  cJSON *ids = cJSON_AddArrayToObject(role, "keyids");
  for (int i = 0; i < r.n; i++) {
    cJSON_AddItemToArray(ids, cJSON_CreateString(K[r.keys[i]].keyid));
    if (!cJSON_GetObjectItemCaseSensitive(keys, K[r.keys[i]].keyid))
      cJSON_AddItemToObject(keys, K[r.keys[i]].keyid, key_obj(r.keys[i]));
  }
  cJSON_AddNumberToObject(role, "threshold", r.threshold);
}

static cJSON *meta_signed(const char *type, int version, const char *expires) {
  cJSON *s = cJSON_CreateObject();
  cJSON_AddStringToObject(s, "_type", type);
  cJSON_AddNumberToObject(s, "version", version);
  cJSON_AddStringToObject(s, "expires", expires);
  return s;
}

static cJSON *root_signed(int version, const char *expires, role_spec root, role_spec targets,
                          role_spec snapshot, role_spec timestamp) {
  cJSON *s = meta_signed("Root", version, expires);
  cJSON_AddBoolToObject(s, "consistent_snapshot", 0);
  cJSON *keys = cJSON_AddObjectToObject(s, "keys");
  cJSON *roles = cJSON_AddObjectToObject(s, "roles");
  add_role(keys, roles, "root", root);
  add_role(keys, roles, "targets", targets);
  add_role(keys, roles, "snapshot", snapshot);
  add_role(keys, roles, "timestamp", timestamp);
  return s;
}

/* One signature of s (canonical JSON) by key k, with method overridden unless NULL. */
static cJSON *signature(const cJSON *s, int k, const char *method) {
  char *msg = NULL;
  size_t len = 0;
  otad_errbuf eb;
  if (canonical_json(s, &msg, &len, &eb) != 0) fail_msg("canonical_json: %s", eb.msg);
  char *sig = NULL;
  const char *m = NULL;
  if (keys_sign(&K[k], (const uint8_t *)msg, len, &sig, &m, &eb) != 0) fail_msg("%s", eb.msg);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "keyid", K[k].keyid);
  cJSON_AddStringToObject(o, "method", method ? method : m);
  cJSON_AddStringToObject(o, "sig", sig);
  free(sig);
  free(msg);
  return o;
}

/* {"signatures":[...],"signed":s}, signed by the n keys that follow (s is taken). */
static cJSON *sign_doc(cJSON *s, int n, ...) {
  cJSON *doc = cJSON_CreateObject();
  cJSON *sigs = cJSON_AddArrayToObject(doc, "signatures");
  va_list ap;
  va_start(ap, n);
  for (int i = 0; i < n; i++)
    cJSON_AddItemToArray(sigs, signature(s, va_arg(ap, int), NULL));
  va_end(ap);
  cJSON_AddItemToObject(doc, "signed", s);
  return doc;
}

/* The text of doc (taken), kept until the end of the test. Pretty-printed: what is signed
 * is the canonical form, not these bytes. */
static char *text(cJSON *doc) {
  char *t = cJSON_Print(doc);
  cJSON_Delete(doc);
  assert_non_null(t);
  return keep(t);
}

#define SIGN(s, ...) text(sign_doc((s), sizeof((int[]){__VA_ARGS__}) / sizeof(int), __VA_ARGS__))

static char *sha256_hex(const char *data, size_t len) {
  uint8_t d[32];
  assert_int_equal(wc_Sha256Hash((const byte *)data, (word32)len, d), 0);
  char *hex = malloc(65);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  return keep(hex);
}

/* meta[file] = {"version":v} plus length and sha256 of doc when doc is not NULL. */
static void add_record(cJSON *s, const char *file, int version, const char *doc) {
  cJSON *meta = cJSON_GetObjectItemCaseSensitive(s, "meta");
  if (!meta) meta = cJSON_AddObjectToObject(s, "meta");
  cJSON *r = cJSON_AddObjectToObject(meta, file);
  cJSON_AddNumberToObject(r, "version", version);
  if (doc) {
    cJSON_AddNumberToObject(r, "length", (double)strlen(doc));
    cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "hashes"), "sha256",
                            sha256_hex(doc, strlen(doc)));
  }
}

static char *timestamp_doc(int version, const char *expires, int snap_version,
                           const char *snapshot) {
  cJSON *s = meta_signed("Timestamp", version, expires);
  add_record(s, "snapshot.json", snap_version, snapshot);
  return SIGN(s, I_TIMESTAMP);
}

/* A target; hwids (image) or ecu + ecu_hwid (director) when not NULL. */
static void add_target(cJSON *s, const char *name, int length, const char *sha256, const char *hwid,
                       const char *ecu, const char *ecu_hwid) {
  cJSON *targets = cJSON_GetObjectItemCaseSensitive(s, "targets");
  if (!targets) targets = cJSON_AddObjectToObject(s, "targets");
  cJSON *t = cJSON_AddObjectToObject(targets, name);
  cJSON_AddNumberToObject(t, "length", length);
  cJSON_AddStringToObject(cJSON_AddObjectToObject(t, "hashes"), "sha256", sha256);
  cJSON *custom = cJSON_AddObjectToObject(t, "custom");
  if (hwid) {
    cJSON *ids = cJSON_AddArrayToObject(custom, "hardwareIds");
    cJSON_AddItemToArray(ids, cJSON_CreateString(hwid));
    cJSON_AddStringToObject(custom, "targetFormat", "BINARY");
  }
  if (ecu)
    cJSON_AddStringToObject(
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(custom, "ecuIdentifiers"), ecu),
        "hardwareId", ecu_hwid);
}

static cJSON *targets_signed(int version, const char *expires) {
  cJSON *s = meta_signed("Targets", version, expires);
  cJSON_AddObjectToObject(s, "targets");
  return s;
}

/* Delegates name (paths: one pattern) to key k with threshold 1. */
static void add_delegation(cJSON *s, const char *name, const char *path, int k, int terminating) {
  cJSON *del = cJSON_GetObjectItemCaseSensitive(s, "delegations");
  if (!del) {
    del = cJSON_AddObjectToObject(s, "delegations");
    cJSON_AddObjectToObject(del, "keys");
    cJSON_AddArrayToObject(del, "roles");
  }
  cJSON *keys = cJSON_GetObjectItemCaseSensitive(del, "keys");
  if (!cJSON_GetObjectItemCaseSensitive(keys, K[k].keyid))
    cJSON_AddItemToObject(keys, K[k].keyid, key_obj(k));
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "name", name);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(r, "keyids"), cJSON_CreateString(K[k].keyid));
  cJSON_AddNumberToObject(r, "threshold", 1);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(r, "paths"), cJSON_CreateString(path));
  cJSON_AddBoolToObject(r, "terminating", terminating);
  cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(del, "roles"), r);
}

static const uptane_ecu ECUS[] = {{"ecu-1", "board-a"}, {"ecu-2", "board-b"}};
#define NECUS (sizeof(ECUS) / sizeof(ECUS[0]))

/* ---- checking results ---- */

static uptane_err E;

#define OK(call)                                                                                   \
  do {                                                                                             \
    memset(&E, 0, sizeof(E));                                                                      \
    int r_ = (call);                                                                               \
    if (r_ != 0)                                                                                   \
      fail_msg("%s failed (%d, %s): %s", #call, r_, uptane_fail_name(E.fail), E.eb.msg);           \
    assert_int_equal(E.fail, UPTANE_OK);                                                           \
  } while (0)

static void check_fails(int ret, enum uptane_fail kind, const char *needle, const char *call) {
  if (ret >= 0 || E.fail != kind)
    fail_msg("%s: wanted %s, got %d %s: %s", call, uptane_fail_name(kind), ret,
             uptane_fail_name(E.fail), E.eb.msg);
  if (needle && !strstr(E.eb.msg, needle))
    fail_msg("%s: message \"%s\" lacks \"%s\"", call, E.eb.msg, needle);
}

/* call fails with kind; its message holds needle (unless NULL). */
#define FAILS(call, kind, needle)                                                                  \
  do {                                                                                             \
    memset(&E, 0, sizeof(E));                                                                      \
    check_fails((call), (kind), (needle), #call);                                                  \
  } while (0)

/* ---- a complete, valid pair of repositories ---- */

#define FW "fw-1.0.bin"
#define APP "team/app-2.bin"
static const char FW_SHA[] = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";
static const char APP_SHA[] = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

typedef struct world {
  const char *droot, *dtargets;
  const char *iroot, *its, *isnap, *itargets, *team;
} world;

static const char *director_root_doc(void) {
  return SIGN(
      root_signed(1, FUTURE, ROLE(1, D_ROOT), ROLE(1, D_TARGETS), ROLE(1, D_ROOT), ROLE(1, D_ROOT)),
      D_ROOT);
}

static const char *image_root_doc(void) {
  return SIGN(root_signed(1, FUTURE, ROLE(1, I_ROOT), ROLE(1, I_TARGETS), ROLE(1, I_SNAPSHOT),
                          ROLE(1, I_TIMESTAMP)),
              I_ROOT);
}

/* Director targets: FW for ecu-1 (board-a). */
static cJSON *director_targets_signed(int version) {
  cJSON *s = targets_signed(version, FUTURE);
  add_target(s, FW, 1024, FW_SHA, NULL, "ecu-1", "board-a");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(s, "custom"), "correlationId", "urn:c:1");
  return s;
}

/* Image targets v1: FW for board-a, APP delegated to "team" (paths "team/" then any name). */
static cJSON *image_targets_signed(int version) {
  cJSON *s = targets_signed(version, FUTURE);
  add_target(s, FW, 1024, FW_SHA, "board-a", NULL, NULL);
  add_delegation(s, "team", "team/*", I_DELEG, 0);
  return s;
}

/* delegations/team.json: APP, and a target outside the paths delegated to it. */
static const char *team_doc(int version, const char *expires) {
  cJSON *s = targets_signed(version, expires);
  add_target(s, APP, 2048, APP_SHA, "board-b", NULL, NULL);
  add_target(s, "evil/app-2.bin", 2048, APP_SHA, "board-b", NULL, NULL);
  return SIGN(s, I_DELEG);
}

static cJSON *snapshot_signed(int version, int targets_version, const char *targets,
                              int team_version, const char *team) {
  cJSON *s = meta_signed("Snapshot", version, FUTURE);
  add_record(s, "targets.json", targets_version, targets);
  add_record(s, "team.json", team_version, team);
  return s;
}

static void world_make(world *w) {
  w->droot = director_root_doc();
  w->dtargets = SIGN(director_targets_signed(1), D_TARGETS);
  w->iroot = image_root_doc();
  w->itargets = SIGN(image_targets_signed(1), I_TARGETS);
  w->team = team_doc(1, FUTURE);
  w->isnap = SIGN(snapshot_signed(1, 1, w->itargets, 1, w->team), I_SNAPSHOT);
  w->its = timestamp_doc(1, FUTURE, 1, w->isnap);
}

#define LEN(s) (s), strlen(s) /* s is evaluated twice: only for plain variables */

/* The API with "now" = NOW, the test ECUs and E, taking NUL-terminated documents. */
static int root_load(uptane_root *r, const char *doc) {
  return uptane_root_load(r, doc, strlen(doc), &E);
}
static int root_update(uptane_root *r, const char *doc) {
  return uptane_root_update(r, doc, strlen(doc), &E);
}
static int img_root(uptane_image *img, const char *doc) {
  return uptane_image_root(img, doc, strlen(doc), &E);
}
static int img_ts(uptane_image *img, const char *doc) {
  return uptane_image_timestamp(img, doc, strlen(doc), NOW, &E);
}
static int img_snap(uptane_image *img, const char *doc) {
  return uptane_image_snapshot(img, doc, strlen(doc), NOW, &E);
}
static int img_targets(uptane_image *img, const char *doc) {
  return uptane_image_targets(img, doc, strlen(doc), NOW, &E);
}
static int img_deleg(uptane_image *img, const char *name, const char *doc) {
  return uptane_image_delegation(img, name, doc, strlen(doc), NOW, &E);
}
static int img_restore(uptane_image *img, enum uptane_role role, const char *name,
                       const char *doc) {
  return uptane_image_restore(img, role, name, doc, strlen(doc), &E);
}
static int dir_root(uptane_director *d, const char *doc) {
  return uptane_director_root(d, doc, strlen(doc), &E);
}
static int dir_targets(uptane_director *d, const char *doc) {
  return uptane_director_targets(d, doc, strlen(doc), NOW, ECUS, NECUS, &E);
}

/* Loads the image repository of w up to (and with) its targets. */
static void image_load(uptane_image *img, const world *w) {
  uptane_image_init(img);
  OK(img_root(img, w->iroot));
  OK(img_ts(img, w->its));
  OK(img_snap(img, w->isnap));
  OK(img_targets(img, w->itargets));
}

static void director_load(uptane_director *d, const world *w) {
  uptane_director_init(d);
  OK(dir_root(d, w->droot));
  OK(dir_targets(d, w->dtargets));
}

/* ---- tests ---- */

static void test_parse_time(void **state) {
  (void)state;
  int64_t t;
  assert_int_equal(uptane_parse_time("2026-01-01T00:00:00Z", &t), 0);
  assert_int_equal(t, 1767225600);
  assert_int_equal(uptane_parse_time("1970-01-01T00:00:00Z", &t), 0);
  assert_int_equal(t, 0);
  assert_int_equal(uptane_parse_time("2024-02-29T23:59:59Z", &t), 0);
  assert_int_equal(t, 1709251199);
  assert_int_equal(uptane_parse_time("2026-11-23T07:30:00.123Z", &t), 0);
  assert_int_equal(t, 1795419000);
  assert_int_equal(uptane_parse_time("2100-03-01T00:00:00Z", &t), 0);
  assert_int_equal(t, 4107542400);
  const char *bad[] = {"2025-02-29T00:00:00Z",
                       "2026-13-01T00:00:00Z",
                       "2026-01-01T24:00:00Z",
                       "2026-01-01T00:60:00Z",
                       "2026-01-01T00:00:60Z",
                       "2026-01-01T00:00:00",
                       "2026-01-01T00:00:00+01:00",
                       "2026-01-01 00:00:00Z",
                       "2026-1-01T00:00:00Z",
                       "2026-01-01T00:00:00.Z",
                       "",
                       "2026-01-01T00:00:00Zjunk"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (uptane_parse_time(bad[i], &t) != OTAD_EINVAL) fail_msg("accepted \"%s\"", bad[i]);
}

static void test_root_self_signed(void **state) {
  (void)state;
  uptane_root r;
  uptane_root_init(&r);
  OK(root_load(&r, director_root_doc()));
  assert_int_equal(r.version, 1);
  assert_int_equal(r.expires, 1893456000); /* FUTURE */
  assert_int_equal(r.keys.n, 2);
  assert_int_equal(r.roles[UPTANE_ROLE_TARGETS].threshold, 1);
  OK(uptane_root_check_expiry(&r, NOW, &E));
  FAILS(uptane_root_check_expiry(&r, 1893456000, &E), UPTANE_EXPIRED, "root.json: expired at 2030");

  /* Not signed by its own root key (signed by the targets key instead). */
  FAILS(root_load(&r, SIGN(root_signed(2, FUTURE, ROLE(1, D_ROOT), ROLE(1, D_TARGETS),
                                       ROLE(1, D_ROOT), ROLE(1, D_ROOT)),
                           D_TARGETS)),
        UPTANE_THRESHOLD, "root.json: 0 valid signature(s)");
  assert_int_equal(r.version, 1); /* unchanged */

  /* Only the root and targets roles are required. */
  cJSON *s =
      root_signed(1, FUTURE, ROLE(1, D_ROOT), ROLE(1, D_TARGETS), ROLE(1, D_ROOT), ROLE(1, D_ROOT));
  cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "roles"), "targets");
  FAILS(root_load(&r, SIGN(s, D_ROOT)), UPTANE_MALFORMED, "defines no targets role");
  uptane_root_free(&r);
}

/* Verifies a targets document signed as given against a root whose targets role needs
 * threshold signatures of I_TARGETS and X1. */
static int verify_targets(const char *doc, int threshold) {
  uptane_root r;
  uptane_root_init(&r);
  OK(root_load(&r, SIGN(root_signed(1, FUTURE, ROLE(1, I_ROOT), ROLE(threshold, I_TARGETS, X1),
                                    ROLE(1, I_SNAPSHOT), ROLE(1, I_TIMESTAMP)),
                        I_ROOT)));
  cJSON *meta = cJSON_Parse(doc);
  assert_non_null(meta);
  memset(&E, 0, sizeof(E));
  int ret = uptane_verify_signed(meta, &r, UPTANE_ROLE_TARGETS, "targets.json", &E);
  cJSON_Delete(meta);
  uptane_root_free(&r);
  return ret;
}

static void test_signatures(void **state) {
  (void)state;
  OK(verify_targets(SIGN(targets_signed(1, FUTURE), I_TARGETS), 1));
  OK(verify_targets(SIGN(targets_signed(1, FUTURE), X1, I_TARGETS), 2));
  /* A key the root does not know and a key of another role do not count; nor do they fail. */
  OK(verify_targets(SIGN(targets_signed(1, FUTURE), X3, I_SNAPSHOT, I_TARGETS), 1));

  /* Tampered after signing. */
  cJSON *doc = sign_doc(targets_signed(1, FUTURE), 1, I_TARGETS);
  cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "signed"), "version",
                                         cJSON_CreateNumber(2));
  FAILS(verify_targets(text(doc), 1), UPTANE_BAD_SIGNATURE, "targets.json: 0 valid signature(s)");

  /* Threshold 2, one signature. */
  FAILS(verify_targets(SIGN(targets_signed(1, FUTURE), I_TARGETS), 2), UPTANE_THRESHOLD,
        "1 valid signature(s) from trusted keys, 2 required");
  /* Signed by a key the role does not list. */
  FAILS(verify_targets(SIGN(targets_signed(1, FUTURE), I_SNAPSHOT), 1), UPTANE_THRESHOLD, NULL);
  FAILS(verify_targets(SIGN(targets_signed(1, FUTURE), X3), 1), UPTANE_THRESHOLD, NULL);

  /* The same key twice: an error even though once would meet the threshold. */
  FAILS(verify_targets(SIGN(targets_signed(1, FUTURE), I_TARGETS, I_TARGETS), 1),
        UPTANE_DUPLICATE_SIGNATURE, "two signatures with key ID");

  /* Unknown method: an error; a known method of the wrong kind for the key: invalid. */
  cJSON *s = targets_signed(1, FUTURE);
  doc = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "signatures"),
                       signature(s, I_TARGETS, "rsassa-pkcs1v15-sha256"));
  cJSON_AddItemToObject(doc, "signed", s);
  FAILS(verify_targets(text(doc), 1), UPTANE_UNSUPPORTED, "rsassa-pkcs1v15-sha256");
  s = targets_signed(1, FUTURE);
  doc = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "signatures"),
                       signature(s, I_TARGETS, "rsassa-pss"));
  cJSON_AddItemToObject(doc, "signed", s);
  FAILS(verify_targets(text(doc), 1), UPTANE_BAD_SIGNATURE, NULL);
  /* Method names ignore case. */
  s = targets_signed(1, FUTURE);
  doc = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "signatures"),
                       signature(s, I_TARGETS, "ED25519"));
  cJSON_AddItemToObject(doc, "signed", s);
  OK(verify_targets(text(doc), 1));

  /* A signature that is not base64. */
  doc = sign_doc(targets_signed(1, FUTURE), 1, I_TARGETS);
  cJSON_ReplaceItemInObjectCaseSensitive(
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "signatures"), 0), "sig",
      cJSON_CreateString("!!not base64!!"));
  FAILS(verify_targets(text(doc), 1), UPTANE_BAD_SIGNATURE, NULL);

  /* The signature covers the canonical form: reordered, re-indented bytes still verify. */
  doc = sign_doc(targets_signed(1, FUTURE), 1, I_TARGETS);
  cJSON *sig = cJSON_DetachItemFromObjectCaseSensitive(doc, "signatures");
  cJSON_AddItemToObject(doc, "signatures", sig); /* "signed" first now */
  char *flat = cJSON_PrintUnformatted(doc);
  cJSON_Delete(doc);
  OK(verify_targets(keep(flat), 1));
}

/* One key under two key IDs must not meet a threshold of two. */
static void test_one_key_two_ids(void **state) {
  (void)state;
  cJSON *rs = root_signed(1, FUTURE, ROLE(1, I_ROOT), ROLE(2, I_TARGETS), ROLE(1, I_SNAPSHOT),
                          ROLE(1, I_TIMESTAMP));
  const char *alias = "00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa";
  cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(rs, "keys"), alias, key_obj(I_TARGETS));
  cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(
                           cJSON_GetObjectItemCaseSensitive(
                               cJSON_GetObjectItemCaseSensitive(rs, "roles"), "targets"),
                           "keyids"),
                       cJSON_CreateString(alias));
  uptane_root r;
  uptane_root_init(&r);
  OK(root_load(&r, SIGN(rs, I_ROOT)));

  cJSON *s = targets_signed(1, FUTURE);
  cJSON *doc = sign_doc(s, 1, I_TARGETS);
  cJSON *again = signature(s, I_TARGETS, NULL);
  cJSON_ReplaceItemInObjectCaseSensitive(again, "keyid", cJSON_CreateString(alias));
  cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(doc, "signatures"), again);
  FAILS(uptane_verify_signed(doc, &r, UPTANE_ROLE_TARGETS, "targets.json", &E), UPTANE_THRESHOLD,
        "1 valid signature(s)");
  cJSON_Delete(doc);
  uptane_root_free(&r);
}

static void test_key_types(void **state) {
  (void)state;
  uptane_root r;
  uptane_root_init(&r);
  /* keytype in lower case works as well as upper case */
  cJSON *s =
      root_signed(1, FUTURE, ROLE(1, I_ROOT), ROLE(1, D_TARGETS), ROLE(1, I_ROOT), ROLE(1, I_ROOT));
  cJSON *k;
  cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(s, "keys")) {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(k, "keytype");
    for (char *c = t->valuestring; *c; c++)
      *c = (char)(*c | 0x20);
  }
  OK(root_load(&r, SIGN(s, I_ROOT)));
  assert_int_equal(r.keys.keys[1].type, UPTANE_KEY_RSA);

  s = root_signed(2, FUTURE, ROLE(1, I_ROOT), ROLE(1, I_TARGETS), ROLE(1, I_ROOT), ROLE(1, I_ROOT));
  cJSON_ReplaceItemInObjectCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "keys"),
                                       K[I_TARGETS].keyid),
      "keytype", cJSON_CreateString("ecdsa-sha2-nistp256"));
  FAILS(root_load(&r, SIGN(s, I_ROOT)), UPTANE_UNSUPPORTED, "ecdsa-sha2-nistp256");

  s = root_signed(2, FUTURE, ROLE(1, I_ROOT), ROLE(1, I_TARGETS), ROLE(1, I_ROOT), ROLE(1, I_ROOT));
  cJSON_ReplaceItemInObjectCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(
          cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "keys"),
                                           K[I_TARGETS].keyid),
          "keyval"),
      "public", cJSON_CreateString("D75A98"));
  FAILS(root_load(&r, SIGN(s, I_ROOT)), UPTANE_MALFORMED, "64 hexadecimal");
  assert_int_equal(r.version, 1);
  uptane_root_free(&r);
}

static void test_root_rotation(void **state) {
  (void)state;
  uptane_root r;
  uptane_root_init(&r);
  const char *v1 = SIGN(root_signed(1, FUTURE, ROLE(1, X1), ROLE(1, I_TARGETS), ROLE(1, I_SNAPSHOT),
                                    ROLE(1, I_TIMESTAMP)),
                        X1);
  /* v2 moves the root role to X2 and has expired already: only the last root must be
   * current. v3 moves it to X3 with a threshold of 2 (X3 and I_ROOT). */
  const char *v2 = SIGN(root_signed(2, PAST, ROLE(1, X2), ROLE(1, I_TARGETS), ROLE(1, I_SNAPSHOT),
                                    ROLE(1, I_TIMESTAMP)),
                        X1, X2);
  const char *v3 = SIGN(root_signed(3, FUTURE, ROLE(2, X3, I_ROOT), ROLE(1, I_TARGETS),
                                    ROLE(1, I_SNAPSHOT), ROLE(1, I_TIMESTAMP)),
                        X2, X3, I_ROOT);
  OK(root_load(&r, v1));

  /* Bad steps from v1; each leaves v1 trusted. */
  FAILS(root_update(&r, v3), UPTANE_VERSION_MISMATCH,
        "version 3, but the trusted root is version 1");
  FAILS(root_update(&r, v1), UPTANE_ROLLBACK, NULL);
  const char *only_old = SIGN(root_signed(2, FUTURE, ROLE(1, X2), ROLE(1, I_TARGETS),
                                          ROLE(1, I_SNAPSHOT), ROLE(1, I_TIMESTAMP)),
                              X1);
  FAILS(root_update(&r, only_old), UPTANE_THRESHOLD, "by its own keys");
  const char *only_new = SIGN(root_signed(2, FUTURE, ROLE(1, X2), ROLE(1, I_TARGETS),
                                          ROLE(1, I_SNAPSHOT), ROLE(1, I_TIMESTAMP)),
                              X2);
  FAILS(root_update(&r, only_new), UPTANE_THRESHOLD, "by the keys of root version 1");
  cJSON *doc = cJSON_Parse(v2);
  cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "signed"), "expires",
                                         cJSON_CreateString(FUTURE));
  FAILS(root_update(&r, text(doc)), UPTANE_BAD_SIGNATURE, NULL);
  assert_int_equal(r.version, 1);

  /* The good chain. */
  OK(root_update(&r, v2));
  assert_int_equal(r.version, 2);
  FAILS(uptane_root_check_expiry(&r, NOW, &E), UPTANE_EXPIRED, NULL);
  /* v3 needs 2 of its own keys: X3 alone is not enough. */
  const char *v3_weak = SIGN(root_signed(3, FUTURE, ROLE(2, X3, I_ROOT), ROLE(1, I_TARGETS),
                                         ROLE(1, I_SNAPSHOT), ROLE(1, I_TIMESTAMP)),
                             X2, X3);
  FAILS(root_update(&r, v3_weak), UPTANE_THRESHOLD, "2 required");
  OK(root_update(&r, v3));
  assert_int_equal(r.version, 3);
  OK(uptane_root_check_expiry(&r, NOW, &E));
  /* The old root key no longer signs. */
  const char *v4 = SIGN(root_signed(4, FUTURE, ROLE(1, X1), ROLE(1, I_TARGETS), ROLE(1, I_SNAPSHOT),
                                    ROLE(1, I_TIMESTAMP)),
                        X1);
  FAILS(root_update(&r, v4), UPTANE_THRESHOLD, NULL);
  uptane_root_free(&r);
}

static void test_valid_chain(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_director d;
  uptane_image img;
  director_load(&d, &w);
  assert_string_equal(uptane_director_correlation_id(&d), "urn:c:1");
  assert_non_null(cJSON_GetObjectItemCaseSensitive(uptane_director_target_list(&d), FW));
  OK(uptane_director_check(&d, NOW, ECUS, NECUS, &E));

  uptane_image_init(&img);
  assert_int_equal(uptane_image_size_cap(&img, UPTANE_ROLE_SNAPSHOT, NULL), 64 * 1024);
  assert_int_equal(uptane_image_size_cap(&img, UPTANE_ROLE_TARGETS, NULL), 8 * 1024 * 1024);
  OK(img_root(&img, w.iroot));
  OK(img_ts(&img, w.its));
  assert_true(uptane_image_snapshot_needed(&img));
  assert_int_equal(uptane_image_size_cap(&img, UPTANE_ROLE_SNAPSHOT, NULL), strlen(w.isnap));
  OK(img_snap(&img, w.isnap));
  assert_false(uptane_image_snapshot_needed(&img));
  assert_true(uptane_image_targets_needed(&img));
  assert_int_equal(uptane_image_size_cap(&img, UPTANE_ROLE_TARGETS, NULL), strlen(w.itargets));
  assert_int_equal(uptane_image_size_cap(&img, UPTANE_ROLE_TARGETS, "team"), strlen(w.team));
  OK(img_targets(&img, w.itargets));
  assert_false(uptane_image_targets_needed(&img));
  OK(uptane_image_check(&img, NOW, &E));
  OK(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E));

  /* The delegated target: find asks for the delegation, then finds it. */
  const cJSON *t = NULL;
  char need[UPTANE_MAX_NAME + 1];
  memset(&E, 0, sizeof(E));
  assert_int_equal(uptane_image_find(&img, APP, &t, need, &E), UPTANE_NEED_DELEGATION);
  assert_string_equal(need, "team");
  OK(img_deleg(&img, "team", w.team));
  OK(uptane_image_find(&img, APP, &t, need, &E));
  assert_string_equal(t->string, APP);
  OK(uptane_image_find(&img, FW, &t, need, &E));
  assert_string_equal(t->string, FW);

  /* The same metadata again is no rollback. */
  OK(img_ts(&img, w.its));
  OK(dir_targets(&d, w.dtargets));
  uptane_director_free(&d);
  uptane_image_free(&img);
}

static void test_timestamp(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_image img;
  image_load(&img, &w);
  const char *ts2 = timestamp_doc(2, FUTURE, 2, NULL);
  OK(img_ts(&img, ts2));
  assert_true(uptane_image_snapshot_needed(&img));
  const cJSON *trusted = img.timestamp.doc;

  FAILS(img_ts(&img, w.its), UPTANE_ROLLBACK,
        "image timestamp.json: version 1 is lower than trusted version 2 (rollback)");
  FAILS(img_ts(&img, timestamp_doc(3, FUTURE, 1, NULL)), UPTANE_ROLLBACK,
        "records snapshot version 1, lower than trusted version 2");
  FAILS(img_ts(&img, timestamp_doc(3, PAST, 2, NULL)), UPTANE_EXPIRED,
        "image timestamp.json: expired at 2025-06-01T00:00:00Z");
  cJSON *s = meta_signed("Timestamp", 3, FUTURE);
  add_record(s, "snapshot.json", 2, NULL);
  FAILS(img_ts(&img, SIGN(s, I_SNAPSHOT)), UPTANE_THRESHOLD, NULL);
  s = meta_signed("Snapshot", 3, FUTURE);
  add_record(s, "snapshot.json", 2, NULL);
  FAILS(img_ts(&img, SIGN(s, I_TIMESTAMP)), UPTANE_MALFORMED, "_type");
  s = meta_signed("Timestamp", 3, FUTURE);
  FAILS(img_ts(&img, SIGN(s, I_TIMESTAMP)), UPTANE_MALFORMED, "meta[\"snapshot.json\"]");
  /* Every failure kept the trusted timestamp. */
  assert_ptr_equal(img.timestamp.doc, trusted);
  assert_int_equal(img.timestamp.version, 2);
  uptane_image_free(&img);
}

static void test_snapshot(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_image img;
  image_load(&img, &w);
  const cJSON *trusted = img.snapshot.doc;

  /* Version other than the timestamp records. */
  const char *snap3 = SIGN(snapshot_signed(3, 1, NULL, 1, NULL), I_SNAPSHOT);
  OK(img_ts(&img, timestamp_doc(2, FUTURE, 2, NULL)));
  FAILS(img_snap(&img, snap3), UPTANE_VERSION_MISMATCH,
        "image snapshot.json: version 3, but version 2 is recorded for it");

  /* Hash and length other than the timestamp records. */
  const char *snap2 = SIGN(snapshot_signed(2, 1, NULL, 1, NULL), I_SNAPSHOT);
  const char *other = SIGN(snapshot_signed(2, 1, NULL, 1, w.team), I_SNAPSHOT);
  cJSON *s = meta_signed("Timestamp", 3, FUTURE);
  add_record(s, "snapshot.json", 2, other);
  cJSON *rec = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "meta"),
                                                "snapshot.json");
  cJSON_DeleteItemFromObjectCaseSensitive(rec, "length");
  OK(img_ts(&img, SIGN(s, I_TIMESTAMP)));
  FAILS(img_snap(&img, snap2), UPTANE_HASH_MISMATCH, "image snapshot.json: sha256 differs");
  s = meta_signed("Timestamp", 4, FUTURE);
  add_record(s, "snapshot.json", 2, snap2);
  cJSON_ReplaceItemInObjectCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "meta"),
                                       "snapshot.json"),
      "length", cJSON_CreateNumber(10));
  OK(img_ts(&img, SIGN(s, I_TIMESTAMP)));
  FAILS(img_snap(&img, snap2), UPTANE_TOO_BIG, NULL); /* cap = 10 */
  assert_ptr_equal(img.snapshot.doc, trusted);

  /* The hash may be that of the canonical form (aktualizr): raw bytes pretty-printed. */
  cJSON *doc = cJSON_Parse(snap2);
  char *canon = NULL;
  size_t canon_len = 0;
  otad_errbuf eb;
  assert_int_equal(canonical_json(doc, &canon, &canon_len, &eb), 0);
  cJSON_Delete(doc);
  keep(canon);
  assert_true(strcmp(canon, snap2) != 0);
  s = meta_signed("Timestamp", 5, FUTURE);
  add_record(s, "snapshot.json", 2, canon);
  rec = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "meta"),
                                         "snapshot.json");
  cJSON_DeleteItemFromObjectCaseSensitive(rec, "length"); /* it would cap the raw bytes */
  OK(img_ts(&img, SIGN(s, I_TIMESTAMP)));
  OK(img_snap(&img, snap2));

  /* Rollback of a version the snapshot records (targets 2 -> 1, team 2 -> 1). */
  OK(img_ts(&img, timestamp_doc(6, FUTURE, 3, NULL)));
  OK(img_snap(&img, SIGN(snapshot_signed(3, 2, NULL, 2, NULL), I_SNAPSHOT)));
  OK(img_ts(&img, timestamp_doc(7, FUTURE, 4, NULL)));
  FAILS(img_snap(&img, SIGN(snapshot_signed(4, 1, NULL, 2, NULL), I_SNAPSHOT)), UPTANE_ROLLBACK,
        "records targets.json version 1, lower than trusted version 2");
  FAILS(img_snap(&img, SIGN(snapshot_signed(4, 2, NULL, 1, NULL), I_SNAPSHOT)), UPTANE_ROLLBACK,
        "records team.json version 1");
  /* A delegation may disappear from the snapshot. */
  s = meta_signed("Snapshot", 4, PAST);
  add_record(s, "targets.json", 2, NULL);
  FAILS(img_snap(&img, SIGN(s, I_SNAPSHOT)), UPTANE_EXPIRED, NULL);
  s = meta_signed("Snapshot", 4, FUTURE);
  add_record(s, "targets.json", 2, NULL);
  FAILS(img_snap(&img, SIGN(cJSON_Duplicate(s, 1), I_TIMESTAMP)), UPTANE_THRESHOLD, NULL);
  OK(img_snap(&img, SIGN(s, I_SNAPSHOT)));
  s = meta_signed("Snapshot", 4, FUTURE);
  add_record(s, "team.json", 2, NULL);
  OK(img_ts(&img, timestamp_doc(8, FUTURE, 4, NULL)));
  FAILS(img_snap(&img, SIGN(s, I_SNAPSHOT)), UPTANE_MALFORMED, "lists no targets.json");
  uptane_image_free(&img);
}

static void test_targets(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_image img;
  uptane_image_init(&img);
  OK(img_root(&img, w.iroot));
  FAILS(img_targets(&img, w.itargets), UPTANE_MISSING, "no trusted snapshot");
  OK(img_ts(&img, w.its));
  OK(img_snap(&img, w.isnap));

  /* Version, hash, length other than the snapshot records. */
  const char *t2 = SIGN(image_targets_signed(2), I_TARGETS);
  FAILS(img_targets(&img, t2), UPTANE_VERSION_MISMATCH,
        "image targets.json: version 2, but version 1 is recorded for it");
  cJSON *s = image_targets_signed(1); /* as long as the recorded one, other content */
  cJSON_ReplaceItemInObjectCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "targets"), FW),
      "length", cJSON_CreateNumber(1025));
  const char *other = SIGN(s, I_TARGETS);
  assert_int_equal(strlen(other), strlen(w.itargets));
  FAILS(img_targets(&img, other), UPTANE_HASH_MISMATCH, "image targets.json: sha256 differs");
  s = targets_signed(1, FUTURE); /* shorter */
  FAILS(img_targets(&img, SIGN(s, I_TARGETS)), UPTANE_HASH_MISMATCH, "but a length of");
  /* Signed by the wrong key, or expired, with the snapshot recording it exactly. */
  const char *wrong = SIGN(image_targets_signed(2), I_SNAPSHOT);
  s = targets_signed(3, PAST);
  add_target(s, FW, 1024, FW_SHA, "board-a", NULL, NULL);
  const char *expired = SIGN(s, I_TARGETS);
  OK(img_ts(&img, timestamp_doc(2, FUTURE, 2, NULL)));
  OK(img_snap(&img, SIGN(snapshot_signed(2, 2, wrong, 1, NULL), I_SNAPSHOT)));
  FAILS(img_targets(&img, wrong), UPTANE_THRESHOLD, "image targets.json");
  OK(img_ts(&img, timestamp_doc(3, FUTURE, 3, NULL)));
  OK(img_snap(&img, SIGN(snapshot_signed(3, 3, NULL, 1, NULL), I_SNAPSHOT)));
  FAILS(img_targets(&img, expired), UPTANE_EXPIRED, "image targets.json");
  assert_null(img.targets.doc);

  /* A target without a length is malformed. */
  s = image_targets_signed(3);
  cJSON_DeleteItemFromObjectCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "targets"), FW),
      "length");
  FAILS(img_targets(&img, SIGN(s, I_TARGETS)), UPTANE_MALFORMED, "needs a length");
  uptane_image_free(&img);

  /* Rollback of targets itself: storage held targets v3 (restored), the snapshot records v2. */
  uptane_image_init(&img);
  OK(img_root(&img, w.iroot));
  OK(img_restore(&img, UPTANE_ROLE_TARGETS, NULL, SIGN(image_targets_signed(3), I_TARGETS)));
  OK(img_ts(&img, timestamp_doc(2, FUTURE, 2, NULL)));
  FAILS(img_snap(&img, SIGN(snapshot_signed(2, 2, NULL, 1, NULL), I_SNAPSHOT)), UPTANE_ROLLBACK,
        "records targets.json version 2, lower than trusted version 3");
  OK(img_restore(&img, UPTANE_ROLE_SNAPSHOT, NULL,
                 SIGN(snapshot_signed(2, 2, NULL, 1, NULL), I_SNAPSHOT)));
  FAILS(img_targets(&img, t2), UPTANE_ROLLBACK,
        "image targets.json: version 2 is lower than trusted version 3 (rollback)");
  uptane_image_free(&img);
}

static void test_delegations(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_image img;
  image_load(&img, &w);
  const cJSON *t;
  char need[UPTANE_MAX_NAME + 1];

  FAILS(img_deleg(&img, "nobody", w.team), UPTANE_MISSING,
        "no trusted metadata delegates to \"nobody\"");
  FAILS(img_deleg(&img, "../x", w.team), UPTANE_MISSING, NULL);
  /* Signed by a key the delegation does not name. */
  cJSON *s = targets_signed(1, FUTURE);
  add_target(s, APP, 2048, APP_SHA, "board-b", NULL, NULL);
  add_target(s, "evil/app-2.bin", 2048, APP_SHA, "board-b", NULL, NULL);
  const char *bad = SIGN(s, I_TARGETS);
  cJSON *snap = snapshot_signed(2, 1, NULL, 1, bad);
  OK(img_ts(&img, timestamp_doc(2, FUTURE, 2, NULL)));
  OK(img_snap(&img, SIGN(snap, I_SNAPSHOT)));
  FAILS(img_deleg(&img, "team", bad), UPTANE_THRESHOLD, "image delegations/team.json");
  /* Version other than the snapshot records; not recorded at all. */
  FAILS(img_deleg(&img, "team", team_doc(2, FUTURE)), UPTANE_VERSION_MISMATCH,
        "version 2, but version 1 is recorded");
  OK(img_ts(&img, timestamp_doc(3, FUTURE, 3, NULL)));
  s = meta_signed("Snapshot", 3, FUTURE);
  add_record(s, "targets.json", 1, NULL);
  OK(img_snap(&img, SIGN(s, I_SNAPSHOT)));
  FAILS(img_deleg(&img, "team", w.team), UPTANE_VERSION_MISMATCH,
        "snapshot.json records no version of it");
  /* Expired. */
  OK(img_ts(&img, timestamp_doc(4, FUTURE, 4, NULL)));
  OK(img_snap(&img, SIGN(snapshot_signed(4, 1, NULL, 2, NULL), I_SNAPSHOT)));
  FAILS(img_deleg(&img, "team", team_doc(2, PAST)), UPTANE_EXPIRED, NULL);
  assert_int_equal(uptane_image_find(&img, APP, &t, need, &E), UPTANE_NEED_DELEGATION);
  OK(img_deleg(&img, "team", team_doc(2, FUTURE)));
  OK(uptane_image_find(&img, APP, &t, need, &E));
  /* A delegation cannot vouch for names outside its paths, even those it lists. */
  FAILS(uptane_image_find(&img, "evil/app-2.bin", &t, need, &E), UPTANE_NO_TARGET,
        "evil/app-2.bin");
  /* A new snapshot version of the delegation makes the trusted one stale. */
  OK(img_ts(&img, timestamp_doc(5, FUTURE, 5, NULL)));
  OK(img_snap(&img, SIGN(snapshot_signed(5, 1, NULL, 3, NULL), I_SNAPSHOT)));
  assert_int_equal(uptane_image_find(&img, APP, &t, need, &E), UPTANE_NEED_DELEGATION);
  OK(img_deleg(&img, "team", team_doc(3, FUTURE)));
  OK(uptane_image_find(&img, APP, &t, need, &E));
  FAILS(img_deleg(&img, "team", team_doc(2, FUTURE)), UPTANE_VERSION_MISMATCH, NULL);
  assert_int_equal(img.delegations[0].meta.version, 3);

  /* New targets that delegate "team" to another key: the trusted team.json (same version
   * in the snapshot) was signed by the old key and must not be used any more. */
  cJSON *ts = targets_signed(2, FUTURE);
  add_target(ts, FW, 1024, FW_SHA, "board-a", NULL, NULL);
  add_delegation(ts, "team", "team/*", X1, 0);
  OK(img_ts(&img, timestamp_doc(6, FUTURE, 6, NULL)));
  OK(img_snap(&img, SIGN(snapshot_signed(6, 2, NULL, 3, NULL), I_SNAPSHOT)));
  OK(img_targets(&img, SIGN(ts, I_TARGETS)));
  assert_int_equal(uptane_image_find(&img, APP, &t, need, &E), UPTANE_NEED_DELEGATION);
  FAILS(img_deleg(&img, "team", team_doc(3, FUTURE)), UPTANE_THRESHOLD, NULL);
  uptane_image_free(&img);
}

/* A terminating delegation ends the search even when it does not hold the target. */
static void test_terminating(void **state) {
  (void)state;
  world w;
  world_make(&w);
  for (int terminating = 0; terminating <= 1; terminating++) {
    cJSON *ts = targets_signed(1, FUTURE);
    add_delegation(ts, "first", "team/*", I_DELEG, terminating);
    add_delegation(ts, "second", "team/app-*", X1, 0);
    const char *targets = SIGN(ts, I_TARGETS);
    const char *first = SIGN(targets_signed(1, FUTURE), I_DELEG);
    cJSON *ss = targets_signed(1, FUTURE);
    add_target(ss, APP, 2048, APP_SHA, "board-b", NULL, NULL);
    const char *second = SIGN(ss, X1);
    cJSON *snap = meta_signed("Snapshot", 1, FUTURE);
    add_record(snap, "targets.json", 1, NULL);
    add_record(snap, "first.json", 1, NULL);
    add_record(snap, "second.json", 1, NULL);
    uptane_image img;
    uptane_image_init(&img);
    OK(img_root(&img, w.iroot));
    OK(img_ts(&img, timestamp_doc(1, FUTURE, 1, NULL)));
    OK(img_snap(&img, SIGN(snap, I_SNAPSHOT)));
    OK(img_targets(&img, targets));
    const cJSON *t;
    char need[UPTANE_MAX_NAME + 1];
    assert_int_equal(uptane_image_find(&img, APP, &t, need, &E), UPTANE_NEED_DELEGATION);
    assert_string_equal(need, "first");
    OK(img_deleg(&img, "first", first));
    /* "second" is signed by X1, which only "second" names: "first" cannot sign for it. */
    FAILS(img_deleg(&img, "first", second), UPTANE_THRESHOLD, NULL);
    if (terminating) {
      FAILS(uptane_image_find(&img, APP, &t, need, &E), UPTANE_NO_TARGET, APP);
    } else {
      assert_int_equal(uptane_image_find(&img, APP, &t, need, &E), UPTANE_NEED_DELEGATION);
      assert_string_equal(need, "second");
      OK(img_deleg(&img, "second", second));
      OK(uptane_image_find(&img, APP, &t, need, &E));
      assert_string_equal(t->string, APP);
    }
    uptane_image_free(&img);
  }
}

static void test_director(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_director d;
  director_load(&d, &w);
  const cJSON *trusted = d.targets.doc;

  cJSON *s = targets_signed(2, FUTURE);
  add_target(s, FW, 1024, FW_SHA, NULL, "ecu-9", "board-a");
  FAILS(dir_targets(&d, SIGN(s, D_TARGETS)), UPTANE_UNKNOWN_ECU,
        "director targets.json: target \"fw-1.0.bin\" is for ECU ecu-9");
  s = targets_signed(2, FUTURE);
  add_target(s, FW, 1024, FW_SHA, NULL, "ecu-1", "board-b");
  FAILS(dir_targets(&d, SIGN(s, D_TARGETS)), UPTANE_HWID_MISMATCH,
        "is for hardware \"board-b\", but ECU ecu-1 is \"board-a\"");
  s = targets_signed(2, FUTURE);
  add_target(s, FW, 1024, FW_SHA, NULL, "ecu-1", "board-a");
  add_target(s, "fw-2.0.bin", 1024, FW_SHA, NULL, "ecu-1", "board-a");
  FAILS(dir_targets(&d, SIGN(s, D_TARGETS)), UPTANE_DUPLICATE_ECU, "ECU ecu-1 is named by targets");
  s = targets_signed(2, FUTURE);
  add_target(s, FW, 1024, FW_SHA, NULL, NULL, NULL);
  FAILS(dir_targets(&d, SIGN(s, D_TARGETS)), UPTANE_MALFORMED, "names no ECU");
  s = director_targets_signed(2);
  add_delegation(s, "team", "*", X1, 0);
  FAILS(dir_targets(&d, SIGN(s, D_TARGETS)), UPTANE_MALFORMED, "the director may not delegate");
  FAILS(dir_targets(&d, SIGN(director_targets_signed(2), D_ROOT)), UPTANE_THRESHOLD,
        "director targets.json");
  s = targets_signed(2, PAST);
  FAILS(dir_targets(&d, SIGN(s, D_TARGETS)), UPTANE_EXPIRED, "director targets.json: expired");
  OK(dir_targets(&d, SIGN(director_targets_signed(3), D_TARGETS)));
  trusted = d.targets.doc;
  FAILS(dir_targets(&d, SIGN(director_targets_signed(2), D_TARGETS)), UPTANE_ROLLBACK,
        "director targets.json: version 2 is lower than trusted version 3 (rollback)");
  assert_ptr_equal(d.targets.doc, trusted);
  assert_int_equal(d.targets.version, 3);

  /* ECUs the device no longer has are caught when the trusted targets are rechecked. */
  OK(uptane_director_check(&d, NOW, ECUS, NECUS, &E));
  FAILS(uptane_director_check(&d, NOW, ECUS + 1, 1, &E), UPTANE_UNKNOWN_ECU, NULL);
  FAILS(uptane_director_check(&d, 1893456000, ECUS, NECUS, &E), UPTANE_EXPIRED, NULL);

  /* A root rotation with new targets keys forgets the trusted targets: a lower version
   * signed by the new key is accepted (recovery), the old key no longer signs. */
  OK(dir_root(&d, SIGN(root_signed(2, FUTURE, ROLE(1, D_ROOT), ROLE(1, D_TARGETS), ROLE(1, D_ROOT),
                                   ROLE(1, D_ROOT)),
                       D_ROOT)));
  assert_non_null(d.targets.doc); /* same keys: kept */
  OK(dir_root(&d, SIGN(root_signed(3, FUTURE, ROLE(1, D_ROOT), ROLE(1, X1), ROLE(1, D_ROOT),
                                   ROLE(1, D_ROOT)),
                       D_ROOT)));
  assert_null(d.targets.doc);
  FAILS(dir_targets(&d, SIGN(director_targets_signed(3), D_TARGETS)), UPTANE_THRESHOLD, NULL);
  OK(dir_targets(&d, SIGN(director_targets_signed(1), X1)));

  /* An empty target list is valid and leaves nothing to match. */
  OK(dir_targets(&d, SIGN(targets_signed(4, FUTURE), X1)));
  uptane_image img;
  uptane_image_init(&img);
  OK(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E));
  uptane_image_free(&img);
  uptane_director_free(&d);
}

/* Director targets of one target for ecu-2 (board-b). */
static const char *director_with(const char *name, int length, const char *sha256,
                                 const char *sha512) {
  cJSON *s = targets_signed(2, FUTURE);
  add_target(s, name, length, sha256, NULL, "ecu-2", "board-b");
  if (sha512) {
    cJSON *h = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "targets"), name),
        "hashes");
    if (!sha256) cJSON_DeleteItemFromObjectCaseSensitive(h, "sha256");
    cJSON_AddStringToObject(h, "sha512", sha512);
  }
  return SIGN(s, D_TARGETS);
}

static void test_matching(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_director d;
  uptane_image img;
  director_load(&d, &w);
  image_load(&img, &w);
  OK(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E));

  /* APP needs the delegation; then it matches. */
  OK(dir_targets(&d, director_with(APP, 2048, APP_SHA, NULL)));
  FAILS(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E), UPTANE_MISSING,
        "delegation \"team\" of the image repository not verified yet");
  OK(img_deleg(&img, "team", w.team));
  OK(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E));

  /* Mix and match: a hash, a length, a name the image repository does not have. */
  OK(dir_targets(&d, director_with(APP, 2048, FW_SHA, NULL)));
  FAILS(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E), UPTANE_TARGET_MISMATCH,
        "target \"team/app-2.bin\": sha256 differs");
  OK(dir_targets(&d, director_with(APP, 2049, APP_SHA, NULL)));
  FAILS(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E), UPTANE_TARGET_MISMATCH,
        "length 2049 in the director, 2048 in the image repository");
  OK(dir_targets(&d, director_with("team/app-3.bin", 2048, APP_SHA, NULL)));
  FAILS(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E), UPTANE_NO_TARGET,
        "no target named \"team/app-3.bin\"");
  /* No hash in common (director sha512 only, image sha256 only). */
  char sha512[129];
  memset(sha512, 'a', 128);
  sha512[128] = '\0';
  OK(dir_targets(&d, director_with(APP, 2048, NULL, sha512)));
  FAILS(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E), UPTANE_TARGET_MISMATCH,
        "share no hash");
  /* Hashes compare without regard to case; an extra director hash is fine. */
  char upper[65];
  for (int i = 0; i < 65; i++)
    upper[i] = (char)(APP_SHA[i] >= 'a' && APP_SHA[i] <= 'f' ? APP_SHA[i] - 32 : APP_SHA[i]);
  OK(dir_targets(&d, director_with(APP, 2048, upper, sha512)));
  OK(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E));

  /* FW is for board-a only: the director sends it to ecu-2 (board-b). */
  OK(dir_targets(&d, director_with(FW, 1024, FW_SHA, NULL)));
  FAILS(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E), UPTANE_HWID_MISMATCH,
        "does not allow it on hardware \"board-b\" (ECU ecu-2)");

  /* Stale or expired image metadata stops the update. */
  OK(dir_targets(&d, director_with(APP, 2048, APP_SHA, NULL)));
  FAILS(uptane_verify_update(&d, &img, ECUS, NECUS, 1893456000, &E), UPTANE_EXPIRED, NULL);
  OK(img_ts(&img, timestamp_doc(2, FUTURE, 2, NULL)));
  FAILS(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E), UPTANE_VERSION_MISMATCH,
        "image snapshot.json: trusted version 1, but the timestamp records version 2");
  uptane_director_free(&d);
  uptane_image_free(&img);
}

/* A rotation that changes the timestamp key forgets timestamp and snapshot (recovery from
 * a fast-forward attack); one that keeps every key forgets nothing. */
static void test_rotation_forgets(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_image img;
  image_load(&img, &w);
  OK(img_ts(&img, timestamp_doc(9, FUTURE, 1, w.isnap)));
  OK(img_root(&img, SIGN(root_signed(2, FUTURE, ROLE(1, I_ROOT), ROLE(1, I_TARGETS),
                                     ROLE(1, I_SNAPSHOT), ROLE(1, I_TIMESTAMP)),
                         I_ROOT)));
  assert_non_null(img.timestamp.doc);
  assert_non_null(img.snapshot.doc);
  assert_non_null(img.targets.doc);
  FAILS(img_ts(&img, timestamp_doc(2, FUTURE, 1, w.isnap)), UPTANE_ROLLBACK, NULL);

  OK(img_root(&img, SIGN(root_signed(3, FUTURE, ROLE(1, I_ROOT), ROLE(1, I_TARGETS),
                                     ROLE(1, I_SNAPSHOT), ROLE(1, X2)),
                         I_ROOT)));
  assert_null(img.timestamp.doc);
  assert_null(img.snapshot.doc);
  assert_non_null(img.targets.doc);
  /* The old timestamp key no longer signs; the new one may start again low. */
  FAILS(img_ts(&img, timestamp_doc(10, FUTURE, 1, w.isnap)), UPTANE_THRESHOLD, NULL);
  cJSON *s = meta_signed("Timestamp", 2, FUTURE);
  add_record(s, "snapshot.json", 1, w.isnap);
  OK(img_ts(&img, SIGN(s, X2)));
  OK(img_snap(&img, w.isnap));

  /* New targets keys forget targets and delegations. */
  OK(img_deleg(&img, "team", w.team));
  OK(img_root(&img, SIGN(root_signed(4, FUTURE, ROLE(1, I_ROOT), ROLE(1, X3), ROLE(1, I_SNAPSHOT),
                                     ROLE(1, X2)),
                         I_ROOT)));
  assert_null(img.targets.doc);
  assert_int_equal(img.ndelegations, 0);
  assert_non_null(img.timestamp.doc);
  uptane_image_free(&img);
}

static void test_size_caps(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_image img;
  uptane_image_init(&img);
  OK(img_root(&img, w.iroot));
  char *big = keep(malloc(UPTANE_MAX_TIMESTAMP_SIZE + 2));
  memset(big, ' ', UPTANE_MAX_TIMESTAMP_SIZE + 1);
  big[UPTANE_MAX_TIMESTAMP_SIZE + 1] = '\0';
  memcpy(big, w.its, strlen(w.its)); /* the valid timestamp, then spaces past the cap */
  FAILS(img_ts(&img, big), UPTANE_TOO_BIG, "65537 bytes, more than the 65536 allowed");
  big[UPTANE_MAX_TIMESTAMP_SIZE] = '\0';
  OK(img_ts(&img, big)); /* trailing whitespace is fine */
  uptane_director d;
  uptane_director_init(&d);
  FAILS(uptane_director_root(&d, big, UPTANE_MAX_ROOT_SIZE + 1, &E), UPTANE_TOO_BIG,
        "director root.json");
  assert_int_equal(uptane_image_size_cap(&img, UPTANE_ROLE_ROOT, NULL), UPTANE_MAX_ROOT_SIZE);
  assert_int_equal(uptane_image_size_cap(&img, UPTANE_ROLE_TIMESTAMP, NULL),
                   UPTANE_MAX_TIMESTAMP_SIZE);
  uptane_image_free(&img);
}

static void test_malformed(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_image img;
  uptane_image_init(&img);
  FAILS(img_ts(&img, w.its), UPTANE_MISSING, "no trusted image root");
  OK(img_root(&img, w.iroot));
  FAILS(img_snap(&img, w.isnap), UPTANE_MISSING, "no trusted timestamp.json");
  FAILS(img_ts(&img, "{\"signed\":"), UPTANE_MALFORMED, "not valid JSON");
  FAILS(img_ts(&img, "{\"signed\":{},\"signatures\":[]} {}"), UPTANE_MALFORMED, "data after");
  FAILS(img_ts(&img, "{\"Signed\":{},\"signatures\":[]}"), UPTANE_MALFORMED, "not signed metadata");
  FAILS(uptane_image_timestamp(&img, "", 0, NOW, &E), UPTANE_MALFORMED, "empty");
  static const struct {
    const char *field, *value;
    const char *needle;
  } bad[] = {{"version", "0", "no valid version"},
             {"version", "1.5", "no valid version"},
             {"version", "\"1\"", "no valid version"},
             {"expires", "\"2030-01-01\"", "no valid expires"},
             {"_type", "\"Snapshot\"", "_type is \"Snapshot\""}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cJSON *s = meta_signed("Timestamp", 2, FUTURE);
    add_record(s, "snapshot.json", 1, NULL);
    cJSON_ReplaceItemInObjectCaseSensitive(s, bad[i].field, cJSON_Parse(bad[i].value));
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddArrayToObject(doc, "signatures");
    cJSON_AddItemToObject(doc, "signed", s);
    FAILS(img_ts(&img, text(doc)), UPTANE_MALFORMED, bad[i].needle);
  }
  /* A signed part with no canonical form (a float) cannot be verified. */
  cJSON *s = meta_signed("Timestamp", 2, FUTURE);
  add_record(s, "snapshot.json", 1, NULL);
  cJSON *doc = sign_doc(s, 1, I_TIMESTAMP);
  cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(doc, "signed"), "x", 0.5);
  FAILS(img_ts(&img, text(doc)), UPTANE_MALFORMED, "not an integer");
  doc = sign_doc(meta_signed("Timestamp", 2, FUTURE), 1, I_TIMESTAMP);
  cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(doc, "signatures"),
                       cJSON_CreateString("x"));
  FAILS(img_ts(&img, text(doc)), UPTANE_MALFORMED, "lacks keyid, method or sig");
  assert_null(img.timestamp.doc);
  uptane_image_free(&img);
}

/* After a restart: the latest root and the stored documents come back; the checks before
 * use relink them and apply the clock. */
static void test_restore(void **state) {
  (void)state;
  world w;
  world_make(&w);
  uptane_image img;
  uptane_director d;
  uptane_image_init(&img);
  uptane_director_init(&d);
  OK(img_root(&img, w.iroot));
  OK(img_restore(&img, UPTANE_ROLE_TIMESTAMP, NULL, w.its));
  OK(img_restore(&img, UPTANE_ROLE_SNAPSHOT, NULL, w.isnap));
  OK(img_restore(&img, UPTANE_ROLE_TARGETS, NULL, w.itargets));
  OK(img_restore(&img, UPTANE_ROLE_TARGETS, "team", w.team));
  OK(dir_root(&d, w.droot));
  OK(uptane_director_restore(&d, LEN(w.dtargets), &E));
  assert_false(uptane_image_snapshot_needed(&img));
  assert_false(uptane_image_targets_needed(&img));
  OK(uptane_verify_update(&d, &img, ECUS, NECUS, NOW, &E));
  FAILS(uptane_verify_update(&d, &img, ECUS, NECUS, 1893456000, &E), UPTANE_EXPIRED, NULL);
  /* Restoring checks signatures. */
  FAILS(
      img_restore(&img, UPTANE_ROLE_SNAPSHOT, NULL, SIGN(snapshot_signed(1, 1, NULL, 1, NULL), X1)),
      UPTANE_THRESHOLD, NULL);
  FAILS(uptane_director_restore(&d, LEN(w.itargets), &E), UPTANE_THRESHOLD, NULL);
  FAILS(img_restore(&img, UPTANE_ROLE_ROOT, NULL, w.iroot), UPTANE_MISSING, NULL);
  /* A stored snapshot newer than the stored targets (a crash between the two). */
  OK(img_restore(&img, UPTANE_ROLE_SNAPSHOT, NULL,
                 SIGN(snapshot_signed(1, 2, NULL, 1, NULL), I_SNAPSHOT)));
  assert_true(uptane_image_targets_needed(&img));
  FAILS(uptane_image_check(&img, NOW, &E), UPTANE_VERSION_MISMATCH,
        "image targets.json: trusted version 1, but the snapshot records version 2");
  uptane_director_free(&d);
  uptane_image_free(&img);
}

/* Root and targets signed by python's cryptography (RSA-PSS and ED25519) over python's
 * canonical JSON, with strings full of what canonical JSON must escape or keep. */
static void test_python_fixtures(void **state) {
  (void)state;
  size_t root_len, targets_len;
  char *root = keep(read_fixture("uptane/root.json", &root_len));
  char *targets = keep(read_fixture("uptane/targets.json", &targets_len));
  uptane_director d;
  uptane_director_init(&d);
  OK(uptane_director_root(&d, root, root_len, &E));
  assert_int_equal(d.root.keys.n, 2);
  assert_int_equal(d.root.roles[UPTANE_ROLE_TARGETS].threshold, 2);
  static const uptane_ecu ecu = {"ecu-1", "board-a"};
  OK(uptane_director_targets(&d, targets, targets_len, NOW, &ecu, 1, &E));
  assert_int_equal(d.targets.version, 7);
  assert_string_equal(uptane_director_correlation_id(&d),
                      "urn:here-ota:campaign:\xc3\xa9t\xc3\xa9-2026");

  /* One byte of the note changed: both signatures fail. */
  char *p = strstr(targets, "backslash");
  assert_non_null(p);
  p[0] = 'B';
  FAILS(uptane_director_targets(&d, targets, targets_len, NOW, &ecu, 1, &E), UPTANE_BAD_SIGNATURE,
        "0 valid signature(s) of 2 required");
  /* Each key alone is not enough (threshold 2): drop the ED25519 signature. */
  p[0] = 'b';
  cJSON *doc = cJSON_Parse(targets);
  cJSON_DeleteItemFromArray(cJSON_GetObjectItemCaseSensitive(doc, "signatures"), 1);
  FAILS(uptane_verify_signed(doc, &d.root, UPTANE_ROLE_TARGETS, "targets.json", &E),
        UPTANE_THRESHOLD, "1 valid signature(s) from trusted keys, 2 required");
  cJSON_Delete(doc);
  uptane_director_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_parse_time, test_teardown),
      cmocka_unit_test_teardown(test_root_self_signed, test_teardown),
      cmocka_unit_test_teardown(test_signatures, test_teardown),
      cmocka_unit_test_teardown(test_one_key_two_ids, test_teardown),
      cmocka_unit_test_teardown(test_key_types, test_teardown),
      cmocka_unit_test_teardown(test_root_rotation, test_teardown),
      cmocka_unit_test_teardown(test_valid_chain, test_teardown),
      cmocka_unit_test_teardown(test_timestamp, test_teardown),
      cmocka_unit_test_teardown(test_snapshot, test_teardown),
      cmocka_unit_test_teardown(test_targets, test_teardown),
      cmocka_unit_test_teardown(test_delegations, test_teardown),
      cmocka_unit_test_teardown(test_terminating, test_teardown),
      cmocka_unit_test_teardown(test_director, test_teardown),
      cmocka_unit_test_teardown(test_matching, test_teardown),
      cmocka_unit_test_teardown(test_rotation_forgets, test_teardown),
      cmocka_unit_test_teardown(test_size_caps, test_teardown),
      cmocka_unit_test_teardown(test_malformed, test_teardown),
      cmocka_unit_test_teardown(test_restore, test_teardown),
      cmocka_unit_test_teardown(test_python_fixtures, test_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
