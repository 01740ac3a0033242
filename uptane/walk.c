/* walk.c - the metadata walk of one update cycle (walk.h): a small step machine over the
 * verification functions of uptane.h. Each step either names a document (FETCH), takes
 * one (feed), or decides; the caller does every fetch and write. */
#include "walk.h"

#include <stdio.h>
#include <string.h>

enum walk_step {
  STEP_DIR_ROOT,       /* director root chain: version + 1, until absent */
  STEP_DIR_TARGETS,    /* director targets.json */
  STEP_DIR_DONE,       /* is anything assigned to the primary? */
  STEP_IMG_ROOT,       /* image root chain */
  STEP_IMG_TIMESTAMP,  /* image timestamp.json */
  STEP_IMG_SNAPSHOT,   /* image snapshot.json, when the timestamp names a new one */
  STEP_IMG_TARGETS,    /* image targets.json, when the snapshot names a new one */
  STEP_IMG_FIND,       /* the director's target in the image targets and delegations */
  STEP_IMG_DELEGATION, /* delegations/<need>.json */
  STEP_DONE            /* a verdict was given */
};

#define X_NAME(e, n) n,
static const char *const doc_names[] = {UPTANE_WALK_DOCS(X_NAME)};
#undef X_NAME

const char *uptane_walk_doc_name(enum uptane_walk_doc doc) {
  return (unsigned)doc < UPTANE_DOC__COUNT ? doc_names[doc] : "?";
}

void uptane_walk_begin(uptane_walk *w, uptane_director *director, uptane_image *image,
                       const uptane_ecu *ecus, size_t necus, update_target *target) {
  memset(w, 0, sizeof(*w));
  w->target = target;
  w->director = director;
  w->image = image;
  w->ecus = ecus;
  w->necus = necus;
  w->step = STEP_DIR_ROOT;
}

/* The director's target for the primary ECU, or NULL. */
static const cJSON *primary_target(const uptane_walk *w) {
  return uptane_target_for_ecu(uptane_director_target_list(w->director), w->ecus[0].serial);
}

static const char *hash_of(const cJSON *target, const char *alg) {
  const cJSON *h =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(target, "hashes"), alg);
  return cJSON_IsString(h) ? h->valuestring : "";
}

static const char *custom_str(const cJSON *target, const char *key) {
  const cJSON *v =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(target, "custom"), key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static uptane_walk_verdict fetch(uptane_walk *w, enum uptane_walk_doc doc,
                                 enum uptane_repo_kind repo, size_t cap) {
  w->doc = doc;
  w->repo = repo;
  w->cap = cap;
  return UPTANE_WALK_FETCH;
}

static uptane_walk_verdict fetch_root(uptane_walk *w, enum uptane_walk_doc doc,
                                      enum uptane_repo_kind repo, int64_t trusted) {
  snprintf(w->path, sizeof(w->path), "%lld.root.json", (long long)trusted + 1);
  return fetch(w, doc, repo, UPTANE_MAX_ROOT_SIZE);
}

static uptane_walk_verdict failed(uptane_walk *w) {
  w->step = STEP_DONE;
  return UPTANE_WALK_FAILED;
}

/* Every document is verified: both repositories agree on the target; copy it out. */
static uptane_walk_verdict found(uptane_walk *w, const cJSON *dt, const cJSON *it, time_t now) {
  if (uptane_verify_update(w->director, w->image, w->ecus, w->necus, now, &w->err))
    return failed(w);
  update_target *t = w->target;
  memset(t, 0, sizeof(*t));
  snprintf(t->name, sizeof(t->name), "%s", dt->string);
  snprintf(t->sha256, sizeof(t->sha256), "%s", hash_of(dt, "sha256"));
  snprintf(t->sha512, sizeof(t->sha512), "%s", hash_of(dt, "sha512"));
  const cJSON *len = cJSON_GetObjectItemCaseSensitive(dt, "length");
  t->length = cJSON_IsNumber(len) ? (uint64_t)len->valuedouble : 0;
  snprintf(t->uri, sizeof(t->uri), "%s", custom_str(it, "uri"));
  snprintf(t->format, sizeof(t->format), "%s", custom_str(it, "targetFormat"));
  snprintf(t->version, sizeof(t->version), "%s", custom_str(it, "version"));
  const char *corr = uptane_director_correlation_id(w->director);
  snprintf(t->correlation_id, sizeof(t->correlation_id), "%s", corr ? corr : "");
  w->step = STEP_DONE;
  return UPTANE_WALK_UPDATE;
}

/* The director's target in the image repository, asking for delegations as needed. */
static uptane_walk_verdict find(uptane_walk *w, time_t now) {
  const cJSON *dt = primary_target(w), *it = NULL;
  if (!dt) { /* cannot happen: ASSIGNED came first */
    w->err.fail = UPTANE_MISSING;
    snprintf(w->err.eb.msg, sizeof(w->err.eb.msg), "no director target for the primary ECU");
    return failed(w);
  }
  int rc = uptane_image_find(w->image, dt->string, &it, w->need, &w->err);
  if (rc == UPTANE_NEED_DELEGATION) {
    w->step = STEP_IMG_DELEGATION;
    snprintf(w->path, sizeof(w->path), "delegations/%s.json", w->need);
    return fetch(w, UPTANE_DOC_IMAGE_DELEGATION, UPTANE_REPO_IMAGE,
                 uptane_image_size_cap(w->image, UPTANE_ROLE_TARGETS, w->need));
  }
  if (rc) return failed(w);
  return found(w, dt, it, now);
}

uptane_walk_verdict uptane_walk_next(uptane_walk *w, time_t now) {
  for (;;) {
    switch (w->step) {
    case STEP_DIR_ROOT:
      return fetch_root(w, UPTANE_DOC_DIRECTOR_ROOT, UPTANE_REPO_DIRECTOR,
                        w->director->root.version);
    case STEP_DIR_TARGETS:
      if (uptane_root_check_expiry(&w->director->root, now, &w->err)) return failed(w);
      snprintf(w->path, sizeof(w->path), "targets.json");
      return fetch(w, UPTANE_DOC_DIRECTOR_TARGETS, UPTANE_REPO_DIRECTOR,
                   UPTANE_MAX_DIRECTOR_TARGETS_SIZE);
    case STEP_DIR_DONE: {
      const cJSON *t = primary_target(w);
      w->step = STEP_DONE;
      if (!t) return UPTANE_WALK_NO_UPDATE;
      w->assigned = t->string;
      w->assigned_sha256 = hash_of(t, "sha256");
      return UPTANE_WALK_ASSIGNED;
    }
    case STEP_IMG_ROOT:
      return fetch_root(w, UPTANE_DOC_IMAGE_ROOT, UPTANE_REPO_IMAGE, w->image->root.version);
    case STEP_IMG_TIMESTAMP:
      if (uptane_root_check_expiry(&w->image->root, now, &w->err)) return failed(w);
      snprintf(w->path, sizeof(w->path), "timestamp.json");
      return fetch(w, UPTANE_DOC_IMAGE_TIMESTAMP, UPTANE_REPO_IMAGE, UPTANE_MAX_TIMESTAMP_SIZE);
    case STEP_IMG_SNAPSHOT:
      if (!uptane_image_snapshot_needed(w->image)) {
        w->step = STEP_IMG_TARGETS;
        continue;
      }
      snprintf(w->path, sizeof(w->path), "snapshot.json");
      return fetch(w, UPTANE_DOC_IMAGE_SNAPSHOT, UPTANE_REPO_IMAGE,
                   uptane_image_size_cap(w->image, UPTANE_ROLE_SNAPSHOT, NULL));
    case STEP_IMG_TARGETS:
      if (!uptane_image_targets_needed(w->image)) {
        w->step = STEP_IMG_FIND;
        continue;
      }
      snprintf(w->path, sizeof(w->path), "targets.json");
      return fetch(w, UPTANE_DOC_IMAGE_TARGETS, UPTANE_REPO_IMAGE,
                   uptane_image_size_cap(w->image, UPTANE_ROLE_TARGETS, NULL));
    case STEP_IMG_FIND:
    case STEP_IMG_DELEGATION: /* next after a delegation was fed: look again */ return find(w, now);
    default:
      w->err.fail = UPTANE_MISSING;
      snprintf(w->err.eb.msg, sizeof(w->err.eb.msg), "the walk has ended");
      return UPTANE_WALK_FAILED;
    }
  }
}

int uptane_walk_feed(uptane_walk *w, const char *json, size_t len, time_t now) {
  int rc;
  switch (w->step) {
  case STEP_DIR_ROOT: /* the chain goes on: the step stays */
    rc = uptane_director_root(w->director, json, len, &w->err);
    break;
  case STEP_DIR_TARGETS:
    rc = uptane_director_targets(w->director, json, len, now, w->ecus, w->necus, &w->err);
    if (!rc) w->step = STEP_DIR_DONE;
    break;
  case STEP_IMG_ROOT: rc = uptane_image_root(w->image, json, len, &w->err); break;
  case STEP_IMG_TIMESTAMP:
    rc = uptane_image_timestamp(w->image, json, len, now, &w->err);
    if (!rc) w->step = STEP_IMG_SNAPSHOT;
    break;
  case STEP_IMG_SNAPSHOT:
    rc = uptane_image_snapshot(w->image, json, len, now, &w->err);
    if (!rc) w->step = STEP_IMG_TARGETS;
    break;
  case STEP_IMG_TARGETS:
    rc = uptane_image_targets(w->image, json, len, now, &w->err);
    if (!rc) w->step = STEP_IMG_FIND;
    break;
  case STEP_IMG_DELEGATION:
    rc = uptane_image_delegation(w->image, w->need, json, len, now, &w->err);
    break;
  default:
    w->err.fail = UPTANE_MISSING;
    snprintf(w->err.eb.msg, sizeof(w->err.eb.msg), "no document was asked for");
    rc = OTAD_EINVAL;
  }
  if (rc) w->step = STEP_DONE;
  return rc;
}

bool uptane_walk_absent(uptane_walk *w) {
  if (w->step == STEP_DIR_ROOT && w->director->root.version > 0) {
    w->step = STEP_DIR_TARGETS;
    return true;
  }
  if (w->step == STEP_IMG_ROOT && w->image->root.version > 0) {
    w->step = STEP_IMG_TIMESTAMP;
    return true;
  }
  return false;
}

void uptane_walk_too_big(uptane_walk *w, const char *what) {
  w->err.fail = UPTANE_TOO_BIG;
  snprintf(w->err.eb.msg, sizeof(w->err.eb.msg), "%s", what);
  w->step = STEP_DONE;
}

void uptane_walk_into_image(uptane_walk *w) {
  w->step = STEP_IMG_ROOT;
}
