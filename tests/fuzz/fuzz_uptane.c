/* fuzz_uptane.c - libFuzzer target: Uptane metadata verification (core/uptane*.c) and
 * canonical JSON (core/canonical_json.c), through the entry points the agent uses.
 *
 * Before every input both repositories trust version 1 of their root (uptane_roots.h, signed
 * by the fixed keys in tests/fuzz/keys/; make_uptane_seeds.py writes both and the seeds).
 * An input is a list of records, each "@<tag>[name]\n<document>", separated by "\n" (a
 * document runs up to the next "\n@"), applied in order, as polling.c would with what it
 * fetched or restored:
 *   R  director root chain (uptane_director_root)   T  director targets.json
 *   D  director targets restored from storage       L  a root trusted on first use
 *   r  image root chain        t  timestamp.json    s  snapshot.json
 *   g  image targets.json      d<name>  delegations/<name>.json
 *   x/y/z[name]  image timestamp / snapshot / targets (or delegation) restored
 *   c  canonical JSON only
 * Then the checks before a download: both repositories rechecked, each director target
 * looked up in the image repository, uptane_verify_update().
 *
 * Invariants (abort when broken): a failure names its kind and the document; a failed
 * update leaves the trusted version as it was; canonical JSON of any document that has one
 * parses back to an equal value and is its own canonical form.
 *
 * FUZZ_UPTANE_VERBOSE=1 prints what each record did (to check the seeds still verify).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/canonical_json.h"
#include "uptane/uptane.h"
#include "uptane_roots.h"

/* 2026-01-01T00:00:00Z: the seeds expire in 2030. */
static const time_t NOW = 1767225600;
static const uptane_ecu ECUS[] = {{"fuzz-ecu", "fuzz-hw"}, {"fuzz-ecu-2", "fuzz-hw-2"}};
#define NECUS (sizeof(ECUS) / sizeof(ECUS[0]))

static int verbose;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_uptane: invariant broken: %s (line %d)\n", #cond, __LINE__);           \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* A failure must say what and why; a success must leave fail at UPTANE_OK. */
static void check_result(int rc, const uptane_err *err, char tag) {
  if (verbose)
    fprintf(stderr, "@%c: %s %s\n", tag, rc == 0 ? "ok" : uptane_fail_name(err->fail),
            rc == 0 ? "" : err->eb.msg);
  if (rc == 0 || rc == UPTANE_NEED_DELEGATION) return;
  CHECK(rc < 0);
  CHECK(err->fail != UPTANE_OK);
  CHECK(err->eb.msg[0] != 0);
  CHECK(strnlen(err->eb.msg, sizeof(err->eb.msg)) < sizeof(err->eb.msg));
}

/* Canonical form: parses back equal, and is a fixed point. */
static void check_canonical(const char *text, size_t len) {
  cJSON *v = cJSON_ParseWithLength(text, len);
  if (!v) return;
  char *c1 = NULL, *c2 = NULL;
  size_t l1 = 0, l2 = 0;
  otad_errbuf eb = {{0}};
  if (canonical_json(v, &c1, &l1, &eb) == 0) {
    CHECK(memchr(c1, 0, l1) == NULL); /* every control character is escaped */
    cJSON *w = cJSON_ParseWithLength(c1, l1);
    CHECK(w != NULL);
    CHECK(cJSON_Compare(v, w, 1));
    CHECK(canonical_json(w, &c2, &l2, &eb) == 0);
    CHECK(l1 == l2 && memcmp(c1, c2, l1) == 0);
    cJSON_Delete(w);
  } else {
    CHECK(eb.msg[0] != 0);
  }
  free(c1);
  free(c2);
  cJSON_Delete(v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  verbose = getenv("FUZZ_UPTANE_VERBOSE") != NULL;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3 || data[0] != '@') return 0;
  /* a NUL-terminated copy: names and documents are cut out of it in place */
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = 0;

  uptane_director dir;
  uptane_image img;
  uptane_err err;
  uptane_director_init(&dir);
  uptane_image_init(&img);
  CHECK(uptane_director_root(&dir, FUZZ_DIRECTOR_ROOT, strlen(FUZZ_DIRECTOR_ROOT), &err) == 0);
  CHECK(uptane_image_root(&img, FUZZ_IMAGE_ROOT, strlen(FUZZ_IMAGE_ROOT), &err) == 0);

  char *p = buf, *end = buf + size;
  while (p < end && *p == '@') {
    char tag = p[1];
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) break;
    *nl = 0;
    const char *name = p + 2; /* the rest of the tag line */
    char *doc = nl + 1, *next = doc, *docend = end;
    for (; next + 1 < end; next++)
      if (next[0] == '\n' && next[1] == '@') {
        docend = next;
        break;
      }
    size_t len = (size_t)(docend - doc);
    p = docend < end ? docend + 1 : end;

    memset(&err, 0, sizeof(err));
    int64_t dv = dir.root.version, iv = img.root.version;
    int rc = 0;
    switch (tag) {
    case 'R':
      rc = uptane_director_root(&dir, doc, len, &err);
      if (rc)
        CHECK(dir.root.version == dv);
      else
        CHECK(dir.root.version == dv + 1);
      break;
    case 'T': {
      int64_t tv = dir.targets.version;
      rc = uptane_director_targets(&dir, doc, len, NOW, ECUS, NECUS, &err);
      if (rc)
        CHECK(dir.targets.version == tv);
      else
        CHECK(dir.targets.doc && dir.targets.version >= tv);
      break;
    }
    case 'D': rc = uptane_director_restore(&dir, doc, len, &err); break;
    case 'L': {
      uptane_root r;
      uptane_root_init(&r);
      rc = uptane_root_load(&r, doc, len, &err);
      if (rc == 0) {
        uptane_err e2;
        uptane_root_check_expiry(&r, NOW, &e2);
      }
      uptane_root_free(&r);
      break;
    }
    case 'r':
      rc = uptane_image_root(&img, doc, len, &err);
      if (rc)
        CHECK(img.root.version == iv);
      else
        CHECK(img.root.version == iv + 1);
      break;
    case 't': {
      int64_t v = img.timestamp.version;
      rc = uptane_image_timestamp(&img, doc, len, NOW, &err);
      if (rc) CHECK(img.timestamp.version == v);
      break;
    }
    case 's': {
      int64_t v = img.snapshot.version;
      rc = uptane_image_snapshot(&img, doc, len, NOW, &err);
      if (rc) CHECK(img.snapshot.version == v);
      break;
    }
    case 'g': {
      int64_t v = img.targets.version;
      rc = uptane_image_targets(&img, doc, len, NOW, &err);
      if (rc) CHECK(img.targets.version == v);
      break;
    }
    case 'd': rc = uptane_image_delegation(&img, name, doc, len, NOW, &err); break;
    case 'x': rc = uptane_image_restore(&img, UPTANE_ROLE_TIMESTAMP, NULL, doc, len, &err); break;
    case 'y': rc = uptane_image_restore(&img, UPTANE_ROLE_SNAPSHOT, NULL, doc, len, &err); break;
    case 'z':
      rc = uptane_image_restore(&img, UPTANE_ROLE_TARGETS, name[0] ? name : NULL, doc, len, &err);
      break;
    case 'c': break;
    default: continue;
    }
    if (tag != 'c') check_result(rc, &err, tag);
    /* documents with a NUL are cut there by C callers; the verifier takes the length */
    check_canonical(doc, len);
  }

  /* What polling.c asks before and after the walk. */
  (void)uptane_image_snapshot_needed(&img);
  (void)uptane_image_targets_needed(&img);
  (void)uptane_image_size_cap(&img, UPTANE_ROLE_SNAPSHOT, NULL);
  (void)uptane_image_size_cap(&img, UPTANE_ROLE_TARGETS, NULL);
  (void)uptane_image_size_cap(&img, UPTANE_ROLE_TARGETS, "team");
  (void)uptane_director_correlation_id(&dir);
  memset(&err, 0, sizeof(err));
  check_result(uptane_director_check(&dir, NOW, ECUS, NECUS, &err), &err, '1');
  memset(&err, 0, sizeof(err));
  check_result(uptane_image_check(&img, NOW, &err), &err, '2');
  const cJSON *dt;
  cJSON_ArrayForEach(dt, uptane_director_target_list(&dir)) {
    const cJSON *it = NULL;
    char need[UPTANE_MAX_NAME + 1] = "";
    memset(&err, 0, sizeof(err));
    int rc = uptane_image_find(&img, dt->string ? dt->string : "", &it, need, &err);
    check_result(rc, &err, '3');
    if (rc == UPTANE_NEED_DELEGATION) {
      CHECK(need[0] != 0 && strlen(need) <= UPTANE_MAX_NAME);
      (void)uptane_image_size_cap(&img, UPTANE_ROLE_TARGETS, need);
    } else if (rc == 0) {
      CHECK(it != NULL && it->string != NULL);
      memset(&err, 0, sizeof(err));
      check_result(uptane_target_match(dt, it, &err), &err, '4');
    }
  }
  memset(&err, 0, sizeof(err));
  check_result(uptane_verify_update(&dir, &img, ECUS, NECUS, NOW, &err), &err, '5');

  uptane_director_free(&dir);
  uptane_image_free(&img);
  free(buf);
  return 0;
}
