/* uptane_image.c - the image repository: timestamp -> snapshot -> targets -> delegations.
 *
 * Each document is pinned by its parent: the timestamp records the snapshot's version
 * (and maybe length and hashes), the snapshot records the version of targets.json and of
 * every delegation. A fresh document is checked against that record, its role's keys, the
 * trusted copy it replaces (rollback) and the clock, in that order, and replaces the
 * trusted copy only when all passed. Restored documents (from the caller's storage) are
 * checked for signature and form only; uptane_image_check() relinks everything before use.
 */
#include "internal.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMG_TIMESTAMP "image timestamp.json"
#define IMG_SNAPSHOT "image snapshot.json"
#define IMG_TARGETS "image targets.json"

/* Delegations deeper than this, or more visited in one search, end the search (TUF's
 * max_delegations is 32). */
#define IMAGE__MAX_DEPTH 8
#define IMAGE__MAX_VISITS 32

void uptane_image_init(uptane_image *img) {
  memset(img, 0, sizeof(*img));
}

static void image__forget_delegations(uptane_image *img) {
  for (size_t i = 0; i < img->ndelegations; i++)
    uptane__meta_free(&img->delegations[i].meta);
  free(img->delegations);
  img->delegations = NULL;
  img->ndelegations = 0;
}

void uptane_image_free(uptane_image *img) {
  if (!img) return;
  uptane_root_free(&img->root);
  uptane__meta_free(&img->timestamp);
  uptane__meta_free(&img->snapshot);
  uptane__meta_free(&img->targets);
  image__forget_delegations(img);
}

int uptane_image_root(uptane_image *img, const char *json, size_t len, uptane_err *err) {
  if (img->root.version < 1) return uptane__root_load(&img->root, json, len, "image", err);
  unsigned changed = 0;
  int ret = uptane__root_update(&img->root, json, len, "image", &changed, err);
  if (ret) return ret;
  /* TUF 5.3.11: new timestamp or snapshot keys may mean the old ones signed a version far
   * ahead (a fast-forward attack); forgetting lets the repository recover. */
  if (changed & ((1u << UPTANE_ROLE_TIMESTAMP) | (1u << UPTANE_ROLE_SNAPSHOT))) {
    uptane__meta_free(&img->timestamp);
    uptane__meta_free(&img->snapshot);
  }
  if (changed & (1u << UPTANE_ROLE_TARGETS)) {
    uptane__meta_free(&img->targets);
    image__forget_delegations(img);
  }
  return 0;
}

/* Parses and reads the common fields of a document into *out. */
static int image__parse(const char *json, size_t len, size_t cap, const char *type,
                        const char *what, uptane_meta *out, uptane_err *err) {
  memset(out, 0, sizeof(*out));
  int ret = uptane__parse_doc(json, len, cap, what, &out->doc, err);
  if (ret == 0)
    ret = uptane__signed_common(out->doc, type, what, &out->version, &out->expires, err);
  if (ret) uptane__meta_free(out);
  return ret;
}

static const cJSON *image__meta_entry(const uptane_meta *m, const char *file) {
  return uptane__get(uptane__get(uptane__get(m->doc, "signed"), "meta"), file);
}

static int64_t image__recorded_version(const uptane_meta *m, const char *file) {
  int64_t v;
  return uptane__int(uptane__get(image__meta_entry(m, file), "version"), 1, &v) ? v : 0;
}

static size_t image__recorded_length(const uptane_meta *m, const char *file, size_t dflt) {
  int64_t v;
  if (!uptane__int(uptane__get(image__meta_entry(m, file), "length"), 0, &v)) return dflt;
  return (size_t)v;
}

static int image__rollback(const uptane_meta *trusted, int64_t version, const char *what,
                           uptane_err *err) {
  if (trusted->doc && version < trusted->version)
    return uptane__fail(err, UPTANE_ROLLBACK,
                        "%s: version %lld is lower than trusted version %lld (rollback)", what,
                        (long long)version, (long long)trusted->version);
  return 0;
}

/* ---- timestamp ---- */

static int image__timestamp(uptane_image *img, const char *json, size_t len, time_t now, int fresh,
                            uptane_err *err) {
  const char *what = IMG_TIMESTAMP;
  if (img->root.version < 1)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted image root yet", what);
  uptane_meta m;
  int ret = image__parse(json, len, UPTANE_MAX_TIMESTAMP_SIZE, "Timestamp", what, &m, err);
  if (ret) return ret;
  ret = uptane_verify_signed(m.doc, &img->root, UPTANE_ROLE_TIMESTAMP, what, err);
  int64_t snap_version = 0;
  if (ret == 0 && !uptane__int(uptane__get(image__meta_entry(&m, "snapshot.json"), "version"), 1,
                               &snap_version))
    ret = uptane__fail(err, UPTANE_MALFORMED, "%s: meta[\"snapshot.json\"] has no valid version",
                       what);
  if (ret == 0 && fresh) {
    ret = image__rollback(&img->timestamp, m.version, what, err);
    int64_t had =
        img->timestamp.doc ? image__recorded_version(&img->timestamp, "snapshot.json") : 0;
    if (ret == 0 && img->snapshot.doc && img->snapshot.version > had) had = img->snapshot.version;
    if (ret == 0 && snap_version < had)
      ret = uptane__fail(err, UPTANE_ROLLBACK,
                         "%s: records snapshot version %lld, lower than trusted version %lld "
                         "(rollback)",
                         what, (long long)snap_version, (long long)had);
    if (ret == 0) ret = uptane__check_expiry(m.expires, now, what, err);
  }
  if (ret) {
    uptane__meta_free(&m);
    return ret;
  }
  uptane__meta_replace(&img->timestamp, &m);
  return uptane__ok(err);
}

int uptane_image_timestamp(uptane_image *img, const char *json, size_t len, time_t now,
                           uptane_err *err) {
  return image__timestamp(img, json, len, now, 1, err);
}

/* ---- snapshot ---- */

int uptane_image_snapshot_needed(const uptane_image *img) {
  return !img->snapshot.doc || !img->timestamp.doc ||
         img->snapshot.version != image__recorded_version(&img->timestamp, "snapshot.json");
}

static int image__snapshot(uptane_image *img, const char *json, size_t len, time_t now, int fresh,
                           uptane_err *err) {
  const char *what = IMG_SNAPSHOT;
  if (img->root.version < 1)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted image root yet", what);
  if (fresh && !img->timestamp.doc)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted timestamp.json yet", what);
  size_t cap =
      fresh ? uptane_image_size_cap(img, UPTANE_ROLE_SNAPSHOT, NULL) : UPTANE_MAX_SNAPSHOT_SIZE;
  uptane_meta m;
  int ret = image__parse(json, len, cap, "Snapshot", what, &m, err);
  if (ret) return ret;
  if (fresh)
    ret = uptane__check_record(image__meta_entry(&img->timestamp, "snapshot.json"), json, len,
                               m.doc, m.version, what, err);
  if (ret == 0) ret = uptane_verify_signed(m.doc, &img->root, UPTANE_ROLE_SNAPSHOT, what, err);
  const cJSON *meta = uptane__get(uptane__get(m.doc, "signed"), "meta");
  if (ret == 0 && !cJSON_IsObject(meta))
    ret = uptane__fail(err, UPTANE_MALFORMED, "%s: signed.meta is missing or no object", what);
  const cJSON *e;
  int64_t v;
  if (ret == 0) {
    cJSON_ArrayForEach(e, meta) {
      if (!uptane__int(uptane__get(e, "version"), 1, &v)) {
        ret = uptane__fail(err, UPTANE_MALFORMED, "%s: meta[\"%.128s\"] has no valid version", what,
                           e->string);
        break;
      }
    }
  }
  if (ret == 0 && !image__meta_entry(&m, "targets.json"))
    ret = uptane__fail(err, UPTANE_MALFORMED, "%s: meta lists no targets.json", what);
  if (ret == 0 && fresh) {
    ret = image__rollback(&img->snapshot, m.version, what, err);
    /* No targets document may go back; one the new snapshot no longer lists may go. */
    const cJSON *old =
        img->snapshot.doc ? uptane__get(uptane__get(img->snapshot.doc, "signed"), "meta") : NULL;
    cJSON_ArrayForEach(e, old) {
      if (ret) break;
      int64_t was = image__recorded_version(&img->snapshot, e->string);
      int64_t is = image__recorded_version(&m, e->string);
      if (is && is < was)
        ret = uptane__fail(err, UPTANE_ROLLBACK,
                           "%s: records %.128s version %lld, lower than trusted version %lld "
                           "(rollback)",
                           what, e->string, (long long)is, (long long)was);
    }
    int64_t targets_v = image__recorded_version(&m, "targets.json");
    if (ret == 0 && img->targets.doc && targets_v < img->targets.version)
      ret = uptane__fail(err, UPTANE_ROLLBACK,
                         "%s: records targets.json version %lld, lower than trusted version %lld "
                         "(rollback)",
                         what, (long long)targets_v, (long long)img->targets.version);
    if (ret == 0) ret = uptane__check_expiry(m.expires, now, what, err);
  }
  if (ret) {
    uptane__meta_free(&m);
    return ret;
  }
  uptane__meta_replace(&img->snapshot, &m);
  return uptane__ok(err);
}

int uptane_image_snapshot(uptane_image *img, const char *json, size_t len, time_t now,
                          uptane_err *err) {
  return image__snapshot(img, json, len, now, 1, err);
}

/* ---- targets and delegations ---- */

/* A delegated role name: it becomes part of a URL and a file name. */
static int image__name_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > UPTANE_MAX_NAME || name[0] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') return 0;
  }
  return 1;
}

/* Checks signed.targets and signed.delegations (keys parse, roles well-formed). */
static int image__check_targets_doc(const cJSON *doc, const char *what, uptane_err *err) {
  const cJSON *s = uptane__get(doc, "signed");
  int ret = uptane__check_target_list(uptane__get(s, "targets"), what, err);
  const cJSON *del = uptane__get(s, "delegations");
  if (ret || !del || cJSON_IsNull(del)) return ret;
  if (!cJSON_IsObject(del))
    return uptane__fail(err, UPTANE_MALFORMED, "%s: delegations is no object", what);
  uptane_keyring ring;
  ret = uptane_keyring_parse(uptane__get(del, "keys"), &ring, what, err);
  if (ret) return ret;
  const cJSON *roles = uptane__get(del, "roles");
  if (!cJSON_IsArray(roles))
    ret = uptane__fail(err, UPTANE_MALFORMED, "%s: delegations.roles is missing or no array", what);
  const cJSON *r;
  cJSON_ArrayForEach(r, roles) {
    if (ret) break;
    const cJSON *name = uptane__get(r, "name"), *paths = uptane__get(r, "paths");
    const cJSON *term = uptane__get(r, "terminating");
    if (!cJSON_IsString(name) || !image__name_ok(name->valuestring)) {
      ret = uptane__fail(err, UPTANE_MALFORMED,
                         "%s: a delegated role has no name or one unfit for a file name", what);
      break;
    }
    for (const cJSON *p = roles->child; p != r; p = p->next) {
      if (strcmp(uptane__get(p, "name")->valuestring, name->valuestring) == 0) {
        ret = uptane__fail(err, UPTANE_MALFORMED, "%s: role \"%s\" delegated twice", what,
                           name->valuestring);
        break;
      }
    }
    if (ret) break;
    if ((paths && !cJSON_IsArray(paths)) || (term && !cJSON_IsBool(term))) {
      ret = uptane__fail(err, UPTANE_MALFORMED,
                         "%s: role \"%s\": paths must be an array, terminating a boolean", what,
                         name->valuestring);
      break;
    }
    const cJSON *p;
    cJSON_ArrayForEach(p, paths) {
      if (!cJSON_IsString(p)) {
        ret = uptane__fail(err, UPTANE_MALFORMED, "%s: role \"%s\": a path is no string", what,
                           name->valuestring);
        break;
      }
    }
    uptane_role_keys rk;
    char role_what[UPTANE_MAX_NAME + 64];
    snprintf(role_what, sizeof(role_what), "%s: role \"%s\"", what, name->valuestring);
    if (ret == 0 && (ret = uptane__role_keys_parse(r, &ring, &rk, role_what, err)) == 0)
      uptane__role_keys_free(&rk);
  }
  uptane_keyring_free(&ring);
  return ret;
}

int uptane_image_targets_needed(const uptane_image *img) {
  return !img->targets.doc || !img->snapshot.doc ||
         img->targets.version != image__recorded_version(&img->snapshot, "targets.json");
}

static int image__targets(uptane_image *img, const char *json, size_t len, time_t now, int fresh,
                          uptane_err *err) {
  const char *what = IMG_TARGETS;
  if (img->root.version < 1)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted image root yet", what);
  if (fresh && !img->snapshot.doc)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted snapshot.json yet", what);
  size_t cap =
      fresh ? uptane_image_size_cap(img, UPTANE_ROLE_TARGETS, NULL) : UPTANE_MAX_IMAGE_TARGETS_SIZE;
  uptane_meta m;
  int ret = image__parse(json, len, cap, "Targets", what, &m, err);
  if (ret) return ret;
  if (fresh)
    ret = uptane__check_record(image__meta_entry(&img->snapshot, "targets.json"), json, len, m.doc,
                               m.version, what, err);
  if (ret == 0) ret = uptane_verify_signed(m.doc, &img->root, UPTANE_ROLE_TARGETS, what, err);
  if (ret == 0) ret = image__check_targets_doc(m.doc, what, err);
  if (ret == 0 && fresh) {
    ret = image__rollback(&img->targets, m.version, what, err);
    if (ret == 0) ret = uptane__check_expiry(m.expires, now, what, err);
  }
  if (ret) {
    uptane__meta_free(&m);
    return ret;
  }
  /* Delegated metadata hangs off the keys of the targets that delegated to it. */
  if (!img->targets.doc || img->targets.version != m.version) image__forget_delegations(img);
  uptane__meta_replace(&img->targets, &m);
  return uptane__ok(err);
}

int uptane_image_targets(uptane_image *img, const char *json, size_t len, time_t now,
                         uptane_err *err) {
  return image__targets(img, json, len, now, 1, err);
}

static uptane_delegated *image__delegated(const uptane_image *img, const char *name) {
  for (size_t i = 0; i < img->ndelegations; i++)
    if (strcmp(img->delegations[i].name, name) == 0) return &img->delegations[i];
  return NULL;
}

static const cJSON *image__roles_of(const cJSON *doc) {
  return uptane__get(uptane__get(uptane__get(doc, "signed"), "delegations"), "roles");
}

/* Finds the document that delegates to name, depth-first from the targets: *parent_doc and
 * *role (its entry in delegations.roles). */
static int image__find_parent(const uptane_image *img, const cJSON *doc, const char *name,
                              int depth, int *visits, const cJSON **parent_doc,
                              const cJSON **role) {
  if (!doc || depth > IMAGE__MAX_DEPTH || ++*visits > IMAGE__MAX_VISITS) return 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, image__roles_of(doc)) {
    if (strcmp(uptane__get(r, "name")->valuestring, name) == 0) {
      *parent_doc = doc;
      *role = r;
      return 1;
    }
  }
  cJSON_ArrayForEach(r, image__roles_of(doc)) {
    const uptane_delegated *d = image__delegated(img, uptane__get(r, "name")->valuestring);
    if (d && image__find_parent(img, d->meta.doc, name, depth + 1, visits, parent_doc, role))
      return 1;
  }
  return 0;
}

static int image__delegation(uptane_image *img, const char *name, const char *json, size_t len,
                             time_t now, int fresh, uptane_err *err) {
  char what[UPTANE_MAX_NAME + 64], file[UPTANE_MAX_NAME + 8];
  if (!image__name_ok(name))
    return uptane__fail(err, UPTANE_MISSING, "image delegation: invalid role name");
  snprintf(what, sizeof(what), "image delegations/%s.json", name);
  snprintf(file, sizeof(file), "%s.json", name);
  if (!img->targets.doc)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted targets.json yet", what);
  if (fresh && !img->snapshot.doc)
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted snapshot.json yet", what);
  const cJSON *parent = NULL, *role = NULL;
  int visits = 0;
  if (!image__find_parent(img, img->targets.doc, name, 0, &visits, &parent, &role))
    return uptane__fail(err, UPTANE_MISSING, "%s: no trusted metadata delegates to \"%s\"", what,
                        name);
  size_t cap =
      fresh ? uptane_image_size_cap(img, UPTANE_ROLE_TARGETS, name) : UPTANE_MAX_IMAGE_TARGETS_SIZE;
  uptane_meta m;
  int ret = image__parse(json, len, cap, "Targets", what, &m, err);
  if (ret) return ret;
  if (fresh) {
    const cJSON *record = image__meta_entry(&img->snapshot, file);
    if (!record)
      ret = uptane__fail(err, UPTANE_VERSION_MISMATCH, "%s: snapshot.json records no version of it",
                         what);
    else
      ret = uptane__check_record(record, json, len, m.doc, m.version, what, err);
  }
  if (ret == 0) {
    uptane_keyring ring;
    uptane_role_keys rk;
    const cJSON *del = uptane__get(uptane__get(parent, "signed"), "delegations");
    ret = uptane_keyring_parse(uptane__get(del, "keys"), &ring, what, err);
    if (ret == 0) {
      ret = uptane__role_keys_parse(role, &ring, &rk, what, err);
      if (ret == 0) {
        ret = uptane_verify_signatures(m.doc, &ring, &rk, what, err);
        uptane__role_keys_free(&rk);
      }
      uptane_keyring_free(&ring);
    }
  }
  if (ret == 0) ret = image__check_targets_doc(m.doc, what, err);
  uptane_delegated *d = image__delegated(img, name);
  if (ret == 0 && fresh) {
    if (d) ret = image__rollback(&d->meta, m.version, what, err);
    if (ret == 0) ret = uptane__check_expiry(m.expires, now, what, err);
  }
  if (ret == 0 && !d) {
    uptane_delegated *grown =
        realloc(img->delegations, (img->ndelegations + 1) * sizeof(*img->delegations));
    if (!grown) {
      ret = uptane__nomem(err, what);
    } else {
      img->delegations = grown;
      d = &grown[img->ndelegations++];
      memset(d, 0, sizeof(*d));
      snprintf(d->name, sizeof(d->name), "%s", name);
    }
  }
  if (ret) {
    uptane__meta_free(&m);
    return ret;
  }
  uptane__meta_replace(&d->meta, &m);
  return uptane__ok(err);
}

int uptane_image_delegation(uptane_image *img, const char *name, const char *json, size_t len,
                            time_t now, uptane_err *err) {
  return image__delegation(img, name, json, len, now, 1, err);
}

int uptane_image_restore(uptane_image *img, enum uptane_role role, const char *delegation,
                         const char *json, size_t len, uptane_err *err) {
  switch (role) {
  case UPTANE_ROLE_TIMESTAMP: return image__timestamp(img, json, len, 0, 0, err);
  case UPTANE_ROLE_SNAPSHOT: return image__snapshot(img, json, len, 0, 0, err);
  case UPTANE_ROLE_TARGETS:
    return delegation ? image__delegation(img, delegation, json, len, 0, 0, err)
                      : image__targets(img, json, len, 0, 0, err);
  default:
    return uptane__fail(err, UPTANE_MISSING, "image: roots are loaded with uptane_image_root()");
  }
}

size_t uptane_image_size_cap(const uptane_image *img, enum uptane_role role,
                             const char *delegation) {
  switch (role) {
  case UPTANE_ROLE_ROOT: return UPTANE_MAX_ROOT_SIZE;
  case UPTANE_ROLE_TIMESTAMP: return UPTANE_MAX_TIMESTAMP_SIZE;
  case UPTANE_ROLE_SNAPSHOT:
    return image__recorded_length(&img->timestamp, "snapshot.json", UPTANE_MAX_SNAPSHOT_SIZE);
  case UPTANE_ROLE_TARGETS: {
    char file[UPTANE_MAX_NAME + 8];
    snprintf(file, sizeof(file), "%s.json", delegation ? delegation : "targets");
    return image__recorded_length(&img->snapshot, file, UPTANE_MAX_IMAGE_TARGETS_SIZE);
  }
  default: return 0;
  }
}

/* ---- use ---- */

/* A trusted delegation of the version the snapshot records, or NULL. */
static const uptane_delegated *image__current(const uptane_image *img, const char *name) {
  const uptane_delegated *d = image__delegated(img, name);
  char file[UPTANE_MAX_NAME + 8];
  snprintf(file, sizeof(file), "%s.json", name);
  if (!d || d->meta.version != image__recorded_version(&img->snapshot, file)) return NULL;
  return d;
}

int uptane_image_check(const uptane_image *img, time_t now, uptane_err *err) {
  if (img->root.version < 1)
    return uptane__fail(err, UPTANE_MISSING, "image root.json: none trusted yet");
  int ret = uptane__check_expiry(img->root.expires, now, "image root.json", err);
  if (ret) return ret;
  const struct {
    const uptane_meta *m;
    const char *what;
  } chain[] = {{&img->timestamp, IMG_TIMESTAMP},
               {&img->snapshot, IMG_SNAPSHOT},
               {&img->targets, IMG_TARGETS}};
  for (size_t i = 0; i < sizeof(chain) / sizeof(chain[0]); i++) {
    if (!chain[i].m->doc)
      return uptane__fail(err, UPTANE_MISSING, "%s: none trusted yet", chain[i].what);
    if ((ret = uptane__check_expiry(chain[i].m->expires, now, chain[i].what, err))) return ret;
  }
  int64_t want = image__recorded_version(&img->timestamp, "snapshot.json");
  if (img->snapshot.version != want)
    return uptane__fail(err, UPTANE_VERSION_MISMATCH,
                        "%s: trusted version %lld, but the timestamp records version %lld",
                        IMG_SNAPSHOT, (long long)img->snapshot.version, (long long)want);
  want = image__recorded_version(&img->snapshot, "targets.json");
  if (img->targets.version != want)
    return uptane__fail(err, UPTANE_VERSION_MISMATCH,
                        "%s: trusted version %lld, but the snapshot records version %lld",
                        IMG_TARGETS, (long long)img->targets.version, (long long)want);
  for (size_t i = 0; i < img->ndelegations; i++) {
    const uptane_delegated *d = &img->delegations[i];
    if (image__current(img, d->name) != d) continue; /* stale: find() will not use it */
    char what[UPTANE_MAX_NAME + 64];
    snprintf(what, sizeof(what), "image delegations/%s.json", d->name);
    if ((ret = uptane__check_expiry(d->meta.expires, now, what, err))) return ret;
  }
  return uptane__ok(err);
}

enum image__found { IMAGE__FOUND, IMAGE__NEED, IMAGE__CONTINUE, IMAGE__STOP };

static int image__paths_match(const cJSON *role, const char *name) {
  const cJSON *p;
  cJSON_ArrayForEach(p, uptane__get(role, "paths")) {
    if (fnmatch(p->valuestring, name, 0) == 0) return 1;
  }
  return 0;
}

static enum image__found image__search(const uptane_image *img, const cJSON *doc, const char *name,
                                       int depth, int *visits, const cJSON **target,
                                       char need[UPTANE_MAX_NAME + 1]) {
  if (depth > IMAGE__MAX_DEPTH || ++*visits > IMAGE__MAX_VISITS) return IMAGE__STOP;
  const cJSON *r;
  cJSON_ArrayForEach(r, image__roles_of(doc)) {
    if (!image__paths_match(r, name)) continue;
    const char *role_name = uptane__get(r, "name")->valuestring;
    const uptane_delegated *d = image__current(img, role_name);
    if (!d) {
      snprintf(need, UPTANE_MAX_NAME + 1, "%s", role_name);
      return IMAGE__NEED;
    }
    const cJSON *t = uptane__get(uptane__get(uptane__get(d->meta.doc, "signed"), "targets"), name);
    if (t) {
      *target = t;
      return IMAGE__FOUND;
    }
    enum image__found f = image__search(img, d->meta.doc, name, depth + 1, visits, target, need);
    if (f != IMAGE__CONTINUE) return f;
    if (cJSON_IsTrue(uptane__get(r, "terminating"))) return IMAGE__STOP;
  }
  return IMAGE__CONTINUE;
}

int uptane_image_find(const uptane_image *img, const char *name, const cJSON **target,
                      char need[UPTANE_MAX_NAME + 1], uptane_err *err) {
  *target = NULL;
  if (need) need[0] = '\0';
  if (!img->targets.doc)
    return uptane__fail(err, UPTANE_MISSING, "%s: none trusted yet", IMG_TARGETS);
  const cJSON *t =
      uptane__get(uptane__get(uptane__get(img->targets.doc, "signed"), "targets"), name);
  if (t) {
    *target = t;
    return uptane__ok(err);
  }
  char scratch[UPTANE_MAX_NAME + 1];
  int visits = 0;
  switch (image__search(img, img->targets.doc, name, 0, &visits, target, need ? need : scratch)) {
  case IMAGE__FOUND: return uptane__ok(err);
  case IMAGE__NEED: uptane__ok(err); return UPTANE_NEED_DELEGATION;
  default:
    return uptane__fail(err, UPTANE_NO_TARGET, "image repository: no target named \"%.200s\"",
                        name);
  }
}
