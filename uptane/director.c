/* uptane_director.c - the director repository (root + targets, no timestamp or snapshot)
 * and the final check that ties the two repositories together.
 *
 * The director names what each ECU should run; the image repository vouches for the
 * images. An update is only as good as the match between the two: same name, same
 * length, same hashes, and hardware IDs the image repository allows (Uptane 5.4.4.2 step
 * 10), which stops a compromised director from sending an image meant for other hardware
 * or an image the image repository never signed.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DIR_TARGETS "director targets.json"

void uptane_director_init(uptane_director *d) {
  memset(d, 0, sizeof(*d));
}

void uptane_director_free(uptane_director *d) {
  if (!d) return;
  uptane_root_free(&d->root);
  uptane__meta_free(&d->targets);
}

int uptane_director_root(uptane_director *d, const char *json, size_t len, uptane_err *err) {
  if (d->root.version < 1) return uptane__root_load(&d->root, json, len, "director", err);
  unsigned changed = 0;
  int ret = uptane__root_update(&d->root, json, len, "director", &changed, err);
  if (ret == 0 && (changed & (1u << UPTANE_ROLE_TARGETS))) uptane__meta_free(&d->targets);
  return ret;
}

static const cJSON *director__ecus_of(const cJSON *target) {
  return uptane__get(uptane__get(target, "custom"), "ecuIdentifiers");
}

/* The rules on the content of director targets; ECUs against ecus[] when check_ecus. */
static int director__check_content(const cJSON *doc, const uptane_ecu *ecus, size_t necus,
                                   int check_ecus, uptane_err *err) {
  const char *what = DIR_TARGETS;
  const cJSON *s = uptane__get(doc, "signed");
  const cJSON *targets = uptane__get(s, "targets");
  int ret = uptane__check_target_list(targets, what, err);
  if (ret) return ret;
  /* Uptane 5.4.4.6.6: the director does not delegate. */
  const cJSON *del = uptane__get(s, "delegations");
  if (del && !cJSON_IsNull(del) &&
      (cJSON_GetArraySize(uptane__get(del, "roles")) > 0 ||
       cJSON_GetArraySize(uptane__get(del, "keys")) > 0))
    return uptane__fail(err, UPTANE_MALFORMED, "%s: the director may not delegate", what);
  const cJSON *t;
  cJSON_ArrayForEach(t, targets) {
    const cJSON *hashes = uptane__get(t, "hashes");
    if (!uptane__get(hashes, "sha256") && !uptane__get(hashes, "sha512"))
      return uptane__fail(err, UPTANE_MALFORMED, "%s: target \"%.128s\" has no sha256 or sha512",
                          what, t->string);
    const cJSON *ids = director__ecus_of(t);
    if (!cJSON_IsObject(ids) || !ids->child)
      return uptane__fail(err, UPTANE_MALFORMED,
                          "%s: target \"%.128s\" names no ECU (custom.ecuIdentifiers)", what,
                          t->string);
    const cJSON *e;
    cJSON_ArrayForEach(e, ids) {
      const cJSON *hw = uptane__get(e, "hardwareId");
      if (!cJSON_IsString(hw))
        return uptane__fail(err, UPTANE_MALFORMED,
                            "%s: target \"%.128s\": ECU %.64s has no hardwareId", what, t->string,
                            e->string);
      /* Uptane 5.4.4.6.7: one image per ECU. */
      for (const cJSON *u = targets->child; u; u = u->next) {
        const cJSON *other = uptane__get(director__ecus_of(u), e->string);
        if (u == t) {
          if (other != e) /* the same serial twice in one target */
            return uptane__fail(err, UPTANE_DUPLICATE_ECU,
                                "%s: ECU %.64s is named twice by target \"%.128s\"", what,
                                e->string, t->string);
          break;
        }
        if (other)
          return uptane__fail(err, UPTANE_DUPLICATE_ECU,
                              "%s: ECU %.64s is named by targets \"%.128s\" and \"%.128s\"", what,
                              e->string, u->string, t->string);
      }
      if (!check_ecus) continue;
      const uptane_ecu *ecu = NULL;
      for (size_t i = 0; i < necus && !ecu; i++)
        if (ecus[i].serial && strcmp(ecus[i].serial, e->string) == 0) ecu = &ecus[i];
      if (!ecu)
        return uptane__fail(
            err, UPTANE_UNKNOWN_ECU,
            "%s: target \"%.128s\" is for ECU %.64s, which this device does not have", what,
            t->string, e->string);
      if (!ecu->hwid || strcmp(ecu->hwid, hw->valuestring) != 0)
        return uptane__fail(err, UPTANE_HWID_MISMATCH,
                            "%s: target \"%.128s\" is for hardware \"%.64s\", but ECU %.64s is "
                            "\"%.64s\"",
                            what, t->string, hw->valuestring, e->string,
                            ecu->hwid ? ecu->hwid : "");
    }
  }
  return 0;
}

static int director__targets(uptane_director *d, const char *json, size_t len, time_t now,
                             const uptane_ecu *ecus, size_t necus, int fresh, uptane_err *err) {
  const char *what = DIR_TARGETS;
  if (d->root.version < 1)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted director root yet", what);
  uptane_meta m = {0};
  int ret = uptane__parse_doc(json, len, UPTANE_MAX_DIRECTOR_TARGETS_SIZE, what, &m.doc, err);
  if (ret) return ret;
  ret = uptane__signed_common(m.doc, "Targets", what, &m.version, &m.expires, err);
  if (ret == 0) ret = uptane_verify_signed(m.doc, &d->root, UPTANE_ROLE_TARGETS, what, err);
  if (ret == 0 && fresh && d->targets.doc && m.version < d->targets.version)
    ret = uptane__fail(err, UPTANE_ROLLBACK,
                       "%s: version %lld is lower than trusted version %lld (rollback)", what,
                       (long long)m.version, (long long)d->targets.version);
  if (ret == 0 && fresh) ret = uptane__check_expiry(m.expires, now, what, err);
  if (ret == 0) ret = director__check_content(m.doc, ecus, necus, fresh, err);
  if (ret) {
    uptane__meta_free(&m);
    return ret;
  }
  uptane__meta_replace(&d->targets, &m);
  return uptane__ok(err);
}

int uptane_director_targets(uptane_director *d, const char *json, size_t len, time_t now,
                            const uptane_ecu *ecus, size_t necus, uptane_err *err) {
  return director__targets(d, json, len, now, ecus, necus, 1, err);
}

int uptane_director_restore(uptane_director *d, const char *json, size_t len, uptane_err *err) {
  return director__targets(d, json, len, 0, NULL, 0, 0, err);
}

int uptane_director_check(const uptane_director *d, time_t now, const uptane_ecu *ecus,
                          size_t necus, uptane_err *err) {
  if (d->root.version < 1)
    return uptane__fail(err, UPTANE_MISSING, "director root.json: none trusted yet");
  int ret = uptane__check_expiry(d->root.expires, now, "director root.json", err);
  if (ret) return ret;
  if (!d->targets.doc)
    return uptane__fail(err, UPTANE_MISSING, "%s: none trusted yet", DIR_TARGETS);
  if ((ret = uptane__check_expiry(d->targets.expires, now, DIR_TARGETS, err))) return ret;
  if ((ret = director__check_content(d->targets.doc, ecus, necus, 1, err))) return ret;
  return uptane__ok(err);
}

const cJSON *uptane_director_target_list(const uptane_director *d) {
  return uptane__get(uptane__get(d->targets.doc, "signed"), "targets");
}

const char *uptane_director_correlation_id(const uptane_director *d) {
  const cJSON *c =
      uptane__get(uptane__get(uptane__get(d->targets.doc, "signed"), "custom"), "correlationId");
  return cJSON_IsString(c) ? c->valuestring : NULL;
}

/* ---- matching ---- */

int uptane_target_match(const cJSON *dt, const cJSON *it, uptane_err *err) {
  if (!dt || !it || !dt->string || !it->string)
    return uptane__fail(err, UPTANE_MISSING, "target match: no target given");
  const char *name = dt->string;
  if (strcmp(dt->string, it->string) != 0)
    return uptane__fail(err, UPTANE_TARGET_MISMATCH,
                        "target \"%.128s\": the image repository's is named \"%.128s\"", name,
                        it->string);
  int64_t dlen, ilen;
  if (!uptane__int(uptane__get(dt, "length"), 0, &dlen) ||
      !uptane__int(uptane__get(it, "length"), 0, &ilen))
    return uptane__fail(err, UPTANE_MALFORMED, "target \"%.128s\": no valid length", name);
  if (dlen != ilen)
    return uptane__fail(err, UPTANE_TARGET_MISMATCH,
                        "target \"%.128s\": length %lld in the director, %lld in the image "
                        "repository",
                        name, (long long)dlen, (long long)ilen);
  static const char *const algos[] = {"sha256", "sha512"};
  int common = 0;
  for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
    const cJSON *dh = uptane__get(uptane__get(dt, "hashes"), algos[i]);
    const cJSON *ih = uptane__get(uptane__get(it, "hashes"), algos[i]);
    if (!cJSON_IsString(dh) || !cJSON_IsString(ih)) continue;
    if (strcasecmp(dh->valuestring, ih->valuestring) != 0)
      return uptane__fail(err, UPTANE_TARGET_MISMATCH,
                          "target \"%.128s\": %s differs between the director and the image "
                          "repository",
                          name, algos[i]);
    common++;
  }
  if (!common)
    return uptane__fail(err, UPTANE_TARGET_MISMATCH,
                        "target \"%.128s\": the director and the image repository share no hash",
                        name);
  const cJSON *hwids = uptane__get(uptane__get(it, "custom"), "hardwareIds");
  const cJSON *e;
  cJSON_ArrayForEach(e, director__ecus_of(dt)) {
    const cJSON *hw = uptane__get(e, "hardwareId");
    int found = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, hwids) {
      if (cJSON_IsString(h) && cJSON_IsString(hw) && strcmp(h->valuestring, hw->valuestring) == 0)
        found = 1;
    }
    if (!found)
      return uptane__fail(err, UPTANE_HWID_MISMATCH,
                          "target \"%.128s\": the image repository does not allow it on hardware "
                          "\"%.64s\" (ECU %.64s)",
                          name, cJSON_IsString(hw) ? hw->valuestring : "", e->string);
  }
  return uptane__ok(err);
}

int uptane_verify_update(const uptane_director *d, const uptane_image *img, const uptane_ecu *ecus,
                         size_t necus, time_t now, uptane_err *err) {
  int ret = uptane_director_check(d, now, ecus, necus, err);
  if (ret) return ret;
  const cJSON *targets = uptane_director_target_list(d);
  if (!targets || !targets->child) return uptane__ok(err); /* nothing to install */
  if ((ret = uptane_image_check(img, now, err))) return ret;
  const cJSON *dt;
  cJSON_ArrayForEach(dt, targets) {
    const cJSON *it = NULL;
    char need[UPTANE_MAX_NAME + 1];
    ret = uptane_image_find(img, dt->string, &it, need, err);
    if (ret == UPTANE_NEED_DELEGATION)
      return uptane__fail(err, UPTANE_MISSING,
                          "target \"%.128s\": delegation \"%s\" of the image repository not "
                          "verified yet",
                          dt->string, need);
    if (ret) return ret;
    if ((ret = uptane_target_match(dt, it, err))) return ret;
  }
  return uptane__ok(err);
}

const cJSON *uptane_target_for_ecu(const cJSON *targets, const char *serial) {
  const cJSON *t;
  cJSON_ArrayForEach(t, targets) {
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(t, "custom"), "ecuIdentifiers");
    if (serial ? cJSON_GetObjectItemCaseSensitive(ids, serial) != NULL : ids != NULL) return t;
  }
  return NULL;
}
