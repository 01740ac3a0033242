/* uptane_root.c - trusted roots: the first one, and rotation along the chain N -> N+1.
 *
 * A root is parsed into an uptane_root (keys and per-role key sets) before anything trusts
 * it; the caller's struct is overwritten only when every check passed, so a failed
 * rotation keeps the old root. Expiry is a separate call because only the last root of a
 * chain must be current (Uptane 5.4.4.3): intermediate roots may long have expired.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

void uptane_root_init(uptane_root *r) {
  memset(r, 0, sizeof(*r));
}

void uptane_root_free(uptane_root *r) {
  if (!r) return;
  uptane_keyring_free(&r->keys);
  for (int i = 0; i < UPTANE_ROLE__COUNT; i++)
    uptane__role_keys_free(&r->roles[i]);
  memset(r, 0, sizeof(*r));
}

/* Parses json into *out and *doc (both freed on failure). Roles root and targets are
 * required; snapshot and timestamp only by the image repository, which checks at use. */
static int uptane__root_parse(const char *json, size_t len, const char *what, uptane_root *out,
                              cJSON **doc, uptane_err *err) {
  uptane_root_init(out);
  int ret = uptane__parse_doc(json, len, UPTANE_MAX_ROOT_SIZE, what, doc, err);
  if (ret) return ret;
  const cJSON *s = uptane__get(*doc, "signed");
  ret = uptane__signed_common(*doc, "Root", what, &out->version, &out->expires, err);
  if (ret == 0) ret = uptane_keyring_parse(uptane__get(s, "keys"), &out->keys, what, err);
  const cJSON *roles = uptane__get(s, "roles");
  if (ret == 0 && !cJSON_IsObject(roles))
    ret = uptane__fail(err, UPTANE_MALFORMED, "%s: roles is missing or no object", what);
  for (int i = 0; ret == 0 && i < UPTANE_ROLE__COUNT; i++) {
    const char *name = uptane_role_name((enum uptane_role)i);
    const cJSON *role = uptane__get(roles, name);
    if (!role) {
      if (i == UPTANE_ROLE_ROOT || i == UPTANE_ROLE_TARGETS)
        ret = uptane__fail(err, UPTANE_MALFORMED, "%s: defines no %s role", what, name);
      continue;
    }
    char role_what[96];
    snprintf(role_what, sizeof(role_what), "%s: role %s", what, name);
    ret = uptane__role_keys_parse(role, &out->keys, &out->roles[i], role_what, err);
  }
  if (ret) {
    uptane_root_free(out);
    cJSON_Delete(*doc);
    *doc = NULL;
  }
  return ret;
}

static void uptane__root_what(char *buf, size_t len, const char *repo) {
  snprintf(buf, len, "%s%sroot.json", repo ? repo : "", repo && *repo ? " " : "");
}

int uptane__root_load(uptane_root *r, const char *json, size_t len, const char *repo,
                      uptane_err *err) {
  char what[64];
  uptane__root_what(what, sizeof(what), repo);
  uptane_root fresh;
  cJSON *doc = NULL;
  int ret = uptane__root_parse(json, len, what, &fresh, &doc, err);
  if (ret) return ret;
  ret = uptane_verify_signed(doc, &fresh, UPTANE_ROLE_ROOT, what, err);
  cJSON_Delete(doc);
  if (ret) {
    uptane_root_free(&fresh);
    return ret;
  }
  uptane_root_free(r);
  *r = fresh;
  return uptane__ok(err);
}

int uptane__root_update(uptane_root *r, const char *json, size_t len, const char *repo,
                        unsigned *changed, uptane_err *err) {
  char what[64];
  uptane__root_what(what, sizeof(what), repo);
  if (changed) *changed = 0;
  if (!r || r->version < 1)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted root to rotate from", what);
  uptane_root fresh;
  cJSON *doc = NULL;
  int ret = uptane__root_parse(json, len, what, &fresh, &doc, err);
  if (ret) return ret;
  if (fresh.version != r->version + 1) {
    ret = uptane__fail(err, fresh.version <= r->version ? UPTANE_ROLLBACK : UPTANE_VERSION_MISMATCH,
                       "%s: version %lld, but the trusted root is version %lld (it must be %lld)",
                       what, (long long)fresh.version, (long long)r->version,
                       (long long)r->version + 1);
  }
  /* Both thresholds: the old keys vouch for the new root, the new keys accept their role. */
  char by[96];
  if (ret == 0) {
    snprintf(by, sizeof(by), "%s (by the keys of root version %lld)", what, (long long)r->version);
    ret = uptane_verify_signed(doc, r, UPTANE_ROLE_ROOT, by, err);
  }
  if (ret == 0) {
    snprintf(by, sizeof(by), "%s (by its own keys)", what);
    ret = uptane_verify_signed(doc, &fresh, UPTANE_ROLE_ROOT, by, err);
  }
  cJSON_Delete(doc);
  if (ret) {
    uptane_root_free(&fresh);
    return ret;
  }
  if (changed) {
    for (int i = 0; i < UPTANE_ROLE__COUNT; i++)
      if (!uptane__role_keys_same(&r->keys, &r->roles[i], &fresh.keys, &fresh.roles[i]))
        *changed |= 1u << i;
  }
  uptane_root_free(r);
  *r = fresh;
  return uptane__ok(err);
}

int uptane_root_load(uptane_root *r, const char *json, size_t len, uptane_err *err) {
  return uptane__root_load(r, json, len, NULL, err);
}

int uptane_root_update(uptane_root *r, const char *json, size_t len, uptane_err *err) {
  return uptane__root_update(r, json, len, NULL, NULL, err);
}

int uptane_root_check_expiry(const uptane_root *r, time_t now, uptane_err *err) {
  if (!r || r->version < 1) return uptane__fail(err, UPTANE_MISSING, "root.json: none trusted yet");
  int ret = uptane__check_expiry(r->expires, now, "root.json", err);
  return ret ? ret : uptane__ok(err);
}
